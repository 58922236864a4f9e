/** Library entry: what a Kafka consumer needs to read edgehaul batches. */
export {
  decodeBatch,
  decodeValue,
  encodeBatch,
  batchToJsonLines,
  batchHeaders,
  CONTENT_TYPE,
  AGGREGATE_FORMAT_VERSION,
  FORMAT_VERSION,
  HEADERS,
  READ_VERSIONS,
} from './forward/format.js';
export type { Batch, BatchEvent, BatchSource } from './forward/format.js';
export { Deduper } from './forward/dedupe.js';
