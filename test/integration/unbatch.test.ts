import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { consumeAll, allAckedSeen } from '../support/consume.js';
import { Daemon, testConfig } from '../support/daemon.js';
import { startStubbornDevice } from '../support/devices.js';
import { ROOT, sharedKafka } from '../support/kafka.js';
import { prng, testSeed } from '../support/random.js';
import { waitFor } from '../support/poll.js';
import { freePort } from '../support/ports.js';
import { killLoop, LoadedDaemon } from '../support/kill-loop.js';
import { dumpTopic, Unbatch, unbatchCounter, unbatchJar } from '../support/unbatch.js';

let kafka: Awaited<ReturnType<typeof sharedKafka>>;
let connectLibs: string;
before(async () => {
  kafka = await sharedKafka();
  await unbatchJar();
  // a stock Kafka Connect worker from Maven Central (cached; CI fetches it before npm test)
  const { stdout } = await promisify(execFile)('bash', [join(ROOT, 'scripts/kafka/fetch-connect.sh')], {
    timeout: 600_000,
  });
  connectLibs = stdout.trim();
});

/** What the first test leaves for the second: the output topic and the event ids it must hold. */
let produced: { topic: string; ids: Set<string> } | null = null;
after(async () => {
  await kafka.stop();
});

const DAEMON_KILLS = 3;
const PARTITIONS = 4;
const RESENT = 40;

interface OutEvent {
  gateway: string;
  incarnation: string | null;
  route: string;
  key: string;
  seq: number;
  received_at: number;
  topic: string;
  captures: Record<string, string>;
  value: string;
  encoding: string;
}

/** True once the group's committed offsets reached every partition's end: all input processed, its transactions committed. */
async function caughtUp(admin: ReturnType<Kafka['admin']>, groupId: string, topic: string): Promise<boolean> {
  const ends = await admin.fetchTopicOffsets(topic);
  const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
  const at = new Map(committed!.partitions.map((p) => [p.partition, BigInt(p.offset)]));
  return ends.every((e) => BigInt(e.high) === 0n || (at.get(e.partition) ?? -1n) >= BigInt(e.high));
}

