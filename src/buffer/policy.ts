import type { RoutedEvent, SequencedEvent } from '../core/event.js';
import { downsample } from './downsample.js';
import type { CommitGroup, Condensation, CondensedRow, RowInfo, StoredCommit } from './store.js';

export type FullPolicy = 'block' | 'drop_oldest' | 'drop_newest' | 'downsample';

/** `when_full: downsample`: the first bucket length; it doubles while the route stays full. */
export interface DownsampleLimits {
  readonly bucketMs: number;
}

export interface RouteLimits {
  readonly priority: number;
  readonly whenFull: FullPolicy;
  /** Bytes this route may hold at most; null: only the total bound applies. */
  readonly maxBytes: number | null;
  readonly durability?: 'disk' | 'memory';
  /** with whenFull 'downsample' (default bucket: DEFAULT_BUCKET_MS) */
  readonly downsample?: DownsampleLimits;
}

export const DEFAULT_BUCKET_MS = 60_000;
/** Doublings of the bucket length at most (60 s x 2^16: 45 days). */
const MAX_DOUBLINGS = 16;
/**
 * What one downsampling pass reads, about, unless more is missing: it runs
 * inside a group commit, whose acknowledgements wait for it. Ahead of need a
 * slice; when a commit is over the bound, passes of up to CONDENSE_MAX_BYTES
 * (a slice of many keys' aggregates can gain too little to keep up).
 */
const CONDENSE_SLICE_BYTES = 32 << 10;
const CONDENSE_MAX_BYTES = 1 << 20;
const CONDENSE_MAX_ROWS = 512;
/** Passes (condensations) and runs tried per route and commit at most. */
const MAX_PASSES = 64;
const MAX_ATTEMPTS = 256;
/** Within this of its bound (or an eighth of it) a downsample route is condensed ahead of need... */
const HEADROOM_BYTES = 1 << 20;
/** ...by one pass per commit, trying this many runs at most. */
const EARLY_ATTEMPTS = 4;
/** runs() of rows of any level */
const MIXED = -1;

interface Made {
  condensation: Condensation;
  bytes: number;
  size: number;
  originals: number;
}
/** Aggregates per row of aggregates, about (rows of a few KiB: read and sent like any row). */
const ROW_AGGREGATES = 256;

export interface BufferLimits {
  readonly totalBytes: number;
  /**
   * What the buffer's filesystem can take (DiskRoom), when it is less than
   * totalBytes: the policy applies at the smaller of the two. Unlike
   * totalBytes it moves, so an event above it is held or dropped by the
   * route's policy, not dropped as one that can never fit.
   */
  readonly diskBytes?: number;
  readonly routes: ReadonlyMap<string, RouteLimits>;
}

/** What the plan needs to look at: current usage and candidate rows (the store). */
export interface UsageView {
  bytesOf(route: string): number;
  totalBytes(): number;
  oldestRows(
    filter: { route: string } | { belowPriority: number },
    limit: number,
    skip: ReadonlySet<number>,
  ): RowInfo[];
  /** Rows with their events (downsample only). */
  readRows?(ids: readonly number[]): StoredCommit[];
  /** Stored bytes of a row of these aggregates (downsample only). */
  condensedBytes?(events: readonly SequencedEvent[]): number;
}

/** Routes unknown to the limits (e.g. rows from before a config change) count as lowest priority, drop_oldest. */
const UNKNOWN_ROUTE: RouteLimits = { priority: Number.MIN_SAFE_INTEGER, whenFull: 'drop_oldest', maxBytes: null };

/**
 * The size an event takes in a stored row, estimated before encoding: the
 * payload and strings plus the CBOR framing. Accounting after the commit uses
 * the real size; the estimate only has to be close and not lower.
 */
export function storedSize(e: RoutedEvent): number {
  return e.payload.length + e.route.length + e.kafkaTopic.length + e.key.length + e.topic.length + 24;
}

/**
 * Decides, message by message and in arrival order, what one group commit
 * stores, evicts, drops or holds back when the buffer is at its bounds:
 * 1. room is first made by evicting the oldest rows of lower-priority routes;
 * 2. then the route's own policy applies: drop_oldest evicts its own oldest
 *    rows, drop_newest drops the new events, block holds the message (its ack)
 *    until room is made by delivery or expiry, downsample replaces its own
 *    oldest rows by aggregates (downsample.ts), at a bucket length doubled
 *    until that makes the room, and evicts them only when no bucket length can.
 * A message is taken whole or held whole; once a route holds a message, every
 * later message touching that route is held too, so order is kept.
 */
