import { createRequire } from 'node:module';
import { resolve } from 'node:path';

// plain JS beside this file, so that scripts/kafka/*.sh can run it before a build
const { freePorts } = createRequire(import.meta.url)(
  resolve(import.meta.dirname, '../../../test/support/free-ports.cjs'),
) as {
  freePorts: (n: number) => Promise<number[]>;
};

/**
 * A loopback port that was free a moment ago, for a server that must come
 * back on the same port after a restart: chosen below the kernel's ephemeral
 * range, so that no outgoing connection takes it while the server is down
 * (see free-ports.cjs).
 */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}
