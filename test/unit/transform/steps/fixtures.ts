/** Shared helpers for the step tests (not a test file itself). */
import assert from 'node:assert/strict';
import {
  StepConfigError,
  StepFailure,
  type Step,
  type StepContext,
  type Working,
} from '../../../../src/transform/step.js';
import { compileStep, type StepConfig } from '../../../../src/transform/steps/index.js';

export const CTX: StepContext = { gatewayId: 'gw-test', route: 'r1' };
export const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

export function working(init: Omit<Partial<Working>, 'payload'> & { payload?: Buffer | string } = {}): Working {
  const payload = typeof init.payload === 'string' ? Buffer.from(init.payload) : (init.payload ?? Buffer.alloc(0));
  const topic = init.topic ?? 'site/s1/dev/d1/telemetry';
  return {
    topic,
    clientId: init.clientId ?? 'd1',
    receivedAt: init.receivedAt ?? T0,
    vars: init.vars ?? { site: 's1', device: 'd1', client_id: 'd1', topic },
    value: init.value,
    eventTime: init.eventTime ?? init.receivedAt ?? T0,
    kafkaTopic: init.kafkaTopic ?? 'telemetry',
    key: init.key ?? 'd1',
    priority: init.priority ?? 0,
    payload,
  };
}

export function step(config: unknown, ctx: StepContext = CTX): Step {
  return compileStep(config as StepConfig, ctx);
}

/** Asserts that compiling `config` fails with a StepConfigError at `path` whose message matches. */
export function assertConfigError(config: unknown, path: ReadonlyArray<string | number>, message?: RegExp): void {
  assert.throws(
    () => step(config),
    (err: unknown) => {
      assert.ok(err instanceof StepConfigError, `expected StepConfigError, got ${String(err)}`);
      assert.deepEqual(err.path, path, `path of "${err.message}"`);
      if (message !== undefined) assert.match(err.message, message);
      return true;
    },
  );
}

/** Asserts that running the step on `ev` fails with a StepFailure whose reason matches. */
export function assertFails(s: Step, ev: Working, reason: RegExp, now = T0): void {
  assert.throws(
    () => s.run(ev, now),
    (err: unknown) => {
      assert.ok(err instanceof StepFailure, `expected StepFailure, got ${String(err)}`);
      assert.match(err.reason, reason);
      return true;
    },
  );
}

/** Runs the step and returns the (kept) event's value; fails if it was dropped. */
export function runValue(s: Step, ev: Working, now = T0): unknown {
  const out = s.run(ev, now);
  assert.notEqual(typeof out, 'symbol', 'event was dropped');
  return (out as Working).value;
}
