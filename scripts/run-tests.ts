/**
 * `npm test`: every compiled test file under dist/test (and the benchmark's own
 * unit tests, dist/scripts/bench/test, with the unit tests), one node --test run
 * (shell-free file lists, so the same command works on Node 20, 22 and 24).
 * When integration tests are included and KAFKA_BROKERS is not set, one real
 * Kafka broker is started with scripts/kafka/start.sh for the whole run and
 * stopped afterwards; tests that must stop Kafka start their own.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startKafka, stopKafka } from '../test/support/kafka.js';

const root = resolve(import.meta.dirname, '../..');
const which = process.argv[2] ?? 'all';
if (!['all', 'unit', 'integration'].includes(which)) {
  process.stderr.write('usage: run-tests [all|unit|integration]\n');
  process.exit(2);
}

function testFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries
    .flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return testFiles(path);
      return name.endsWith('.test.js') ? [path] : [];
    })
    .sort();
}

// the benchmark's rules and charts are tested beside the benchmark: tests under test/ never import scripts/
const unit =
  which === 'integration'
    ? []
    : [...testFiles(join(root, 'dist/test/unit')), ...testFiles(join(root, 'dist/scripts/bench/test'))];
const integration = which === 'unit' ? [] : testFiles(join(root, 'dist/test/integration'));
const files = [...unit, ...integration];
if (files.length === 0) {
  process.stderr.write('no test files found under dist/test (did the build run?)\n');
  process.exit(1);
}

const env = { ...process.env };
let kafkaDir: string | null = null;
if (integration.length > 0 && (env.KAFKA_BROKERS ?? '') === '') {
  kafkaDir = mkdtempSync(join(tmpdir(), 'edgehaul-kafka-'));
  process.stdout.write('starting the shared Kafka broker for integration tests...\n');
  const kafka = await startKafka({
    dir: kafkaDir,
    timeoutMs: 0,
    onProgress: (line) => process.stderr.write(`${line}\n`),
  });
  env.KAFKA_BROKERS = kafka.brokers.join(',');
  process.stdout.write(`Kafka at ${env.KAFKA_BROKERS}\n`);
}

let status: number;
try {
  const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
    stdio: 'inherit',
    env,
    cwd: root,
  });
  status = result.status ?? 1;
} finally {
  if (kafkaDir !== null) {
    await stopKafka(kafkaDir).catch((err: Error) =>
      process.stderr.write(`scripts/kafka/stop.sh failed: ${err.message}\n`),
    );
    rmSync(kafkaDir, { recursive: true, force: true });
  }
}
process.exit(status);