export class AdmissionPlan {
  readonly groups = new Map<string, RoutedEvent[]>();
  readonly evict: number[] = [];
  /** New events dropped by drop_newest (or that can never fit), per route. */
  readonly droppedNewest = new Map<string, number>();
  private readonly evictSet = new Set<number>();
  private readonly added = new Map<string, number>();
  private readonly removed = new Map<string, number>();
  private addedTotal = 0;
  private removedTotal = 0;
  /** Rows replaced by aggregates, written in the commit's transaction. */
  readonly condense: Condensation[] = [];
  /** Original events folded into aggregates, per route. */
  readonly downsampled = new Map<string, number>();
  /** Routes with a message held by this plan (block). */
  readonly blockedRoutes = new Set<string>();
  private readonly candidates = new Map<string, RowInfo[]>();
  /** Downsample routes condensed ahead of need in this plan. */
  private readonly sliced = new Set<string>();

  constructor(
    private readonly limits: BufferLimits,
    private readonly view: UsageView,
    private readonly leased: ReadonlySet<number>,
  ) {}

  /** True when the message's events were taken (stored or dropped by policy); false when it is held. */
  admit(events: readonly RoutedEvent[]): boolean {
    if (this.storedFreely(events)) return true;
    const byRoute = new Map<string, RoutedEvent[]>();
    for (const e of events) {
      let list = byRoute.get(e.route);
      if (list === undefined) byRoute.set(e.route, (list = []));
      list.push(e);
    }
    for (const route of byRoute.keys()) {
      if (this.blockedRoutes.has(route)) {
        for (const r of byRoute.keys()) this.blockedRoutes.add(r);
        return false;
      }
    }
    const mark = this.save();
    for (const [route, list] of byRoute) {
      const outcome = this.place(route, list);
      if (outcome === 'blocked') {
        this.restore(mark);
        for (const r of byRoute.keys()) this.blockedRoutes.add(r);
        return false;
      }
    }
    return true;
  }

  get isEmpty(): boolean {
    return this.groups.size === 0 && this.evict.length === 0 && this.condense.length === 0;
  }

  /**
   * One group per route, Kafka topic and priority: a stored row names one
   * Kafka topic and is sent by its priority (a transform's route step may set
   * both per event; by default they are the route's).
   */
  commitGroups(): CommitGroup[] {
    return [...this.groups].flatMap(([route, events]) => {
      const limits = this.limitsOf(route);
      const durability = limits.durability ?? 'disk';
      const first = events[0];
      if (events.every((e) => e.kafkaTopic === first?.kafkaTopic && e.priority === first?.priority)) {
        return [{ route, priority: first?.priority ?? limits.priority, events, durability }];
      }
      const split = new Map<string, RoutedEvent[]>();
      for (const e of events) {
        const k = `${e.priority ?? limits.priority}\u0000${e.kafkaTopic}`;
        let list = split.get(k);
        if (list === undefined) split.set(k, (list = []));
        list.push(e);
      }
      return [...split.values()].map((list) => ({
        route,
        priority: list[0]!.priority ?? limits.priority,
        events: list,
        durability,
      }));
    });
  }

  /**
   * The common case, taken without the bookkeeping of admit(): a message of
   * one route that fits as it is (nothing to evict, drop or hold). admit()
   * runs per message inside the group commit, and the maps it copies to undo
   * a held message were most of the daemon's garbage at full load.
   */
  private storedFreely(events: readonly RoutedEvent[]): boolean {
    const route = events[0]?.route;
    if (route === undefined || this.blockedRoutes.has(route)) return false;
    let size = 0;
    for (const e of events) {
      if (e.route !== route) return false;
      size += storedSize(e);
    }
    const limits = this.limitsOf(route);
    // a downsample route condenses ahead of need, within its headroom: place() decides that
    if (limits.whenFull === 'downsample') return false;
    const bound = Math.min(this.limits.totalBytes, this.limits.diskBytes ?? Number.POSITIVE_INFINITY);
    if (this.view.totalBytes() + this.addedTotal - this.removedTotal + size > bound) return false;
    if (limits.maxBytes !== null && this.routeBytes(route) + size > limits.maxBytes) return false;
    this.store(route, events, size);
    return true;
  }

