import type { RoutedEvent, SequencedEvent } from '../core/event.js';
import { storedSize } from './policy.js';
import type {
  BufferStats,
  BufferStore,
  CommitExtras,
  CommitGroup,
  DeadLetterRecord,
  MaintenanceReport,
  PublishId,
  RemovedRow,
  RouteUsage,
  RowInfo,
  SqliteBufferStore,
  StoredCommit,
} from './store.js';

interface MemoryRow {
  readonly id: number;
  readonly route: string;
  readonly priority: number;
  readonly firstSeq: number;
  readonly events: readonly RoutedEvent[];
  readonly bytes: number;
  readonly oldest: number;
  readonly newest: number;
  readonly createdAt: number;
}

export interface SpillOptions {
  /** Rows older than this go to disk: the uplink is not keeping up. */
  readonly afterMs: number;
  /** Above this, the oldest rows go to disk until it fits. */
  readonly maxBytes: number;
}

/**
 * `durability: memory` routes: their commits stay in RAM (no fsync, no flash
 * write) and go straight to Kafka; rows that wait too long, or that do not fit
 * the memory bound, are spilled to SQLite with the sequence numbers they
 * already have. Memory rows have negative ids; disk rows positive ones.
 *
 * Order within a route holds because a spill always takes a route's oldest
 * memory rows, and within one priority disk rows are read before memory rows.
 * Memory rows count towards the buffer's bounds like disk rows, so the full
 * policy treats both alike.
 */
export class TieredStore implements BufferStore {
  private readonly memory = new Map<number, MemoryRow>();
  private nextId = -1;
  private memoryBytes = 0;
  private readonly memoryUsage = new Map<string, { commits: number; events: number; bytes: number }>();

  constructor(
    private readonly disk: SqliteBufferStore,
    private readonly now: () => number = Date.now,
  ) {}

  isResend(id: PublishId): boolean {
    return this.disk.isResend(id);
  }

  get incarnation(): string {
    return this.disk.incarnation;
  }

  commit(
    groups: readonly CommitGroup[],
    evict: readonly number[] = [],
    extras?: CommitExtras,
  ): ReturnType<BufferStore['commit']> {
    const diskGroups = groups.filter((g) => g.durability !== 'memory');
    const memoryGroups = groups.filter((g) => g.durability === 'memory' && g.events.length > 0);
    const evictedFromMemory = this.removeMemory(evict.filter((id) => id < 0));
    const diskEvict = evict.filter((id) => id > 0);
    const hasExtras =
      extras !== undefined &&
      ((extras.deadLetters?.length ?? 0) > 0 || (extras.states?.length ?? 0) > 0 || (extras.condense?.length ?? 0) > 0);
    const toDisk = diskGroups.length > 0 || diskEvict.length > 0 || hasExtras;
    const result = toDisk ? this.disk.commit(diskGroups, diskEvict, extras) : { evicted: [], ranges: [] };
    // no disk commit to carry them: the publishes are remembered in memory, like their events
    if (!toDisk && extras?.publishes !== undefined && extras.publishes.length > 0) {
      this.disk.rememberPublishes(extras.publishes);
    }
    const ranges = [...result.ranges];
    for (const g of memoryGroups) {
      const firstSeq = this.disk.allocate(g.events.length);
      let oldest = Number.POSITIVE_INFINITY;
      let newest = 0;
      let bytes = 0;
      for (const e of g.events) {
        if (e.receivedAt < oldest) oldest = e.receivedAt;
        if (e.receivedAt > newest) newest = e.receivedAt;
        bytes += storedSize(e);
      }
      const row: MemoryRow = {
        id: this.nextId--,
        route: g.route,
        priority: g.priority,
        firstSeq,
        events: g.events,
        bytes,
        oldest,
        newest,
        createdAt: this.now(),
      };
      this.memory.set(row.id, row);
      this.account(row.route, 1, row.events.length, row.bytes);
      ranges.push({ route: g.route, firstSeq, lastSeq: firstSeq + g.events.length - 1 });
    }
    return { evicted: [...evictedFromMemory, ...result.evicted], ranges };
  }

