/**
 * `{field}` templates for partition keys. Deliberately tiny: a template can only
 * concatenate literal text and field values, so a config can never run code.
 */
export type Template = (fields: Readonly<Record<string, string>>) => string;

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export function templateFields(source: string): string[] {
  return [...source.matchAll(PLACEHOLDER)].map((m) => m[1]!);
}

export function compileTemplate(source: string): Template {
  const pieces: Array<string | { field: string }> = [];
  let last = 0;
  for (const m of source.matchAll(PLACEHOLDER)) {
    if (m.index > last) pieces.push(source.slice(last, m.index));
    pieces.push({ field: m[1]! });
    last = m.index + m[0].length;
  }
  if (last < source.length) pieces.push(source.slice(last));
  if (pieces.length === 1 && typeof pieces[0] !== 'string') {
    const field = pieces[0]!.field;
    return (fields) => fields[field] ?? '';
  }
  return (fields) => {
    let out = '';
    for (const p of pieces) out += typeof p === 'string' ? p : (fields[p.field] ?? '');
    return out;
  };
}
