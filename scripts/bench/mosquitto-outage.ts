/**
 * How many messages Mosquitto drops while edgehaul is away, with its own
 * defaults and with the settings README recommends for client mode.
 *
 * For each configuration: start Debian's mosquitto on a loopback port,
 * connect edgehaul's client ingest (the daemon's own code: persistent session,
 * QoS 1, pipelined PUBACKs) so the session exists, take it away for
 * --outage-secs while a device publishes --rate QoS 1 messages/s (each one
 * acknowledged by Mosquitto), optionally restart Mosquitto in the middle of
 * the outage (--restart: a reboot of the gateway), then bring the ingest back
 * and count what arrives. Dropped = acknowledged to the device - received.
 *
 *   npm run build && node dist/scripts/bench/mosquitto-outage.js [options]
 *   --outage-secs N   how long edgehaul is away (60)
 *   --rate N          device messages per second during the outage (100)
 *   --restart         restart Mosquitto half-way through the outage
 *   --help
 *
 * Takes about 2 x (outage + 10 s); not part of CI. Prints one JSON line per
 * configuration and a summary table.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { createClientIngest } from '../../src/ingest/client.js';
import { createLogger } from '../../src/core/log.js';
import { DEFAULTS, findMosquitto, RECOMMENDED, startMosquitto } from '../../test/support/mosquitto.js';
import { log, optionReader, printHelp, sleep } from './harness.js';

const { values } = parseArgs({
  options: {
    'outage-secs': { type: 'string' },
    rate: { type: 'string' },
    restart: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help === true) printHelp('scripts/bench/mosquitto-outage.ts');
const { num, flag } = optionReader(values);
const outageMs = num('outage-secs', 60, 1, 3600) * 1000;
const rate = num('rate', 100, 1, 100_000);
const restart = flag('restart');
if (findMosquitto() === null) throw new Error('mosquitto is not installed (Debian: apt-get install mosquitto)');

interface Outcome {
  readonly settings: string;
  readonly published: number;
  readonly acknowledged: number;
  readonly received: number;
  readonly dropped: number;
}

async function measure(label: string, settings: Readonly<Record<string, string>>): Promise<Outcome> {
  const dir = mkdtempSync(join(tmpdir(), 'edgehaul-outage-'));
  const broker = await startMosquitto(dir, settings);
  const received = new Set<number>();
  const ingest = (): ReturnType<typeof createClientIngest> =>
    createClientIngest(
      {
        url: broker.url,
        clientId: 'edgehaul-outage',
        connections: [['outage/#']],
        qos: 1,
        maxInFlight: Number(RECOMMENDED.max_inflight_messages),
        keepaliveSecs: 30,
        reconnectMs: 500,
      },
      (message, settle) => {
        received.add(Number(message.payload.toString()));
        settle(null);
      },
      createLogger('silent'),
    );
  let published = 0;
  let acknowledged = 0;
  try {
    // the session exists (clean: false, QoS 1 subscription), then edgehaul goes away
    const first = ingest();
    await first.start();
    const device = await mqtt.connectAsync(broker.url, { clientId: 'outage-device', clean: true, reconnectPeriod: 0 });
    await device.publishAsync('outage/d', '-1', { qos: 1 });
    for (const deadline = Date.now() + 10_000; !received.has(-1); await sleep(20)) {
      if (Date.now() > deadline) throw new Error('the subscription never received the first message');
    }
    await first.stopAccepting();
    await first.close();
    log(
      `${label}: edgehaul away for ${outageMs / 1000} s, the device publishes ${rate}/s${restart ? ', Mosquitto restarted half-way' : ''}`,
    );

    let dev: mqtt.MqttClient | null = device;
    const started = Date.now();
    let restarted = !restart;
    while (Date.now() - started < outageMs) {
      if (!restarted && Date.now() - started >= outageMs / 2) {
        await dev?.endAsync();
        await broker.restart();
        dev = await mqtt.connectAsync(broker.url, { clientId: 'outage-device', clean: true, reconnectPeriod: 0 });
        restarted = true;
      }
      const due = Math.floor(((Date.now() - started) / 1000) * rate);
      const sends: Array<Promise<unknown>> = [];
      while (published < due) {
        const n = published++;
        sends.push(
          dev.publishAsync('outage/d', String(n), { qos: 1 }).then(
            () => acknowledged++,
            () => undefined,
          ),
        );
      }
      await Promise.all(sends);
      await sleep(10);
    }
    await dev?.endAsync();

    const second = ingest();
    await second.start();
    // everything Mosquitto kept arrives within moments; wait until nothing more comes for 3 s
    let last = -1;
    let quietSince = Date.now();
    for (
      const deadline = Date.now() + 120_000;
      Date.now() < deadline && Date.now() - quietSince < 3000;
      await sleep(100)
    ) {
      if (received.size !== last) {
        last = received.size;
        quietSince = Date.now();
      }
    }
    await second.stopAccepting();
    await second.close();
    const got = [...received].filter((n) => n >= 0).length;
    return { settings: label, published, acknowledged, received: got, dropped: acknowledged - got };
  } finally {
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const outcomes: Outcome[] = [];
for (const [label, settings] of [
  ['defaults', DEFAULTS],
  ['README', RECOMMENDED],
] as const) {
  const o = await measure(label, settings);
  process.stdout.write(`${JSON.stringify(o)}\n`);
  outcomes.push(o);
}
process.stdout.write(
  `\n| Mosquitto settings | acknowledged to the device | received by edgehaul | dropped |\n|---|---:|---:|---:|\n`,
);
for (const o of outcomes)
  process.stdout.write(
    `| ${o.settings} | ${o.acknowledged} | ${o.received} | ${o.dropped} (${((100 * o.dropped) / Math.max(1, o.acknowledged)).toFixed(1)}%) |\n`,
  );
