/**
 * deadband (report by exception): per key, forward an event only when one of
 * its fields moved by more than the band since the last forwarded event, or
 * when `max_silence_secs` passed since then (a heartbeat). Compared with the
 * last forwarded value, not the last seen one, so a slow drift still gets
 * through. Memory is bounded: beyond `max_keys` the least recently forwarded
 * key is forgotten (its next event is forwarded: forgetting errs on sending
 * more, never less).
 */
import { z } from 'zod';
import { DROPPED, StepConfigError, type Step, type StepResult, type Working } from '../step.js';
import { compileFieldTemplate, type FieldTemplate } from './template.js';
import { isRecord } from './value.js';

export const deadbandOptions = z.strictObject({
  field: z.string().min(1).optional(),
  fields: z.array(z.string().min(1)).min(1).optional(),
  /** absolute band, in the field's unit */
  abs: z.number().nonnegative().optional(),
  /** band in percent of the last forwarded value; with abs too, a change must exceed both (the wider band) */
  percent: z.number().nonnegative().optional(),
  /** forward anyway when nothing was forwarded for this long; absent: never */
  max_silence_secs: z.number().positive().optional(),
  /** per-key state; default: the event's partition key */
  by: z.string().optional(),
  max_keys: z.number().int().positive().default(10_000),
});
export type DeadbandOptions = z.infer<typeof deadbandOptions>;

interface Last {
  values: number[];
  at: number;
}

export function compileDeadband(options: DeadbandOptions): Step {
  if ((options.field === undefined) === (options.fields === undefined))
    throw new StepConfigError('give exactly one of "field" or "fields"', ['deadband']);
  if (options.abs === undefined && options.percent === undefined)
    throw new StepConfigError('give a band: "abs", "percent" or both', ['deadband']);
  const fields = options.fields ?? [options.field!];
  const n = fields.length;
  const abs = options.abs ?? 0;
  const fraction = (options.percent ?? 0) / 100;
  const silenceMs = options.max_silence_secs === undefined ? Infinity : options.max_silence_secs * 1000;
  const by: FieldTemplate =
    options.by === undefined ? (ev) => ev.key : compileFieldTemplate(options.by, ['deadband', 'by']);
  const maxKeys = options.max_keys;
  const state = new Map<string, Last>();
  const current: number[] = new Array<number>(n).fill(NaN);

  return {
    kind: 'deadband',
    run(ev: Working, now: number): StepResult {
      const value = ev.value;
      if (!isRecord(value)) return ev;
      let numeric = 0;
      for (let i = 0; i < n; i++) {
        const v = value[fields[i]!];
        if (typeof v === 'number' && Number.isFinite(v)) {
          current[i] = v;
          numeric++;
        } else {
          current[i] = NaN;
        }
      }
      // nothing to compare: deadband does not apply
      if (numeric === 0) return ev;

      const key = by(ev);
      const last = state.get(key);
      if (last !== undefined && now - last.at < silenceMs && !moved(last.values)) return DROPPED;

      const values = last?.values ?? new Array<number>(n).fill(NaN);
      for (let i = 0; i < n; i++) if (!Number.isNaN(current[i]!)) values[i] = current[i]!;
      if (last !== undefined) state.delete(key);
      state.set(key, { values, at: now });
      if (state.size > maxKeys) state.delete(state.keys().next().value!);
      return ev;
    },
  };

  function moved(lastValues: number[]): boolean {
    for (let i = 0; i < n; i++) {
      const v = current[i]!;
      if (Number.isNaN(v)) continue;
      const was = lastValues[i]!;
      if (Number.isNaN(was)) return true;
      const band = Math.max(abs, fraction * Math.abs(was));
      if (Math.abs(v - was) > band) return true;
    }
    return false;
  }
}
