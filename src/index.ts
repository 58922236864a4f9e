/** Library entry: what a Kafka consumer needs to read edgehaul batches. */
export { decodeBatch, encodeBatch, batchToJsonLines, batchHeaders, CONTENT_TYPE, FORMAT_VERSION, HEADERS } from './forward/format.js';
export type { Batch, BatchEvent } from './forward/format.js';
