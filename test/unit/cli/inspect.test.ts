import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { openSqliteStore, type BufferStore, type CommitGroup } from '../../../src/buffer/store.js';
import type { RoutedEvent } from '../../../src/core/event.js';
import { formatAge } from '../../../src/cli/inspect.js';
import { ROOT } from '../../support/kafka.js';

const MAIN = join(ROOT, 'dist/src/cli/main.js');
const env = { ...process.env, STATE_DIRECTORY: tmpdir() };
const cli = (args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env });
const cliAsync = promisify(execFile);

interface RouteJson {
  route: string;
  priority: number;
  events: number;
  bytes: number;
  commits: number;
  oldest_age_ms: number | null;
  in_config: boolean;
}
interface ReportJson {
  buffer: string;
  exists: boolean;
  next_seq: number | null;
  file_bytes: { db: number; wal: number; total: number };
  routes: RouteJson[];
  total: { events: number; bytes: number; commits: number };
  dead_letters: { table: boolean; count: number; columns?: string[]; recent?: Array<Record<string, unknown>> };
}

function setup(): { dir: string; dbPath: string; config: string } {
  const dir = mkdtempSync(join(tmpdir(), 'edgehaul-inspect-'));
  const dbPath = join(dir, 'state', 'buffer.db');
  const config = join(dir, 'edgehaul.yaml');
  writeFileSync(
    config,
    [
      'buffer:',
      `  path: ${JSON.stringify(dbPath)}`,
      'routes:',
      '  - name: telemetry',
      '    match: "dev/+/telemetry"',
      '    topic: plant.telemetry',
      '  - name: alarms',
      '    match: "dev/+/alarm"',
      '    topic: plant.alarms',
      '    priority: 10',
      '',
    ].join('\n'),
  );
  return { dir, dbPath, config };
}

const event = (route: string, receivedAt: number): RoutedEvent => ({
  route,
  kafkaTopic: `plant.${route}`,
  key: 'dev-1',
  topic: `dev/dev-1/${route}`,
  payload: Buffer.from('{"v":1}'),
  receivedAt,
});

/** One group commit: 2 telemetry events and 1 alarm, as the writer would store them. */
const groups = (receivedAt: number): CommitGroup[] => [
  { route: 'telemetry', priority: 0, events: [event('telemetry', receivedAt), event('telemetry', receivedAt + 1)] },
  { route: 'alarms', priority: 10, events: [event('alarms', receivedAt)] },
];

const byRoute = (report: ReportJson): Map<string, RouteJson> => new Map(report.routes.map((r) => [r.route, r]));

test('inspect --json gives per-route events, commits, priority and bytes; the text names both routes', () => {
  const { dbPath, config } = setup();
  const store = openSqliteStore(dbPath, { synchronous: 'normal' });
  const twoHoursAgo = Date.now() - 2 * 3600_000 - 5 * 60_000;
  for (let i = 0; i < 3; i++) store.commit(groups(twoHoursAgo + i * 1000));
  store.commit([{ route: 'telemetry', priority: 0, events: [1, 2, 3, 4].map(() => event('telemetry', Date.now())) }]);
  const usage = store.usage();
  store.close();

  const result = cli(['inspect', '--config', config, '--json']);
  assert.equal(result.status, 0, result.stderr);
  const report = JSON.parse(result.stdout) as ReportJson;
  assert.equal(report.exists, true);
  assert.equal(report.buffer, dbPath);
  const routes = byRoute(report);
  assert.deepEqual([...routes.keys()], ['alarms', 'telemetry'], 'highest priority first');
  assert.deepEqual(
    [...routes.values()].map((r) => [r.route, r.events, r.commits, r.priority, r.in_config]),
    [
      ['alarms', 3, 3, 10, true],
      ['telemetry', 10, 4, 0, true],
    ],
  );
  for (const [name, r] of routes)
    assert.equal(r.bytes, usage.get(name)!.bytes, `${name}: bytes as the store counts them`);
  assert.ok(routes.get('alarms')!.oldest_age_ms! >= 2 * 3600_000);
  assert.deepEqual([report.total.events, report.total.commits], [13, 7]);
  assert.equal(report.next_seq, 14, 'sequence numbers start at 1; 13 handed out');
  assert.ok(report.file_bytes.db > 0);
  assert.deepEqual([report.dead_letters.table, report.dead_letters.count], [true, 0]);

  const text = cli(['inspect', '--config', config]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^alarms\s+10\s+3\s+\S+ B\s+3\s+2h\d+m$/m);
  assert.match(text.stdout, /^telemetry\s+0\s+10\s/m);
  assert.match(text.stdout, /^total\s+13\s/m);
  assert.match(text.stdout, /next sequence number: 14/);
  assert.match(text.stdout, /^dead letters: 0$/m);
});

