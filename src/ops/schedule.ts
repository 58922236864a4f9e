import { createTask, type ScheduledTask } from 'node-cron';
import { LogThrottle, type Logger } from '../core/log.js';

export interface Job {
  readonly name: string;
  /** node-cron expression (5 fields, or 6 with seconds first) */
  readonly cron: string;
  run(): unknown;
}

/**
 * The configured cron jobs (telemetry, TTL sweeps, store maintenance). A job
 * never overlaps itself, a failure is logged (rate-limited) and the job runs
 * again at its next time, and no task keeps the process alive.
 */
export class Scheduler {
  private readonly tasks: ScheduledTask[] = [];
  private readonly throttle = new LogThrottle(60_000);

  constructor(
    private readonly timezone: string,
    private readonly log: Logger,
  ) {}

  add(job: Job): void {
    const task = createTask(
      job.cron,
      async () => {
        try {
          await job.run();
        } catch (err) {
          this.throttle.run(job.name, (suppressed) => {
            this.log.error(
              { code: 'EH_ERR_SCHEDULE_FAILED', job: job.name, err: (err as Error).message, suppressed },
              'scheduled job failed; it runs again at its next time',
            );
          });
        }
      },
      {
        name: `edgehaul:${job.name}`,
        noOverlap: true,
        unref: true,
        ...(this.timezone !== '' ? { timezone: this.timezone } : {}),
        logger: cronLogger(this.log),
      },
    );
    this.tasks.push(task);
    void task.start();
    this.log.debug(
      { job: job.name, cron: job.cron, timezone: this.timezone || 'system', next: task.getNextRun()?.toISOString() },
      'job scheduled',
    );
  }

  stop(): void {
    for (const t of this.tasks.splice(0)) void t.destroy();
  }
}

/** node-cron's own warnings (missed executions on a busy box) go to our log as debug lines. */
function cronLogger(log: Logger): {
  info(m: string): void;
  warn(m: string): void;
  error(m: string | Error): void;
  debug(m: string | Error): void;
} {
  const text = (m: string | Error): string => (typeof m === 'string' ? m : m.message);
  return {
    info: (m) => log.debug({ source: 'node-cron' }, m),
    warn: (m) => log.debug({ source: 'node-cron' }, m),
    error: (m) => log.warn({ source: 'node-cron' }, text(m)),
    debug: (m) => log.trace({ source: 'node-cron' }, text(m)),
  };
}
