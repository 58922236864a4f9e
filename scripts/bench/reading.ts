/**
 * The benchmark's reading: the payload every load generator publishes and
 * the Kafka and SQLite limits use. Its `ts` (publish time, epoch ms) is what
 * publish-to-Kafka latency is measured from.
 */
/** One reading, about 120 bytes of JSON. */
export function reading(device: string, n: number): string {
  return JSON.stringify({
    device,
    n,
    ts: Date.now(),
    temp: 20 + (n % 100) / 10,
    hum: 40 + (n % 37) / 10,
    press: 1013.2,
    bat: 3.71,
    rssi: -67,
    fw: '1.4.2',
  });
}