test('inspect reads next to a writer that keeps committing: every run sees one consistent snapshot', async () => {
  const { dbPath, config } = setup();
  const store: BufferStore = openSqliteStore(dbPath, { synchronous: 'full' });
  store.commit(groups(Date.now()));
  let commits = 1;
  const writer = setInterval(() => {
    store.commit(groups(Date.now()));
    commits++;
  }, 2);
  const seen: number[] = [];
  try {
    for (let run = 0; run < 4; run++) {
      const { stdout } = await cliAsync(process.execPath, [MAIN, 'inspect', '--config', config, '--json'], { env });
      const report = JSON.parse(stdout) as ReportJson;
      const routes = byRoute(report);
      const telemetry = routes.get('telemetry')!;
      const alarms = routes.get('alarms')!;
      // every group commit writes 2 telemetry events and 1 alarm in one transaction: a torn read would break these
      assert.equal(telemetry.commits, alarms.commits);
      assert.equal(telemetry.events, 2 * telemetry.commits);
      assert.equal(alarms.events, alarms.commits);
      assert.equal(report.next_seq, 1 + 3 * telemetry.commits);
      assert.ok(report.file_bytes.wal > 0, 'the writer is in WAL mode and holds the database open');
      seen.push(telemetry.commits);
    }
  } finally {
    clearInterval(writer);
  }
  assert.ok(
    seen.every((n, i) => n >= 1 && (i === 0 || n >= seen[i - 1]!)),
    `commits seen: ${seen.join(', ')}`,
  );
  assert.ok(
    seen.at(-1)! > 1,
    `the reader sees the writer's later commits (seen ${seen.join(', ')}; ${commits} committed)`,
  );
  assert.ok(existsSync(`${dbPath}-wal`));

  // the reader left the writer able to go on, and sees exactly what it committed
  store.commit(groups(Date.now()));
  commits++;
  const final = JSON.parse(cli(['inspect', '--config', config, '--json']).stdout) as ReportJson;
  assert.equal(byRoute(final).get('telemetry')!.commits, commits);
  assert.equal(final.total.events, 3 * commits);
  store.close();
});

test('inspect on a missing buffer: says so and exits 0 with empty figures; no file is created', () => {
  const { dbPath, config } = setup();
  const json = cli(['inspect', '--config', config, '--json']);
  assert.equal(json.status, 0, json.stderr);
  const report = JSON.parse(json.stdout) as ReportJson;
  assert.equal(report.exists, false);
  assert.equal(report.next_seq, null);
  assert.deepEqual(
    report.routes.map((r) => [r.route, r.events, r.commits, r.priority]),
    [
      ['alarms', 0, 0, 10],
      ['telemetry', 0, 0, 0],
    ],
  );
  assert.deepEqual(report.total, {
    events: 0,
    bytes: 0,
    commits: 0,
    oldest_received_at: null,
    oldest_age_ms: null,
    oldest_age: null,
  });
  const text = cli(['inspect', '--config', config]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /does not exist yet/);
  assert.match(text.stdout, /^dead letters: 0$/m);
  assert.equal(existsSync(dbPath), false);
});

