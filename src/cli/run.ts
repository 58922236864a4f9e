import { EXIT } from '../core/errors.js';
import { Gateway } from '../gateway.js';
import { createLogger } from '../core/log.js';
import { SystemdNotifier } from '../ops/notify.js';
import { ConfigReloader } from '../ops/reload.js';
import { ConfigError, formatProblem, loadResolvedConfig } from '../config/load.js';

/** `edgehaul run`: starts the gateway and owns signals and the exit code. */
export async function runDaemon(configFile: string): Promise<number> {
  let loaded;
  try {
    // every secret is read here, once: a missing one cannot heal by restarting either,
    // exit 78 (RestartPreventExitStatus=) before anything starts
    loaded = loadResolvedConfig(configFile);
  } catch (err) {
    const log = createLogger('info');
    if (err instanceof ConfigError) {
      for (const p of err.problems)
        log.fatal(
          { code: err.code, key: p.key, line: p.line, file: configFile },
          `config rejected: ${formatProblem(p)}`,
        );
    } else {
      log.fatal({ err: (err as Error).message }, 'config rejected');
    }
    return EXIT.CONFIG;
  }
  const { config } = loaded;
  const log = createLogger(config.log.level);
  const gateway = new Gateway(loaded, log);
  const notifier = SystemdNotifier.fromEnv(log);
  const reloader = new ConfigReloader(configFile, gateway, log, notifier);
  // pings from the event loop from the first moment: opening a large buffer must not look like a hang
  notifier.startWatchdog();
  // installed before start: Node's default for SIGHUP is to exit; a reload asked for during start runs after it
  let started = false;
  let reloadAsked = false;
  const onHangup = (): void => {
    if (!started) {
      reloadAsked = true;
      return;
    }
    void reloader.reload('SIGHUP');
  };
  process.on('SIGHUP', onHangup);

  let stopping: Promise<number> | null = null;
  const shutdown = (signal: string): Promise<number> => {
    // a second signal while stopping does not start a second shutdown
    if (stopping !== null) return stopping;
    notifier.stopping();
    reloader.close();
    const timeoutSecs = gateway.config.shutdown.timeout_secs;
    const deadline = Date.now() + timeoutSecs * 1000;
    log.info({ signal, timeout_secs: timeoutSecs }, 'shutting down');
    stopping = gateway.stop(deadline).then(
      (report) => {
        if (report.timedOut) {
          log.warn(
            { code: 'EH_ERR_SHUTDOWN_TIMEOUT', buffered_events: report.buffered },
            'shutdown deadline passed; buffered events are sent after the next start',
          );
          return EXIT.SHUTDOWN_TIMEOUT;
        }
        log.info({ buffered_events: report.buffered }, 'stopped');
        return EXIT.OK;
      },
      (err: unknown) => {
        log.error({ err: (err as Error).message }, 'shutdown failed');
        return EXIT.FAILURE;
      },
    );
    return stopping;
  };

  const signalled = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });

  try {
    await gateway.start();
  } catch (err) {
    const e = err as Error & { code?: string };
    log.fatal({ code: e.code, err: e.message }, 'start failed');
    await gateway.stop(Date.now() + 2000).catch(() => undefined);
    notifier.close();
    // secrets were read at load, so this is not expected; were it to happen, a config problem: no restart loop
    return e.code === 'EH_ERR_CONFIG_SECRET' ? EXIT.CONFIG : EXIT.FAILURE;
  }
  log.info(
    {
      gateway_id: loaded.gatewayId,
      ingest: gateway.address,
      kafka: config.kafka.brokers,
      routes: config.routes.map((r) => r.name),
    },
    'edgehaul running',
  );
  notifier.ready(`ingest ${gateway.address}`);
  started = true;
  reloader.configureWatch(gateway.config.reload);
  if (reloadAsked) void reloader.reload('SIGHUP');
  const signal = await signalled;
  const code = await shutdown(signal);
  process.off('SIGHUP', onHangup);
  notifier.close();
  return code;
}