  private store(route: string, events: readonly RoutedEvent[], size: number): void {
    let list = this.groups.get(route);
    if (list === undefined) this.groups.set(route, (list = []));
    for (const e of events) list.push(e);
    this.added.set(route, (this.added.get(route) ?? 0) + size);
    this.addedTotal += size;
  }

  private place(route: string, events: RoutedEvent[]): 'stored' | 'dropped' | 'blocked' {
    const limits = this.limitsOf(route);
    const size = events.reduce((n, e) => n + storedSize(e), 0);
    const routeMax = limits.maxBytes ?? Number.POSITIVE_INFINITY;
    if (size > routeMax || size > this.limits.totalBytes) return this.dropNewest(route, events); // could never fit

    const bound = Math.min(this.limits.totalBytes, this.limits.diskBytes ?? Number.POSITIVE_INFINITY);
    const overTotal = (): number => this.view.totalBytes() + this.addedTotal - this.removedTotal + size - bound;
    const overRoute = (): number => this.routeBytes(route) + size - routeMax;
    if (limits.whenFull === 'downsample' && !this.sliced.has(route)) {
      // ahead of need: within HEADROOM of its bound a route is condensed by one slice per commit, so
      // a commit at the bound seldom has more to do than make room for itself
      const routeBound = Math.min(bound, routeMax);
      const early = (): number => Math.max(overTotal(), overRoute()) + Math.min(routeBound / 8, HEADROOM_BYTES);
      if (early() > 0) {
        this.sliced.add(route);
        this.condenseOldest(route, limits, routeBound, early, {
          passes: 1,
          attempts: EARLY_ATTEMPTS,
          slice: Math.min(CONDENSE_SLICE_BYTES, Math.max(routeBound / 8, 0)),
        });
      }
    }
    if (overTotal() > 0) this.evictFrom({ belowPriority: limits.priority }, overTotal);
    if (overTotal() > 0 || overRoute() > 0) {
      switch (limits.whenFull) {
        case 'drop_newest':
          return this.dropNewest(route, events);
        case 'block':
          return 'blocked';
        case 'drop_oldest':
          this.evictFrom({ route }, () => Math.max(overTotal(), overRoute()));
          if (overTotal() > 0 || overRoute() > 0) return this.dropNewest(route, events);
          break;
        case 'downsample': {
          const over = (): number => Math.max(overTotal(), overRoute());
          this.condenseOldest(route, limits, Math.min(bound, routeMax), over);
          // no bucket length makes the room (as many keys as aggregates): the oldest go after all
          this.evictFrom({ route }, over);
          if (over() > 0) return this.dropNewest(route, events);
          break;
        }
        default: {
          const never: never = limits.whenFull;
          throw new Error(`unknown policy ${String(never)}`);
        }
      }
    }
    this.store(route, events, size);
    return 'stored';
  }

