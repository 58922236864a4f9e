/**
 * The step library: the YAML shape of one step (`stepSchema`, a single-key map
 * `{ <kind>: <options> }`) and `compileStep`, which turns it into a Step once,
 * so that running it per event parses nothing.
 */
import { z } from 'zod';
import { StepConfigError, type Step, type StepContext } from '../step.js';
import { compileDecode, decodeOptions } from './decode.js';
import { compileDedupe, dedupeOptions } from './dedupe.js';
import { compileDeadband, deadbandOptions } from './deadband.js';
import { compileEnrich, enrichOptions } from './enrich.js';
import { compileFilter, filterOptions } from './filter.js';
import { compileMap, mapOptions } from './map.js';
import { compileRoute, routeOptions } from './route.js';
import { compileValidate, validateOptions } from './validate.js';
import { compileWindow, windowOptions } from './window.js';

export const STEP_KINDS = [
  'decode',
  'validate',
  'filter',
  'map',
  'enrich',
  'deadband',
  'dedupe',
  'window',
  'route',
] as const;
export type StepKind = (typeof STEP_KINDS)[number];

const stepObject = z
  .strictObject({
    decode: decodeOptions.optional(),
    validate: validateOptions.optional(),
    filter: filterOptions.optional(),
    map: mapOptions.optional(),
    enrich: enrichOptions.optional(),
    deadband: deadbandOptions.optional(),
    dedupe: dedupeOptions.optional(),
    window: windowOptions.optional(),
    route: routeOptions.optional(),
  })
  .superRefine((step, ctx) => {
    const kinds = Object.keys(step);
    if (kinds.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message:
          kinds.length === 0
            ? `a step is one of ${STEP_KINDS.join(', ')}`
            : `one kind per step, got ${kinds.join(' and ')} (make them two list items)`,
      });
    }
  });
type ParsedStep = z.infer<typeof stepObject>;

/**
 * One step as written in YAML. The schema is strict (unknown kinds and options
 * are errors); its TypeScript type is kept loose, a one-key record, because
 * only compileStep reads it (and pipeline tests compile fake step kinds).
 */
export type StepConfig = Readonly<Record<string, unknown>>;
export const stepSchema = stepObject as unknown as z.ZodType<StepConfig>;

/**
 * Compiles one step; throws StepConfigError with the path below the step. The
 * config is (re)checked against the schema first, so a caller that did not go
 * through the config loader (benchmarks, tools) gets the same errors and defaults.
 */
export function compileStep(stepConfig: StepConfig, ctx: StepContext): Step {
  const parsed = stepObject.safeParse(stepConfig);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new StepConfigError(
      issue.message,
      issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p)),
    );
  }
  const config: ParsedStep = parsed.data;
  const kinds = Object.keys(config) as StepKind[];
  if (kinds.length !== 1) throw new StepConfigError(`a step has exactly one kind, got ${kinds.length}`, []);
  const kind = kinds[0]!;
  switch (kind) {
    case 'decode':
      return compileDecode(config.decode!);
    case 'validate':
      return compileValidate(config.validate!);
    case 'filter':
      return compileFilter(config.filter!);
    case 'map':
      return compileMap(config.map!);
    case 'enrich':
      return compileEnrich(config.enrich!, ctx);
    case 'deadband':
      return compileDeadband(config.deadband!);
    case 'dedupe':
      return compileDedupe(config.dedupe!);
    case 'window':
      return compileWindow(config.window!);
    case 'route':
      return compileRoute(config.route!);
    default: {
      const unknown: never = kind;
      throw new StepConfigError(`unknown step kind "${String(unknown)}"`, []);
    }
  }
}

export { compileExpression, RESERVED_NAMES } from './expr.js';
export { UNITS } from './units.js';
