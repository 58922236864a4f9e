import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Deduper } from '../../src/forward/dedupe.js';
import { HEADERS } from '../../src/forward/format.js';
import { allAckedSeen } from '../support/consume.js';
import { Daemon, testConfig } from '../support/daemon.js';
import { startStubbornDevice } from '../support/devices.js';
import { consumeUntil } from '../support/kafka.js';
import { useSharedKafka } from '../support/shared-kafka.js';
import { LoadedDaemon } from '../support/kill-loop.js';
import { freePort } from '../support/ports.js';

const kafka = useSharedKafka();

test(
  'the state directory deleted between two runs under load: a consumer following the bounded rule loses nothing',
  { timeout: 240_000 },
  async (t) => {
    const topic = `it.identity.${Date.now()}`;
    const port = await freePort();
    const dir = Daemon.tempDir();
    const config = testConfig(kafka.brokers, {
      ingest: { mode: 'embedded', embedded: { host: '127.0.0.1', port } },
      buffer: { path: 'state/buffer.db' },
      routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
    });
    const load = await LoadedDaemon.start(t, {
      dir,
      config,
      ids: ['d1', 'd2', 'd3', 'd4'],
      device: startStubbornDevice,
    });
    const incarnations: string[] = [];
    const opened = (): string => {
      const line = load.daemon.lines.find((l) => l.msg === 'buffer open');
      assert.ok(
        line !== undefined && typeof line.incarnation === 'string',
        'the buffer open line names the incarnation',
      );
      return line.incarnation;
    };
    incarnations.push(opened());
    await load.moreAcked('acknowledgements in the first run', 800);
    // run 1 ends cleanly under load: everything acknowledged is in Kafka, then its state goes (a new SD card)
    assert.equal((await load.stop('SIGTERM')).code, 0, load.daemon.describe());
    assert.equal(load.daemon.lines.find((l) => l.msg === 'stopped')?.buffered_events, 0, 'run 1 left nothing behind');
    rmSync(join(dir, 'state'), { recursive: true, force: true });

    await load.start();
    incarnations.push(opened());
    await load.moreAcked('acknowledgements in the second run', 800);
    // and a crash in run 2, so that its records are sent again with the same numbers
    assert.equal((await load.stop('SIGKILL')).signal, 'SIGKILL');
    await load.start();
    incarnations.push(opened());
    await load.moreAcked('acknowledgements after the crash', 500);
    const runs = await load.finish();
    assert.notEqual(incarnations[1], incarnations[0], 'a new buffer file is a new incarnation');
    assert.equal(incarnations[2], incarnations[1], 'a restart keeps the incarnation');

    const records = await consumeUntil(kafka.brokers, topic, allAckedSeen(runs), 90_000);
    const ordered = [...records].sort(
      (a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)),
    );

    // README's rule, with state of one watermark per (gateway, route, key)
    const dedupe = new Deduper();
    const kept = new Map<string, Set<number>>(runs.map((r) => [r.device, new Set<number>()]));
    const ids = new Set<string>();
    let skippedWhole = 0;
    let maxState = 0;
    for (const r of ordered) {
      assert.equal(r.headers[HEADERS.incarnation], r.batch.incarnation, 'header and value name the same incarnation');
      if (dedupe.seenWhole(r.headers, r.key)) {
        skippedWhole++;
        continue;
      }
      for (const e of dedupe.accept(r.batch)) {
        const id = `${r.batch.gatewayId}/${r.batch.incarnation}/${e.seq}`;
        assert.ok(!ids.has(id), `${id} kept twice`);
        ids.add(id);
        kept.get(r.key)!.add((JSON.parse(e.payload.toString()) as { n: number }).n);
      }
      maxState = Math.max(maxState, dedupe.size);
    }
    for (const run of runs) {
      const missing = run.acked.filter((n) => !kept.get(run.device)!.has(n));
      assert.deepEqual(
        missing.slice(0, 10),
        [],
        `${run.device}: ${missing.length} acknowledged messages dropped by the rule`,
      );
    }
    assert.ok(maxState <= load.devices.length, `the rule kept ${maxState} watermarks for ${load.devices.length} keys`);

    // what the old rule, "drop any (gateway, seq) seen", would have done: drop run 2's events
    const firstRun = new Set(
      ordered.filter((r) => r.batch.incarnation === incarnations[0]).flatMap((r) => r.batch.events.map((e) => e.seq)),
    );
    const wronglyDropped = ordered
      .filter((r) => r.batch.incarnation === incarnations[1])
      .flatMap((r) => r.batch.events)
      .filter((e) => firstRun.has(e.seq)).length;
    assert.ok(wronglyDropped > 0, 'the sequence numbers restarted, so the old rule would have lost events');
    t.diagnostic(
      `acknowledged ${runs.reduce((n, r) => n + r.acked.length, 0)}; kept ${ids.size} events, ${skippedWhole} records skipped from their headers; ` +
        `the (gateway, seq) rule would have dropped ${wronglyDropped} events of the new incarnation`,
    );
    assert.equal((await load.stop('SIGTERM')).code, 0);
  },
);
