/**
 * Load generator process for the end-to-end benchmark (forked by e2e.ts with
 * an IPC channel). Connects its devices, reports `ready`, and on `start`
 * publishes JSON readings (~120 bytes) with `window` publishes in flight per
 * device: `warmupMs` of warm-up, then `durationMs` measured, then it stops
 * publishing, waits (at most `drainMs`) for the outstanding PUBACKs and
 * disconnects. PUBACK latency is recorded per publish, for acks that arrive
 * inside the measured window.
 *
 * Optional modes (raw client only; used by durability.ts, e2e.ts uses none):
 * - `rate`: an offered load of that many publishes per second (this process,
 *   all its devices together, round-robin) instead of "as fast as the window
 *   allows"; `window` then only caps the publishes in flight per device, and
 *   readings that are due while the window is full wait (`maxOwed` reports
 *   how far behind the offered rate it fell).
 * - `maxMessages`: stop after that many publishes (this process).
 * - a `stop` message ends the publishing phase early (else `durationMs` does).
 * - `reconnect`: when the connection drops (daemon restart) the device
 *   reconnects every 100 ms and sends its unacknowledged publishes again
 *   (DUP flag), like a real device with a clean session.
 * - `tally`: the result lists per device how many readings it published (n =
 *   0..next-1) and which of them were never acknowledged, so that the
 *   orchestrator can check that every acknowledged reading reached Kafka.
 * - `progressMs`: a `progress` message (publishes, PUBACKs) this often.
 *
 * argv[2]: the LoadSpec as JSON. Further arguments are ignored (e2e.ts passes
 * its temp dir so that `pgrep -f` finds every process it started).
 */
import mqtt, { type MqttClient } from 'mqtt';
import { Histogram, type HistogramData } from './histogram.js';
import { publishPacket, rawConnect, type RawConnection } from '../../test/support/mqtt-raw.js';
import { reading } from './reading.js';

export interface LoadSpec {
  readonly host: string;
  readonly port: number;
  /** device names; each is also its MQTT client id; topic devices/<name>/telemetry */
  readonly devices: readonly string[];
  readonly window: number;
  readonly qos: 0 | 1;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** after the load stops, wait at most this long for outstanding PUBACKs */
  readonly drainMs: number;
  readonly client: 'raw' | 'mqttjs';
  /** publishes per second offered by this process (all devices together); absent or 0: as fast as the window allows */
  readonly rate?: number;
  /** stop publishing after this many publishes (this process) */
  readonly maxMessages?: number;
  /** reconnect after the connection drops and send the unacknowledged publishes again */
  readonly reconnect?: boolean;
  /** report per device the readings published and the ones never acknowledged */
  readonly tally?: boolean;
  /** send a progress message this often (ms); absent or 0: never */
  readonly progressMs?: number;
}

/** One device's readings: n = 0..next-1 were published; `unacked` of them never got a PUBACK. */
export interface DeviceTally {
  readonly device: string;
  readonly next: number;
  readonly unacked: number[];
}

export interface LoadResult {
  readonly devices: number;
  /** publishes written, all phases */
  readonly sent: number;
  /** PUBACKs received, all phases (QoS 0: equals sent) */
  readonly acked: number;
  readonly sentInWindow: number;
  readonly ackedInWindow: number;
  /** publishes still without PUBACK when the generator gave up waiting */
  readonly unacked: number;
  /** epoch ms */
  readonly startedAt: number;
  readonly measureFrom: number;
  readonly measureTo: number;
  /** when it stopped issuing publishes */
  readonly stoppedAt: number;
  /** when the last PUBACK arrived (or the last write, QoS 0) */
  readonly lastAckAt: number;
  readonly latency: HistogramData;
  readonly cpuUserMs: number;
  readonly cpuSystemMs: number;
  readonly errors: string[];
  /** payload bytes of all publishes (not counting resends) */
  readonly payloadBytes: number;
  /** publishes sent again after a reconnect */
  readonly resent: number;
  readonly disconnects: number;
  readonly reconnects: number;
  /** rate mode: the most readings that were due but not yet published, at any moment (0: the offered rate was kept) */
  readonly maxOwed: number;
  readonly tally?: DeviceTally[];
}

