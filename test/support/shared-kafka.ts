import { after, before } from 'node:test';
import { sharedKafka } from './kafka.js';

/**
 * The run's shared broker for a test file: registers node:test before/after
 * hooks that open it (sharedKafka) and stop it (a broker of the file's own);
 * `brokers` is readable once the before hook ran.
 */
export function useSharedKafka(): { readonly brokers: string[] } {
  let kafka: Awaited<ReturnType<typeof sharedKafka>> | null = null;
  before(async () => {
    kafka = await sharedKafka();
  });
  after(async () => {
    await kafka?.stop();
  });
  return {
    get brokers(): string[] {
      if (kafka === null) throw new Error('useSharedKafka: the before hook has not run yet');
      return kafka.brokers;
    },
  };
}
