import { Encoder } from 'cbor-x';
import type { InboundMessage, RoutedEvent } from '../core/event.js';
import type { DeadLetterRecord, StateRecord } from '../core/event.js';
import { compileMatcher, type RouteInput, type RouteMatch } from './router.js';
import { DROPPED, StepConfigError, StepFailure, type Step, type StepContext, type Working } from './step.js';
import { compileStep as defaultCompileStep, type StepConfig } from './steps/index.js';
import { setOwn } from './steps/value.js';
import { wideIntegers } from '../core/numbers.js';

/** The internal route that carries dead letters to Kafka; `$` keeps it apart from configured route names. */
export const DEAD_LETTER_ROUTE = '$dead_letters';

export interface PipelineOptions {
  readonly gatewayId: string;
  /** Kafka topic for dead letters; null: kept for inspection only. */
  readonly deadLetterTopic: string | null;
}

/** What one message (or one tick) produced. */
export interface Outcome {
  /** Events to store: route outputs, and dead letters when they are forwarded. */
  readonly events: RoutedEvent[];
  readonly deadLetters: DeadLetterRecord[];
  /**
   * The input reached a step that keeps acknowledged data (a window): its
   * acknowledgement must wait for the commit that checkpoints that state.
   */
  readonly stateful: boolean;
  /** How many routes matched the topic. */
  readonly matched: number;
}

export interface PipelineCounters {
  /** An event left the stream on purpose (filter, deadband, dedupe) or went into a window. */
  dropped(route: string, step: string): void;
  deadLetter(route: string, step: string, reason: string): void;
}

interface CompiledRoute {
  readonly name: string;
  /** the route's config as JSON: a reload keeps the compiled steps (and their state) when it is unchanged */
  readonly source: string;
  readonly priority: number;
  readonly steps: readonly Step[];
  /** `<index>:<kind>` per step, for counters and dead letters */
  readonly stepIds: readonly string[];
  /** index of the first step that keeps acknowledged data; steps.length when none */
  readonly firstStateful: number;
}

const valueEncoder = new Encoder({ useRecords: false, tagUint8Array: false, variableMapSize: true });
const NO_COUNTERS: PipelineCounters = { dropped() {}, deadLetter() {} };

/**
 * A route's steps, compiled once from the config, run for every message that
 * matches the route. Routes without steps forward the payload as received;
 * with steps, the last value is sent as an embedded CBOR item. A step that
 * fails turns the input into a dead letter (kept for `edgehaul inspect`, and
 * sent to the dead-letter topic) instead of stopping anything.
 */
export class Pipeline {
  readonly filters: readonly string[];
  private readonly routes: readonly CompiledRoute[];
  private readonly matcher: ReturnType<typeof compileMatcher>;
  private readonly lostStates = new Map<string, StateRecord>();

  constructor(
    routes: readonly RouteInput[],
    private readonly options: PipelineOptions,
    private readonly counters: PipelineCounters = NO_COUNTERS,
    compile: (config: StepConfig, ctx: StepContext) => Step = defaultCompileStep,
    previous?: Pipeline,
  ) {
    const anySteps = routes.some((r) => (r.steps ?? []).length > 0);
    this.matcher = compileMatcher(routes, { perClient: anySteps });
    this.filters = this.matcher.filters;
    this.routes = routes.map((r) => {
      const source = JSON.stringify(r);
      const kept = previous?.routes.find((p) => p.source === source);
      if (kept !== undefined) return kept;
      const steps = (r.steps ?? []).map((config, i) => {
        try {
          return compile(config, { gatewayId: options.gatewayId, route: r.name });
        } catch (err) {
          if (err instanceof StepConfigError)
            throw new StepConfigError(`route "${r.name}" step ${i + 1}: ${err.message}`, ['steps', i, ...err.path]);
          throw err;
        }
      });
      const firstStateful = steps.findIndex((s) => s.checkpoint !== undefined);
      return {
        name: r.name,
        source,
        priority: r.priority,
        steps,
        stepIds: steps.map((s, i) => `${i}:${s.kind}`),
        firstStateful: firstStateful < 0 ? steps.length : firstStateful,
      };
    });
  }

