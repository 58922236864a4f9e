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

  return {
    filters,
    route(message: InboundMessage): RoutedEvent[] {
      const out: RoutedEvent[] = [];
      for (const r of compiled) {
        for (const p of r.patterns) {
          const fields = p.match(message.topic);
          if (fields === null) continue;
          const all = { ...fields, client_id: message.clientId, topic: message.topic };
          out.push({
            route: r.name,
            kafkaTopic: r.kafkaTopic,
            key: r.key(all),
            topic: message.topic,
            payload: message.payload,
            receivedAt: message.receivedAt,
          });
          break;
        }
      }
      return out;
    },
  };
}

function captures(filter: string): string[] {
  return filter.split('/').flatMap((level) => ((level.startsWith('+') || level.startsWith('#')) && level.length > 1 ? [level.slice(1)] : []));
}
