/**
 * Load generator process for the end-to-end benchmark (forked by e2e.ts with
 * an IPC channel). Connects its devices, reports `ready`, and on `start`
 * publishes JSON readings (~120 bytes) with `window` publishes in flight per
 * device: `warmupMs` of warm-up, then `durationMs` measured, then it stops
 * publishing, waits (at most `drainMs`) for the outstanding PUBACKs and
 * disconnects. PUBACK latency is recorded per publish, for acks that arrive
 * inside the measured window.
 *
 * argv[2]: the LoadSpec as JSON. Further arguments are ignored (e2e.ts passes
 * its temp dir so that `pgrep -f` finds every process it started).
 */
import mqtt, { type MqttClient } from 'mqtt';
import { Histogram, type HistogramData } from './histogram.js';
import { publishPacket, rawConnect, type RawConnection } from './mqtt-raw.js';

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
}

export type ToLoad = { type: 'start'; at: number } | { type: 'abort' };
export type FromLoad = { type: 'ready' } | { type: 'result'; result: LoadResult } | { type: 'error'; message: string };

/** One reading, about 120 bytes of JSON. */
export function reading(device: string, n: number): string {
  return JSON.stringify({
    device,
    n,
    ts: Date.now(),
    temp: 20 + (n % 100) / 10,
    hum: 40 + (n % 37) / 10,
    press: 1013.2,
    bat: 3.71,
    rssi: -67,
    fw: '1.4.2',
  });
}

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
}

interface Device {
  readonly name: string;
  inflight(): number;
  begin(): void;
  /** after the stop: nothing new is published; QoS 0 flushes what it wrote */
  close(): Promise<void>;
}

function inWindow(s: Shared, t: number): boolean {
  return t >= s.from && t < s.to;
}

async function rawDevice(spec: LoadSpec, name: string, s: Shared): Promise<Device> {
  const conn: RawConnection = await rawConnect(spec.host, spec.port, name);
  const topic = Buffer.from(`devices/${name}/telemetry`);
  const sentAt = new Float64Array(65536);
  let nextId = 1;
  let inflight = 0;
  let n = 0;

  const allocId = (): number => {
    for (let tries = 0; tries < 65535; tries++) {
      const id = nextId;
      nextId = nextId === 65535 ? 1 : nextId + 1;
      if (sentAt[id] === 0) return id;
    }
    throw new Error('no free packet id');
  };

  const fillQos1 = (): void => {
    if (!s.running || inflight >= spec.window) return;
    const packets: Buffer[] = [];
    while (inflight < spec.window) {
      const id = allocId();
      packets.push(publishPacket(topic, reading(name, n++), 1, id));
      const t = performance.now();
      sentAt[id] = t;
      inflight++;
      s.sent++;
      if (inWindow(s, t)) s.sentInWindow++;
    }
    conn.socket.write(packets.length === 1 ? packets[0]! : Buffer.concat(packets));
  };

  conn.onPuback = (id) => {
    const t = performance.now();
    const st = sentAt[id]!;
    if (st === 0) {
      if (s.errors.length < 20) s.errors.push(`${name}: PUBACK for unknown packet id ${id}`);
      return;
    }
    sentAt[id] = 0;
    inflight--;
    s.acked++;
    s.lastAck = t;
    if (inWindow(s, t)) {
      s.ackedInWindow++;
      s.hist.record(t - st);
    }
  };
  conn.onFlush = () => {
    if (s.running) fillQos1();
    else if (inflight === 0) s.check();
  };
  conn.socket.on('error', (err) => {
    if (s.errors.length < 20) s.errors.push(`${name}: ${err.message}`);
  });
  conn.socket.on('close', () => s.check());

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
    inflight: () => (conn.socket.destroyed ? 0 : inflight),
    begin: () => (spec.qos === 1 ? fillQos1() : pumpQos0()),
    close: () => conn.close(Math.max(1000, spec.drainMs)),
  };
}

async function mqttjsDevice(spec: LoadSpec, name: string, s: Shared): Promise<Device> {
  const client: MqttClient = await mqtt.connectAsync(`mqtt://${spec.host}:${spec.port}`, { clientId: name, clean: true, reconnectPeriod: 0, keepalive: 0 });
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
    close: () => client.endAsync().then(() => undefined, () => undefined),
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '') as LoadSpec;
  if (process.send === undefined) throw new Error('load.ts must be started with an IPC channel (child_process.fork)');
  const send = (m: FromLoad): Promise<void> => new Promise((r) => process.send!(m, undefined, {}, () => r()));
  // the orchestrator went away: do not linger
  process.on('disconnect', () => process.exit(3));

  const s: Shared = {
    running: false, sent: 0, acked: 0, sentInWindow: 0, ackedInWindow: 0, lastAck: 0,
    from: Number.POSITIVE_INFINITY, to: Number.POSITIVE_INFINITY,
    hist: new Histogram(), errors: [], check: () => undefined,
  };
  const make = spec.client === 'raw' ? rawDevice : mqttjsDevice;
  const devices = await Promise.all(spec.devices.map((d) => make(spec, d, s)));
  const startMsg = new Promise<number>((resolve) => {
    process.on('message', (m: ToLoad) => {
      if (m.type === 'start') resolve(m.at);
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

  await new Promise((r) => setTimeout(r, Math.max(0, measureTo - Date.now())));
  s.running = false;
  const stoppedAt = Date.now();

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
  const unacked = spec.qos === 1 ? devices.reduce((n, d) => n + d.inflight(), 0) : 0;
  if (unacked > 0) s.errors.push(`${unacked} publishes still without PUBACK ${spec.drainMs} ms after the load stopped`);
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
  };
  await send({ type: 'result', result });
  process.exit(0);
}

main().catch(async (err: unknown) => {
  const message = (err as Error).stack ?? String(err);
  if (process.send !== undefined && process.connected) {
    await new Promise<void>((r) => process.send!({ type: 'error', message } satisfies FromLoad, undefined, {}, () => r()));
  } else {
    process.stderr.write(`${message}\n`);
  }
  process.exit(1);
});
