/**
 * route: choose the Kafka topic, partition key and priority per event, from
 * templates over vars and value fields (`{site}`) and, for the priority, a
 * number or an expression. What is not given keeps the route's own setting.
 */
import { z } from 'zod';
import { StepConfigError, StepFailure, type Step, type Working } from '../step.js';
import { compileExpression, firstLine } from './expr.js';
import { compileFieldTemplate, type FieldTemplate } from './template.js';

const PRIORITY_MIN = -1000;
const PRIORITY_MAX = 1000;
const KAFKA_TOPIC = /^[A-Za-z0-9._-]{1,249}$/;

export const routeOptions = z.strictObject({
  topic: z.string().min(1).optional(),
  key: z.string().optional(),
  /** an integer, or an expression giving one (rounded, clamped to -1000..1000) */
  priority: z.union([z.number().int().min(PRIORITY_MIN).max(PRIORITY_MAX), z.string().min(1)]).optional(),
});
export type RouteOptions = z.infer<typeof routeOptions>;

export function compileRoute(options: RouteOptions): Step {
  const { topic, key, priority } = options;
  if (topic === undefined && key === undefined && priority === undefined)
    throw new StepConfigError('route does nothing: give topic, key or priority', ['route']);

  let setTopic: ((ev: Working) => void) | null = null;
  if (topic !== undefined) {
    const template = compileFieldTemplate(topic, ['route', 'topic']);
    if (!topic.includes('{')) {
      if (!KAFKA_TOPIC.test(topic))
        throw new StepConfigError(`"${topic}" is not a valid Kafka topic name (letters, digits, . _ -)`, [
          'route',
          'topic',
        ]);
      setTopic = (ev) => void (ev.kafkaTopic = topic);
    } else {
      setTopic = (ev) => {
        const t = template(ev);
        if (!KAFKA_TOPIC.test(t))
          throw new StepFailure(`route: topic "${t.slice(0, 300)}" is not a valid Kafka topic name`);
        ev.kafkaTopic = t;
      };
    }
  }

  let keyTemplate: FieldTemplate | null = null;
  if (key !== undefined) keyTemplate = compileFieldTemplate(key, ['route', 'key']);

  let setPriority: ((ev: Working) => void) | null = null;
  if (typeof priority === 'number') {
    setPriority = (ev) => void (ev.priority = priority);
  } else if (typeof priority === 'string') {
    const expr = compileExpression(priority, ['route', 'priority'], 'number');
    setPriority = (ev) => {
      let result: unknown;
      try {
        result = expr.evaluate(ev.value, ev);
      } catch (err) {
        throw new StepFailure(`route priority: ${firstLine(err)}`);
      }
      const n = typeof result === 'bigint' ? Number(result) : result;
      if (typeof n !== 'number' || Number.isNaN(n))
        throw new StepFailure(`route priority: expression gave ${typeof result}, not a number`);
      ev.priority = Math.min(PRIORITY_MAX, Math.max(PRIORITY_MIN, Math.round(n)));
    };
  }

  return {
    kind: 'route',
    run(ev: Working): Working {
      if (setTopic !== null) setTopic(ev);
      if (keyTemplate !== null) ev.key = keyTemplate(ev);
      if (setPriority !== null) setPriority(ev);
      return ev;
    },
  };
}