test(
  `daemon SIGKILLed ${DAEMON_KILLS} times under load -> 2 unbatch instances, one SIGKILLed and restarted -> every acknowledged event exactly once, in per-device order`,
  { timeout: 300_000 },
  async (t) => {
    const run = `${Date.now()}`;
    const topic = `it.unbatch.${run}`;
    const out = `${topic}.events`;
    const appId = `it-unbatch-${run}`;
    const kjs = new Kafka({ clientId: 'edgehaul-test', brokers: kafka.brokers, logLevel: logLevel.NOTHING });
    const admin = kjs.admin();
    await admin.connect();
    t.after(() => admin.disconnect());
    await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });

    const unbatchEnv = {
      EDGEHAUL_UNBATCH_BROKERS: kafka.brokers.join(','),
      EDGEHAUL_UNBATCH_TOPICS: topic,
      EDGEHAUL_UNBATCH_APPLICATION_ID: appId,
      EDGEHAUL_UNBATCH_DEAD_LETTERS_TOPIC: `it.unbatch.${run}.deadletters.events`,
      EDGEHAUL_UNBATCH_HEALTH_TOPIC: `it.unbatch.${run}.health.events`,
      // a killed instance's partitions move after this, not the default 45 s
      EDGEHAUL_UNBATCH_KAFKA_SESSION_TIMEOUT_MS: '6000',
      EDGEHAUL_UNBATCH_KAFKA_HEARTBEAT_INTERVAL_MS: '1000',
    };
    const a = new Unbatch(unbatchEnv);
    const b = new Unbatch(unbatchEnv);
    t.after(() => a.stop('SIGKILL').catch(() => undefined));
    t.after(() => b.stop('SIGKILL').catch(() => undefined));

    const port = await freePort();
    const config = testConfig(kafka.brokers, {
      ingest: { mode: 'embedded', embedded: { host: '127.0.0.1', port } },
      routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
    });
    const seed = testSeed();
    t.diagnostic(`seed ${seed} (kill moments; EDGEHAUL_TEST_SEED repeats them)`);
    const [aUrl] = await Promise.all([a.start(), b.start()]);
    const load = await LoadedDaemon.start(t, {
      dir: Daemon.tempDir(),
      config,
      ids: ['d1', 'd2', 'd3', 'd4', 'd5', 'd6'],
      device: startStubbornDevice,
    });
    const runs = await killLoop(load, {
      kills: DAEMON_KILLS,
      random: prng(seed),
      maxDelayMs: 300,
      beforeKill: async (kill) => {
        if (kill !== 1) return;
        // unbatch A dies mid-run, having written events: B takes its partitions, then A comes back
        await waitFor(
          'unbatch A to write events',
          async () => (await unbatchCounter(aUrl, 'edgehaul_unbatch_events_total')) > 0,
          30_000,
        );
        assert.equal((await a.stop('SIGKILL')).signal, 'SIGKILL');
      },
      afterRestart: async (kill) => {
        if (kill === 2) await a.start();
      },
    });
    assert.equal((await load.stop('SIGTERM')).code, 0);

    // a gateway's re-send, made certain: some records of the input written again as they were
    const input = await consumeAll(kafka.brokers, topic);
    assert.ok(allAckedSeen(runs)(input), 'the daemon delivered every acknowledged event to the input topic');
    const producer = kjs.producer();
    await producer.connect();
    const again = input.filter((_, i) => i % Math.max(1, Math.floor(input.length / RESENT)) === 0).slice(0, RESENT);
    await producer.send({
      topic,
      messages: again.map((r) => ({ partition: r.partition, key: r.key, value: r.value, headers: r.headers })),
    });
    // and a record that is no edgehaul batch: it goes to <topic>.unbatch-errors, and the application goes on
    await producer.send({
      topic,
      messages: [
        { partition: 0, key: 'bad', value: Buffer.from('not cbor at all'), headers: { 'edgehaul-gateway': 'gw-test' } },
      ],
    });
    await producer.disconnect();

    await waitFor('unbatch to process the whole input topic', () => caughtUp(admin, appId, topic), 120_000, 500);
    const records = await dumpTopic(kafka.brokers, out);
    t.diagnostic(`output read: ${records.waited ?? '?'}`);
    const errors = await dumpTopic(kafka.brokers, `${topic}.unbatch-errors`);
    assert.equal(errors.length, 1, 'the undecodable record is in the errors topic');
    assert.equal(errors[0]!.key, 'bad');
    assert.equal(errors[0]!.headers['edgehaul-unbatch-error-code'], 'EH_ERR_DECODE_FORMAT');
    assert.match(errors[0]!.headers['edgehaul-unbatch-error'] ?? '', /CBOR|truncated|expected/i);
    assert.equal(errors[0]!.value, 'not cbor at all');

    // the bounded rule's premise, checked on the input itself: per key, in partition order, no event
    // seen for the first time below the highest seq already seen (a re-send may only repeat)
    const order = [...input].sort((x, y) => x.partition - y.partition || Number(BigInt(x.offset) - BigInt(y.offset)));
    const highest = new Map<string, number>();
    const firstSeen = new Set<string>();
    const late: string[] = [];
    for (const r of order)
      for (const e of r.batch.events) {
        const id = `${r.batch.incarnation ?? ''}:${e.seq}`;
        const top = highest.get(r.key) ?? 0;
        if (!firstSeen.has(id) && e.seq < top)
          late.push(`${id} key ${r.key} at ${r.partition}/${r.offset} after seq ${top}`);
        firstSeen.add(id);
        if (e.seq > top) highest.set(r.key, e.seq);
      }
    assert.deepEqual(late.slice(0, 10), [], "the input holds every key's events in sequence order");

    // expected: the input's distinct events (gateway, incarnation, seq)
    const expected = new Set<string>();
    let inputEvents = 0;
    for (const r of input)
      for (const e of r.batch.events) {
        inputEvents++;
        expected.add(`${r.batch.incarnation ?? ''}:${e.seq}`);
      }
    const seen = new Set<string>();
    const perDevice = new Map<string, Array<{ seq: number; n: number; partition: number }>>();
    for (const r of records) {
      const e = JSON.parse(r.value!) as OutEvent;
      const id = `${e.incarnation ?? ''}:${e.seq}`;
      assert.ok(!seen.has(id), `event ${id} written twice`);
      seen.add(id);
      assert.equal(e.gateway, 'gw-test');
      assert.equal(e.encoding, 'text');
      const reading = JSON.parse(e.value) as { device: string; n: number };
      assert.equal(r.key, reading.device, 'record key = the device (partition key)');
      assert.equal(e.key, reading.device);
      assert.deepEqual(e.captures, { device: reading.device });
      assert.equal(r.headers['edgehaul-gateway'], 'gw-test');
      assert.equal(r.headers['edgehaul-seq'], String(e.seq));
      assert.equal(r.headers['edgehaul-incarnation'], e.incarnation ?? '');
      assert.equal(r.headers['edgehaul-route'], 'r');
      let list = perDevice.get(reading.device);
      if (list === undefined) perDevice.set(reading.device, (list = []));
      list.push({ seq: e.seq, n: reading.n, partition: r.partition });
    }
    const missingIds = [...expected].filter((id) => !seen.has(id));
    if (missingIds.length > 0) {
      // where the input holds them, and what the instances logged: enough to tell a gateway fault from an unbatch one
      const missing = new Set(missingIds);
      const where = order
        .filter((r) => r.batch.events.some((e) => missing.has(`${r.batch.incarnation ?? ''}:${e.seq}`)))
        .slice(0, 20);
      t.diagnostic(
        `${missingIds.length} events missing, in input records ${where.map((r) => `${r.partition}/${r.offset} (key ${r.key})`).join(', ')}`,
      );
      for (const [n, u] of [
        ['A', a],
        ['B', b],
      ] as const)
        t.diagnostic(`unbatch ${n}:\n${u.describe()}`);
    }
    assert.deepEqual(missingIds.slice(0, 10), [], 'every input event is in the output');
    assert.equal(seen.size, expected.size);
    for (const run of runs) {
      const got = perDevice.get(run.device) ?? [];
      const numbers = new Set(got.map((g) => g.n));
      assert.deepEqual(
        run.acked.filter((n) => !numbers.has(n)).slice(0, 10),
        [],
        `${run.device}: acknowledged events missing`,
      );
      assert.equal(new Set(got.map((g) => g.partition)).size, 1, `${run.device}: one partition`);
      for (let i = 1; i < got.length; i++) {
        assert.ok(got[i]!.seq > got[i - 1]!.seq && got[i]!.n > got[i - 1]!.n, `${run.device}: out of order at ${i}`);
      }
    }
    produced = { topic: out, ids: seen };
    const acked = runs.reduce((n, r) => n + r.acked.length, 0);
    t.diagnostic(
      `acknowledged ${acked}; input ${inputEvents} events (${inputEvents - expected.size} re-sent, ${again.length} records of them written again by the test); output ${records.length} records, no duplicates`,
    );
    assert.equal((await a.stop('SIGTERM')).code, 0);
    assert.equal((await b.stop('SIGTERM')).code, 0);
  },
);