  /**
   * Replaces rows of the route by rows of aggregates until `over()` is not
   * positive or nothing more can be gained, in at most `maxPasses` passes.
   * Finest first: the oldest run of rows of events as they came is aggregated
   * at the configured bucket length; a run that gains nothing (one row, or
   * readings too far apart) is passed over for the next run, not the whole
   * level. When no run of one level gains, the oldest rows next to each other
   * whatever their levels are merged at the coarsest of their bucket lengths,
   * doubled until that gains. A pass reads at most about `budget.slice`, or
   * else an eighth of the bound up to CONDENSE_MAX_BYTES (or 4x what is
   * missing), so its cost does not grow with the backlog. Rows before (or among) the rows being sent are left
   * alone: the aggregates take the places (row ids) of the rows they replace
   * and the sequence number of the newest event each replaces, so they must
   * not overtake a row they did not replace.
   */
  private condenseOldest(
    route: string,
    limits: RouteLimits,
    bound: number,
    over: () => number,
    budget: { passes: number; attempts: number; slice?: number } = { passes: MAX_PASSES, attempts: MAX_ATTEMPTS },
  ): void {
    const readRows = this.view.readRows?.bind(this.view);
    const sizeOf = this.view.condensedBytes?.bind(this.view);
    if (readRows === undefined || sizeOf === undefined) return;
    const baseMs = limits.downsample?.bucketMs ?? DEFAULT_BUCKET_MS;
    const maxWidth = baseMs * 2 ** MAX_DOUBLINGS;
    const target = Math.min(CONDENSE_MAX_BYTES, Math.max(bound / 8, 0));
    // runs (level and first row) that gained nothing in this plan
    const tried = new Set<string>();
    let attempts = 0;
    for (let pass = 0; over() > 0 && pass < budget.passes; pass++) {
      const page = this.view.oldestRows({ route }, CONDENSE_MAX_ROWS, new Set());
      let start = 0;
      for (let i = 0; i < page.length; i++) if (this.leased.has(page[i]!.id)) start = i + 1;
      const rows = page.slice(start);
      const limit = budget.slice ?? Math.max(target, 4 * over());
      let made: Made | null = null;
      // rows next to each other in the route's order: a row replaced or evicted by this plan (whose
      // aggregates take its place) ends a run, so the aggregates of a run never overtake the events between
      const levels = [...new Set(rows.filter((r) => !this.evictSet.has(r.id)).map((r) => r.bucketMs ?? 0))].sort(
        (a, b) => a - b,
      );
      for (const level of [...levels, MIXED]) {
        for (const run of this.runs(rows, level, limit)) {
          const key = `${level}:${run[0]!.id}`;
          if (tried.has(key)) continue;
          if (++attempts > budget.attempts) return;
          const width =
            level === MIXED ? Math.max(baseMs, ...run.map((r) => r.bucketMs ?? 0)) : level === 0 ? baseMs : level * 2;
          made =
            width <= maxWidth
              ? this.condenseRun(route, run, width, level === MIXED ? maxWidth : width, readRows, sizeOf)
              : null;
          if (made !== null && made.bytes - made.size > 0) break;
          tried.add(key);
          made = null;
        }
        if (made !== null) break;
      }
      if (made === null) return;
      this.condense.push(made.condensation);
      for (const id of made.condensation.remove) this.evictSet.add(id);
      this.removed.set(route, (this.removed.get(route) ?? 0) + made.bytes - made.size);
      this.removedTotal += made.bytes - made.size;
      this.downsampled.set(route, (this.downsampled.get(route) ?? 0) + made.originals);
    }
  }

  /**
   * Runs of rows next to each other, oldest first: of one level (or, MIXED, of
   * any), one priority, none replaced or evicted by this plan, each of at
   * least two rows (MIXED: one) and about `limit` bytes at most.
   */
  private *runs(rows: readonly RowInfo[], level: number, limit: number): Generator<RowInfo[]> {
    let run: RowInfo[] = [];
    let bytes = 0;
    const min = level === MIXED ? 1 : 2;
    for (const r of rows) {
      const fits = !this.evictSet.has(r.id) && (level === MIXED || (r.bucketMs ?? 0) === level);
      if (!fits || (run.length > 0 && (r.priority !== run[0]!.priority || (run.length >= 2 && bytes >= limit)))) {
        if (run.length >= min) yield run;
        run = [];
        bytes = 0;
        if (!fits) continue;
      }
      run.push(r);
      bytes += r.bytes;
    }
    if (run.length >= min) yield run;
  }