  readNext(maxEvents: number, maxBytes: number, skip?: ReadonlySet<number>, minPriority?: number): StoredCommit[] {
    const fromDisk = this.disk.readNext(maxEvents, maxBytes, skip, minPriority);
    if (this.memory.size === 0) return fromDisk;
    const fromMemory = [...this.memory.values()]
      .filter((r) => !skip?.has(r.id) && (minPriority === undefined || r.priority >= minPriority))
      .sort((a, b) => b.priority - a.priority || a.firstSeq - b.firstSeq)
      .map((r): StoredCommit => ({
        id: r.id,
        route: r.route,
        priority: r.priority,
        events: sequenced(r),
        bytes: r.bytes,
      }));
    // higher priority first; within a priority, disk (older) before memory
    const merged = [...fromDisk.map((c) => ({ c, tier: 0 })), ...fromMemory.map((c) => ({ c, tier: 1 }))].sort(
      (a, b) => b.c.priority - a.c.priority || a.tier - b.tier,
    );
    const out: StoredCommit[] = [];
    let events = 0;
    let bytes = 0;
    for (const { c } of merged) {
      if (out.length > 0 && (events + c.events.length > maxEvents || bytes + c.bytes > maxBytes)) break;
      out.push(c);
      events += c.events.length;
      bytes += c.bytes;
    }
    return out;
  }

  /** Rows of disk routes only: memory routes cannot downsample (the config refuses it). */
  readRows(ids: readonly number[]): StoredCommit[] {
    return this.disk.readRows(ids.filter((id) => id > 0));
  }

  condensedBytes(events: readonly SequencedEvent[]): number {
    return this.disk.condensedBytes(events);
  }

  oldestRows(
    filter: { route: string } | { belowPriority: number },
    limit: number,
    skip?: ReadonlySet<number>,
  ): RowInfo[] {
    const disk = this.disk.oldestRows(filter, limit, skip);
    const memory = [...this.memory.values()]
      .filter(
        (r) => !skip?.has(r.id) && ('route' in filter ? r.route === filter.route : r.priority < filter.belowPriority),
      )
      .sort((a, b) => a.priority - b.priority || a.firstSeq - b.firstSeq)
      .map(info);
    // lowest priority first; within a priority, disk (older) before memory
    return [...disk.map((r) => ({ r, tier: 0 })), ...memory.map((r) => ({ r, tier: 1 }))]
      .sort((a, b) => a.r.priority - b.r.priority || a.tier - b.tier)
      .slice(0, limit)
      .map(({ r }) => r);
  }

  expiredRows(route: string, cutoffMs: number, skip?: ReadonlySet<number>): RowInfo[] {
    const memory = [...this.memory.values()]
      .filter((r) => r.route === route && r.newest < cutoffMs && !skip?.has(r.id))
      .map(info);
    return [...this.disk.expiredRows(route, cutoffMs, skip), ...memory];
  }

  remove(ids: readonly number[]): RemovedRow[] {
    const fromMemory = this.removeMemory(ids.filter((id) => id < 0));
    const diskIds = ids.filter((id) => id > 0);
    return [...fromMemory, ...(diskIds.length > 0 ? this.disk.remove(diskIds) : [])];
  }

  /**
   * Moves memory rows that waited longer than `afterMs`, or that exceed
   * `maxBytes`, to SQLite, oldest first, skipping rows being sent. Returns the
   * number of events spilled.
   */
  spill(options: SpillOptions, skip?: ReadonlySet<number>): number {
    const cutoff = this.now() - options.afterMs;
    const rows = [...this.memory.values()].filter((r) => !skip?.has(r.id)).sort((a, b) => a.firstSeq - b.firstSeq);
    const chosen: MemoryRow[] = [];
    let bytes = this.memoryBytes;
    for (const r of rows) {
      if (r.createdAt > cutoff && bytes <= options.maxBytes) continue;
      chosen.push(r);
      bytes -= r.bytes;
    }
    if (chosen.length === 0) return 0;
    // keep a route's spilled rows in sequence order on disk too
    chosen.sort((a, b) => a.firstSeq - b.firstSeq);
    this.disk.insertSequenced(
      chosen.map((r) => ({ route: r.route, priority: r.priority, firstSeq: r.firstSeq, events: r.events })),
    );
    this.removeMemory(chosen.map((r) => r.id));
    return chosen.reduce((n, r) => n + r.events.length, 0);
  }

