import type { InboundMessage, RoutedEvent } from '../core/event.js';
import { compileTopicPattern, type TopicPattern } from '../core/topic.js';
import type { StepConfig } from './steps/index.js';
import { compileTemplate, templateFields, type Template } from './template.js';

/**
 * A route as routing and the pipeline read it (a `routes[]` entry of the config satisfies it);
 * steps may be left out.
 */
export interface RouteInput {
  readonly name: string;
  /** MQTT topic filters; `+name` and `#name` capture levels into fields */
  readonly match: string | readonly string[];
  /** Kafka topic */
  readonly topic: string;
  /** partition key template */
  readonly key: string;
  readonly priority: number;
  readonly steps?: readonly StepConfig[] | undefined;
  /** the route's other settings (buffer policy, durability): carried along, not read here */
  readonly [setting: string]: unknown;
}

/** Fields every route may use in templates besides its topic captures. */
export const BUILTIN_FIELDS = ['client_id', 'topic'] as const;

interface CompiledRoute {
  readonly name: string;
  readonly kafkaTopic: string;
  readonly patterns: readonly TopicPattern[];
  readonly key: Template;
}

/** A route a topic matched, with what the topic gives: captures and the partition key. */
export interface RouteMatch {
  /** index of the route in the config */
  readonly index: number;
  readonly route: string;
  readonly kafkaTopic: string;
  readonly key: string;
  /** topic captures plus client_id and topic */
  readonly vars: Readonly<Record<string, string>>;
  /** the named topic captures alone; undefined when the filter has none */
  readonly captures: Readonly<Record<string, string>> | undefined;
}

export interface Matcher {
  /** MQTT filters (capture names removed) that cover every route. */
  readonly filters: readonly string[];
  /** The routes a topic matches, in config order; cached per topic (and client, when keys use it). */
  resolve(topic: string, clientId: string): readonly RouteMatch[];
}

export interface Router {
  /** MQTT filters (capture names removed) that cover every route. */
  readonly filters: readonly string[];
  /** One event per matching route; empty when no route matches. */
  route(message: InboundMessage): RoutedEvent[];
}

/** Throws with the route's name on a bad filter or a key that names a field no filter captures. */
/**
 * `perClient`: cache per (client, topic) so that `vars.client_id` is the
 * publisher's own (transforms see vars); else per topic unless a key uses {client_id}.
 */
export function compileMatcher(
  routes: readonly RouteInput[],
  options: { perClient?: boolean; extraFields?: readonly string[] } = {},
): Matcher {
  const extraFields = options.extraFields ?? [];
  const compiled: CompiledRoute[] = routes.map((r) => {
    const sources: readonly string[] = typeof r.match === 'string' ? [r.match] : r.match;
    const patterns = sources.map((s) => {
      try {
        return compileTopicPattern(s);
      } catch (err) {
        throw new Error(`route "${r.name}": ${(err as Error).message}`, { cause: err });
      }
    });
    for (const field of templateFields(r.key)) {
      if ((BUILTIN_FIELDS as readonly string[]).includes(field) || extraFields.includes(field)) continue;
      const missing = patterns.find((p) => !captures(p.source).includes(field));
      if (missing)
        throw new Error(`route "${r.name}": key uses {${field}} but filter "${missing.source}" does not capture it`);
    }
    return { name: r.name, kafkaTopic: r.topic, patterns, key: compileTemplate(r.key) };
  });

  const filters = [...new Set(compiled.flatMap((r) => r.patterns.map((p) => p.mqttFilter)))];
  const usesClientId = options.perClient === true || routes.some((r) => templateFields(r.key).includes('client_id'));

  // devices publish to the same few topics over and over: matching and key building are done once per topic
  const cache = new Map<string, readonly RouteMatch[]>();
  return {
    filters,
    resolve(topic: string, clientId: string): readonly RouteMatch[] {
      const cacheKey = usesClientId ? `${clientId}\u0000${topic}` : topic;
      let hit = cache.get(cacheKey);
      if (hit === undefined) {
        const found: RouteMatch[] = [];
        compiled.forEach((r, index) => {
          for (const p of r.patterns) {
            const fields = p.match(topic);
            if (fields === null) continue;
            const vars = Object.freeze({ ...fields, client_id: clientId, topic });
            const captures = Object.keys(fields).length > 0 ? Object.freeze(fields) : undefined;
            found.push({ index, route: r.name, kafkaTopic: r.kafkaTopic, key: r.key(vars), vars, captures });
            break;
          }
        });
        if (cache.size >= ROUTE_CACHE_SIZE) cache.clear();
        cache.set(cacheKey, (hit = found));
      }
      return hit;
    },
  };
}

/** Routing without transforms: one event per matching route, the payload as received. */
export function compileRoutes(routes: readonly RouteInput[]): Router {
  const matcher = compileMatcher(routes);
  // vars are not used here, so a per-topic cache entry may carry another client's id in them
  return {
    filters: matcher.filters,
    route(message: InboundMessage): RoutedEvent[] {
      return matcher.resolve(message.topic, message.clientId).map((r) => ({
        route: r.route,
        kafkaTopic: r.kafkaTopic,
        key: r.key,
        topic: message.topic,
        payload: message.payload,
        receivedAt: message.receivedAt,
        ...(r.captures !== undefined ? { captures: r.captures } : {}),
      }));
    },
  };
}

/** Distinct topics (per client, when keys use {client_id}) remembered; cleared when full. */
const ROUTE_CACHE_SIZE = 10_000;

function captures(filter: string): string[] {
  return filter
    .split('/')
    .flatMap((level) => ((level.startsWith('+') || level.startsWith('#')) && level.length > 1 ? [level.slice(1)] : []));
}
