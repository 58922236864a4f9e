import mqtt from 'mqtt';

export interface DeviceRun {
  readonly device: string;
  /** Message numbers whose PUBACK arrived: these must reach Kafka. */
  readonly acked: number[];
}

/**
 * One simulated device: a real mqtt.js client over TCP publishing `count`
 * JSON readings at QoS 1 to `topic(device)`, at most `window` in flight.
 */
export async function runDevice(url: string, device: string, count: number, opts: { topic?: (device: string) => string; window?: number; qos?: 0 | 1 } = {}): Promise<DeviceRun> {
  const topic = (opts.topic ?? ((d) => `devices/${d}/telemetry`))(device);
  const window = opts.window ?? 20;
  const client = await mqtt.connectAsync(url, { clientId: device, clean: true, reconnectPeriod: 0 });
  const acked: number[] = [];
  try {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const n = next++;
        await client.publishAsync(topic, JSON.stringify({ device, n, temp: 20 + (n % 10) / 10 }), { qos: opts.qos ?? 1 });
        acked.push(n);
      }
    };
    await Promise.all(Array.from({ length: Math.min(window, count) }, worker));
  } finally {
    await client.endAsync();
  }
  acked.sort((a, b) => a - b);
  return { device, acked };
}

/**
 * A device that keeps publishing through daemon crashes until `stop()`: on a
 * lost connection it opens a new one and goes on with the next number (what
 * was in flight is simply not acknowledged). `acked` fills live.
 */
export function startStubbornDevice(
  url: string,
  device: string,
  stop: () => boolean,
  opts: { window?: number; payload?: (n: number) => string } = {},
): { acked: number[]; finished: Promise<DeviceRun> } {
  const window = opts.window ?? 10;
  const payload = opts.payload ?? ((n: number) => JSON.stringify({ device, n }));
  const acked: number[] = [];
  const run = async (): Promise<DeviceRun> => {
    let next = 0;
    while (!stop()) {
      let client: mqtt.MqttClient;
      try {
        client = await mqtt.connectAsync(url, { clientId: device, clean: true, reconnectPeriod: 0, connectTimeout: 2000 });
      } catch {
        // refused at once while the daemon restarts: a short pause keeps the retry from spinning
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const lost = new Promise<void>((resolve) => client.once('close', () => resolve()));
      const worker = async (): Promise<void> => {
        while (!stop() && client.connected) {
          const n = next++;
          await client.publishAsync(`devices/${device}/telemetry`, payload(n), { qos: 1 });
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
