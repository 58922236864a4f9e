import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Decoder } from 'cbor-x';
import type { InboundMessage } from '../../../src/core/event.js';
import { DEAD_LETTER_ROUTE, Pipeline } from '../../../src/transform/pipeline.js';
import type { RouteInput } from '../../../src/transform/router.js';
import { DROPPED, StepConfigError, StepFailure, type Step, type Working } from '../../../src/transform/step.js';
import type { StepConfig } from '../../../src/transform/steps/index.js';

const cbor = new Decoder({ useRecords: false, mapsAsObjects: true });

function route(name: string, match: string, steps: StepConfig[] = [], extra: Partial<RouteInput> = {}): RouteInput {
  return {
    name,
    match,
    topic: `k.${name}`,
    key: '{client_id}',
    priority: 0,
    when_full: 'block',
    durability: 'disk',
    steps,
    ...extra,
  };
}

function msg(topic: string, payload: string | Buffer, clientId = 'dev-1', receivedAt = 1_000_000): InboundMessage {
  return { topic, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload), qos: 1, clientId, receivedAt };
}

/** Fake steps (the step contract is the project's own): json decode, a threshold filter, a failing step. */
function fakeCompile(config: StepConfig): Step {
  const kind = Object.keys(config)[0]!;
  switch (kind) {
    case 'json':
      return {
        kind: 'decode',
        run(ev) {
          try {
            return { ...ev, value: JSON.parse(ev.payload.toString()) as unknown };
          } catch {
            throw new StepFailure('decode json: not JSON');
          }
        },
      };
    case 'above':
      return { kind: 'filter', run: (ev) => ((ev.value as { t: number }).t > (config.above as number) ? ev : DROPPED) };
    case 'explode':
      return {
        kind: 'map',
        run: () => {
          throw new Error('boom');
        },
      };
    case 'bad':
      throw new StepConfigError('bad expression', ['bad', 'expr']);
    case 'sum':
      return summingWindow(config.sum as number);
    case 'retopic':
      return {
        kind: 'route',
        run: (ev) => ({
          ...ev,
          kafkaTopic: `k.${String((ev.value as { site: string }).site)}`,
          key: ev.vars.device ?? ev.key,
          priority: 7,
        }),
      };
    default:
      throw new StepConfigError(`unknown step "${kind}"`, [kind]);
  }
}

/** A tumbling sum over `periodMs` with checkpoints: stands in for the window step. */
function summingWindow(periodMs: number): Step {
  let open: { start: number; sum: number; last: Working } | null = null;
  let dirty = false;
  return {
    kind: 'window',
    run(ev) {
      const start = Math.floor(ev.receivedAt / periodMs) * periodMs;
      if (open === null) open = { start, sum: 0, last: ev };
      open.sum += (ev.value as { t: number }).t;
      open.last = ev;
      dirty = true;
      return DROPPED;
    },
    nextDue: () => (open === null ? null : open.start + periodMs),
    tick(now) {
      if (open === null || open.start + periodMs > now) return [];
      const out = { ...open.last, value: { sum: open.sum, start: open.start }, receivedAt: open.start + periodMs };
      open = null;
      dirty = true;
      return [out];
    },
    checkpoint() {
      if (!dirty) return null;
      dirty = false;
      return open === null ? { open: null } : { open: { start: open.start, sum: open.sum } };
    },
    restore(state) {
      const s = (state as { open: { start: number; sum: number } | null }).open;
      if (s !== null)
        open = {
          start: s.start,
          sum: s.sum,
          last: {
            topic: 'restored',
            clientId: '-',
            receivedAt: s.start,
            payload: Buffer.alloc(0),
            vars: {},
            value: undefined,
            eventTime: s.start,
            kafkaTopic: 'k.win',
            key: 'k',
            priority: 0,
          },
        };
    },
  };
}

const opts = { gatewayId: 'gw', deadLetterTopic: 'dl' };

test('a route without steps forwards the payload as received; one without a match counts as unmatched', () => {
  const p = new Pipeline([route('all', 'dev/+device/#')], opts, undefined, fakeCompile);
  const out = p.process(msg('dev/a/t', '{"t":1}'));
  assert.equal(out.matched, 1);
  assert.deepEqual(
    out.events.map((e) => [e.route, e.kafkaTopic, e.key, e.payload.toString(), e.encoded]),
    [['all', 'k.all', 'dev-1', '{"t":1}', undefined]],
  );
  assert.equal(p.process(msg('other/x', 'x')).matched, 0);
});

