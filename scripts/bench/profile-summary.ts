/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): top functions by self time,
 * and self time grouped by where the code lives (edgehaul src, a package in
 * node_modules, node internals, GC, idle).
 *
 *   node dist/scripts/bench/profile-summary.js FILE.cpuprofile [--top N] [--focus REGEX]
 *
 * --focus: function names to report inclusive time for (default: the pipeline stages).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  readonly name: string;
  readonly where: string;
  readonly selfMs: number;
  readonly selfPct: number;
  /** time with this function anywhere on the stack (counted once per sample) */
  readonly totalMs: number;
  readonly totalPct: number;
}

export interface ProfileSummary {
  readonly file: string;
  readonly durationMs: number;
  /** sampled time outside "(idle)" */
  readonly busyMs: number;
  readonly top: ProfileEntry[];
  readonly byArea: Array<{ area: string; selfMs: number; selfPct: number }>;
  /** inclusive time of the functions whose name matched `focus` */
  readonly focus: ProfileEntry[];
}

/** Where a frame's code lives: "edgehaul:src/...", "pkg:<name>", "node:<module>", or a V8 pseudo-frame. */
export function areaOf(frame: CallFrame): string {
  const url = frame.url;
  if (url === '') return frame.functionName.startsWith('(') ? frame.functionName : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm !== null) return `pkg:${nm[1]}`;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const src = /\/dist\/(src\/[^/]+)/.exec(url);
  if (src !== null) return `edgehaul:${src[1]}`;
  return url;
}

function shortWhere(frame: CallFrame): string {
  const url = frame.url;
  if (url === '') return '';
  const nm = /node_modules\/(.*)$/.exec(url);
  const path = nm !== null ? nm[1]! : url.replace(/^file:\/\/.*?\/dist\//, 'dist/');
  return `${path}:${frame.lineNumber + 1}`;
}

/**
 * Functions worth an inclusive figure in edgehaul's profiles: the stages of
 * the pipeline (ingest hand-over, routing, group commit, forwarding, Kafka).
 */
export const EDGEHAUL_FOCUS =
  /^(sink|route|match|submit|flush|append|appendTx|sqliteTransaction|readOldest|remove|sendOnce|toRecords|toRequests|encodeBatch|batchHeaders|send|sendBatch|encode|decode|parse|handlePublish|authorizePublish|writev|_writeGeneric|crc32C)$/;

export function summarise(file: string, topN = 25, focus: RegExp = EDGEHAUL_FOCUS): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const keyOf = (f: CallFrame): string => `${f.functionName}\u0000${f.url}\u0000${f.lineNumber}`;
  const self = new Map<string, { frame: CallFrame; us: number }>();
  const total = new Map<string, number>();
  const areas = new Map<string, number>();
  let busy = 0;
  let all = 0;
  const samples = profile.samples;
  for (let i = 0; i < samples.length; i++) {
    // a sample's time: until the next sample (the last one gets the mean)
    const dt =
      i + 1 < samples.length ? profile.timeDeltas[i + 1]! : (profile.endTime - profile.startTime) / samples.length;
    const node = byId.get(samples[i]!)!;
    all += dt;
    const f = node.callFrame;
    const k = keyOf(f);
    const e = self.get(k);
    if (e === undefined) self.set(k, { frame: f, us: dt });
    else e.us += dt;
    const area = areaOf(f);
    areas.set(area, (areas.get(area) ?? 0) + dt);
    if (f.functionName !== '(idle)') busy += dt;
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const key = keyOf(byId.get(id)!.callFrame);
      if (seen.has(key)) continue;
      seen.add(key);
      total.set(key, (total.get(key) ?? 0) + dt);
    }
  }
  const pct = (us: number): number => (busy > 0 ? (100 * us) / busy : 0);
  const top = [...self.entries()]
    .filter(([, e]) => e.frame.functionName !== '(idle)')
    .sort((a, b) => b[1].us - a[1].us)
    .slice(0, topN)
    .map(([k, e]): ProfileEntry => ({
      name: e.frame.functionName === '' ? '(anonymous)' : e.frame.functionName,
      where: shortWhere(e.frame),
      selfMs: e.us / 1000,
      selfPct: pct(e.us),
      totalMs: (total.get(k) ?? 0) / 1000,
      totalPct: pct(total.get(k) ?? 0),
    }));
  const byArea = [...areas.entries()]
    .filter(([a]) => a !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .map(([area, us]) => ({ area, selfMs: us / 1000, selfPct: pct(us) }));
  const focused = new Map<string, ProfileEntry>();
  for (const [k, e] of self) {
    if (!focus.test(e.frame.functionName)) continue;
    focused.set(k, {
      name: e.frame.functionName,
      where: shortWhere(e.frame),
      selfMs: e.us / 1000,
      selfPct: pct(e.us),
      totalMs: (total.get(k) ?? 0) / 1000,
      totalPct: pct(total.get(k) ?? 0),
    });
  }
  // functions that only appear as callers (no self samples) still have a total
  for (const n of profile.nodes) {
    const k = keyOf(n.callFrame);
    if (focused.has(k) || !focus.test(n.callFrame.functionName)) continue;
    focused.set(k, {
      name: n.callFrame.functionName,
      where: shortWhere(n.callFrame),
      selfMs: 0,
      selfPct: 0,
      totalMs: (total.get(k) ?? 0) / 1000,
      totalPct: pct(total.get(k) ?? 0),
    });
  }
  const focusList = [...focused.values()].filter((e) => e.totalPct >= 0.5).sort((a, b) => b.totalMs - a.totalMs);
  return { file, durationMs: all / 1000, busyMs: busy / 1000, top, byArea, focus: focusList };
}

export function formatSummary(s: ProfileSummary, areas = 12): string {
  const out: string[] = [];
  out.push(`profile ${s.file}`);
  out.push(
    `  sampled ${(s.durationMs / 1000).toFixed(1)} s, busy (not idle) ${(s.busyMs / 1000).toFixed(1)} s; percentages are of busy main-thread time`,
  );
  out.push(
    '  (time blocked in a syscall, e.g. fsync inside a SQLite commit, counts for the JS function that made the call)',
  );
  out.push('  self time by area:');
  for (const a of s.byArea.slice(0, areas))
    out.push(`    ${a.selfPct.toFixed(1).padStart(5)} %  ${(a.selfMs / 1000).toFixed(2).padStart(6)} s  ${a.area}`);
  out.push('  top functions by self time (self %, total % = anywhere on the stack):');
  for (const e of s.top) {
    out.push(
      `    ${e.selfPct.toFixed(1).padStart(5)} %  total ${e.totalPct.toFixed(1).padStart(5)} %  ${e.name}  ${e.where}`,
    );
  }
  if (s.focus.length > 0) {
    out.push('  pipeline stages, inclusive (total %, self %):');
    for (const e of s.focus)
      out.push(
        `    ${e.totalPct.toFixed(1).padStart(5)} %  self ${e.selfPct.toFixed(1).padStart(5)} %  ${e.name}  ${e.where}`,
      );
  }
  return out.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2];
  if (file === undefined) {
    process.stderr.write('usage: profile-summary FILE.cpuprofile [--top N]\n');
    process.exit(2);
  }
  const i = process.argv.indexOf('--top');
  const topN = i > 0 ? Number(process.argv[i + 1]) : 25;
  const g = process.argv.indexOf('--focus');
  const focus = g > 0 ? new RegExp(process.argv[g + 1] ?? '') : EDGEHAUL_FOCUS;
  process.stdout.write(`${formatSummary(summarise(file, topN, focus))}\n`);
}
