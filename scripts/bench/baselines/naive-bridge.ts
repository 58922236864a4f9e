/**
 * The naive bridge: what a user writes from a tutorial instead of edgehaul.
 * An mqtt.js client subscribes to a broker and calls `producer.send` for
 * every message it receives: the payload as it came (JSON), one Kafka
 * record per MQTT message, keyed by device, no buffer, no batching of its
 * own, nothing durable (mqtt.js acknowledges a QoS 1 message to the broker
 * as soon as the handler ran, before Kafka has it). The suite measures it
 * with the same load generator and consumer as edgehaul (suite.ts).
 *
 *   node dist/scripts/bench/baselines/naive-bridge.js MQTT_URL KAFKA_BROKERS TOPIC [none|gzip] [tag]
 *
 * Prints `BRIDGE_READY` once subscribed; `tag` is ignored (for pgrep).
 */
import { CompressionTypes, Kafka, logLevel } from 'kafkajs';
import mqtt from 'mqtt';

const [mqttUrl, brokers, topic, compression] = process.argv.slice(2);
if (mqttUrl === undefined || brokers === undefined || topic === undefined) {
  process.stderr.write('usage: naive-bridge MQTT_URL KAFKA_BROKERS TOPIC [none|gzip]\n');
  process.exit(2);
}

const kafka = new Kafka({ clientId: 'naive-bridge', brokers: brokers.split(','), logLevel: logLevel.ERROR });
const producer = kafka.producer();
await producer.connect();

const client = mqtt.connect(mqttUrl, { clientId: 'naive-bridge' });
client.on('connect', () => {
  client.subscribe('devices/#', { qos: 1 }, (err) => {
    if (err) {
      process.stderr.write(`subscribe failed: ${err.message}\n`);
      process.exit(1);
    }
    process.stdout.write('BRIDGE_READY\n');
  });
});

// one send per message, not awaited by the MQTT client (an emitter ignores a listener's promise): a failed send is reported
client.on('message', (mqttTopic, message) => {
  producer
    .send({
      topic,
      compression: compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
      messages: [{ key: mqttTopic.split('/')[1] ?? null, value: message }],
    })
    .catch((err: unknown) => {
      process.stderr.write(`send failed: ${(err as Error).message}\n`);
    });
});

const stop = (): void => {
  client.end(true);
  void producer.disconnect().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
