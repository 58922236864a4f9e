/**
 * filter: keep the events for which a condition holds (`filter: "temp > -40"`),
 * or drop those for which it holds (`filter: { drop: "status == 'test'" }`).
 * A condition that cannot be evaluated for an event (a missing field, a string
 * compared with a number) follows `on_error`: `fail` (default, a dead letter
 * with the reason), `keep` or `drop`.
 */
import { z } from 'zod';
import { DROPPED, StepConfigError, StepFailure, type Step, type StepResult, type Working } from '../step.js';
import { compileExpression, firstLine } from './expr.js';

export const filterOptions = z.union([
  z.string().min(1),
  z.strictObject({
    keep: z.string().min(1).optional(),
    drop: z.string().min(1).optional(),
    on_error: z.enum(['fail', 'keep', 'drop']).default('fail'),
  }),
]);
export type FilterOptions = z.infer<typeof filterOptions>;

export function compileFilter(options: FilterOptions): Step {
  const o = typeof options === 'string' ? { keep: options, drop: undefined, on_error: 'fail' as const } : options;
  if ((o.keep === undefined) === (o.drop === undefined))
    throw new StepConfigError('give exactly one of "keep" or "drop"', ['filter']);
  const keepWhen = o.keep !== undefined;
  const source = (o.keep ?? o.drop)!;
  const condition = compileExpression(
    source,
    typeof options === 'string' ? ['filter'] : ['filter', keepWhen ? 'keep' : 'drop'],
    'bool',
  );
  const onError = o.on_error;
  return {
    kind: 'filter',
    run(ev: Working): StepResult {
      let result: unknown;
      try {
        result = condition.evaluate(ev.value, ev);
      } catch (err) {
        if (onError === 'keep') return ev;
        if (onError === 'drop') return DROPPED;
        throw new StepFailure(`filter: ${firstLine(err)}`);
      }
      if (typeof result !== 'boolean') {
        if (onError === 'keep') return ev;
        if (onError === 'drop') return DROPPED;
        throw new StepFailure(`filter: condition gave ${typeof result}, not a bool`);
      }
      return result === keepWhen ? ev : DROPPED;
    },
  };
}
