#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Command, CommanderError } from 'commander';
import { EXIT } from '../core/errors.js';
import { ConfigError, formatProblem, loadConfig, resolveSecrets } from '../config/load.js';
import { batchToJsonLines, decodeBatch } from '../forward/format.js';
import { runHashPassword } from './hash-password.js';
import { runInspect } from './inspect.js';
import { runDaemon } from './run.js';
import { runStatus } from './status.js';

// `edgehaul decode ... | head` closes the pipe early: that is the reader's choice, not an error
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? EXIT.OK);
  throw err;
});

/** The unit's StateDirectory=: where the service keeps a relative buffer.path. */
const SERVICE_STATE_DIR = '/var/lib/edgehaul';

/** A directory from systemd's environment; StateDirectory= may list several, separated by ':' (the first is ours). */
function nonEmpty(v: string | undefined): string | undefined {
  const first = v?.split(':')[0];
  return first === undefined || first === '' ? undefined : first;
}

const program = new Command('edgehaul')
  .description('edge IoT gateway: MQTT in, durable SQLite buffer, CBOR batches to Kafka')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

program
  .command('run')
  .description('run the gateway until SIGTERM/SIGINT')
  .option('-c, --config <file>', 'YAML config file', '/etc/edgehaul/edgehaul.yaml')
  .action(async (opts: { config: string }) => {
    process.exitCode = await runDaemon(opts.config);
  });

program
  .command('check-config')
  .description(
    'validate a config file and the secret files it names, as the service will see them, without starting; exit 0 when valid, 78 when not',
  )
  .argument('[file]', 'YAML config file', '/etc/edgehaul/edgehaul.yaml')
  .option(
    '--state-dir <dir>',
    "where a relative buffer.path lives (default: $STATE_DIRECTORY, else the service's /var/lib/edgehaul)",
  )
  .option(
    '--credentials-dir <dir>',
    'where { file: NAME } secrets are looked for (default: $CREDENTIALS_DIRECTORY, else the credentials directory beside the config)',
  )
  .action((file: string, opts: { stateDir?: string; credentialsDir?: string }) => {
    const stateDir = opts.stateDir ?? nonEmpty(process.env.STATE_DIRECTORY) ?? SERVICE_STATE_DIR;
    const credentialsDir =
      opts.credentialsDir ?? nonEmpty(process.env.CREDENTIALS_DIRECTORY) ?? join(dirname(resolve(file)), 'credentials');
    try {
      const loaded = loadConfig(file, { ...process.env, STATE_DIRECTORY: stateDir });
      // { env: VAR } secrets are the service's environment, not this shell's: the daemon checks them at start
      resolveSecrets(loaded, { ...process.env, CREDENTIALS_DIRECTORY: credentialsDir }, { envToo: false });
      process.stdout.write(
        `${file}: ok (gateway id ${loaded.gatewayId}, ${loaded.config.routes.length} route(s), ingest ${loaded.config.ingest.mode}, buffer ${loaded.bufferPath})\n`,
      );
      process.exitCode = EXIT.OK;
    } catch (err) {
      if (err instanceof ConfigError) {
        for (const p of err.problems) process.stderr.write(`${file}: ${formatProblem(p)} [${err.code}]\n`);
      } else {
        process.stderr.write(`${file}: ${(err as Error).message}\n`);
      }
      process.exitCode = EXIT.CONFIG;
    }
  });

program
  .command('decode')
  .description('print the events of one edgehaul Kafka record value (CBOR batch) as JSON lines')
  .argument('[file]', 'file holding the record value; stdin when absent or "-"')
  .action((file: string | undefined) => {
    const bytes = file === undefined || file === '-' ? readFileSync(0) : readFileSync(file);
    try {
      for (const line of batchToJsonLines(decodeBatch(bytes))) process.stdout.write(`${line}\n`);
      process.exitCode = EXIT.OK;
    } catch (err) {
      const e = err as Error & { code?: string };
      process.stderr.write(`${e.message}${e.code !== undefined ? ` [${e.code}]` : ''}\n`);
      process.exitCode = EXIT.FAILURE;
    }
  });

program
  .command('inspect')
  .description('show what the buffer holds per route, read-only (safe while the daemon runs)')
  .option('-c, --config <file>', 'YAML config file', '/etc/edgehaul/edgehaul.yaml')
  .option('--json', 'print one JSON object')
  .action((opts: { config: string; json?: boolean }) => {
    process.exitCode = runInspect(opts.config, opts.json === true);
  });

program
  .command('hash-password')
  .description(
    'read a password (terminal without echo, or the first line of stdin) and print its scrypt hash for auth.users[].password_hash',
  )
  .action(async () => {
    process.exitCode = await runHashPassword();
  });

program
  .command('status')
  .description("summary of the running daemon (from its HTTP endpoint's /status); exit 69 when none answers")
  .option('-c, --config <file>', 'YAML config file (for http.host and http.port)', '/etc/edgehaul/edgehaul.yaml')
  .option('--url <url>', 'base URL of the HTTP endpoint, e.g. http://127.0.0.1:9464 (instead of the config)')
  .option('--json', 'print the JSON report')
  .action(async (opts: { config: string; url?: string; json?: boolean }) => {
    process.exitCode = await runStatus({ config: opts.config, url: opts.url, json: opts.json === true });
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  } else {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = EXIT.FAILURE;
  }
}
