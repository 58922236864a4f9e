import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SequencedEvent } from '../../../src/core/event.js';
import { EdgehaulError } from '../../../src/core/errors.js';
import { Decoder, Encoder } from 'cbor-x';
import { batchHeaders, batchToJsonLines, decodeBatch, encodeBatch, HEADERS } from '../../../src/forward/format.js';

function ev(seq: number, topic: string, payload: Buffer, receivedAt = 1_700_000_000_000 + seq): SequencedEvent {
  return { seq, route: 'r', kafkaTopic: 'k', key: 'dev-1', topic, payload, receivedAt };
}

test('a batch round-trips seq, time, topic and payload bytes exactly', () => {
  const events = [
    ev(10, 'devices/dev-1/telemetry', Buffer.from('{"t":21.5}')),
    ev(12, 'devices/dev-1/status', Buffer.from([0xff, 0x00, 0xfe])), // not UTF-8
    ev(15, 'devices/dev-1/telemetry', Buffer.alloc(0), 1_699_999_999_000), // earlier than the first
  ];
  const batch = decodeBatch(encodeBatch('gw-1', 'r', 'dev-1', events));
  assert.equal(batch.version, 2);
  assert.ok(batch.events.every((e) => !('value' in e)), 'raw payloads carry no value');
  assert.equal(batch.gatewayId, 'gw-1');
  assert.equal(batch.route, 'r');
  assert.equal(batch.key, 'dev-1');
  assert.deepEqual(batch.events.map((e) => [e.seq, e.receivedAt, e.topic, e.payload.toString('hex')]),
    events.map((e) => [e.seq, e.receivedAt, e.topic, e.payload.toString('hex')]));
});

test('headers carry content type, format, gateway and the sequence range', () => {
  const h = batchHeaders('gw-1', 'r', [ev(3, 't', Buffer.from('a')), ev(9, 't', Buffer.from('b'))]);
  assert.equal(h[HEADERS.contentType], 'application/vnd.edgehaul.batch+cbor');
  assert.equal(h[HEADERS.format], '2');
  assert.equal(h[HEADERS.gateway], 'gw-1');
  assert.equal(h[HEADERS.seqFirst], '3');
  assert.equal(h[HEADERS.seqLast], '9');
  assert.equal(h[HEADERS.events], '2');
});

test('a reading costs less than its JSON message would', () => {
  const payload = Buffer.from(JSON.stringify({ device: 'dev-1', n: 1, temp: 21.5, hum: 40.2, ts: 1_700_000_000_000 }));
  const events = Array.from({ length: 500 }, (_, i) => ev(i + 1, 'devices/dev-1/telemetry', payload));
  const perEvent = encodeBatch('gw-1', 'r', 'dev-1', events).length / events.length;
  const jsonPerEvent = JSON.stringify({ gateway: 'gw-1', seq: 1, ts: 1_700_000_000_000, topic: 'devices/dev-1/telemetry', payload: payload.toString() }).length;
  assert.ok(perEvent < payload.length + 12, `${perEvent} B/event for a ${payload.length} B payload`);
  assert.ok(perEvent < jsonPerEvent, `${perEvent} >= ${jsonPerEvent}`);
});

test('JSON lines show UTF-8 payloads as text and others as base64', () => {
  const lines = batchToJsonLines(decodeBatch(encodeBatch('gw', 'r', 'k', [ev(1, 't', Buffer.from('21.5')), ev(2, 't', Buffer.from([0xc3, 0x28]))])))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines[0]!.payload, '21.5');
  assert.equal(lines[1]!.payload_base64, Buffer.from([0xc3, 0x28]).toString('base64'));
  assert.equal(lines[0]!.seq, 1);
  assert.equal(lines[0]!.received_at, new Date(1_700_000_000_001).toISOString());
});

test('anything that is not a version-1 batch is rejected with EH_ERR_DECODE_FORMAT', () => {
  for (const bad of [Buffer.from('{"json":true}'), Buffer.from([0xa1, 0x61, 0x76, 0x02]), Buffer.alloc(0), Buffer.from([0x1f])]) {
    assert.throws(() => decodeBatch(bad), (err: unknown) => err instanceof EdgehaulError && err.code === 'EH_ERR_DECODE_FORMAT');
  }
});

test('a transformed value travels as an embedded CBOR item (tag 24) and decodes to the value', () => {
  const value = { temp: 21.5, device: 'dev-1', n: 3, ok: true };
  const enc = new Encoder({ useRecords: false, tagUint8Array: false });
  const events: SequencedEvent[] = [{ ...ev(1, 'site/a/dev-1', enc.encode(value)), encoded: true }, ev(2, 'site/a/dev-1', Buffer.from('raw'))];
  const wire = encodeBatch('gw-1', 'r', 'dev-1', events);
  // any CBOR library sees tag 24 around a byte string
  const plain = new Decoder({ useRecords: false, mapsAsObjects: true }).decode(wire) as { ev: unknown[][] };
  assert.equal((plain.ev[0]![3] as { tag: number }).tag, 24);
  const batch = decodeBatch(wire);
  assert.deepEqual(batch.events[0]!.value, value);
  assert.equal(batch.events[1]!.payload.toString(), 'raw');
  const lines = batchToJsonLines(batch).map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(lines[0]!.value, value);
  assert.equal(lines[1]!.payload, 'raw');
});

test('format 1 batches (no tag 24) still decode', () => {
  const enc = new Encoder({ useRecords: false, tagUint8Array: false, variableMapSize: true });
  const v1 = enc.encode({ v: 1, gw: 'gw', route: 'r', key: 'k', s0: 5, t0: 1000, topics: ['t'], ev: [[0, 0, 0, Buffer.from('x')], [1, 2, 0, Buffer.from('y')]] });
  const batch = decodeBatch(v1);
  assert.equal(batch.version, 1);
  assert.deepEqual(batch.events.map((e) => [e.seq, e.receivedAt, e.payload.toString()]), [[5, 1000, 'x'], [6, 1002, 'y']]);
});