  /**
   * The pipeline for a reloaded config. Unchanged routes keep their compiled
   * steps and so their state (open windows, deadband references); the open
   * windows of routes that changed or went are closed now, and their
   * aggregates are returned to be stored, so no acknowledged input's share is
   * lost. Throws StepConfigError like the constructor, leaving this one intact.
   */
  replace(
    routes: readonly RouteInput[],
    counters: PipelineCounters = this.counters,
    compile?: (config: StepConfig, ctx: StepContext) => Step,
  ): { pipeline: Pipeline; closed: Outcome } {
    const next = new Pipeline(routes, this.options, counters, compile, this);
    const closed: Outcome = { events: [], deadLetters: [], stateful: false, matched: 0 };
    for (const route of this.routes) {
      if (next.routes.includes(route)) continue;
      route.steps.forEach((step, i) => {
        if (step.tick !== undefined) {
          for (const ev of step.tick(Number.MAX_SAFE_INTEGER)) this.runFrom(route, i + 1, ev, Date.now(), closed);
        }
        // its checkpoint goes with the commit that stores the aggregates, unless the new route writes its own
        if (step.checkpoint !== undefined)
          next.lostStates.set(`${route.name}\u0000${i}`, { route: route.name, step: i, state: null });
      });
    }
    return { pipeline: next, closed };
  }

  /** Runs every matching route's steps over one message. */
  process(message: InboundMessage): Outcome {
    const matches = this.matcher.resolve(message.topic, message.clientId);
    const out: Outcome = { events: [], deadLetters: [], stateful: false, matched: matches.length };
    for (const m of matches) {
      const route = this.routes[m.index]!;
      if (route.steps.length === 0) {
        const e: RoutedEvent = {
          route: m.route,
          kafkaTopic: m.kafkaTopic,
          key: m.key,
          topic: message.topic,
          payload: message.payload,
          receivedAt: message.receivedAt,
          encoded: undefined,
          captures: m.captures,
          priority: undefined,
        };
        out.events.push(e);
        continue;
      }
      const ev = startWorking(message, m, route.priority);
      if (route.firstStateful < route.steps.length) (out as { stateful: boolean }).stateful = true;
      this.runFrom(route, 0, ev, message.receivedAt, out);
    }
    return out;
  }

  /** Outputs of windows that closed by `now`, run through the steps after them. */
  tick(now: number): Outcome {
    const out: Outcome = { events: [], deadLetters: [], stateful: false, matched: 0 };
    for (const route of this.routes) {
      route.steps.forEach((step, i) => {
        if (step.tick === undefined) return;
        const due = step.nextDue?.() ?? null;
        if (due === null || due > now) return;
        for (const ev of step.tick(now)) this.runFrom(route, i + 1, ev, now, out);
      });
    }
    return out;
  }

  /** The earliest time a tick has something to do; null when no window is open. */
  nextDue(): number | null {
    let first: number | null = null;
    for (const route of this.routes) {
      for (const step of route.steps) {
        const due = step.nextDue?.() ?? null;
        if (due !== null && (first === null || due < first)) first = due;
      }
    }
    return first;
  }

  /** Checkpoints that changed since the last call, for the next commit. */
  checkpoints(): StateRecord[] {
    const out = new Map(this.lostStates);
    this.lostStates.clear();
    for (const route of this.routes) {
      route.steps.forEach((step, i) => {
        if (step.checkpoint === undefined) return;
        const state = step.checkpoint();
        if (state === null) return;
        out.set(`${route.name}\u0000${i}`, {
          route: route.name,
          step: i,
          state: state === undefined ? null : valueEncoder.encode(state),
        });
      });
    }
    return [...out.values()];
  }

  /** The commit that carried these failed: they go with the next one unless newer ones replace them. */
  checkpointsLost(states: readonly StateRecord[]): void {
    for (const s of states) {
      const k = `${s.route}\u0000${s.step}`;
      if (!this.lostStates.has(k)) this.lostStates.set(k, s);
    }
  }