  /**
   * The run's events as aggregates of `width` (doubled up to `maxWidth` until
   * they take fewer bytes than the run), spread over as many rows as the run
   * had at most.
   */
  private condenseRun(
    route: string,
    run: readonly RowInfo[],
    width: number,
    maxWidth: number,
    readRows: (ids: readonly number[]) => StoredCommit[],
    sizeOf: (events: readonly SequencedEvent[]) => number,
  ): Made | null {
    if (run.length === 0) return null;
    const read = readRows(run.map((r) => r.id));
    if (read.length !== run.length) return null;
    // one Kafka topic per row: the run stops where it changes
    const topic = read[0]!.events[0]?.kafkaTopic;
    let n = read.findIndex((r) => r.events.some((e) => e.kafkaTopic !== topic));
    if (n < 0) n = read.length;
    if (n === 0) return null;
    const taken = run.slice(0, n);
    const bytes = taken.reduce((b, r) => b + r.bytes, 0);
    const ids = taken.map((r) => r.id).sort((a, b) => a - b);
    let ds = downsample(
      read.slice(0, n).flatMap((r) => r.events),
      width,
    );
    const originals = ds.originals;
    for (let w = width; ;) {
      const per = Math.max(ROW_AGGREGATES, Math.ceil(ds.events.length / ids.length));
      const rows: CondensedRow[] = [];
      let size = 0;
      for (let i = 0, k = 0; i < ds.events.length; i += per, k++) {
        const events = ds.events.slice(i, i + per);
        size += sizeOf(events);
        rows.push({ id: ids[k]!, route, priority: taken[0]!.priority, events, bucketMs: w });
      }
      if (size < bytes || w * 2 > maxWidth) return { condensation: { remove: ids, rows }, bytes, size, originals };
      // aggregates of aggregates are the aggregates of the originals: the coarser length from these
      w *= 2;
      ds = downsample(ds.events, w);
    }
  }

  private evictFrom(filter: { route: string } | { belowPriority: number }, over: () => number): void {
    // candidates are fetched in pages and kept for the whole group commit: a flood of small
    // messages on a full buffer must not rescan the table once per message
    const key = 'route' in filter ? `r:${filter.route}` : `p:${filter.belowPriority}`;
    let queue = this.candidates.get(key);
    if (queue === undefined) this.candidates.set(key, (queue = []));
    while (over() > 0) {
      let row = queue.shift();
      while (row !== undefined && this.evictSet.has(row.id)) row = queue.shift();
      if (row === undefined) {
        const page = this.view.oldestRows(filter, 256, new Set([...this.leased, ...this.evictSet]));
        if (page.length === 0) return;
        queue.push(...page);
        continue;
      }
      this.evictSet.add(row.id);
      this.evict.push(row.id);
      this.removed.set(row.route, (this.removed.get(row.route) ?? 0) + row.bytes);
      this.removedTotal += row.bytes;
    }
  }

  private dropNewest(route: string, events: readonly RoutedEvent[]): 'dropped' {
    this.droppedNewest.set(route, (this.droppedNewest.get(route) ?? 0) + events.length);
    return 'dropped';
  }

  private routeBytes(route: string): number {
    return this.view.bytesOf(route) + (this.added.get(route) ?? 0) - (this.removed.get(route) ?? 0);
  }

  private limitsOf(route: string): RouteLimits {
    return this.limits.routes.get(route) ?? UNKNOWN_ROUTE;
  }

  private save(): {
    evict: number;
    added: Map<string, number>;
    removed: Map<string, number>;
    addedTotal: number;
    removedTotal: number;
    groups: Map<string, number>;
    dropped: Map<string, number>;
    condense: number;
    downsampled: Map<string, number>;
  } {
    return {
      condense: this.condense.length,
      downsampled: new Map(this.downsampled),
      evict: this.evict.length,
      added: new Map(this.added),
      removed: new Map(this.removed),
      addedTotal: this.addedTotal,
      removedTotal: this.removedTotal,
      groups: new Map([...this.groups].map(([r, l]) => [r, l.length])),
      dropped: new Map(this.droppedNewest),
    };
  }

  private restore(mark: ReturnType<AdmissionPlan['save']>): void {
    // rows taken back become candidates again on the next page fetch
    this.candidates.clear();
    for (const id of this.evict.splice(mark.evict)) this.evictSet.delete(id);
    for (const c of this.condense.splice(mark.condense)) for (const id of c.remove) this.evictSet.delete(id);
    replace(this.downsampled, mark.downsampled);
    replace(this.added, mark.added);
    replace(this.removed, mark.removed);
    replace(this.droppedNewest, mark.dropped);
    this.addedTotal = mark.addedTotal;
    this.removedTotal = mark.removedTotal;
    for (const [route, list] of this.groups) {
      const keep = mark.groups.get(route);
      if (keep === undefined) this.groups.delete(route);
      else list.length = keep;
    }
  }
}

function replace<K, V>(target: Map<K, V>, source: Map<K, V>): void {
  target.clear();
  for (const [k, v] of source) target.set(k, v);
}