test('steps run in order; the output value is sent as CBOR; a filter drop is counted and stores nothing', () => {
  const dropped: string[] = [];
  const p = new Pipeline(
    [route('hot', 'dev/+device/t', [{ json: true }, { above: 20 }])],
    opts,
    { dropped: (r, s) => dropped.push(`${r}/${s}`), deadLetter: () => {} },
    fakeCompile,
  );
  const hot = p.process(msg('dev/a/t', '{"t":25}'));
  assert.equal(hot.events.length, 1);
  assert.equal(hot.events[0]!.encoded, true);
  assert.deepEqual(cbor.decode(hot.events[0]!.payload), { t: 25 });
  const cold = p.process(msg('dev/a/t', '{"t":5}'));
  assert.deepEqual([cold.matched, cold.events.length, cold.deadLetters.length, cold.stateful], [1, 0, 0, false]);
  assert.deepEqual(dropped, ['hot/1:filter']);
});

test('a failing step makes a dead letter with route, step and reason, also sent to the dead-letter topic; other routes go on', () => {
  const dead: string[] = [];
  const p = new Pipeline(
    [
      route('json', 'dev/+device/t', [{ json: true }]),
      route('broken', 'dev/+device/t', [{ explode: true }]),
      route('raw', 'dev/+device/t'),
    ],
    opts,
    { dropped: () => {}, deadLetter: (r, s, why) => dead.push(`${r}/${s}: ${why}`) },
    fakeCompile,
  );
  const out = p.process(msg('dev/a/t', 'not json', 'dev-9', 5000));
  assert.deepEqual(dead, ['json/0:decode: decode json: not JSON', 'broken/0:map: unexpected error: boom']);
  assert.deepEqual(
    out.deadLetters.map((d) => [d.route, d.step, d.topic, d.clientId, d.at, d.payload.toString()]),
    [
      ['json', '0:decode', 'dev/a/t', 'dev-9', 5000, 'not json'],
      ['broken', '0:map', 'dev/a/t', 'dev-9', 5000, 'not json'],
    ],
  );
  const dl = out.events.filter((e) => e.route === DEAD_LETTER_ROUTE);
  assert.equal(dl.length, 2);
  assert.deepEqual(
    dl.map((e) => e.kafkaTopic),
    ['dl', 'dl'],
  );
  const value = cbor.decode(dl[0]!.payload) as Record<string, unknown>;
  assert.deepEqual(
    { ...value, payload: Buffer.from(value.payload as Uint8Array).toString() },
    {
      route: 'json',
      step: '0:decode',
      reason: 'decode json: not JSON',
      topic: 'dev/a/t',
      client_id: 'dev-9',
      received_at: 5000,
      payload: 'not json',
    },
  );
  assert.deepEqual(
    out.events.filter((e) => e.route === 'raw').map((e) => e.payload.toString()),
    ['not json'],
  );

  const kept = new Pipeline(
    [route('json', 'dev/+device/t', [{ json: true }])],
    { gatewayId: 'gw', deadLetterTopic: null },
    undefined,
    fakeCompile,
  );
  const onlyKept = kept.process(msg('dev/a/t', 'nope'));
  assert.deepEqual(
    [onlyKept.events.length, onlyKept.deadLetters.length],
    [0, 1],
    'without forwarding, dead letters are only stored',
  );
});

test('a route step sets Kafka topic, key and priority per event; vars carry captures and the publisher', () => {
  const p = new Pipeline(
    [route('r', 'site/+site/dev/+device', [{ json: true }, { retopic: true }])],
    opts,
    undefined,
    fakeCompile,
  );
  const a = p.process(msg('site/s1/dev/d1', '{"site":"north"}', 'client-a')).events[0]!;
  const b = p.process(msg('site/s1/dev/d1', '{"site":"south"}', 'client-b')).events[0]!;
  assert.deepEqual([a.kafkaTopic, a.key, a.priority], ['k.north', 'd1', 7]);
  assert.equal(b.kafkaTopic, 'k.south');
});

