/**
 * window: tumbling windows per key, aligned to multiples of `secs` since the
 * epoch (UTC), assigned by arrival time. Every input is absorbed (DROPPED);
 * when a window's period ends, `tick(now)` emits one event with its aggregates,
 * even if no further event came. Open windows hold acknowledged input, so
 * `checkpoint()` hands their state to the pipeline to store with the buffer's
 * commit and `restore()` takes it back after a restart.
 *
 * Output value: the `keep` fields of the window's last event, then
 * `key`, `window_start`, `window_end`, `first_event_time`, `last_event_time`
 * (ms since the epoch), `count` (events), and `fields`: per field an object
 * with the chosen aggregates, e.g. `fields: { temp: { count, min, max, mean } }`.
 * A field without a numeric sample in the window has count 0, sum 0 and null
 * for the others.
 */
import { z } from 'zod';
import { DROPPED, StepConfigError, type Step, type StepResult, type Working } from '../step.js';
import { compileFieldTemplate, type FieldTemplate } from './template.js';
import { isRecord, setOwn } from './value.js';

export const AGGREGATES = ['count', 'min', 'max', 'mean', 'sum', 'first', 'last'] as const;
type Aggregate = (typeof AGGREGATES)[number];

export const windowOptions = z.strictObject({
  secs: z.number().positive(),
  /** per-key windows; default: the event's partition key */
  by: z.string().optional(),
  fields: z.array(z.string().min(1)).min(1),
  aggregates: z.array(z.enum(AGGREGATES)).min(1).default(['count', 'min', 'max', 'mean', 'sum', 'last']),
  /** fields copied as they are from the last event of the window (e.g. site, device) */
  keep: z.array(z.string().min(1)).default([]),
  /** open windows at most; beyond it the oldest one is closed early (flag closed_early) */
  max_keys: z.number().int().positive().default(10_000),
});
export type WindowOptions = z.infer<typeof windowOptions>;

const META = [
  'key',
  'window_start',
  'window_end',
  'first_event_time',
  'last_event_time',
  'count',
  'fields',
  'closed_early',
];
const SNAPSHOT_VERSION = 1;
const NO_PAYLOAD = Buffer.alloc(0);

/** One field's running aggregates. */
interface Acc {
  n: number;
  min: number;
  max: number;
  sum: number;
  first: number;
  last: number;
}

interface Open {
  key: string;
  start: number;
  end: number;
  count: number;
  firstTime: number;
  lastTime: number;
  accs: Acc[];
  kept: Record<string, unknown>;
  earlyClose: boolean;
  // from the window's last event: where the aggregate goes
  topic: string;
  clientId: string;
  receivedAt: number;
  vars: Readonly<Record<string, string>>;
  kafkaTopic: string;
  routeKey: string;
  priority: number;
}

