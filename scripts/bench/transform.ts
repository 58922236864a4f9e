/**
 * `npm run bench:transform`: the cost of a typical route's steps per event,
 * in-process on one core: decode JSON, validate, map (rename, compute,
 * convert), enrich (gateway, site, received_at, device time) and deadband,
 * compiled once with compileStep and run on realistic readings (several
 * devices, slowly varying values plus noise). Three rounds, each with freshly
 * compiled steps; prints events/s and µs/event per round and the median, and
 * writes scripts/bench/results/transform.json. Goal: >= 300,000 events/s.
 * Rates are per second of this process's CPU time (one core), so that other
 * load on the machine does not count; the wall-clock rate is printed too.
 *
 *   node dist/scripts/bench/transform.js [--events N] [--devices N] [--rounds N]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DROPPED, type Step, type Working } from '../../src/transform/step.js';
import { compileStep, stepSchema } from '../../src/transform/steps/index.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    devices: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '3' },
  },
});
const EVENTS = Number(args.events);
const DEVICES = Number(args.devices);
const ROUNDS = Number(args.rounds);

const ROUTE_STEPS = [
  { decode: 'json' },
  {
    validate: {
      fields: {
        temp: { type: 'number', min: -50, max: 150, required: true },
        hum: { type: 'number', min: 0, max: 100 },
        pressure: { type: 'number' },
        ts: { type: 'number', required: true },
        status: { type: 'string', enum: ['ok', 'warn', 'test'] },
      },
    },
  },
  {
    map: {
      rename: { hum: 'humidity' },
      remove: ['fw'],
      compute: { temp_f: 'temp * 9 / 5 + 32' },
      convert: { pressure: { from: 'psi', to: 'kPa', decimals: 2 } },
    },
  },
  { enrich: { gateway: true, site: 'plant-7', received_at: true, device_time: { field: 'ts', max_skew_secs: 300 } } },
  { deadband: { field: 'temp', abs: 0.5, percent: 2, max_silence_secs: 300, by: '{device}' } },
];

/** Readings as devices send them: slow sine drifts plus noise, one message per device per second. */
function makeStream(count: number, t0: number): Array<{ device: string; topic: string; payload: Buffer; at: number }> {
  const out = [];
  let seed = 42;
  const noise = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff - 0.5;
  };
  for (let i = 0; i < count; i++) {
    const d = i % DEVICES;
    const second = Math.floor(i / DEVICES);
    const at = t0 + second * 1000 + d;
    const temp = 20 + d * 0.3 + 4 * Math.sin(second / 600 + d) + noise() * 0.4;
    const payload = {
      temp: Math.round(temp * 100) / 100,
      hum: Math.round((45 + 10 * Math.sin(second / 900 + d) + noise()) * 10) / 10,
      pressure: Math.round((14.6 + 0.1 * Math.sin(second / 1200) + noise() * 0.01) * 1000) / 1000,
      ts: at - 150,
      status: 'ok',
      fw: '1.4.2',
    };
    const device = `dev-${String(d).padStart(3, '0')}`;
    out.push({
      device,
      topic: `site/plant-7/dev/${device}/telemetry`,
      payload: Buffer.from(JSON.stringify(payload)),
      at,
    });
  }
  return out;
}

function round(stream: ReturnType<typeof makeStream>): {
  eventsPerSec: number;
  usPerEvent: number;
  wallEventsPerSec: number;
  forwarded: number;
  failed: number;
} {
  const ctx = { gatewayId: 'gw-bench', route: 'telemetry' };
  const steps: Step[] = ROUTE_STEPS.map((s) => compileStep(stepSchema.parse(s), ctx));
  const varsByDevice = new Map<string, Record<string, string>>();
  let forwarded = 0;
  let failed = 0;
  const cpu0 = process.cpuUsage();
  const started = process.hrtime.bigint();
  for (let i = 0; i < EVENTS; i++) {
    const m = stream[i % stream.length]!;
    // a new event time for repeated passes over the stream, so max_silence and skew checks see time move on
    const at = m.at + Math.floor(i / stream.length) * 3_600_000;
    let vars = varsByDevice.get(m.device);
    if (vars === undefined)
      varsByDevice.set(m.device, (vars = { site: 'plant-7', device: m.device, client_id: m.device, topic: m.topic }));
    let ev: Working | typeof DROPPED = {
      topic: m.topic,
      clientId: m.device,
      receivedAt: at,
      payload: m.payload,
      vars,
      value: undefined,
      eventTime: at,
      kafkaTopic: 'plant.telemetry',
      key: m.device,
      priority: 0,
    };
    try {
      for (const s of steps) {
        ev = s.run(ev, at);
        if (ev === DROPPED) break;
      }
      if (ev !== DROPPED) forwarded++;
    } catch {
      failed++;
    }
  }
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const cpuSecs = (cpu.user + cpu.system) / 1e6;
  // per CPU second: on a shared machine wall time also counts the time other processes had the core
  return {
    eventsPerSec: EVENTS / cpuSecs,
    usPerEvent: (cpuSecs * 1e6) / EVENTS,
    wallEventsPerSec: EVENTS / secs,
    forwarded,
    failed,
  };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const stream = makeStream(Math.min(EVENTS, 200_000), Date.UTC(2026, 0, 1));
const avgPayload = stream.reduce((n, m) => n + m.payload.length, 0) / stream.length;
process.stderr.write(
  `transform bench: ${EVENTS} events per round, ${DEVICES} devices, ${avgPayload.toFixed(0)}-byte JSON payloads, ${ROUNDS} rounds\n`,
);
round(makeStream(20_000, Date.UTC(2025, 0, 1))); // warm-up: let V8 optimise the steps
const rounds = [];
for (let r = 0; r < ROUNDS; r++) {
  const res = round(stream);
  rounds.push(res);
  process.stderr.write(
    `  round ${r + 1}: ${Math.round(res.eventsPerSec).toLocaleString('en')} events/s, ${res.usPerEvent.toFixed(2)} µs/event of CPU time (wall: ${Math.round(res.wallEventsPerSec).toLocaleString('en')} events/s), forwarded ${((100 * res.forwarded) / EVENTS).toFixed(1)}%, failed ${res.failed}\n`,
  );
}
const result = {
  bench: 'transform',
  node: process.version,
  steps: ROUTE_STEPS.map((s) => Object.keys(s)[0]),
  events: EVENTS,
  devices: DEVICES,
  payloadBytes: Math.round(avgPayload),
  medianEventsPerSec: Math.round(median(rounds.map((r) => r.eventsPerSec))),
  medianUsPerEvent: Number(median(rounds.map((r) => r.usPerEvent)).toFixed(3)),
  forwardedFraction: Number((rounds[0]!.forwarded / EVENTS).toFixed(4)),
  goalEventsPerSec: 300_000,
  rounds,
};
const dir = join(ROOT, 'scripts/bench/results');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'transform.json'), `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(
  `median: ${result.medianEventsPerSec.toLocaleString('en')} events/s, ${result.medianUsPerEvent} µs/event (goal >= 300,000 events/s); deadband forwarded ${(100 * result.forwardedFraction).toFixed(1)}% of events\n`,
);
