/**
 * Expressions in step configs (filter conditions, computed fields, priorities):
 * Google's Common Expression Language (CEL) through @marcbachmann/cel-js, a
 * tree-walking interpreter with a type checker. It never generates code (no
 * eval, no new Function), cannot reach Node globals, cannot call functions
 * that are not registered below, and refuses to read inherited properties.
 *
 * What an expression sees:
 * - the top-level fields of the event's value as variables (`temp > 30`);
 * - `vars`: the topic captures plus `client_id` and `topic` (`vars.device`);
 * - `received_at` and `event_time`: ms since the epoch;
 * - `event`: the whole value, for fields whose names are not identifiers or to
 *   test for a field (`has(event.temp)`); also the only way to reach a value
 *   that is not an object (a list, a number, bytes).
 * These four names win over a value field of the same name (use `event.vars`).
 *
 * Numbers: JSON numbers are CEL doubles and literals like `9` are CEL ints;
 * CEL refuses `double * int`, which no technician expects, so mixed arithmetic
 * is registered below (the result is a double). Int results are returned as
 * JS numbers (strings beyond 2^53).
 */
import { Environment, type ASTNode } from '@marcbachmann/cel-js';
import { StepConfigError, type Working } from '../step.js';
import { copyRecord, isRecord, setOwn } from './value.js';

const env = new Environment({
  unlistedVariablesAreDyn: true,
  homogeneousAggregateLiterals: false,
  limits: { maxAstNodes: 2000, maxDepth: 64, maxListElements: 1000, maxMapEntries: 1000, maxCallArguments: 16 },
});

const arithmetic: Record<string, (a: number, b: number) => number> = {
  '+': (a, b) => a + b,
  '-': (a, b) => a - b,
  '*': (a, b) => a * b,
  '/': (a, b) => a / b,
};
for (const [op, f] of Object.entries(arithmetic)) {
  env.registerOperator(`double ${op} int`, (a: number, b: bigint) => f(a, Number(b)));
  env.registerOperator(`int ${op} double`, (a: bigint, b: number) => f(Number(a), b));
}
env.registerOperator('double % double', (a: number, b: number) => a % b);
env.registerOperator('double % int', (a: number, b: bigint) => a % Number(b));

for (const [name, f] of [
  ['abs', Math.abs],
  ['floor', Math.floor],
  ['ceil', Math.ceil],
  ['round', Math.round],
] as const) {
  env.registerFunction(`${name}(double): double`, (a: number) => f(a));
}
env.registerFunction('abs(int): int', (a: bigint) => (a < 0n ? -a : a));
env.registerFunction('round(double, int): double', (a: number, digits: bigint) => {
  const scale = 10 ** Number(digits);
  return Math.round(a * scale) / scale;
});
for (const [name, pick] of [
  ['min', Math.min],
  ['max', Math.max],
] as const) {
  env.registerFunction(`${name}(double, double): double`, (a: number, b: number) => pick(a, b));
  env.registerFunction(`${name}(double, int): double`, (a: number, b: bigint) => pick(a, Number(b)));
  env.registerFunction(`${name}(int, double): double`, (a: bigint, b: number) => pick(Number(a), b));
  env.registerFunction(`${name}(int, int): int`, (a: bigint, b: bigint) =>
    name === 'min' ? (a < b ? a : b) : a > b ? a : b,
  );
}

/** Names an expression sees besides the value's fields. */
export const RESERVED_NAMES = ['vars', 'received_at', 'event_time', 'event'] as const;

export interface Expression {
  readonly source: string;
  /** Evaluates against `value` (the event's current value, maybe a copy being built). Throws on a runtime error. */
  evaluate(value: unknown, ev: Working): unknown;
}

export type Expect = 'bool' | 'number' | 'any';

/** Parses and type-checks once; a StepConfigError at `path` names what is wrong. */
export function compileExpression(
  source: string,
  path: ReadonlyArray<string | number>,
  expect: Expect = 'any',
): Expression {
  let parsed: ReturnType<Environment['parse']>;
  try {
    parsed = env.parse(source);
  } catch (err) {
    throw new StepConfigError(`bad expression "${source}": ${firstLine(err)}`, path);
  }
  const checked = parsed.check();
  if (!checked.valid) throw new StepConfigError(`bad expression "${source}": ${firstLine(checked.error)}`, path);
  const type = checked.type ?? 'dyn';
  if (expect === 'bool' && type !== 'bool' && type !== 'dyn') {
    throw new StepConfigError(`expression "${source}" must be a condition (bool), it gives ${type}`, path);
  }
  if (expect === 'number' && !['int', 'uint', 'double', 'dyn'].includes(type)) {
    throw new StepConfigError(`expression "${source}" must give a number, it gives ${type}`, path);
  }

  const names = identifiers(parsed.ast);
  const usesReserved = RESERVED_NAMES.some((n) => names.has(n));
  const run = parsed as (ctx: object) => unknown;

  // the value object itself is the context when it can be: no copy per evaluation
  if (!usesReserved) {
    return {
      source,
      evaluate: (value, ev) =>
        run(
          isRecord(value)
            ? value
            : { event: value, vars: ev.vars, received_at: ev.receivedAt, event_time: ev.eventTime },
        ),
    };
  }
  return {
    source,
    evaluate: (value, ev) => {
      const ctx: Record<string, unknown> = isRecord(value) ? copyRecord(value) : {};
      ctx.vars = ev.vars;
      ctx.received_at = ev.receivedAt;
      ctx.event_time = ev.eventTime;
      ctx.event = value;
      return run(ctx);
    },
  };
}

/** CEL ints are bigints: turn them (also inside lists and maps) into what JSON/CBOR consumers expect. */
export function toPlain(value: unknown): unknown {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (Array.isArray(value)) return value.map(toPlain);
  if (value instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of value) setOwn(out, String(k), toPlain(v));
    return out;
  }
  if (isRecord(value) && Object.getPrototypeOf(value) === Object.prototype) {
    let changed = false;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value)) {
      const v = toPlain(value[k]);
      if (v !== value[k]) changed = true;
      out[k] = v;
    }
    return changed ? out : value;
  }
  return value;
}

/** The first line of an error message (cel-js appends a source excerpt). */
export function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const nl = message.indexOf('\n');
  return nl === -1 ? message : message.slice(0, nl);
}

function identifiers(ast: ASTNode): Set<string> {
  const found = new Set<string>();
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const n of node) walk(n);
      return;
    }
    if (typeof node !== 'object' || node === null || !('op' in node)) return;
    const n = node as { op: string; args: unknown };
    if (n.op === 'id' && typeof n.args === 'string') found.add(n.args);
    else if (n.op !== 'value') walk(n.args);
  };
  walk(ast);
  return found;
}
