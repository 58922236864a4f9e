// Publishes COUNT QoS 1 messages to the daemon in the container and prints how many were
// acknowledged (PUBACK). Run inside the container by run.sh, with mqtt.js from the checkout.
//   node publish.mjs URL TOPIC COUNT
import mqtt from 'mqtt';

const [url, topic, countText] = process.argv.slice(2);
const count = Number(countText);
if (url === undefined || topic === undefined || !Number.isInteger(count) || count < 1 || count > 10_000) {
  process.stderr.write('usage: node publish.mjs URL TOPIC COUNT (1..10000)\n');
  process.exit(2);
}
// bounded: a daemon that never acknowledges fails the check instead of hanging it
const timer = setTimeout(() => {
  process.stderr.write(`publish.mjs: no PUBACK for all ${count} messages within 20 s\n`);
  process.exit(1);
}, 20_000);
const client = await mqtt.connectAsync(url, { clientId: `ci-${process.pid}`, reconnectPeriod: 0, connectTimeout: 5000 });
let acked = 0;
for (let i = 0; i < count; i++) {
  await client.publishAsync(topic, JSON.stringify({ i, t: Date.now() }), { qos: 1 });
  acked++;
}
await client.endAsync();
clearTimeout(timer);
process.stdout.write(`${acked}\n`);
