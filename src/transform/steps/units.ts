/**
 * Unit conversions for `map.convert`: every unit is `base = value * scale + offset`
 * in its dimension's base unit, so any from/to pair of one dimension reduces to
 * one multiply and one add, computed at compile time.
 */
interface Unit {
  readonly dimension: string;
  readonly scale: number;
  readonly offset: number;
}

const table: Record<string, Unit> = {};
function define(dimension: string, units: Record<string, number | [number, number]>): void {
  for (const [name, def] of Object.entries(units)) {
    const [scale, offset] = typeof def === 'number' ? [def, 0] : def;
    table[name] = { dimension, scale, offset };
  }
}

define('temperature', { C: 1, K: [1, -273.15], F: [5 / 9, -32 * (5 / 9)] });
define('pressure', {
  Pa: 1,
  hPa: 100,
  kPa: 1000,
  MPa: 1e6,
  mbar: 100,
  bar: 1e5,
  psi: 6894.757293168,
  atm: 101325,
  mmHg: 133.322387415,
  inHg: 3386.389,
});
define('length', { mm: 0.001, cm: 0.01, m: 1, km: 1000, in: 0.0254, ft: 0.3048, yd: 0.9144, mi: 1609.344 });
define('speed', { 'm/s': 1, 'km/h': 1 / 3.6, mph: 0.44704, kn: 1852 / 3600 });
define('mass', { mg: 1e-6, g: 0.001, kg: 1, t: 1000, oz: 0.028349523125, lb: 0.45359237 });
define('volume', { mL: 1e-6, L: 0.001, m3: 1, gal: 0.003785411784, ft3: 0.028316846592 });
define('flow', { 'L/min': 0.001 / 60, 'L/s': 0.001, 'm3/h': 1 / 3600, 'm3/s': 1, gpm: 0.003785411784 / 60 });
define('energy', { J: 1, kJ: 1000, Wh: 3600, kWh: 3.6e6, MWh: 3.6e9, cal: 4.184, kcal: 4184, BTU: 1055.05585262 });
define('power', { W: 1, kW: 1000, MW: 1e6, hp: 745.69987158227 });
define('time', { ms: 0.001, s: 1, min: 60, h: 3600, d: 86400 });
define('ratio', { fraction: 1, percent: 0.01, ppm: 1e-6 });

export const UNITS: readonly string[] = Object.keys(table);

/** `to = from * multiply + add`, or an error message. */
export function conversion(from: string, to: string): { multiply: number; add: number } | string {
  const a = table[from];
  const b = table[to];
  if (a === undefined) return `unknown unit "${from}" (known: ${UNITS.join(', ')})`;
  if (b === undefined) return `unknown unit "${to}" (known: ${UNITS.join(', ')})`;
  if (a.dimension !== b.dimension) return `cannot convert ${a.dimension} (${from}) to ${b.dimension} (${to})`;
  // base = v * a.scale + a.offset; out = (base - b.offset) / b.scale
  return { multiply: a.scale / b.scale, add: (a.offset - b.offset) / b.scale };
}