export type ToLoad = { type: 'start'; at: number } | { type: 'stop' } | { type: 'abort' };
export type FromLoad =
  | { type: 'ready' }
  | { type: 'progress'; at: number; sent: number; acked: number }
  | { type: 'result'; result: LoadResult }
  | { type: 'error'; message: string };

export { reading };

interface Shared {
  running: boolean;
  sent: number;
  acked: number;
  sentInWindow: number;
  ackedInWindow: number;
  lastAck: number;
  /** performance.now() bounds of the measured window */
  from: number;
  to: number;
  readonly hist: Histogram;
  readonly errors: string[];
  /** called whenever a device may have become idle after the stop */
  check: () => void;
  /** called when maxMessages is reached */
  limitReached: () => void;
  payloadBytes: number;
  resent: number;
  disconnects: number;
  reconnects: number;
  maxOwed: number;
  /** epoch ms after which a disconnected device stops trying to reconnect */
  giveUpAt: number;
}

interface Device {
  readonly name: string;
  inflight(): number;
  begin(): void;
  /** rate mode: `k` more readings are due */
  offer(k: number): void;
  owed(): number;
  tally(): DeviceTally;
  /** after the stop: nothing new is published; QoS 0 flushes what it wrote */
  close(): Promise<void>;
}

function inWindow(s: Shared, t: number): boolean {
  return t >= s.from && t < s.to;
}