  /** Everything to disk: a clean shutdown loses nothing of a memory route. */
  spillAll(): number {
    return this.spill({ afterMs: Number.NEGATIVE_INFINITY, maxBytes: -1 });
  }

  get memoryEvents(): number {
    let n = 0;
    for (const r of this.memory.values()) n += r.events.length;
    return n;
  }

  stats(): BufferStats {
    const d = this.disk.stats();
    let commits = d.commits;
    let events = d.events;
    let oldest = d.oldestReceivedAt;
    for (const r of this.memory.values()) {
      commits++;
      events += r.events.length;
      if (oldest === null || r.oldest < oldest) oldest = r.oldest;
    }
    return { commits, events, bytes: d.bytes + this.memoryBytes, oldestReceivedAt: oldest };
  }

  usage(): ReadonlyMap<string, RouteUsage> {
    const out = new Map(this.disk.usage());
    for (const [route, m] of this.memoryUsage) {
      const d = out.get(route);
      let oldest = d?.oldestReceivedAt ?? null;
      for (const r of this.memory.values())
        if (r.route === route && (oldest === null || r.oldest < oldest)) oldest = r.oldest;
      out.set(route, {
        commits: (d?.commits ?? 0) + m.commits,
        events: (d?.events ?? 0) + m.events,
        bytes: (d?.bytes ?? 0) + m.bytes,
        oldestReceivedAt: oldest,
      });
    }
    return out;
  }

  bytes(route?: string): number {
    if (route === undefined) return this.disk.bytes() + this.memoryBytes;
    return this.disk.bytes(route) + (this.memoryUsage.get(route)?.bytes ?? 0);
  }

  fileBytes(): number {
    return this.disk.fileBytes();
  }

  reusableBytes(): number {
    return this.disk.reusableBytes();
  }

  recentDeadLetters(limit: number): DeadLetterRecord[] {
    return this.disk.recentDeadLetters(limit);
  }

  deadLetterCount(): number {
    return this.disk.deadLetterCount();
  }

  loadStates(): ReturnType<BufferStore['loadStates']> {
    return this.disk.loadStates();
  }

  maintain(): MaintenanceReport {
    return this.disk.maintain();
  }

  close(): void {
    this.disk.close();
  }

  private removeMemory(ids: readonly number[]): RemovedRow[] {
    const out: RemovedRow[] = [];
    for (const id of ids) {
      const r = this.memory.get(id);
      if (r === undefined) continue;
      this.memory.delete(id);
      this.account(r.route, -1, -r.events.length, -r.bytes);
      out.push({ id, route: r.route, events: r.events.length, bytes: r.bytes });
    }
    return out;
  }

  private account(route: string, commits: number, events: number, bytes: number): void {
    this.memoryBytes += bytes;
    const u = this.memoryUsage.get(route) ?? { commits: 0, events: 0, bytes: 0 };
    u.commits += commits;
    u.events += events;
    u.bytes += bytes;
    if (u.commits === 0) this.memoryUsage.delete(route);
    else this.memoryUsage.set(route, u);
  }
}

function sequenced(r: MemoryRow): SequencedEvent[] {
  // the shape RowCodec.decode gives (one shape for the forwarder's hot paths, whichever tier the rows come from)
  return r.events.map((e, i) => ({
    seq: r.firstSeq + i,
    route: e.route,
    kafkaTopic: e.kafkaTopic,
    key: e.key,
    topic: e.topic,
    payload: e.payload,
    receivedAt: e.receivedAt,
    encoded: e.encoded,
    captures: e.captures,
    aggregate: e.aggregate,
    priority: e.priority,
  }));
}

function info(r: MemoryRow): RowInfo {
  return { id: r.id, route: r.route, priority: r.priority, events: r.events.length, bytes: r.bytes };
}
