import { randomBytes } from 'node:crypto';
import { startStubbornDevice, type LiveDeviceHandle } from './devices.js';

/** `{"device":..,"n":..,"pad":"xxx"}` of about `bytes` bytes (at least the bare reading). */
export function paddedReading(device: string, n: number, bytes: number): string {
  const base = JSON.stringify({ device, n, pad: '' });
  // random padding: the buffer compresses its rows, and a size bound must be filled by real bytes
  return JSON.stringify({
    device,
    n,
    pad: randomBytes(Math.ceil(Math.max(0, bytes - base.length) * 0.75))
      .toString('base64')
      .slice(0, Math.max(0, bytes - base.length)),
  });
}

/**
 * Like startStubbornDevice, with payloads of about `payloadBytes`: a device
 * that publishes QoS 1 readings as fast as it is acknowledged (at most
 * `window` in flight) until `stop()`, reconnecting when the connection is
 * lost. `acked` fills live.
 */
export function startLoadDevice(
  url: string,
  device: string,
  stop: () => boolean,
  opts: { window?: number; payloadBytes?: number } = {},
): LiveDeviceHandle {
  const bytes = opts.payloadBytes ?? 0;
  return startStubbornDevice(url, device, stop, {
    window: opts.window ?? 10,
    payload: (n) => paddedReading(device, n, bytes),
  });
}