export function compileWindow(options: WindowOptions): Step {
  const periodMs = options.secs * 1000;
  const fields = options.fields;
  const nFields = fields.length;
  for (const [i, f] of options.keep.entries()) {
    if (META.includes(f))
      throw new StepConfigError(`keep field "${f}" clashes with the window's output`, ['window', 'keep', i]);
  }
  const aggregates = [...new Set(options.aggregates)] as Aggregate[];
  const keep = options.keep;
  const by: FieldTemplate =
    options.by === undefined ? (ev) => ev.key : compileFieldTemplate(options.by, ['window', 'by']);
  const maxKeys = options.max_keys;

  /** Insertion order is opening order, so the first entry closes first. */
  const open = new Map<string, Open>();
  let closed: Open[] = [];
  let dirty = false;

  const close = (w: Open, early: boolean): void => {
    open.delete(w.key);
    w.earlyClose = early;
    closed.push(w);
    dirty = true;
  };

  return {
    kind: 'window',
    run(ev: Working, now: number): StepResult {
      const key = by(ev);
      let w = open.get(key);
      if (w !== undefined && now >= w.end) {
        close(w, false);
        w = undefined;
      }
      if (w === undefined) {
        if (open.size >= maxKeys) close(open.values().next().value!, true);
        const start = Math.floor(now / periodMs) * periodMs;
        w = newWindow(key, start, start + periodMs, ev.eventTime, nFields);
        open.set(key, w);
      }
      add(w, ev);
      dirty = true;
      return DROPPED;
    },

    tick(now: number): Working[] {
      for (const w of open.values()) {
        if (w.end > now) break;
        close(w, false);
      }
      if (closed.length === 0) return [];
      const out = closed.map(emit);
      closed = [];
      // the emitted windows leave the state: the next checkpoint must not hold them
      dirty = true;
      return out;
    },

    nextDue(): number | null {
      if (closed.length > 0) return closed[0]!.end;
      const first = open.values().next();
      return first.done === true ? null : first.value.end;
    },

    checkpoint(): unknown {
      if (!dirty) return null;
      dirty = false;
      return {
        version: SNAPSHOT_VERSION,
        fields,
        closed: closed.map(snapshot),
        open: [...open.values()].map(snapshot),
      };
    },

    restore(state: unknown): void {
      open.clear();
      closed = [];
      if (!isRecord(state) || state.version !== SNAPSHOT_VERSION || !Array.isArray(state.fields)) return;
      if (!Array.isArray(state.open) || !Array.isArray(state.closed)) return;
      const savedFields = state.fields as unknown[];
      for (const raw of state.closed as unknown[]) {
        const w = fromSnapshot(raw, savedFields);
        if (w !== null) closed.push(w);
      }
      const reopened = (state.open as unknown[]).map((raw) => fromSnapshot(raw, savedFields)).filter((w) => w !== null);
      // the first open window must be the first to close (see nextDue)
      reopened.sort((a, b) => a.end - b.end);
      for (const w of reopened) {
        if (open.has(w.key)) closed.push(open.get(w.key)!);
        open.set(w.key, w);
      }
      dirty = false;
    },
  };

  function add(w: Open, ev: Working): void {
    w.count++;
    if (ev.eventTime < w.firstTime) w.firstTime = ev.eventTime;
    if (ev.eventTime > w.lastTime) w.lastTime = ev.eventTime;
    const value = ev.value;
    if (isRecord(value)) {
      for (let i = 0; i < nFields; i++) {
        const raw = value[fields[i]!];
        if (typeof raw !== 'number' || !Number.isFinite(raw)) continue;
        // -0 counts as 0: checkpoints and Kafka values are CBOR as cbor-x writes it, which has no -0,
        // so a window restored after a restart must not differ from one that never stopped
        const v = raw === 0 ? 0 : raw;
        const a = w.accs[i]!;
        if (a.n === 0) {
          a.min = a.max = a.first = v;
        } else {
          a.min = Math.min(a.min, v);
          a.max = Math.max(a.max, v);
        }
        a.n++;
        a.sum += v;
        a.last = v;
      }
      for (const f of keep) if (Object.hasOwn(value, f)) setOwn(w.kept, f, value[f]);
    }
    w.topic = ev.topic;
    w.clientId = ev.clientId;
    w.receivedAt = ev.receivedAt;
    w.vars = ev.vars;
    w.kafkaTopic = ev.kafkaTopic;
    w.routeKey = ev.key;
    w.priority = ev.priority;
  }

  function emit(w: Open): Working {
    const value: Record<string, unknown> = {};
    for (const f of keep) if (Object.hasOwn(w.kept, f)) setOwn(value, f, w.kept[f]);
    value.key = w.key;
    value.window_start = w.start;
    value.window_end = w.end;
    value.first_event_time = w.firstTime;
    value.last_event_time = w.lastTime;
    value.count = w.count;
    if (w.earlyClose) value.closed_early = true;
    const perField: Record<string, unknown> = {};
    for (let i = 0; i < nFields; i++) {
      const a = w.accs[i]!;
      const agg: Record<string, number | null> = {};
      for (const name of aggregates) agg[name] = aggregate(a, name);
      setOwn(perField, fields[i]!, agg);
    }
    value.fields = perField;
    return {
      topic: w.topic,
      clientId: w.clientId,
      receivedAt: w.receivedAt,
      payload: NO_PAYLOAD,
      vars: w.vars,
      value,
      eventTime: w.start,
      kafkaTopic: w.kafkaTopic,
      key: w.routeKey,
      priority: w.priority,
    };
  }

  function fromSnapshot(raw: unknown, savedFields: unknown[]): Open | null {
    if (!isRecord(raw)) return null;
    const {
      key,
      start,
      end,
      count,
      firstTime,
      lastTime,
      accs,
      kept,
      earlyClose,
      topic,
      clientId,
      receivedAt,
      vars,
      kafkaTopic,
      routeKey,
      priority,
    } = raw;
    if (typeof key !== 'string' || !allNumbers(start, end, count, firstTime, lastTime, receivedAt, priority))
      return null;
    if (
      typeof topic !== 'string' ||
      typeof clientId !== 'string' ||
      typeof kafkaTopic !== 'string' ||
      typeof routeKey !== 'string'
    )
      return null;
    if (!isRecord(vars) || !isRecord(kept) || !Array.isArray(accs)) return null;
    const w = newWindow(key, start as number, end as number, firstTime as number, nFields);
    Object.assign(w, {
      count,
      lastTime,
      topic,
      clientId,
      receivedAt,
      vars,
      kafkaTopic,
      routeKey,
      priority,
      earlyClose: earlyClose === true,
    });
    w.kept = { ...kept };
    for (let i = 0; i < nFields; i++) {
      const j = savedFields.indexOf(fields[i]);
      const saved = j === -1 ? null : (accs[j] as unknown);
      if (Array.isArray(saved) && saved.length === 6 && allNumbers(...(saved as unknown[]))) {
        const [n, min, max, sum, first, last] = saved as number[];
        w.accs[i] = { n: n!, min: min!, max: max!, sum: sum!, first: first!, last: last! };
      }
    }
    return w;
  }
}

