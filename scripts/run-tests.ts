/**
 * `npm test`: every compiled test file under dist/test (and the benchmark's own
 * unit tests, dist/scripts/bench/test, with the unit tests), one `node --test`
 * per file, one after the other (shell-free file lists, so the same command
 * works on Node 20, 22 and 24). Each file's output is shown as it runs; at the
 * end come the totals and, for every file that failed, how its process ended
 * and the last lines it printed: a file whose process died (a crash, a
 * signal) has no failing test to show, and its stderr would otherwise be far
 * up in a long log.
 * When integration tests are included and KAFKA_BROKERS is not set, one real
 * Kafka broker is started with scripts/kafka/start.sh for the whole run and
 * stopped afterwards; tests that must stop Kafka start their own.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
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

/** What one file's run printed and how its process ended. */
interface FileRun {
  file: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  counts: Map<string, number>;
  tail: string[];
  /** `exitCode:`/`signal:`/`error:` lines the TAP reporter wrote for a file whose process failed */
  ended: string[];
}

const TAIL_LINES = 120;
const COUNTS = ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo'] as const;

/** Runs `node --test FILE`, echoing its output live; keeps the last lines and the summary counts. */
function runFile(file: string, tapFile: string): Promise<FileRun> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--test',
        '--test-reporter=spec',
        '--test-reporter-destination=stdout',
        '--test-reporter=tap',
        `--test-reporter-destination=${tapFile}`,
        file,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env, cwd: root },
    );
    const run: FileRun = { file, code: null, signal: null, counts: new Map(), tail: [], ended: [] };
    const keep = (text: string): void => {
      for (const line of text.split('\n')) {
        if (line === '') continue;
        run.tail.push(line);
        if (run.tail.length > TAIL_LINES) run.tail.shift();
        const m = /^\u2139 (\w+) (\d+)$/.exec(line.trim());
        if (m !== null && (COUNTS as readonly string[]).includes(m[1]!)) run.counts.set(m[1]!, Number(m[2]));
      }
    };
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      process.stdout.write(chunk);
      keep(chunk);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      process.stderr.write(chunk);
      keep(chunk);
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      run.code = code;
      run.signal = signal;
      try {
        run.ended = readFileSync(tapFile, 'utf8')
          .split('\n')
          .filter((l) => /^\s+(exitCode|signal|error|failureType):/.test(l))
          .map((l) => l.trim());
      } catch {
        // no TAP file: the runner itself failed to start; the tail says why
      }
      resolveRun(run);
    });
  });
}

let status = 0;
try {
  const tapDir = mkdtempSync(join(tmpdir(), 'edgehaul-tap-'));
  const runs: FileRun[] = [];
  const started = Date.now();
  try {
    for (const [i, file] of files.entries()) runs.push(await runFile(file, join(tapDir, `${i}.tap`)));
  } finally {
    rmSync(tapDir, { recursive: true, force: true });
  }
  const total = new Map<string, number>();
  for (const r of runs) for (const [k, v] of r.counts) total.set(k, (total.get(k) ?? 0) + v);
  const failed = runs.filter((r) => r.code !== 0 || (r.counts.get('fail') ?? 0) > 0);
  const out: string[] = [];
  for (const r of failed) {
    out.push(
      '',
      `=== ${r.file.slice(root.length + 1)} failed (exit code ${r.code ?? '-'}, signal ${r.signal ?? '-'}); its last ${r.tail.length} lines:`,
      ...r.tail,
    );
    if (r.ended.length > 0) out.push(`--- as the TAP reporter saw it: ${r.ended.join('; ')}`);
  }
  out.push(
    '',
    `npm test: ${files.length} files in ${Math.round((Date.now() - started) / 1000)} s; ` +
      COUNTS.map((k) => `${k} ${total.get(k) ?? 0}`).join(', '),
    failed.length === 0 ? 'all files passed' : `FAILED: ${failed.map((r) => r.file.slice(root.length + 1)).join(', ')}`,
  );
  process.stdout.write(`${out.join('\n')}\n`);
  if (failed.length > 0) status = 1;
} finally {
  if (kafkaDir !== null) {
    await stopKafka(kafkaDir).catch((err: Error) =>
      process.stderr.write(`scripts/kafka/stop.sh failed: ${err.message}\n`),
    );
    rmSync(kafkaDir, { recursive: true, force: true });
  }
}
process.exit(status);
