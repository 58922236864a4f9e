/**
 * validate: check the value's top-level fields against rules from the config.
 * Hand-written checks compiled to a flat list (a code-generating validator
 * would turn config into code). The first broken rule fails the event with
 * "validate <field>: <rule>".
 */
import { z } from 'zod';
import { StepConfigError, StepFailure, type Step, type Working } from '../step.js';
import { describe, isRecord } from './value.js';

export const FIELD_TYPES = ['number', 'integer', 'string', 'boolean', 'object', 'array', 'any'] as const;
type FieldType = (typeof FIELD_TYPES)[number];

const fieldRule = z.strictObject({
  type: z.enum(FIELD_TYPES).default('any'),
  required: z.boolean().default(false),
  /** numbers: inclusive bounds */
  min: z.number().optional(),
  max: z.number().optional(),
  /** strings: a regular expression the whole value must match somewhere (anchor it with ^...$) */
  pattern: z.string().optional(),
  /** the value must be one of these */
  enum: z
    .array(z.union([z.string(), z.number(), z.boolean()]))
    .min(1)
    .optional(),
  /** strings and arrays: length bounds */
  min_length: z.number().int().nonnegative().optional(),
  max_length: z.number().int().nonnegative().optional(),
  /** null passes (a field that is present but null) */
  nullable: z.boolean().default(false),
});

export const validateOptions = z.strictObject({
  fields: z.record(z.string(), fieldRule),
  /** false: a field not listed in `fields` fails the event */
  allow_other_fields: z.boolean().default(true),
});
export type ValidateOptions = z.infer<typeof validateOptions>;

type Check = (value: Record<string, unknown>) => string | null;

export function compileValidate(options: ValidateOptions): Step {
  const checks: Check[] = [];
  for (const [name, rule] of Object.entries(options.fields)) checks.push(compileField(name, rule));
  if (!options.allow_other_fields) {
    const known = new Set(Object.keys(options.fields));
    checks.push((value) => {
      for (const k in value) if (Object.hasOwn(value, k) && !known.has(k)) return `validate ${k}: field not allowed`;
      return null;
    });
  }
  const n = checks.length;
  return {
    kind: 'validate',
    run(ev: Working): Working {
      const value = ev.value;
      if (!isRecord(value)) throw new StepFailure(`validate: value is ${describe(value)}, not an object`);
      for (let i = 0; i < n; i++) {
        const broken = checks[i]!(value);
        if (broken !== null) throw new StepFailure(broken);
      }
      return ev;
    },
  };
}

function compileField(name: string, rule: z.infer<typeof fieldRule>): Check {
  const path = ['validate', 'fields', name];
  if (rule.min !== undefined && rule.max !== undefined && rule.min > rule.max)
    throw new StepConfigError(`min ${rule.min} is above max ${rule.max}`, path);
  const numeric = rule.type === 'number' || rule.type === 'integer';
  if ((rule.min !== undefined || rule.max !== undefined) && !numeric)
    throw new StepConfigError('min/max apply to type number or integer', path);
  if (rule.pattern !== undefined && rule.type !== 'string')
    throw new StepConfigError('pattern applies to type string', path);
  if (
    (rule.min_length !== undefined || rule.max_length !== undefined) &&
    rule.type !== 'string' &&
    rule.type !== 'array'
  ) {
    throw new StepConfigError('min_length/max_length apply to type string or array', path);
  }
  let pattern: RegExp | null = null;
  if (rule.pattern !== undefined) {
    try {
      pattern = new RegExp(rule.pattern, 'u');
    } catch (err) {
      throw new StepConfigError(`bad pattern: ${(err as Error).message}`, [...path, 'pattern']);
    }
  }
  const allowed = rule.enum === undefined ? null : new Set<unknown>(rule.enum);
  const prefix = `validate ${name}: `;
  const { type, required, nullable, min, max, min_length: minLength, max_length: maxLength } = rule;

  return (value) => {
    const v = Object.hasOwn(value, name) ? value[name] : undefined;
    if (v === undefined) return required ? `${prefix}required` : null;
    if (v === null) return nullable ? null : `${prefix}is null`;
    if (!hasType(v, type)) return `${prefix}expected ${type}, got ${describe(v)}`;
    if (min !== undefined && (v as number) < min) return `${prefix}${v as number} is below min ${min}`;
    if (max !== undefined && (v as number) > max) return `${prefix}${v as number} is above max ${max}`;
    if (minLength !== undefined && (v as string | unknown[]).length < minLength)
      return `${prefix}length ${(v as string).length} is below min_length ${minLength}`;
    if (maxLength !== undefined && (v as string | unknown[]).length > maxLength)
      return `${prefix}length ${(v as string).length} is above max_length ${maxLength}`;
    if (pattern !== null && !pattern.test(v as string)) return `${prefix}does not match pattern ${pattern.source}`;
    if (allowed !== null && !allowed.has(v))
      return `${prefix}${JSON.stringify(v)} is not one of ${JSON.stringify([...allowed])}`;
    return null;
  };
}

function hasType(v: unknown, type: FieldType): boolean {
  switch (type) {
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'string':
      return typeof v === 'string';
    case 'boolean':
      return typeof v === 'boolean';
    case 'object':
      return isRecord(v);
    case 'array':
      return Array.isArray(v);
    case 'any':
      return true;
  }
}