  /**
   * Gives each stateful step its stored checkpoint. Checkpoints of routes or
   * steps no longer configured are removed with the next commit.
   */
  restore(states: readonly StateRecord[]): void {
    for (const s of states) {
      const step = this.routes.find((r) => r.name === s.route)?.steps[s.step];
      if (step?.restore === undefined || s.state === null) {
        this.lostStates.set(`${s.route}\u0000${s.step}`, { route: s.route, step: s.step, state: null });
        continue;
      }
      step.restore(valueEncoder.decode(s.state));
    }
  }

  private runFrom(route: CompiledRoute, from: number, start: Working, now: number, out: Outcome): void {
    let ev = start;
    for (let i = from; i < route.steps.length; i++) {
      let result: Working | typeof DROPPED;
      try {
        result = route.steps[i]!.run(ev, now);
      } catch (err) {
        const reason = err instanceof StepFailure ? err.reason : `unexpected error: ${(err as Error).message}`;
        this.deadLetter(route, route.stepIds[i]!, reason, ev, out);
        return;
      }
      if (result === DROPPED) {
        this.counters.dropped(route.name, route.stepIds[i]!);
        return;
      }
      ev = result;
    }
    let routed: RoutedEvent;
    try {
      routed = toRouted(route.name, ev);
    } catch (err) {
      this.deadLetter(route, 'encode', `the value cannot be encoded as CBOR: ${(err as Error).message}`, ev, out);
      return;
    }
    out.events.push(routed);
  }

  private deadLetter(route: CompiledRoute, step: string, reason: string, ev: Working, out: Outcome): void {
    this.counters.deadLetter(route.name, step, reason);
    const record: DeadLetterRecord = {
      at: ev.receivedAt,
      route: route.name,
      step,
      reason,
      topic: ev.topic,
      clientId: ev.clientId,
      payload: ev.payload,
    };
    out.deadLetters.push(record);
    if (this.options.deadLetterTopic === null) return;
    const value = {
      route: route.name,
      step,
      reason,
      topic: ev.topic,
      client_id: ev.clientId,
      received_at: ev.receivedAt,
      payload: ev.payload,
    };
    out.events.push({
      route: DEAD_LETTER_ROUTE,
      kafkaTopic: this.options.deadLetterTopic,
      key: ev.key,
      topic: ev.topic,
      payload: valueEncoder.encode(value),
      receivedAt: ev.receivedAt,
      encoded: true,
      captures: capturesOf(ev.vars),
      priority: undefined,
    });
  }
}

function startWorking(message: InboundMessage, m: RouteMatch, priority: number): Working {
  return {
    topic: message.topic,
    clientId: message.clientId,
    receivedAt: message.receivedAt,
    payload: message.payload,
    vars: m.vars,
    value: undefined,
    eventTime: message.receivedAt,
    kafkaTopic: m.kafkaTopic,
    key: m.key,
    priority,
  };
}

/** No decode step: the payload as received; `raw`: the bytes; anything else: its CBOR encoding. */
function toRouted(route: string, ev: Working): RoutedEvent {
  const encoded = ev.value !== undefined && !Buffer.isBuffer(ev.value);
  return {
    route,
    kafkaTopic: ev.kafkaTopic,
    key: ev.key,
    topic: ev.topic,
    payload:
      ev.value === undefined
        ? ev.payload
        : Buffer.isBuffer(ev.value)
          ? ev.value
          : valueEncoder.encode(wideIntegers(ev.value)),
    receivedAt: ev.receivedAt,
    encoded: encoded ? true : undefined,
    captures: capturesOf(ev.vars),
    priority: ev.priority,
  };
}

/** The topic captures of an event's vars (all but the built-in client_id and topic); one object per vars object. */
const capturesByVars = new WeakMap<object, { captures: Readonly<Record<string, string>> | undefined }>();
function capturesOf(vars: Readonly<Record<string, string>>): Readonly<Record<string, string>> | undefined {
  let hit = capturesByVars.get(vars);
  if (hit === undefined) {
    const captures: Record<string, string> = {};
    let n = 0;
    for (const [k, v] of Object.entries(vars)) {
      if (k === 'client_id' || k === 'topic') continue;
      setOwn(captures, k, v);
      n++;
    }
    hit = { captures: n > 0 ? Object.freeze(captures) : undefined };
    capturesByVars.set(vars, hit);
  }
  return hit.captures;
}
