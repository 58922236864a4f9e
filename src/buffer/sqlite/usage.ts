export interface Usage {
  commits: number;
  events: number;
  bytes: number;
}

/**
 * Commits, events and stored bytes per route, kept in memory so that the
 * full policy costs nothing on the hot path. A route with no commits left is
 * dropped.
 */
export class UsageCounts {
  private readonly byRoute = new Map<string, Usage>();

  account(route: string, commits: number, events: number, bytes: number): void {
    const u = this.byRoute.get(route) ?? { commits: 0, events: 0, bytes: 0 };
    u.commits += commits;
    u.events += events;
    u.bytes += bytes;
    if (u.commits === 0) this.byRoute.delete(route);
    else this.byRoute.set(route, u);
  }

  get(route: string): Usage | undefined {
    return this.byRoute.get(route);
  }

  has(route: string): boolean {
    return this.byRoute.has(route);
  }

  routes(): IterableIterator<string> {
    return this.byRoute.keys();
  }

  values(): IterableIterator<Usage> {
    return this.byRoute.values();
  }

  /** Stored bytes of one route, or of all. */
  bytes(route?: string): number {
    if (route !== undefined) return this.byRoute.get(route)?.bytes ?? 0;
    let total = 0;
    for (const u of this.byRoute.values()) total += u.bytes;
    return total;
  }

  clear(): void {
    this.byRoute.clear();
  }
}