function newWindow(key: string, start: number, end: number, eventTime: number, nFields: number): Open {
  const accs: Acc[] = [];
  for (let i = 0; i < nFields; i++) accs.push({ n: 0, min: 0, max: 0, sum: 0, first: 0, last: 0 });
  return {
    key,
    start,
    end,
    count: 0,
    firstTime: eventTime,
    lastTime: eventTime,
    accs,
    kept: {},
    earlyClose: false,
    topic: '',
    clientId: '',
    receivedAt: 0,
    vars: {},
    kafkaTopic: '',
    routeKey: '',
    priority: 0,
  };
}

function aggregate(a: Acc, name: Aggregate): number | null {
  if (name === 'count') return a.n;
  if (name === 'sum') return a.sum;
  if (a.n === 0) return null;
  switch (name) {
    case 'min':
      return a.min;
    case 'max':
      return a.max;
    case 'mean':
      return a.sum / a.n;
    case 'first':
      return a.first;
    case 'last':
      return a.last;
  }
}

/** A CBOR-encodable copy (fields without samples as null). */
function snapshot(w: Open): Record<string, unknown> {
  return {
    key: w.key,
    start: w.start,
    end: w.end,
    count: w.count,
    firstTime: w.firstTime,
    lastTime: w.lastTime,
    accs: w.accs.map((a) => (a.n === 0 ? null : [a.n, a.min, a.max, a.sum, a.first, a.last])),
    kept: { ...w.kept },
    earlyClose: w.earlyClose,
    topic: w.topic,
    clientId: w.clientId,
    receivedAt: w.receivedAt,
    vars: { ...w.vars },
    kafkaTopic: w.kafkaTopic,
    routeKey: w.routeKey,
    priority: w.priority,
  };
}

function allNumbers(...values: unknown[]): boolean {
  return values.every((v) => typeof v === 'number' && Number.isFinite(v));
}
