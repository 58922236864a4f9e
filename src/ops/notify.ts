import { createRequire } from 'node:module';
import { LogThrottle, type Logger } from '../core/log.js';

/** The part of unix-dgram (a CommonJS native addon without types) used here. */
interface DatagramSocket {
  send(buf: Buffer, offset: number, length: number, path: string, callback: (err?: Error) => void): void;
  close(): void;
}
interface UnixDgram {
  createSocket(type: 'unix_dgram'): DatagramSocket;
}

/**
 * sd_notify(3) for `Type=notify` units: READY=1 once devices can connect,
 * RELOADING=1/READY=1 around a reload, STOPPING=1 on SIGTERM, and WATCHDOG=1
 * every WATCHDOG_USEC/2 from a timer on the event loop, so a hung loop stops
 * the pings and systemd restarts the daemon. Does nothing where NOTIFY_SOCKET
 * is absent (a shell, a container, the tests that do not ask for it).
 *
 * Node's core cannot send on a unix datagram socket; unix-dgram (a small
 * native addon, built with the same toolchain as better-sqlite3) sends from
 * the main process itself, so the unit keeps NotifyAccess=main and a ping
 * costs microseconds instead of a process spawn.
 */
export class SystemdNotifier {
  private socket: DatagramSocket | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private readonly throttle = new LogThrottle(60_000);

  private constructor(
    private readonly path: string | null,
    /** Ping interval in ms, or null when systemd does not watch this process. */
    readonly watchdogMs: number | null,
    private readonly log: Logger,
  ) {}

  static fromEnv(log: Logger, env: NodeJS.ProcessEnv = process.env): SystemdNotifier {
    const socket = env.NOTIFY_SOCKET;
    if (socket === undefined || socket === '') return new SystemdNotifier(null, null, log);
    if (socket.startsWith('@')) {
      // systemd gives services a path (/run/systemd/notify); abstract sockets appear only in some containers
      log.warn(
        { notify_socket: socket },
        'NOTIFY_SOCKET is an abstract socket, which is not supported; systemd notifications are off',
      );
      return new SystemdNotifier(null, null, log);
    }
    const usec = Number(env.WATCHDOG_USEC);
    const forUs = env.WATCHDOG_PID === undefined || env.WATCHDOG_PID === '' || Number(env.WATCHDOG_PID) === process.pid;
    const watchdogMs = Number.isFinite(usec) && usec > 0 && forUs ? Math.max(1, Math.floor(usec / 2000)) : null;
    return new SystemdNotifier(socket, watchdogMs, log);
  }

  get enabled(): boolean {
    return this.path !== null;
  }

  ready(status?: string): void {
    this.send(`READY=1${status !== undefined ? `\nSTATUS=${status}` : ''}`);
  }

  /** MONOTONIC_USEC lets `Type=notify-reload` (systemd 253+) match the reply to its request; older versions ignore it. */
  reloading(): void {
    this.send(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`);
  }

  stopping(): void {
    this.send('STOPPING=1');
  }

  /** Starts the watchdog pings if systemd asked for them (WatchdogSec= in the unit). */
  startWatchdog(): void {
    if (this.path === null || this.watchdogMs === null || this.watchdog !== null) return;
    this.send('WATCHDOG=1');
    this.watchdog = setInterval(() => this.send('WATCHDOG=1'), this.watchdogMs);
    // the pings must not keep a stopping process alive
    this.watchdog.unref();
  }

  close(): void {
    if (this.watchdog !== null) clearInterval(this.watchdog);
    this.watchdog = null;
    try {
      this.socket?.close();
    } catch {
      // already closed
    }
    this.socket = null;
  }

  private send(message: string): void {
    if (this.path === null) return;
    const path = this.path;
    try {
      this.socket ??= (createRequire(import.meta.url)('unix-dgram') as UnixDgram).createSocket('unix_dgram');
      const buf = Buffer.from(message);
      this.socket.send(buf, 0, buf.length, path, (err) => {
        if (err !== undefined) this.failed(message, err);
      });
    } catch (err) {
      this.failed(message, err as Error);
    }
  }

  private failed(message: string, err: Error): void {
    const kind = message.split('=')[0]!;
    this.throttle.run(kind, (suppressed) => {
      this.log.warn(
        { notify_socket: this.path, message: kind, err: err.message, suppressed },
        'systemd notification not sent',
      );
    });
  }
}
