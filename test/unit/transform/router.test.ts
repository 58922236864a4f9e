import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InboundMessage } from '../../../src/core/event.js';
import { compileRoutes } from '../../../src/transform/router.js';

const msg = (topic: string, clientId = 'c1'): InboundMessage => ({
  topic,
  payload: Buffer.from('1'),
  qos: 1,
  clientId,
  receivedAt: 5,
});

test('a message goes to every matching route, with the key built from captures and builtins', () => {
  const router = compileRoutes([
    {
      name: 'telemetry',
      match: ['site/+site/dev/+device/#'],
      topic: 'tel',
      key: '{site}.{device}',
      priority: 0,
      when_full: 'block',
      durability: 'disk',
    },
    {
      name: 'all',
      match: '#',
      topic: 'all',
      key: '{client_id}|{topic}',
      priority: 0,
      when_full: 'block',
      durability: 'disk',
    },
  ]);
  assert.deepEqual(router.filters, ['site/+/dev/+/#', '#']);
  assert.deepEqual(
    router.route(msg('site/s1/dev/d2/temp')).map((e) => [e.route, e.kafkaTopic, e.key]),
    [
      ['telemetry', 'tel', 's1.d2'],
      ['all', 'all', 'c1|site/s1/dev/d2/temp'],
    ],
  );
  // cached per topic, but the client id still counts where the key uses it
  assert.deepEqual(
    router.route(msg('site/s1/dev/d2/temp', 'c2')).map((e) => e.key),
    ['s1.d2', 'c2|site/s1/dev/d2/temp'],
  );
  assert.deepEqual(
    router.route(msg('other')).map((e) => e.route),
    ['all'],
  );
});

test('no matching route gives no events', () => {
  const router = compileRoutes([
    { name: 'a', match: 'a/+x', topic: 't', key: '{x}', priority: 0, when_full: 'block', durability: 'disk' },
  ]);
  assert.deepEqual(router.route(msg('b/1')), []);
  assert.deepEqual(router.route(msg('a/1/2')), []);
});
