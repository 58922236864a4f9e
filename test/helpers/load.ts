import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import type { DeviceRun } from './devices.js';

/** `{"device":..,"n":..,"pad":"xxx"}` of about `bytes` bytes (at least the bare reading). */
export function paddedReading(device: string, n: number, bytes: number): string {
  const base = JSON.stringify({ device, n, pad: '' });
  // random padding: the buffer compresses its rows, and a size bound must be filled by real bytes
  return JSON.stringify({ device, n, pad: randomBytes(Math.ceil(Math.max(0, bytes - base.length) * 0.75)).toString('base64').slice(0, Math.max(0, bytes - base.length)) });
}

/**
 * Like startStubbornDevice, with payloads of about `payloadBytes`: a device
 * that publishes QoS 1 readings as fast as it is acknowledged (at most
 * `window` in flight) until `stop()`, reconnecting when the connection is
 * lost. `acked` fills live.
 */
export function startLoadDevice(url: string, device: string, stop: () => boolean, opts: { window?: number; payloadBytes?: number } = {}): { acked: number[]; finished: Promise<DeviceRun> } {
  const window = opts.window ?? 10;
  const bytes = opts.payloadBytes ?? 0;
  const acked: number[] = [];
  const run = async (): Promise<DeviceRun> => {
    let next = 0;
    while (!stop()) {
      let client: mqtt.MqttClient;
      try {
        client = await mqtt.connectAsync(url, { clientId: device, clean: true, reconnectPeriod: 0, connectTimeout: 2000 });
      } catch {
        await new Promise((r) => setTimeout(r, 100)); // not listening (yet): try again shortly
        continue;
      }
      const lost = new Promise<void>((resolve) => client.once('close', () => resolve()));
      const worker = async (): Promise<void> => {
        while (!stop() && client.connected) {
          const n = next++;
          await client.publishAsync(`devices/${device}/telemetry`, paddedReading(device, n, bytes), { qos: 1 });
          acked.push(n);
        }
      };
      await Promise.race([Promise.allSettled(Array.from({ length: window }, worker)), lost]);
      client.end(true);
    }
    return { device, acked: [...acked].sort((a, b) => a - b) };
  };
  return { acked, finished: run() };
}