async function rawDevice(spec: LoadSpec, name: string, s: Shared): Promise<Device> {
  let conn: RawConnection = await rawConnect(spec.host, spec.port, name);
  let connected = true;
  let closing = false;
  const topic = Buffer.from(`devices/${name}/telemetry`);
  const sentAt = new Float64Array(65536);
  /** the reading number n under each packet id in flight (tally) */
  const nOf = new Float64Array(65536);
  /** reconnect mode: the packet under each id in flight, to send again */
  const packetOf: Array<Buffer | undefined> = spec.reconnect === true ? new Array<Buffer | undefined>(65536) : [];
  /** 1: sent again after a reconnect; its latency is not recorded */
  const resentId = new Uint8Array(65536);
  const rateMode = (spec.rate ?? 0) > 0;
  let nextId = 1;
  let inflight = 0;
  let n = 0;
  let owed = 0;

  const allocId = (): number => {
    for (let tries = 0; tries < 65535; tries++) {
      const id = nextId;
      nextId = nextId === 65535 ? 1 : nextId + 1;
      if (sentAt[id] === 0) return id;
    }
    throw new Error('no free packet id');
  };

  const canIssue = (): boolean => s.running && (spec.maxMessages === undefined || s.sent < spec.maxMessages);

  /** Publishes up to `max` new readings within the window; returns how many. */
  const issue = (max: number): number => {
    if (!connected) return 0;
    const packets: Buffer[] = [];
    while (packets.length < max && inflight < spec.window && canIssue()) {
      const id = allocId();
      const payload = reading(name, n);
      const packet = publishPacket(topic, payload, 1, id);
      nOf[id] = n++;
      if (spec.reconnect === true) packetOf[id] = packet;
      packets.push(packet);
      s.payloadBytes += Buffer.byteLength(payload);
      const t = performance.now();
      sentAt[id] = t;
      inflight++;
      s.sent++;
      if (inWindow(s, t)) s.sentInWindow++;
    }
    if (packets.length > 0) conn.socket.write(packets.length === 1 ? packets[0]! : Buffer.concat(packets));
    if (spec.maxMessages !== undefined && s.sent >= spec.maxMessages) s.limitReached();
    return packets.length;
  };

  const fillQos1 = (): void => {
    if (rateMode) {
      if (owed > 0) owed -= issue(owed);
    } else {
      issue(Number.POSITIVE_INFINITY);
    }
  };

  const onPuback = (id: number): void => {
    const t = performance.now();
    const st = sentAt[id]!;
    if (st === 0) {
      if (s.errors.length < 20) s.errors.push(`${name}: PUBACK for unknown packet id ${id}`);
      return;
    }
    sentAt[id] = 0;
    if (spec.reconnect === true) packetOf[id] = undefined;
    inflight--;
    s.acked++;
    s.lastAck = t;
    if (inWindow(s, t)) {
      s.ackedInWindow++;
      if (resentId[id] === 0) s.hist.record(t - st);
    }
    resentId[id] = 0;
  };
  const onFlush = (): void => {
    if (s.running) fillQos1();
    else if (inflight === 0) s.check();
  };

  const reconnect = async (): Promise<void> => {
    s.disconnects++;
    while (!closing && !connected) {
      await new Promise((r) => setTimeout(r, 100));
      if (!s.running && Date.now() > s.giveUpAt) break;
      try {
        const c = await rawConnect(spec.host, spec.port, name, 2000);
        if (closing) {
          c.socket.destroy();
          break;
        }
        conn = c;
        attach(c);
        connected = true;
        s.reconnects++;
      } catch {
        // not listening yet (restart): try again
      }
    }
    if (!connected) {
      s.check();
      return;
    }
    // send every unacknowledged publish again, in packet order of the old connection
    const again: Buffer[] = [];
    const ids: number[] = [];
    for (let id = 1; id < 65536; id++) if (sentAt[id] !== 0) ids.push(id);
    ids.sort((a, b) => sentAt[a]! - sentAt[b]!);
    for (const id of ids) {
      const p = packetOf[id]!;
      p[0] = p[0]! | 0x08; // DUP
      resentId[id] = 1;
      again.push(p);
      s.resent++;
    }
    if (again.length > 0) conn.socket.write(Buffer.concat(again));
    if (s.running) fillQos1();
    else if (inflight === 0) s.check();
  };

  const attach = (c: RawConnection): void => {
    c.onPuback = onPuback;
    c.onFlush = onFlush;
    c.socket.on('error', (err) => {
      // reconnect mode: a reset while the daemon restarts is expected
      if (spec.reconnect !== true && s.errors.length < 20) s.errors.push(`${name}: ${err.message}`);
    });
    c.socket.on('close', () => {
      if (c !== conn) return;
      connected = false;
      if (spec.reconnect === true && !closing && (s.running || inflight > 0)) void reconnect();
      else s.check();
    });
  };
  attach(conn);

  // QoS 0: write batches as fast as the socket drains
  const pumpQos0 = (): void => {
    let rounds = 0;
    while (s.running) {
      const packets: Buffer[] = [];
      for (let k = 0; k < 64; k++) packets.push(publishPacket(topic, reading(name, n++), 0, 0));
      const t = performance.now();
      s.sent += packets.length;
      s.acked += packets.length;
      s.lastAck = t;
      if (inWindow(s, t)) {
        s.sentInWindow += packets.length;
        s.ackedInWindow += packets.length;
      }
      if (!conn.socket.write(Buffer.concat(packets))) {
        conn.socket.once('drain', pumpQos0);
        return;
      }
      if (++rounds >= 16) {
        setImmediate(pumpQos0);
        return;
      }
    }
  };

  return {
    name,
    inflight: () => (spec.reconnect === true ? inflight : conn.socket.destroyed ? 0 : inflight),
    begin: () => (spec.qos === 0 ? pumpQos0() : rateMode ? undefined : fillQos1()),
    offer: (k) => {
      owed += k;
      if (owed > 0) owed -= issue(owed);
    },
    owed: () => owed,
    tally: () => {
      const unacked: number[] = [];
      for (let id = 1; id < 65536; id++) if (sentAt[id] !== 0) unacked.push(nOf[id]!);
      return { device: name, next: n, unacked: unacked.sort((a, b) => a - b) };
    },
    close: () => {
      closing = true;
      return conn.close(Math.max(1000, spec.drainMs));
    },
  };
}