test('inspect: a damaged buffer exits 1 naming the file; a bad config exits 78', () => {
  const { dir, dbPath, config } = setup();
  openSqliteStore(dbPath, { synchronous: 'normal' }).close();
  writeFileSync(dbPath, Buffer.alloc(8192, 0x5a));
  const damaged = cli(['inspect', '--config', config]);
  assert.equal(damaged.status, 1);
  assert.ok(damaged.stderr.includes(dbPath), damaged.stderr);
  assert.match(damaged.stderr, /damaged or not an SQLite database.*\[EH_ERR_STORE_OPEN\]/);

  writeFileSync(join(dir, 'bad.yaml'), 'buffer:\n  synchronous: sometimes\n');
  const bad = cli(['inspect', '--config', join(dir, 'bad.yaml')]);
  assert.equal(bad.status, 78);
  assert.match(bad.stderr, /line 2: buffer\.synchronous: .*\[EH_ERR_CONFIG_INVALID\]/);
});

test('inspect lists the dead letters: count and the 10 most recent, payload as text or its size', () => {
  const { dbPath, config } = setup();
  const store = openSqliteStore(dbPath, { synchronous: 'normal' });
  store.commit(groups(Date.now()));
  for (let i = 1; i <= 12; i++) {
    const payload = i === 12 ? Buffer.from('{"temp": "hot"}') : Buffer.from([0xff, 0, i]);
    store.commit([], [], {
      deadLetters: [
        {
          at: 1_700_000_000_000 + i,
          route: 'telemetry',
          step: '1:validate',
          reason: `rejected ${i}`,
          topic: 'dev/dev-1/telemetry',
          clientId: 'dev-1',
          payload,
        },
      ],
    });
  }
  store.close();

  const report = JSON.parse(cli(['inspect', '--config', config, '--json']).stdout) as ReportJson;
  assert.equal(report.dead_letters.table, true);
  assert.equal(report.dead_letters.count, 12);
  assert.deepEqual(report.dead_letters.columns, [
    'id',
    'at',
    'route',
    'step',
    'reason',
    'topic',
    'client_id',
    'payload',
  ]);
  assert.deepEqual(
    report.dead_letters.recent!.map((r) => r.id),
    [12, 11, 10, 9, 8, 7, 6, 5, 4, 3],
  );
  assert.deepEqual(report.dead_letters.recent![0], {
    id: 12,
    at: 1_700_000_000_012,
    route: 'telemetry',
    step: '1:validate',
    reason: 'rejected 12',
    topic: 'dev/dev-1/telemetry',
    client_id: 'dev-1',
    payload: { blob_bytes: 15, text: '{"temp": "hot"}' },
  });
  assert.deepEqual(report.dead_letters.recent![1]!.payload, {
    blob_bytes: 3,
    base64: Buffer.from([0xff, 0, 11]).toString('base64'),
  });

  const text = cli(['inspect', '--config', config]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /dead letters: 12, most recent 10:/);
  assert.ok(
    text.stdout.includes(
      'id=12 at=2023-11-14T22:13:20.012Z route=telemetry step=1:validate reason="rejected 12" topic=dev/dev-1/telemetry client_id=dev-1 payload="{\\"temp\\": \\"hot\\"}"',
    ),
    text.stdout,
  );
  assert.match(text.stdout, /id=11 .* payload=<3 bytes>/);
});

test('the dead-letter table keeps only the newest `keep` rows', () => {
  const { dbPath } = setup();
  const store = openSqliteStore(dbPath, { synchronous: 'normal' });
  for (let i = 1; i <= 30; i++) {
    store.commit([], [], {
      keepDeadLetters: 5,
      deadLetters: [
        {
          at: i,
          route: 'r',
          step: '0:decode',
          reason: `r${i}`,
          topic: 't',
          clientId: 'c',
          payload: Buffer.alloc(10_000, 1),
        },
      ],
    });
  }
  const recent = store.recentDeadLetters(100);
  assert.deepEqual(
    recent.map((d) => d.reason),
    ['r30', 'r29', 'r28', 'r27', 'r26'],
  );
  assert.equal(recent[0]!.payload.length, 4096, 'payloads are cut to 4 KiB in the table');
  store.close();
});

test('formatAge is short and human', () => {
  assert.deepEqual(
    [0, 42_000, 12 * 60_000 + 5_000, 3 * 3600_000 + 12 * 60_000, 2 * 86_400_000 + 4 * 3600_000, -5].map(formatAge),
    ['0s', '42s', '12m5s', '3h12m', '2d4h', '0s'],
  );
});
