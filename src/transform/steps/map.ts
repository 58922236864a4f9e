/**
 * map: reshape the value's top-level fields. One copy of the value per event,
 * then, in this order: rename and remove (both by the value's original field
 * names; a renamed field replaces a field of its new name), set (constants),
 * compute (expressions, in the order written, each seeing the fields computed
 * before it), convert.
 */
import { z } from 'zod';
import { StepConfigError, StepFailure, type Step, type Working } from '../step.js';
import { compileExpression, firstLine, toPlain, type Expression } from './expr.js';
import { conversion } from './units.js';
import { copyRecord, isRecord, setOwn } from './value.js';
import { describe } from './value.js';

const convertRule = z.union([
  z.strictObject({ from: z.string(), to: z.string(), decimals: z.number().int().min(0).max(15).optional() }),
  z.strictObject({
    multiply: z.number().default(1),
    add: z.number().default(0),
    decimals: z.number().int().min(0).max(15).optional(),
  }),
]);

export const mapOptions = z.strictObject({
  /** old name: new name */
  rename: z.record(z.string(), z.string().min(1)).optional(),
  remove: z.array(z.string()).optional(),
  /** field: constant value (written as is; use compute for expressions) */
  set: z.record(z.string(), z.unknown()).optional(),
  /** field: expression */
  compute: z.record(z.string(), z.string().min(1)).optional(),
  /** field: { from: unit, to: unit } or { multiply, add }; optional decimals rounds the result */
  convert: z.record(z.string(), convertRule).optional(),
});
export type MapOptions = z.infer<typeof mapOptions>;

interface Converter {
  readonly field: string;
  readonly multiply: number;
  readonly add: number;
  readonly scale: number | null;
}

export function compileMap(options: MapOptions): Step {
  const renames = Object.entries(options.rename ?? {});
  const removes = options.remove ?? [];
  const sets = Object.entries(options.set ?? {}).map(([field, value]) => [field, freeze(value)] as const);
  const computes: Array<readonly [string, Expression]> = Object.entries(options.compute ?? {}).map(
    ([field, source]) => [field, compileExpression(source, ['map', 'compute', field])],
  );
  const converts: Converter[] = Object.entries(options.convert ?? {}).map(([field, rule]) => {
    let factors: { multiply: number; add: number };
    if ('from' in rule) {
      const c = conversion(rule.from, rule.to);
      if (typeof c === 'string') throw new StepConfigError(c, ['map', 'convert', field]);
      factors = c;
    } else {
      factors = { multiply: rule.multiply, add: rule.add };
    }
    return { field, ...factors, scale: rule.decimals === undefined ? null : 10 ** rule.decimals };
  });
  // field -> new name (rename) or null (remove); a removal wins over a rename of the same field
  let reshape: Map<string, string | null> | null = null;
  if (renames.length + removes.length > 0) {
    reshape = new Map<string, string | null>(renames);
    for (const field of removes) reshape.set(field, null);
  }
  const renamedTo = new Map(renames.filter(([from]) => !removes.includes(from)).map(([from, to]) => [to, from]));
  if (renames.length + removes.length + sets.length + computes.length + converts.length === 0) {
    throw new StepConfigError('map does nothing: give rename, remove, set, compute or convert', ['map']);
  }

  return {
    kind: 'map',
    run(ev: Working): Working {
      const value = ev.value;
      if (!isRecord(value)) throw new StepFailure(`map: value is ${describe(value)}, not an object`);
      // one pass builds the copy with renames and removals applied: `delete` would
      // turn the object into a slow dictionary for every later step
      let out: Record<string, unknown>;
      if (reshape === null) {
        out = copyRecord(value);
      } else {
        out = {};
        for (const k in value) {
          if (!Object.hasOwn(value, k)) continue;
          const to = reshape.get(k);
          if (to === undefined) {
            // a renamed field replaces one of its new name
            if (!renamedTo.has(k) || !Object.hasOwn(value, renamedTo.get(k)!)) setOwn(out, k, value[k]);
          } else if (to !== null) {
            setOwn(out, to, value[k]);
          }
        }
      }
      for (const [field, constant] of sets) setOwn(out, field, constant);
      for (const [field, expr] of computes) {
        let result: unknown;
        try {
          result = expr.evaluate(out, ev);
        } catch (err) {
          throw new StepFailure(`map compute ${field}: ${firstLine(err)}`);
        }
        setOwn(out, field, toPlain(result));
      }
      for (const c of converts) {
        if (!Object.hasOwn(out, c.field)) continue;
        const v = out[c.field];
        if (typeof v !== 'number') throw new StepFailure(`map convert ${c.field}: ${describe(v)}, not a number`);
        const converted = v * c.multiply + c.add;
        out[c.field] = c.scale === null ? converted : Math.round(converted * c.scale) / c.scale;
      }
      ev.value = out;
      return ev;
    },
  };
}

/** Constants are shared by every event: freeze them so no later step can change one for all. */
function freeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) freeze(v);
    Object.freeze(value);
  }
  return value;
}