async function mqttjsDevice(spec: LoadSpec, name: string, s: Shared): Promise<Device> {
  const client: MqttClient = await mqtt.connectAsync(`mqtt://${spec.host}:${spec.port}`, {
    clientId: name,
    clean: true,
    reconnectPeriod: 0,
    keepalive: 0,
  });
  client.on('error', (err) => {
    if (s.errors.length < 20) s.errors.push(`${name}: ${err.message}`);
  });
  const topic = `devices/${name}/telemetry`;
  let inflight = 0;
  let n = 0;
  const one = (): void => {
    const st = performance.now();
    inflight++;
    s.sent++;
    if (inWindow(s, st)) s.sentInWindow++;
    client.publish(topic, reading(name, n++), { qos: spec.qos }, (err) => {
      const t = performance.now();
      inflight--;
      if (err) {
        if (s.errors.length < 20) s.errors.push(`${name}: ${err.message}`);
      } else {
        s.acked++;
        s.lastAck = t;
        if (inWindow(s, t)) {
          s.ackedInWindow++;
          if (spec.qos === 1) s.hist.record(t - st);
        }
      }
      if (s.running) one();
      else if (inflight === 0) s.check();
    });
  };
  return {
    name,
    inflight: () => (client.connected ? inflight : 0),
    begin: () => {
      for (let k = 0; k < spec.window; k++) one();
    },
    offer: () => {
      throw new Error('rate mode needs the raw client');
    },
    owed: () => 0,
    tally: () => ({ device: name, next: n, unacked: [] }),
    close: () =>
      client.endAsync().then(
        () => undefined,
        () => undefined,
      ),
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '') as LoadSpec;
  if (process.send === undefined) throw new Error('load.ts must be started with an IPC channel (child_process.fork)');
  const send = (m: FromLoad): Promise<void> => new Promise((r) => process.send!(m, undefined, {}, () => r()));
  // the orchestrator went away: do not linger
  process.on('disconnect', () => process.exit(3));

  if (
    ((spec.rate ?? 0) > 0 || spec.reconnect === true || spec.maxMessages !== undefined) &&
    (spec.client !== 'raw' || spec.qos !== 1)
  ) {
    throw new Error('rate, reconnect and maxMessages need the raw client and QoS 1');
  }
  const s: Shared = {
    running: false,
    sent: 0,
    acked: 0,
    sentInWindow: 0,
    ackedInWindow: 0,
    lastAck: 0,
    from: Number.POSITIVE_INFINITY,
    to: Number.POSITIVE_INFINITY,
    hist: new Histogram(),
    errors: [],
    check: () => undefined,
    limitReached: () => undefined,
    payloadBytes: 0,
    resent: 0,
    disconnects: 0,
    reconnects: 0,
    maxOwed: 0,
    giveUpAt: Number.POSITIVE_INFINITY,
  };
  const make = spec.client === 'raw' ? rawDevice : mqttjsDevice;
  const devices = await Promise.all(spec.devices.map((d) => make(spec, d, s)));
  let stopPublishing: () => void = () => undefined;
  let stopRequested = false;
  const startMsg = new Promise<number>((resolve) => {
    process.on('message', (m: ToLoad) => {
      if (m.type === 'start') resolve(m.at);
      if (m.type === 'stop') {
        stopRequested = true;
        stopPublishing();
      }
      if (m.type === 'abort') process.exit(4);
    });
  });
  await send({ type: 'ready' });
  const at = await startMsg;

  const toPerf = (epoch: number): number => epoch - performance.timeOrigin;
  const measureFrom = at + spec.warmupMs;
  const measureTo = measureFrom + spec.durationMs;
  s.from = toPerf(measureFrom);
  s.to = toPerf(measureTo);
  const cpu0 = process.cpuUsage();

  await new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));
  const startedAt = Date.now();
  s.running = true;
  for (const d of devices) d.begin();

  // rate mode: every few ms, hand out the readings that are due since the start, round-robin
  let pacer: NodeJS.Timeout | null = null;
  const rate = spec.rate ?? 0;
  if (rate > 0) {
    const t0 = performance.now();
    let issued = 0;
    let rr = 0;
    const tick = (): void => {
      pacer = null;
      if (!s.running) return;
      const due = Math.floor((rate * (performance.now() - t0)) / 1000) - issued;
      if (due > 0) {
        issued += due;
        const per = Math.floor(due / devices.length);
        const extra = due - per * devices.length;
        for (let k = 0; k < devices.length; k++) {
          const share = per + (k < extra ? 1 : 0);
          if (share > 0) devices[(rr + k) % devices.length]!.offer(share);
        }
        rr = (rr + extra) % devices.length;
        const owed = devices.reduce((n, d) => n + d.owed(), 0);
        if (owed > s.maxOwed) s.maxOwed = owed;
      }
      pacer = setTimeout(tick, 2);
    };
    tick();
  }
  let progress: NodeJS.Timeout | null = null;
  if ((spec.progressMs ?? 0) > 0) {
    progress = setInterval(
      () => void send({ type: 'progress', at: Date.now(), sent: s.sent, acked: s.acked }),
      spec.progressMs,
    );
  }

  // publishing ends at measureTo, on a stop message, or when maxMessages were published
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, Math.max(0, measureTo - Date.now()));
    stopPublishing = () => {
      clearTimeout(timer);
      resolve();
    };
    s.limitReached = stopPublishing;
    if (stopRequested) stopPublishing();
  });
  s.running = false;
  if (pacer !== null) clearTimeout(pacer);
  const stoppedAt = Date.now();
  s.giveUpAt = stoppedAt + spec.drainMs;

  // wait for the outstanding PUBACKs, bounded
  const idle = (): boolean => devices.every((d) => d.inflight() === 0);
  if (!idle()) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, spec.drainMs);
      s.check = () => {
        if (idle()) {
          clearTimeout(timer);
          resolve();
        }
      };
      s.check();
    });
  }
  if (progress !== null) clearInterval(progress);
  const unacked = spec.qos === 1 ? devices.reduce((n, d) => n + d.inflight(), 0) : 0;
  if (unacked > 0) s.errors.push(`${unacked} publishes still without PUBACK ${spec.drainMs} ms after the load stopped`);
  const tally = spec.tally === true ? devices.map((d) => d.tally()) : undefined;
  await Promise.all(devices.map((d) => d.close()));
  const cpu = process.cpuUsage(cpu0);

  const result: LoadResult = {
    devices: devices.length,
    sent: s.sent,
    acked: s.acked,
    sentInWindow: s.sentInWindow,
    ackedInWindow: s.ackedInWindow,
    unacked,
    startedAt,
    measureFrom,
    measureTo,
    stoppedAt,
    lastAckAt: s.lastAck === 0 ? 0 : Math.round(performance.timeOrigin + s.lastAck),
    latency: s.hist.toJSON(),
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
    errors: s.errors,
    payloadBytes: s.payloadBytes,
    resent: s.resent,
    disconnects: s.disconnects,
    reconnects: s.reconnects,
    maxOwed: s.maxOwed,
    ...(tally !== undefined ? { tally } : {}),
  };
  await send({ type: 'result', result });
  process.exit(0);
}

main().catch(async (err: unknown) => {
  const message = (err as Error).stack ?? String(err);
  if (process.send !== undefined && process.connected) {
    await new Promise<void>((r) =>
      process.send!({ type: 'error', message } satisfies FromLoad, undefined, {}, () => r()),
    );
  } else {
    process.stderr.write(`${message}\n`);
  }
  process.exit(1);
});