test(
  'a stock Kafka Connect FileStreamSink (JsonConverter, no edgehaul code) writes every event of the output topic to a file',
  { timeout: 180_000 },
  async (t) => {
    assert.ok(produced !== null, 'the previous test produced the output topic');
    const dir = mkdtempSync(join(tmpdir(), 'edgehaul-connect-'));
    const file = join(dir, 'events.txt');
    writeFileSync(
      join(dir, 'worker.properties'),
      [
        `bootstrap.servers=${kafka.brokers.join(',')}`,
        'key.converter=org.apache.kafka.connect.storage.StringConverter',
        'value.converter=org.apache.kafka.connect.json.JsonConverter',
        'value.converter.schemas.enable=false',
        'consumer.isolation.level=read_committed',
        'consumer.auto.offset.reset=earliest',
        `offset.storage.file.filename=${join(dir, 'offsets')}`,
        'offset.flush.interval.ms=1000',
        'listeners=http://127.0.0.1:0',
        'plugin.discovery=only_scan',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'sink.properties'),
      [
        'name=edgehaul-events-file',
        'connector.class=org.apache.kafka.connect.file.FileStreamSinkConnector',
        'tasks.max=1',
        `topics=${produced.topic}`,
        `file=${file}`,
        '',
      ].join('\n'),
    );
    const worker = spawn(
      'java',
      [
        '-Xmx256m',
        '-XX:+UseSerialGC',
        '-cp',
        `${connectLibs}/*`,
        'org.apache.kafka.connect.cli.ConnectStandalone',
        join(dir, 'worker.properties'),
        join(dir, 'sink.properties'),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const stderr: string[] = [];
    worker.stderr.setEncoding('utf8').on('data', (c: string) => stderr.push(c));
    const exited = new Promise<void>((r) => worker.once('exit', () => r()));
    t.after(async () => {
      if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
      await exited;
    });
    // FileStreamSink writes each value's toString(): JsonConverter (schemaless) gives a map, {gateway=gw-test, seq=12, ...}
    const found = new Set<string>();
    let lines = 0;
    await waitFor(
      `the sink file to hold all ${produced.ids.size} events`,
      () => {
        if (worker.exitCode !== null) throw new Error(`Connect worker exited: ${stderr.join('').slice(-2000)}`);
        if (!existsSync(file)) return false;
        const all = readFileSync(file, 'utf8')
          .split('\n')
          .filter((l) => l !== '');
        for (; lines < all.length; lines++) {
          const l = all[lines]!;
          const inc = /(?:^\{|, )incarnation=([0-9a-f]*)[,}]/.exec(l)?.[1];
          const seq = /(?:^\{|, )seq=(\d+)[,}]/.exec(l)?.[1];
          assert.ok(
            inc !== undefined && seq !== undefined && /gateway=gw-test[,}]/.test(l),
            `a line of the sink file is an event: ${l}`,
          );
          found.add(`${inc}:${seq}`);
        }
        return found.size >= produced!.ids.size;
      },
      150_000,
      500,
    );
    assert.deepEqual([...produced.ids].filter((id) => !found.has(id)).slice(0, 10), []);
    // Connect itself delivers at least once: a line more than the events is its re-delivery, not unbatch's
    t.diagnostic(`FileStreamSink wrote ${lines} lines for ${produced.ids.size} events; every event found`);
    worker.kill('SIGTERM');
    await exited;
  },
);
