import mqtt from 'mqtt';

export interface DeviceRun {
  readonly device: string;
  /** Message numbers whose PUBACK arrived: these must reach Kafka. */
  readonly acked: number[];
}

/** A device started by startStubbornDevice or startResendingDevice: publishing until told to stop. */
export interface LiveDeviceHandle {
  /** message numbers acknowledged so far (fills live) */
  readonly acked: number[];
  /** what was acknowledged once the device stopped */
  readonly finished: Promise<DeviceRun>;
  /** drops the connection at once and stops reconnecting (a test's cleanup after a failure) */
  close(): void;
}

/**
 * One simulated device: a real mqtt.js client over TCP publishing `count`
 * JSON readings at QoS 1 to `topic(device)`, at most `window` in flight.
 */
export async function runDevice(
  url: string,
  device: string,
  count: number,
  opts: { topic?: (device: string) => string; window?: number; qos?: 0 | 1 } = {},
): Promise<DeviceRun> {
  const topic = (opts.topic ?? ((d) => `devices/${d}/telemetry`))(device);
  const window = opts.window ?? 20;
  const client = await mqtt.connectAsync(url, { clientId: device, clean: true, reconnectPeriod: 0 });
  const acked: number[] = [];
  try {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const n = next++;
        await client.publishAsync(topic, JSON.stringify({ device, n, temp: 20 + (n % 10) / 10 }), {
          qos: opts.qos ?? 1,
        });
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
): LiveDeviceHandle {
  const window = opts.window ?? 10;
  const payload = opts.payload ?? ((n: number) => JSON.stringify({ device, n }));
  const acked: number[] = [];
  let closed = false;
  let current: mqtt.MqttClient | null = null;
  const run = async (): Promise<DeviceRun> => {
    let next = 0;
    while (!stop() && !closed) {
      let client: mqtt.MqttClient;
      try {
        client = await mqtt.connectAsync(url, {
          clientId: device,
          clean: true,
          reconnectPeriod: 0,
          connectTimeout: 2000,
        });
      } catch {
        // refused at once while the daemon restarts: a short pause keeps the retry from spinning
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      current = client;
      if (closed) client.end(true);
      const lost = new Promise<void>((resolve) => client.once('close', () => resolve()));
      const worker = async (): Promise<void> => {
        while (!stop() && !closed && client.connected) {
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
  return {
    acked,
    finished: run(),
    close: () => {
      closed = true;
      current?.end(true);
    },
  };
}

/**
 * A device that keeps its MQTT session through daemon crashes, as QoS 1
 * allows: one mqtt.js client (clean: false, fixed client id, reconnecting)
 * publishing `{"device":..,"n":..}` with at most `window` in flight until
 * `stop()`. What was in flight when the connection broke is sent again after
 * the reconnect with the same packet id and, as MQTT requires, the DUP flag
 * (mqtt.js re-sends from its outgoing store without setting it: the store
 * here sets it). `acked` fills live; `resent` counts re-sent PUBLISH packets.
 */
export function startResendingDevice(
  url: string,
  device: string,
  stop: () => boolean,
  opts: { window?: number } = {},
): LiveDeviceHandle & { resent: () => number } {
  const window = opts.window ?? 20;
  const acked: number[] = [];
  let resent = 0;
  class DupStore extends mqtt.Store {
    override createStream() {
      // called on every (re)connect: what it yields is sent again
      const stream = super.createStream();
      const read = stream.read.bind(stream);
      stream.read = (size?: number) => {
        const packet = read(size) as { cmd?: string; dup?: boolean } | null;
        if (packet !== null && packet.cmd === 'publish') {
          packet.dup = true;
          resent++;
        }
        return packet;
      };
      return stream;
    }
  }
  const client = mqtt.connect(url, {
    clientId: device,
    clean: false,
    reconnectPeriod: 200,
    connectTimeout: 2000,
    outgoingStore: new DupStore(),
  });
  client.on('error', () => undefined);
  const run = async (): Promise<DeviceRun> => {
    let next = 0;
    let inFlight = 0;
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        while (!stop() && inFlight < window) {
          const n = next++;
          inFlight++;
          client.publish(`devices/${device}/telemetry`, JSON.stringify({ device, n }), { qos: 1 }, (err) => {
            inFlight--;
            if (err === undefined || err === null) acked.push(n);
            if (stop() && inFlight === 0) resolve();
            else pump();
          });
        }
        if (stop() && inFlight === 0) resolve();
      };
      pump();
    });
    await client.endAsync();
    return { device, acked: [...acked].sort((a, b) => a - b) };
  };
  return { acked, resent: () => resent, finished: run(), close: () => client.end(true) };
}
