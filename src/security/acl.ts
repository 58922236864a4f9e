/**
 * Topic ACLs of the embedded broker. A rule applies to a client when its
 * selectors match (`username`: exact, or `*` for any authenticated user;
 * `client_id`: a glob with `*`; both may use `%u`), and allows publishing to
 * topics matching its `publish` filters and subscribing to filters inside its
 * `subscribe` filters. In filters `%u` is the username and `%c` the client id;
 * a rule whose substitution would put a wildcard or `/` into a filter does not
 * apply (a client named `#` gains nothing). With no rule at all every client
 * may publish and subscribe anywhere except `$SYS`; once any rule exists,
 * whatever no rule allows is denied.
 */
export interface AclRule {
  readonly username?: string | undefined;
  readonly client_id?: string | undefined;
  readonly publish?: readonly string[] | undefined;
  readonly subscribe?: readonly string[] | undefined;
}

export interface AclSubject {
  /** null: anonymous */
  readonly username: string | null;
  readonly clientId: string;
}

export interface SubjectAcl {
  canPublish(topic: string): boolean;
  canSubscribe(filter: string): boolean;
}

export interface Acl {
  readonly enforced: boolean;
  /** The rules of one connection, substituted once (username and client id do not change while connected). */
  forSubject(subject: AclSubject): SubjectAcl;
}

// eslint-disable-next-line no-control-regex -- NUL is one of the characters a topic level must not carry
const UNSAFE = /[+#/\u0000]/;

/** `%u` / `%c` substituted; null when a value would change the filter's shape (wildcards, levels) or is missing. */
export function substitute(filter: string, subject: AclSubject): string | null {
  if (!filter.includes('%')) return filter;
  let ok = true;
  const out = filter.replace(/%([uc%])/g, (_, k: string) => {
    if (k === '%') return '%';
    const v = k === 'u' ? subject.username : subject.clientId;
    if (v === null || v === '' || UNSAFE.test(v)) {
      ok = false;
      return '';
    }
    return v;
  });
  return ok ? out : null;
}

/** MQTT matching of a concrete topic against a filter (no captures). */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i]!;
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/** True when every topic `inner` matches is also matched by `outer`. */
export function filterWithin(outer: string, inner: string): boolean {
  if (inner.startsWith('$') !== outer.startsWith('$') && (outer.startsWith('+') || outer.startsWith('#'))) return false;
  const o = outer.split('/');
  const n = inner.split('/');
  for (let i = 0; i < o.length; i++) {
    const level = o[i]!;
    if (level === '#') return true;
    if (i >= n.length) return false;
    const mine = n[i]!;
    if (mine === '#') return false;
    if (level === '+') continue;
    if (mine === '+' || mine !== level) return false;
  }
  return o.length === n.length;
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(
    `^${glob
      .split('*')
      .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
}

interface CompiledRule {
  readonly username: string | undefined;
  readonly clientId: string | undefined;
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
}

export function compileAcl(rules: readonly AclRule[]): Acl {
  const compiled: CompiledRule[] = rules.map((r) => ({
    username: r.username,
    clientId: r.client_id,
    publish: r.publish ?? [],
    subscribe: r.subscribe ?? [],
  }));
  const enforced = compiled.length > 0;

  const applies = (rule: CompiledRule, s: AclSubject): boolean => {
    if (rule.username !== undefined) {
      if (s.username === null) return false;
      if (rule.username !== '*' && rule.username !== s.username) return false;
    }
    if (rule.clientId !== undefined) {
      const pattern = substitute(rule.clientId, s);
      if (pattern === null || !globToRegExp(pattern).test(s.clientId)) return false;
    }
    return true;
  };

  return {
    enforced,
    forSubject(s) {
      const mine = compiled.filter((rule) => applies(rule, s));
      const publish = mine.flatMap((r) =>
        r.publish.map((f) => substitute(f, s)).filter((f): f is string => f !== null),
      );
      const subscribe = mine.flatMap((r) =>
        r.subscribe.map((f) => substitute(f, s)).filter((f): f is string => f !== null),
      );
      return {
        canPublish(topic) {
          // $SYS is the broker's; $edgehaul/ is the gateway's own (health telemetry): no device writes there
          if (topic.startsWith('$SYS') || topic.startsWith('$edgehaul/')) return false;
          return !enforced || publish.some((f) => topicMatches(f, topic));
        },
        canSubscribe(filter) {
          return !enforced || subscribe.some((f) => filterWithin(f, filter));
        },
      };
    },
  };
}
