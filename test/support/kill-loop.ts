import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { Daemon } from './daemon.js';
import type { DeviceRun, LiveDeviceHandle } from './devices.js';
import { waitFor } from './poll.js';

/** A device that publishes until told to stop (startStubbornDevice, startResendingDevice, startLoadDevice). */
export type LiveDevice = LiveDeviceHandle;

/**
 * The real daemon under load from devices that go on through its restarts:
 * one state dir and config, the daemon of the moment in `daemon`. The test
 * context stops the devices and SIGKILLs the daemon when the test ends, also
 * on a failure.
 */
export class LoadedDaemon<D extends LiveDevice> {
  daemon: Daemon;
  /** the MQTT address the first daemon reported (a restarted one listens on the same port) */
  url = '';
  readonly devices: D[] = [];
  private stopped = false;

  private constructor(
    t: TestContext,
    readonly dir: string,
    readonly config: Record<string, unknown>,
  ) {
    this.daemon = new Daemon(dir, config);
    t.after(async () => {
      this.stopped = true;
      // after a failure devices may still wait for acknowledgements: their connections would keep the test process alive
      for (const d of this.devices) d.close();
      await this.daemon.stop('SIGKILL').catch(() => undefined);
    });
  }

  /**
   * Starts a daemon in `dir` with `config`, then `device(url, id, stop)` for
   * each of `ids`: devices that publish until `stop()` returns true.
   */
  static async start<D extends LiveDevice>(
    t: TestContext,
    o: {
      dir: string;
      config: Record<string, unknown>;
      ids: readonly string[];
      device: (url: string, id: string, stop: () => boolean) => D;
    },
  ): Promise<LoadedDaemon<D>> {
    const l = new LoadedDaemon<D>(t, o.dir, o.config);
    l.url = await l.daemon.start();
    l.devices.push(...o.ids.map((id) => o.device(l.url, id, () => l.stopped)));
    return l;
  }

  /** Messages acknowledged to all devices so far. */
  acked(): number {
    return this.devices.reduce((n, d) => n + d.acked.length, 0);
  }

  /** Waits until `more` further messages are acknowledged (the daemon is taking load). */
  async moreAcked(what: string, more: number, timeoutMs = 30_000): Promise<void> {
    const base = this.acked();
    await waitFor(what, () => this.acked() >= base + more, timeoutMs);
  }

  /** Stops the daemon of the moment with `signal`; its exit. */
  stop(signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.daemon.stop(signal);
  }

  /** A new daemon on the same dir and config, started (the devices reconnect to the same address). */
  async start(): Promise<void> {
    this.daemon = new Daemon(this.dir, this.config);
    await this.daemon.start();
  }

  /**
   * Tells the devices to stop; what each had acknowledged once it stopped
   * (each waits for the acknowledgements it has in flight). Throws, naming the
   * devices still waiting, after `timeoutMs`.
   */
  async finish(timeoutMs = 60_000): Promise<DeviceRun[]> {
    this.stopped = true;
    const done = new Set<number>();
    this.devices.forEach((d, i) => void d.finished.then(() => done.add(i)));
    await waitFor(
      `the devices to stop (still waiting for acknowledgements: ${this.devices.length - done.size} of ${this.devices.length})`,
      () => done.size === this.devices.length,
      timeoutMs,
    ).catch((err: Error) => {
      const pending = this.devices.flatMap((d, i) => (done.has(i) ? [] : [`#${i} (${d.acked.length} acked)`]));
      throw new Error(`${err.message}; pending devices: ${pending.join(', ')}; daemon: ${this.daemon.describe()}`);
    });
    return Promise.all(this.devices.map((d) => d.finished));
  }
}

/**
 * The crash loop: `kills` times, wait for `acksPerRound` new acknowledgements
 * (the daemon is taking load again), wait a random moment mid-load (up to
 * `maxDelayMs`, from the seeded `random`), SIGKILL the daemon and start it
 * again; then wait for acknowledgements after the last restart and stop the
 * devices. `beforeKill`/`afterRestart` add a test's own steps to a round.
 * Returns the devices' runs: what was acknowledged, which must all arrive.
 */
export async function killLoop<D extends LiveDevice>(
  load: LoadedDaemon<D>,
  o: {
    kills: number;
    random: () => number;
    maxDelayMs: number;
    acksPerRound?: number;
    beforeKill?: (kill: number) => Promise<void>;
    afterRestart?: (kill: number) => Promise<void>;
  },
): Promise<DeviceRun[]> {
  const acks = o.acksPerRound ?? 500;
  for (let kill = 1; kill <= o.kills; kill++) {
    await load.moreAcked(`acknowledgements after start ${kill}`, acks);
    await new Promise((r) => setTimeout(r, Math.floor(o.random() * o.maxDelayMs))); // a random moment mid-load
    await o.beforeKill?.(kill);
    assert.equal((await load.stop('SIGKILL')).signal, 'SIGKILL');
    await load.start();
    await o.afterRestart?.(kill);
  }
  await load.moreAcked('acknowledgements after the last restart', acks);
  return load.finish();
}
