/**
 * dedupe: drop an event whose id (a value field) or content (a hash of the raw
 * payload) was already seen for the same key within `window_secs` of its first
 * sighting. Bounded: entries expire after the window, and beyond `max_entries`
 * the oldest are forgotten (a forgotten repeat is forwarded: errs on sending
 * more). State is not checkpointed: after a restart repeats of messages seen
 * before it are forwarded once more.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { DROPPED, StepConfigError, StepFailure, type Step, type StepResult, type Working } from '../step.js';
import { compileFieldTemplate, type FieldTemplate } from './template.js';
import { isRecord } from './value.js';
import { describe } from './value.js';

export const dedupeOptions = z.strictObject({
  /** the value field holding the message id */
  id: z.string().min(1).optional(),
  /** true: the payload's bytes are the identity (SHA-256) */
  content: z.boolean().optional(),
  window_secs: z.number().positive(),
  /** per-key ids; default: the event's partition key */
  by: z.string().optional(),
  max_entries: z.number().int().positive().default(100_000),
  /** an event without the id field: fail (dead letter, default) or pass (forwarded) */
  missing_id: z.enum(['fail', 'pass']).default('fail'),
});
export type DedupeOptions = z.infer<typeof dedupeOptions>;

export function compileDedupe(options: DedupeOptions): Step {
  const byContent = options.content === true;
  if ((options.id === undefined) === !byContent)
    throw new StepConfigError('give exactly one of "id" or "content: true"', ['dedupe']);
  const idField = options.id;
  const windowMs = options.window_secs * 1000;
  const by: FieldTemplate =
    options.by === undefined ? (ev) => ev.key : compileFieldTemplate(options.by, ['dedupe', 'by']);
  const maxEntries = options.max_entries;
  const missingPass = options.missing_id === 'pass';
  /** identity -> first seen (ms); insertion order is time order, so expiry pops from the front */
  const seen = new Map<string, number>();

  return {
    kind: 'dedupe',
    run(ev: Working, now: number): StepResult {
      let identity: string;
      if (byContent) {
        identity = createHash('sha256').update(ev.payload).digest('base64');
      } else {
        const value = ev.value;
        const id = isRecord(value) && Object.hasOwn(value, idField!) ? value[idField!] : undefined;
        if (typeof id !== 'string' && typeof id !== 'number') {
          if (missingPass) return ev;
          throw new StepFailure(`dedupe: id field ${idField!} is ${id === undefined ? 'missing' : describe(id)}`);
        }
        identity = typeof id === 'number' ? `n${id}` : `s${id}`;
      }
      const k = `${by(ev)}\u0000${identity}`;

      for (const [oldest, at] of seen) {
        if (now - at < windowMs && seen.size < maxEntries) break;
        seen.delete(oldest);
      }
      const first = seen.get(k);
      if (first !== undefined && now - first < windowMs) return DROPPED;
      seen.delete(k);
      seen.set(k, now);
      return ev;
    },
  };
}
