/**
 * The suite's chart as a self-contained SVG: two panels side by side,
 * achieved events/s and PUBACK p99 (ms), each against the offered load, one
 * line per scenario, both axes logarithmic. Written here rather than with a
 * chart library: the charting libraries that render SVG need a DOM or a
 * canvas (or a headless browser), which is a heavy dependency for two line
 * panels, and this output is plain deterministic text that diffs well when
 * the committed copy is refreshed.
 */

export interface Series {
  readonly name: string;
  /** [offered events/s, value]; null values are left out */
  readonly points: ReadonlyArray<readonly [number, number | null]>;
}

export interface Panel {
  readonly title: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  /** a dashed horizontal line (a goal or a limit), with its label */
  readonly mark?: { readonly y: number; readonly label: string };
}

const COLORS = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#7f7f7f',
  '#bcbd22',
];
const W = 520;
const H = 360;
const M = { left: 64, right: 16, top: 34, bottom: 46 };

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** 1, 2, 5 x 10^k ticks covering [lo, hi]. */
function ticks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
    }
  }
  return out;
}

function label(v: number): string {
  if (v >= 1e6) return `${v / 1e6}M`;
  if (v >= 1e3) return `${v / 1e3}k`;
  return String(v);
}

function bounds(values: number[]): [number, number] {
  const pos = values.filter((v) => v > 0 && Number.isFinite(v));
  if (pos.length === 0) return [1, 10];
  const lo = 10 ** Math.floor(Math.log10(Math.min(...pos)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...pos)));
  return [lo, hi === lo ? lo * 10 : hi];
}

function panel(p: Panel, x0: number, names: readonly string[]): string {
  const xs = p.series.flatMap((s) => s.points.map((q) => q[0]));
  const ys = [
    ...p.series.flatMap((s) => s.points.map((q) => q[1]).filter((v): v is number => v !== null)),
    ...(p.mark !== undefined ? [p.mark.y] : []),
  ];
  const [xlo, xhi] = bounds(xs);
  const [ylo, yhi] = bounds(ys);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const sx = (v: number): number =>
    x0 + M.left + ((Math.log10(v) - Math.log10(xlo)) / (Math.log10(xhi) - Math.log10(xlo))) * pw;
  const sy = (v: number): number =>
    M.top + ph - ((Math.log10(Math.max(v, ylo)) - Math.log10(ylo)) / (Math.log10(yhi) - Math.log10(ylo))) * ph;
  const out: string[] = [];
  out.push(
    `<text x="${x0 + M.left + pw / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(p.title)}</text>`,
  );
  out.push(`<rect x="${x0 + M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  for (const t of ticks(xlo, xhi)) {
    const x = sx(t).toFixed(1);
    out.push(`<line x1="${x}" y1="${M.top}" x2="${x}" y2="${M.top + ph}" stroke="#eee"/>`);
    out.push(`<text x="${x}" y="${M.top + ph + 16}" text-anchor="middle" font-size="11">${label(t)}</text>`);
  }
  for (const t of ticks(ylo, yhi)) {
    const y = sy(t).toFixed(1);
    out.push(`<line x1="${x0 + M.left}" y1="${y}" x2="${x0 + M.left + pw}" y2="${y}" stroke="#eee"/>`);
    out.push(
      `<text x="${x0 + M.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" font-size="11">${label(t)}</text>`,
    );
  }
  out.push(
    `<text x="${x0 + M.left + pw / 2}" y="${H - 10}" text-anchor="middle" font-size="12">offered load (events/s)</text>`,
  );
  out.push(
    `<text transform="translate(${x0 + 16} ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(p.yLabel)}</text>`,
  );
  if (p.mark !== undefined) {
    const y = sy(p.mark.y).toFixed(1);
    out.push(
      `<line x1="${x0 + M.left}" y1="${y}" x2="${x0 + M.left + pw}" y2="${y}" stroke="#555" stroke-dasharray="5 4"/>`,
    );
    out.push(
      `<text x="${x0 + M.left + pw - 4}" y="${Number(y) - 4}" text-anchor="end" font-size="10" fill="#555">${esc(p.mark.label)}</text>`,
    );
  }
  for (const s of p.series) {
    const color = COLORS[names.indexOf(s.name) % COLORS.length]!;
    const pts = s.points
      .filter((q): q is readonly [number, number] => q[1] !== null && q[0] > 0)
      .sort((a, b) => a[0] - b[0])
      .map((q) => [sx(q[0]), sy(q[1])] as const);
    if (pts.length === 0) continue;
    out.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ')}"/>`,
    );
    for (const [x, y] of pts) out.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3" fill="${color}"/>`);
  }
  return out.join('\n');
}

/** Panels side by side, one shared legend below them. */
export function lineChart(panels: readonly Panel[], caption: string): string {
  const names = [...new Set(panels.flatMap((p) => p.series.map((s) => s.name)))];
  const perRow = 3;
  const legendRows = Math.ceil(names.length / perRow);
  const width = W * panels.length;
  const height = H + 20 + legendRows * 18 + 18;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  panels.forEach((p, i) => out.push(panel(p, i * W, names)));
  names.forEach((n, i) => {
    const x = 20 + (i % perRow) * ((width - 40) / perRow);
    const y = H + 16 + Math.floor(i / perRow) * 18;
    out.push(
      `<line x1="${x}" y1="${y}" x2="${x + 22}" y2="${y}" stroke="${COLORS[i % COLORS.length]}" stroke-width="3"/>`,
    );
    out.push(`<text x="${x + 28}" y="${y}" dominant-baseline="middle" font-size="12">${esc(n)}</text>`);
  });
  out.push(
    `<text x="${width / 2}" y="${height - 6}" text-anchor="middle" font-size="11" fill="#555">${esc(caption)}</text>`,
  );
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
