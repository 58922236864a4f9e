import type { InboundMessage, RoutedEvent } from '../core/event.js';
import type { RouteConfig } from '../config/schema.js';
import { compileTopicPattern, type TopicPattern } from '../ingest/topic.js';
import { compileTemplate, templateFields, type Template } from './template.js';

/** Fields every route may use in templates besides its topic captures. */
export const BUILTIN_FIELDS = ['client_id', 'topic'] as const;

interface CompiledRoute {
  readonly name: string;
  readonly kafkaTopic: string;
  readonly patterns: readonly TopicPattern[];
  readonly key: Template;
}

export interface Router {
  /** MQTT filters (capture names removed) that cover every route. */
  readonly filters: readonly string[];
  /** One event per matching route; empty when no route matches. */
  route(message: InboundMessage): RoutedEvent[];
}

/** Throws with the route's name on a bad filter or a key that names a field no filter captures. */
export function compileRoutes(routes: readonly RouteConfig[]): Router {
  const compiled: CompiledRoute[] = routes.map((r) => {
    const sources = Array.isArray(r.match) ? r.match : [r.match];
    const patterns = sources.map((s) => {
      try {
        return compileTopicPattern(s);
      } catch (err) {
        throw new Error(`route "${r.name}": ${(err as Error).message}`);
      }
    });
    for (const field of templateFields(r.key)) {
      if ((BUILTIN_FIELDS as readonly string[]).includes(field)) continue;
      const missing = patterns.find((p) => !captures(p.source).includes(field));
      if (missing) throw new Error(`route "${r.name}": key uses {${field}} but filter "${missing.source}" does not capture it`);
    }
    return { name: r.name, kafkaTopic: r.topic, patterns, key: compileTemplate(r.key) };
  });

  const filters = [...new Set(compiled.flatMap((r) => r.patterns.map((p) => p.mqttFilter)))];
  const usesClientId = routes.some((r) => templateFields(r.key).includes('client_id'));

  // devices publish to the same few topics over and over: matching and key building are done once per topic
  const cache = new Map<string, ReadonlyArray<{ route: string; kafkaTopic: string; key: string }>>();
  const resolve = (topic: string, clientId: string): ReadonlyArray<{ route: string; kafkaTopic: string; key: string }> => {
    const cacheKey = usesClientId ? `${clientId}\u0000${topic}` : topic;
    let hit = cache.get(cacheKey);
    if (hit === undefined) {
      const found: Array<{ route: string; kafkaTopic: string; key: string }> = [];
      for (const r of compiled) {
        for (const p of r.patterns) {
          const fields = p.match(topic);
          if (fields === null) continue;
          found.push({ route: r.name, kafkaTopic: r.kafkaTopic, key: r.key({ ...fields, client_id: clientId, topic }) });
          break;
        }
      }
      if (cache.size >= ROUTE_CACHE_SIZE) cache.clear();
      cache.set(cacheKey, (hit = found));
    }
    return hit;
  };

  return {
    filters,
    route(message: InboundMessage): RoutedEvent[] {
      return resolve(message.topic, message.clientId).map((r) => ({
        route: r.route,
        kafkaTopic: r.kafkaTopic,
        key: r.key,
        topic: message.topic,
        payload: message.payload,
        receivedAt: message.receivedAt,
      }));
    },
  };
}

/** Distinct topics (per client, when keys use {client_id}) remembered; cleared when full. */
const ROUTE_CACHE_SIZE = 10_000;

function captures(filter: string): string[] {
  return filter.split('/').flatMap((level) => ((level.startsWith('+') || level.startsWith('#')) && level.length > 1 ? [level.slice(1)] : []));
}
