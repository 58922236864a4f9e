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
