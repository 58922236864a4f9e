import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { diffConfig, type ConfigDiff } from '../config/diff.js';
import { ConfigError, formatProblem, loadResolvedConfig, type ResolvedConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../core/log.js';
import type { SystemdNotifier } from './notify.js';

/** What a config change did: the live keys applied, and those that wait for a restart. */
export interface ApplyReport {
  readonly applied: readonly string[];
  readonly restartRequired: readonly string[];
}

/**
 * What the reloader needs of the gateway: the running config and a way to apply a diff with the
 * secrets the new config uses, read at this load (the Gateway satisfies it).
 */
export interface ReloadTarget {
  readonly config: Readonly<Config>;
  apply(diff: ConfigDiff, secrets: ResolvedConfig['secrets']): Promise<ApplyReport>;
}

export type ReloadTrigger = 'SIGHUP' | 'watch';

export type ReloadOutcome =
  | { readonly status: 'applied'; readonly report: ApplyReport }
  | { readonly status: 'unchanged' }
  | { readonly status: 'rejected' | 'failed' };

/**
 * Re-reads the config file on SIGHUP (and, with `reload.watch`, when the file
 * changes), validates it with the same schema as at start, reads the secrets it
 * uses as at start, and hands the diff from the running config (as written: a
 * secret whose file changed but whose spec did not is no change) to
 * `Gateway.apply`. An invalid file or a missing secret is rejected with one log
 * line per problem (key and line) and the running config stays.
 */
export class ConfigReloader {
  private queue: Promise<unknown> = Promise.resolve();
  private watcher: FSWatcher | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly file: string,
    private readonly gateway: ReloadTarget,
    private readonly log: Logger,
    private readonly notifier: SystemdNotifier,
  ) {}

  /** One reload at a time; a SIGHUP during a reload runs after it. */
  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    const run = this.queue.then(() => this.reloadNow(trigger));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Starts or stops the file watch as the running config says. */
  configureWatch(reload: Config['reload']): void {
    if (this.closed) return;
    if (!reload.watch) {
      this.stopWatch();
      return;
    }
    if (this.watcher !== null) return;
    const name = basename(this.file);
    try {
      // the directory, not the file: editors and config tools replace the file by renaming a new one over it
      this.watcher = watch(dirname(this.file), { persistent: false }, (_event, changedName) => {
        if (changedName !== null && changedName !== name) return;
        if (this.debounce !== null) clearTimeout(this.debounce);
        this.debounce = setTimeout(() => {
          this.debounce = null;
          void this.reload('watch');
        }, this.gateway.config.reload.debounce_ms);
      });
      this.watcher.on('error', (err) => {
        this.log.warn({ file: this.file, err: err.message }, 'config file watch stopped; SIGHUP still reloads');
        this.stopWatch();
      });
      this.log.info({ file: this.file }, 'watching the config file for edits');
    } catch (err) {
      this.log.warn(
        { file: this.file, err: (err as Error).message },
        'cannot watch the config file; SIGHUP still reloads',
      );
    }
  }

  close(): void {
    this.closed = true;
    this.stopWatch();
  }

  private stopWatch(): void {
    if (this.debounce !== null) clearTimeout(this.debounce);
    this.debounce = null;
    this.watcher?.close();
    this.watcher = null;
  }

  private async reloadNow(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    if (this.closed) return { status: 'unchanged' };
    this.notifier.reloading();
    try {
      return await this.load(trigger);
    } finally {
      this.notifier.ready();
    }
  }

  private async load(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    let next: Config;
    let secrets: ResolvedConfig['secrets'];
    try {
      ({ config: next, secrets } = loadResolvedConfig(this.file));
    } catch (err) {
      if (err instanceof ConfigError) {
        for (const p of err.problems) {
          this.log.error(
            { code: 'EH_ERR_CONFIG_RELOAD', reason: err.code, key: p.key, line: p.line, file: this.file, trigger },
            `config reload rejected, running config kept: ${formatProblem(p)}`,
          );
        }
      } else {
        this.log.error(
          { code: 'EH_ERR_CONFIG_RELOAD', file: this.file, trigger, err: (err as Error).message },
          'config reload rejected, running config kept',
        );
      }
      return { status: 'rejected' };
    }
    const diff = diffConfig(this.gateway.config, next);
    if (diff.changes.length === 0) {
      this.log[trigger === 'watch' ? 'debug' : 'info']({ file: this.file, trigger }, 'config reload: nothing changed');
      return { status: 'unchanged' };
    }
    let report: ApplyReport;
    try {
      report = await this.gateway.apply(diff, secrets);
    } catch (err) {
      this.log.error(
        {
          code: 'EH_ERR_CONFIG_RELOAD',
          file: this.file,
          trigger,
          keys: diff.changes.map((c) => c.key),
          err: (err as Error).message,
        },
        'config reload failed while applying; some settings may be applied, restart to be sure',
      );
      return { status: 'failed' };
    }
    // key names only: values may be secrets
    const line = { file: this.file, trigger, applied: report.applied, restart_required: report.restartRequired };
    if (report.restartRequired.length > 0)
      this.log.warn(line, `config reloaded; not applied until a restart: ${report.restartRequired.join(', ')}`);
    else this.log.info(line, 'config reloaded');
    this.configureWatch(this.gateway.config.reload);
    return { status: 'applied', report };
  }
}
