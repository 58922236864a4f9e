/**
 * enrich: add fields from the gateway and the config (one copy of the value
 * per event), and decide the event time: the device's timestamp when present
 * and within the allowed skew of the receive time, else the receive time.
 */
import { z } from 'zod';
import { StepConfigError, StepFailure, type Step, type StepContext, type Working } from '../step.js';
import { copyRecord, isRecord, setOwn } from './value.js';
import { describe } from './value.js';

const scalar = z.union([z.string(), z.number(), z.boolean()]);

export const enrichOptions = z.strictObject({
  /** true: field "gateway" = the gateway id; a string: that field name */
  gateway: z.union([z.boolean(), z.string().min(1)]).optional(),
  /** field "site" */
  site: z.string().optional(),
  /** constant top-level fields */
  tags: z.record(z.string(), scalar).optional(),
  /** topic captures as fields: true for all of them, or a list of capture names */
  captures: z.union([z.boolean(), z.array(z.string().min(1))]).optional(),
  /** field "received_at": true or "ms" (ms since the epoch), "iso" (ISO 8601 string, UTC) */
  received_at: z.union([z.boolean(), z.enum(['ms', 'iso'])]).optional(),
  device_time: z
    .strictObject({
      /** the value field with the device's timestamp */
      field: z.string().min(1),
      /** auto: numbers below 1e11 are seconds, larger ones ms; ISO 8601 strings */
      unit: z.enum(['auto', 'ms', 's', 'iso']).default('auto'),
      /** accepted at most this far ahead of the receive time */
      max_skew_secs: z.number().nonnegative().default(300),
      /** accepted at most this far behind the receive time; default max_skew_secs (raise it for devices that buffer offline) */
      max_age_secs: z.number().nonnegative().optional(),
      /** field set to true when the timestamp is present but rejected; false: none */
      flag: z.union([z.string().min(1), z.literal(false)]).default('device_time_rejected'),
    })
    .optional(),
});
export type EnrichOptions = z.infer<typeof enrichOptions>;

type Add = (out: Record<string, unknown>, ev: Working) => void;

export function compileEnrich(options: EnrichOptions, ctx: StepContext): Step {
  const adds: Add[] = [];
  const constants: Array<[string, unknown]> = [];
  if (options.gateway !== undefined && options.gateway !== false) {
    constants.push([options.gateway === true ? 'gateway' : options.gateway, ctx.gatewayId]);
  }
  if (options.site !== undefined) constants.push(['site', options.site]);
  for (const [k, v] of Object.entries(options.tags ?? {})) constants.push([k, v]);
  if (constants.length > 0) {
    adds.push((out) => {
      for (const [k, v] of constants) setOwn(out, k, v);
    });
  }

  const captures = options.captures;
  if (captures === true) {
    adds.push((out, ev) => {
      for (const k in ev.vars)
        if (k !== 'client_id' && k !== 'topic' && Object.hasOwn(ev.vars, k)) setOwn(out, k, ev.vars[k]);
    });
  } else if (Array.isArray(captures)) {
    adds.push((out, ev) => {
      for (const k of captures) if (Object.hasOwn(ev.vars, k)) setOwn(out, k, ev.vars[k]);
    });
  }

  const receivedAt = options.received_at;
  if (receivedAt === true || receivedAt === 'ms') adds.push((out, ev) => void (out.received_at = ev.receivedAt));
  else if (receivedAt === 'iso') adds.push((out, ev) => void (out.received_at = new Date(ev.receivedAt).toISOString()));

  const dt = options.device_time;
  let deviceTime: ((out: Record<string, unknown>, ev: Working) => void) | null = null;
  if (dt !== undefined) {
    const { field, unit, flag } = dt;
    const ahead = dt.max_skew_secs * 1000;
    const behind = (dt.max_age_secs ?? dt.max_skew_secs) * 1000;
    deviceTime = (out, ev) => {
      if (!Object.hasOwn(out, field)) return;
      const t = parseTime(out[field], unit);
      if (t !== null && t - ev.receivedAt <= ahead && ev.receivedAt - t <= behind) {
        ev.eventTime = t;
      } else {
        ev.eventTime = ev.receivedAt;
        if (flag !== false) setOwn(out, flag, true);
      }
    };
  }

  if (adds.length === 0 && deviceTime === null) {
    throw new StepConfigError('enrich does nothing: give gateway, site, tags, captures, received_at or device_time', [
      'enrich',
    ]);
  }
  return {
    kind: 'enrich',
    run(ev: Working): Working {
      const value = ev.value;
      if (!isRecord(value)) throw new StepFailure(`enrich: value is ${describe(value)}, not an object`);
      const out = copyRecord(value);
      for (const add of adds) add(out, ev);
      if (deviceTime !== null) deviceTime(out, ev);
      ev.value = out;
      return ev;
    },
  };
}

/** ms since the epoch, or null when the value is not a timestamp in `unit`. */
export function parseTime(v: unknown, unit: 'auto' | 'ms' | 's' | 'iso'): number | null {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || unit === 'iso') return null;
    if (unit === 's' || (unit === 'auto' && Math.abs(v) < 1e11)) return Math.round(v * 1000);
    return Math.round(v);
  }
  if (typeof v === 'string' && (unit === 'auto' || unit === 'iso')) {
    // Date.parse also takes loose formats ("5"): insist on an ISO 8601 date-time
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(v)) return null;
    const t = Date.parse(v);
    return Number.isNaN(t) ? null : t;
  }
  return null;
}
