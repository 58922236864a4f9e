/**
 * `{name}` templates for keys and topics inside steps (deadband/dedupe/window
 * `by`, route `topic`/`key`). A name is looked up in the event's vars (topic
 * captures, client_id, topic) first, then in the value's top-level fields; a
 * missing name renders as "". Only text and field values are concatenated: a
 * config can never run code through a template.
 */
import { StepConfigError, type Working } from '../step.js';
import { isRecord } from './value.js';

export type FieldTemplate = (ev: Working) => string;

const PLACEHOLDER = /\{([^{}]*)\}/g;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function compileFieldTemplate(source: string, path: ReadonlyArray<string | number>): FieldTemplate {
  const pieces: Array<string | { name: string }> = [];
  let last = 0;
  for (const m of source.matchAll(PLACEHOLDER)) {
    const name = m[1]!;
    if (!NAME.test(name)) throw new StepConfigError(`template "${source}": "{${name}}" is not a field name`, path);
    if (m.index > last) pieces.push(source.slice(last, m.index));
    pieces.push({ name });
    last = m.index + m[0].length;
  }
  if (last < source.length) pieces.push(source.slice(last));
  if (pieces.some((p) => typeof p === 'string' && (p.includes('{') || p.includes('}')))) {
    throw new StepConfigError(`template "${source}": unbalanced braces`, path);
  }
  if (pieces.length === 0) return () => '';
  if (pieces.length === 1) {
    const only = pieces[0]!;
    if (typeof only === 'string') return () => only;
    return (ev) => lookup(ev, only.name);
  }
  return (ev) => {
    let out = '';
    for (const p of pieces) out += typeof p === 'string' ? p : lookup(ev, p.name);
    return out;
  };
}

function lookup(ev: Working, name: string): string {
  const fromVars = Object.hasOwn(ev.vars, name) ? ev.vars[name] : undefined;
  if (fromVars !== undefined) return fromVars;
  const value = ev.value;
  if (!isRecord(value) || !Object.hasOwn(value, name)) return '';
  const field = value[name];
  switch (typeof field) {
    case 'string':
      return field;
    case 'number':
    case 'bigint':
    case 'boolean':
      return String(field);
    default:
      return '';
  }
}