test('windows: inputs mark the outcome stateful, ticks emit after the period, checkpoints come once per change and restore', () => {
  const p = new Pipeline(
    [route('win', 'dev/+device/t', [{ json: true }, { sum: 1000 }])],
    opts,
    undefined,
    fakeCompile,
  );
  assert.equal(p.nextDue(), null);
  const first = p.process(msg('dev/a/t', '{"t":2}', 'd', 10_100));
  assert.deepEqual([first.events.length, first.stateful], [0, true]);
  p.process(msg('dev/a/t', '{"t":3}', 'd', 10_500));
  assert.equal(p.nextDue(), 11_000);
  const cp = p.checkpoints();
  assert.equal(cp.length, 1);
  assert.deepEqual([cp[0]!.route, cp[0]!.step], ['win', 1]);
  assert.deepEqual(cbor.decode(cp[0]!.state!), { open: { start: 10_000, sum: 5 } });
  assert.deepEqual(p.checkpoints(), [], 'unchanged: nothing to write');

  // a restarted pipeline continues from the checkpoint
  const again = new Pipeline(
    [route('win', 'dev/+device/t', [{ json: true }, { sum: 1000 }])],
    opts,
    undefined,
    fakeCompile,
  );
  again.restore(cp);
  again.process(msg('dev/a/t', '{"t":4}', 'd', 10_900));
  assert.deepEqual(again.tick(10_999).events, []);
  const closed = again.tick(11_000);
  assert.equal(closed.events.length, 1);
  assert.deepEqual(cbor.decode(closed.events[0]!.payload), { sum: 9, start: 10_000 });
  assert.deepEqual(cbor.decode(again.checkpoints()[0]!.state!), { open: null });

  // a failed commit's checkpoints are offered again
  p.checkpointsLost(cp);
  assert.deepEqual(
    p.checkpoints().map((s) => s.route),
    ['win'],
  );
});

test('a step config error names the route and the path below it', () => {
  assert.throws(
    () => new Pipeline([route('r', '#', [{ json: true }, { bad: true }])], opts, undefined, fakeCompile),
    (err: unknown) => {
      assert.ok(err instanceof StepConfigError);
      assert.match(err.message, /route "r" step 2: bad expression/);
      assert.deepEqual(err.path, ['steps', 1, 'bad', 'expr']);
      return true;
    },
  );
});

test('replace (reload): unchanged routes keep their state; a changed route closes its windows now and drops its checkpoint', () => {
  const keep = route('keep', 'dev/+device/t', [{ json: true }, { sum: 10_000 }]);
  const change = route('change', 'dev/+device/t', [{ json: true }, { sum: 10_000 }]);
  const p = new Pipeline([keep, change], opts, undefined, fakeCompile);
  p.process(msg('dev/a/t', '{"t":2}', 'd', 20_000));
  p.process(msg('dev/a/t', '{"t":3}', 'd', 20_001));
  p.checkpoints();

  const { pipeline: next, closed } = p.replace(
    [keep, route('change', 'dev/+device/t', [{ json: true }, { sum: 60_000 }])],
    undefined,
    fakeCompile,
  );
  assert.deepEqual(
    closed.events.map((e): unknown[] => [e.route, cbor.decode(e.payload)]),
    [['change', { sum: 5, start: 20_000 }]],
  );
  assert.deepEqual(
    next.checkpoints().map((s) => [s.route, s.step, s.state]),
    [['change', 1, null]],
    'the old window of "change" is gone from the store with its aggregate',
  );
  next.process(msg('dev/a/t', '{"t":4}', 'd', 20_002));
  const out = next.tick(30_000);
  assert.deepEqual(
    out.events.map((e): unknown[] => [e.route, cbor.decode(e.payload)]),
    [['keep', { sum: 9, start: 20_000 }]],
    'the kept window went on counting',
  );
});

test('restore: checkpoints of steps no longer configured are deleted with the next commit', () => {
  const p = new Pipeline([route('r', 'dev/+device/t', [{ json: true }])], opts, undefined, fakeCompile);
  p.restore([
    { route: 'gone', step: 1, state: Buffer.from([0xa0]) },
    { route: 'r', step: 0, state: Buffer.from([0xa0]) },
  ]);
  assert.deepEqual(
    p.checkpoints().map((s) => [s.route, s.step, s.state]),
    [
      ['gone', 1, null],
      ['r', 0, null],
    ],
  );
});

test("events carry the route's named captures; integers above 32 bits are encoded as CBOR integers", () => {
  const p = new Pipeline(
    [route('raw', 'site/+site/dev/+device/#'), route('json', 'site/+/dev/+device/#', [{ json: true }])],
    opts,
    undefined,
    fakeCompile,
  );
  const out = p.process(msg('site/s1/dev/d7/t', '{"t":1,"ts":1795430000123}'));
  assert.deepEqual(
    out.events.map((e) => e.captures),
    [{ site: 's1', device: 'd7' }, { device: 'd7' }],
  );
  const bytes = out.events[1]!.payload;
  assert.ok(bytes.includes(Buffer.from('6274731b000001a2', 'hex')), `ts as a 64-bit integer: ${bytes.toString('hex')}`);
  const none = new Pipeline([route('plain', 'a/+/#')], opts, undefined, fakeCompile).process(msg('a/b/c', 'x'));
  assert.equal(none.events[0]!.captures, undefined, 'no named captures: none carried');
});
