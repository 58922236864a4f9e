/**
 * A plain MQTT broker (aedes, in-memory) in a process of its own: the
 * "broker already on the gateway" for client-mode tests. Prints
 * `BROKER_PORT=<port>` once listening on an ephemeral loopback port.
 */
import { createServer, type AddressInfo } from 'node:net';
import { Aedes } from 'aedes';

const broker = await Aedes.createBroker({ maxClientsIdLength: 256 });
const server = createServer(broker.handle);
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`BROKER_PORT=${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => {
  // a client that never answers must not keep a test's broker alive
  setTimeout(() => process.exit(0), 2000).unref();
  server.close();
  broker.close(() => process.exit(0));
});
// the test that started us is gone: do not linger as an orphan
process.on('disconnect', () => process.exit(0));
process.stdout.on('error', () => process.exit(0));
