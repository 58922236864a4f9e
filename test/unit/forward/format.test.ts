import assert from 'node:assert/strict';
import { deepEqual as looseDeepEqual } from 'node:assert';
import { test } from 'node:test';
import type { SequencedEvent } from '../../../src/core/event.js';
import { EdgehaulError } from '../../../src/core/errors.js';
import { Decoder, Encoder, Tag } from 'cbor-x';
import fc from 'fast-check';
import {
  batchHeaders,
  batchToJsonLines,
  decodeBatch,
  decodeValue,
  encodeBatch,
  HEADERS,
  type Batch,
} from '../../../src/forward/format.js';
import { wideIntegers } from '../../../src/core/numbers.js';

function ev(seq: number, topic: string, payload: Buffer, receivedAt = 1_700_000_000_000 + seq): SequencedEvent {
  return { seq, route: 'r', kafkaTopic: 'k', key: 'dev-1', topic, payload, receivedAt };
}

test('a batch round-trips seq, time, topic and payload bytes exactly', () => {
  const events = [
    ev(10, 'devices/dev-1/telemetry', Buffer.from('{"t":21.5}')),
    ev(12, 'devices/dev-1/status', Buffer.from([0xff, 0x00, 0xfe])), // not UTF-8
    ev(15, 'devices/dev-1/telemetry', Buffer.alloc(0), 1_699_999_999_000), // earlier than the first
  ];
  const batch = decodeBatch(encodeBatch({ gatewayId: 'gw-1', incarnation: '0123456789abcdef' }, 'r', 'dev-1', events));
  assert.equal(batch.version, 4);
  assert.equal(batch.incarnation, '0123456789abcdef');
  assert.ok(
    batch.events.every((e) => !('value' in e)),
    'raw payloads carry no value',
  );
  assert.equal(batch.gatewayId, 'gw-1');
  assert.equal(batch.route, 'r');
  assert.equal(batch.key, 'dev-1');
  assert.deepEqual(
    batch.events.map((e) => [e.seq, e.receivedAt, e.topic, e.payload.toString('hex')]),
    events.map((e) => [e.seq, e.receivedAt, e.topic, e.payload.toString('hex')]),
  );
});

test('headers carry content type, format, gateway and the sequence range', () => {
  const h = batchHeaders({ gatewayId: 'gw-1', incarnation: '0123456789abcdef' }, 'r', [
    ev(3, 't', Buffer.from('a')),
    ev(9, 't', Buffer.from('b')),
  ]);
  assert.equal(h[HEADERS.contentType], 'application/vnd.edgehaul.batch+cbor');
  assert.equal(h[HEADERS.format], '4');
  assert.equal(h[HEADERS.gateway], 'gw-1');
  assert.equal(h[HEADERS.incarnation], '0123456789abcdef');
  assert.equal(h[HEADERS.seqFirst], '3');
  assert.equal(h[HEADERS.seqLast], '9');
  assert.equal(h[HEADERS.events], '2');
});

test('a reading costs less than its JSON message would', () => {
  const payload = Buffer.from(JSON.stringify({ device: 'dev-1', n: 1, temp: 21.5, hum: 40.2, ts: 1_700_000_000_000 }));
  const events = Array.from({ length: 500 }, (_, i) => ev(i + 1, 'devices/dev-1/telemetry', payload));
  const perEvent =
    encodeBatch({ gatewayId: 'gw-1', incarnation: '0123456789abcdef' }, 'r', 'dev-1', events).length / events.length;
  const jsonPerEvent = JSON.stringify({
    gateway: 'gw-1',
    seq: 1,
    ts: 1_700_000_000_000,
    topic: 'devices/dev-1/telemetry',
    payload: payload.toString(),
  }).length;
  assert.ok(perEvent < payload.length + 12, `${perEvent} B/event for a ${payload.length} B payload`);
  assert.ok(perEvent < jsonPerEvent, `${perEvent} >= ${jsonPerEvent}`);
});

test('JSON lines show UTF-8 payloads as text and others as base64', () => {
  const lines = batchToJsonLines(
    decodeBatch(
      encodeBatch({ gatewayId: 'gw', incarnation: '0123456789abcdef' }, 'r', 'k', [
        ev(1, 't', Buffer.from('21.5')),
        ev(2, 't', Buffer.from([0xc3, 0x28])),
      ]),
    ),
  ).map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines[0]!.payload, '21.5');
  assert.equal(lines[1]!.payload_base64, Buffer.from([0xc3, 0x28]).toString('base64'));
  assert.equal(lines[0]!.seq, 1);
  assert.equal(lines[0]!.received_at, new Date(1_700_000_000_001).toISOString());
});

test('anything that is not a batch is rejected with EH_ERR_DECODE_FORMAT', () => {
  for (const bad of [
    Buffer.from('{"json":true}'),
    Buffer.from([0xa1, 0x61, 0x76, 0x02]),
    Buffer.alloc(0),
    Buffer.from([0x1f]),
  ]) {
    assert.throws(
      () => decodeBatch(bad),
      (err: unknown) => err instanceof EdgehaulError && err.code === 'EH_ERR_DECODE_FORMAT',
    );
  }
});

test('format 1 batches (no tag 24) still decode', () => {
  const enc = new Encoder({ useRecords: false, tagUint8Array: false, variableMapSize: true });
  const v1 = enc.encode({
    v: 1,
    gw: 'gw',
    route: 'r',
    key: 'k',
    s0: 5,
    t0: 1000,
    topics: ['t'],
    ev: [
      [0, 0, 0, Buffer.from('x')],
      [1, 2, 0, Buffer.from('y')],
    ],
  });
  const batch = decodeBatch(v1);
  assert.equal(batch.version, 1);
  assert.deepEqual(
    batch.events.map((e) => [e.seq, e.receivedAt, e.payload.toString()]),
    [
      [5, 1000, 'x'],
      [6, 1002, 'y'],
    ],
  );
});

// the pipeline's encoder of transformed values, and what format 2 decoded an embedded item with
const valueEncoder = new Encoder({ useRecords: false, tagUint8Array: false, variableMapSize: true });
/** as the pipeline encodes a transformed value: integers above 32 bits as integers */
const encodeValue = (v: unknown): Buffer => valueEncoder.encode(wideIntegers(v));
/** what decodeBatch gives a value: maps with other keys than text as Maps, `__proto__` as an own key, safe integers as numbers */
const reference = { decode: decodeValue };
/** format 4 adds the incarnation to what format 2 had: `inc` and 16 hex digits */
const INC_BYTES = 4 + 17;
const plainDecoder = new Decoder({ useRecords: false, mapsAsObjects: true });

function transformed(seq: number, payload: Buffer, topic = 'site/a/dev-1'): SequencedEvent {
  return { ...ev(seq, topic, payload), encoded: true };
}

/** The record as any CBOR library sees it. */
function plain(value: Buffer): { v: number; shapes?: string[][]; ev: unknown[][] } {
  return plainDecoder.decode(value) as { v: number; shapes?: string[][]; ev: unknown[][] };
}

function isDecodeFormatError(err: unknown): boolean {
  return err instanceof EdgehaulError && err.code === 'EH_ERR_DECODE_FORMAT';
}

/** Each event's value is what decoding its original payload gives, and its payload encodes that value. */
function assertLossless(batch: Batch, payloads: readonly Buffer[]): void {
  assert.equal(batch.events.length, payloads.length);
  batch.events.forEach((e, i) => {
    const expected = reference.decode(payloads[i]!);
    assert.deepStrictEqual(e.value, expected);
    // a shaped value's payload is cbor-x's encoding of it, and cbor-x writes -0 as 0
    looseDeepEqual(reference.decode(e.payload), expected);
  });
}

const READING = {
  device: 'dev-3',
  n: 123,
  ts: 1_795_430_000_123,
  temp: 21.3,
  hum: 43.6,
  press: 1013.2,
  bat: 3.71,
  rssi: -67,
  fw: '1.4.2',
};

test('transformed maps travel as [shape, values...] with their keys in the shapes table, and decode to the maps', () => {
  const next = { ...READING, n: 124, temp: 21.4 };
  const payloads = [encodeValue(READING), encodeValue(next)];
  const wire = encodeBatch({ gatewayId: 'gw-1', incarnation: '0123456789abcdef' }, 'r', 'dev-1', [
    transformed(1, payloads[0]!),
    ev(2, 'site/a/dev-1', Buffer.from('raw')),
    transformed(3, payloads[1]!),
  ]);
  const p = plain(wire);
  assert.equal(p.v, 4);
  assert.deepEqual(p.shapes, [Object.keys(READING)]);
  assert.deepEqual(p.ev[0]![3], wideIntegers([0, ...Object.values(READING)]), 'ts is a CBOR integer');
  assert.ok(p.ev[1]![3] instanceof Uint8Array);
  assert.deepEqual(p.ev[2]![3], wideIntegers([0, ...Object.values(next)]));
  const batch = decodeBatch(wire);
  assert.deepStrictEqual(batch.events[0]!.value, READING);
  assert.deepStrictEqual(batch.events[2]!.value, next);
  assert.deepStrictEqual(Object.keys(batch.events[0]!.value as object), Object.keys(READING), 'key order');
  assert.ok(batch.events[0]!.payload.equals(payloads[0]!));
  assert.ok(batch.events[2]!.payload.equals(payloads[1]!));
  assert.equal(batch.events[1]!.payload.toString(), 'raw');
  assert.ok(!('value' in batch.events[1]!));
  const lines = batchToJsonLines(batch).map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(lines[0]!.value, READING);
  assert.equal(lines[1]!.payload, 'raw');
});

/** Format 2's encoding of a batch of transformed events (cbor-x, tag 24), as format 2's encodeBatch wrote it. */
function format2(events: readonly SequencedEvent[]): Buffer {
  const s0 = events[0]!.seq;
  const t0 = Math.min(...events.map((e) => e.receivedAt));
  const ev2 = events.map((e) => [
    e.seq - s0,
    e.receivedAt - t0,
    0,
    e.encoded === true ? new Tag(e.payload, 24) : e.payload,
  ]);
  return encodeValue({ v: 2, gw: 'gw-1', route: 'r', key: 'dev-1', s0, t0, topics: [events[0]!.topic], ev: ev2 });
}

test('the bench reading costs 63 bytes as a shaped event where tag 24 took 105; the keys travel once per record', () => {
  const payload = encodeValue(READING);
  assert.equal(payload.length, 101);
  const readings = (n: number): SequencedEvent[] => Array.from({ length: n }, (_, i) => transformed(i + 1, payload));
  // one more event adds its tuple (head, seq, time, topic: 4 bytes) and its data
  assert.equal(
    encodeBatch({ gatewayId: 'gw-1', incarnation: '0123456789abcdef' }, 'r', 'dev-1', readings(3)).length -
      encodeBatch({ gatewayId: 'gw-1', incarnation: '0123456789abcdef' }, 'r', 'dev-1', readings(2)).length,
    4 + 63,
  );
  assert.equal(format2(readings(3)).length - format2(readings(2)).length, 4 + 105);
  const wire = encodeBatch({ gatewayId: 'gw-1', incarnation: '0123456789abcdef' }, 'r', 'dev-1', readings(50));
  for (const key of Object.keys(READING).filter((k) => k.length > 2)) {
    assert.equal(wire.toString('latin1').split(key).length - 1, 1, `"${key}" once`);
  }
  assert.deepStrictEqual(
    decodeBatch(wire).events.map((e) => e.value),
    readings(50).map(() => READING),
  );
});

test('raw payloads and tag 24 items are written byte for byte as cbor-x writes the same map', () => {
  const events = [
    ev(7, 'devices/dev-1/telemetry', Buffer.from('{"t":21.5}')),
    transformed(8, encodeValue([1, 2, 3]), 'é/ü'),
    ev(300, 'devices/dev-1/telemetry', Buffer.alloc(300, 7), 1_699_000_000_000),
    ev(70_000, 'devices/dev-1/telemetry', Buffer.alloc(70_000, 1)),
    transformed(2 ** 33, encodeValue(-5), 'é/ü'),
  ];
  const s0 = 7;
  const t0 = 1_699_000_000_000;
  const topics = ['devices/dev-1/telemetry', 'é/ü'];
  const expected = encodeValue(
    wideIntegers({
      v: 4,
      gw: 'gw-é',
      inc: '0123456789abcdef',
      route: 'r',
      key: 'dev-1',
      s0,
      t0,
      topics,
      ev: events.map((e) => [
        e.seq - s0,
        e.receivedAt - t0,
        topics.indexOf(e.topic),
        e.encoded === true ? new Tag(e.payload, 24) : e.payload,
      ]),
    }),
  );
  assert.ok(encodeBatch({ gatewayId: 'gw-é', incarnation: '0123456789abcdef' }, 'r', 'dev-1', events).equals(expected));
});

test('values that are not maps with distinct text keys travel as tag 24 and decode unchanged', () => {
  const payloads = [
    encodeValue(21.5),
    encodeValue([READING]),
    encodeValue('text'),
    Buffer.from('a2016161026162', 'hex'), // {1: "a", 2: "b"}: integer keys
    encodeValue(
      new Map<unknown, unknown>([
        [1, 'a'],
        ['b', 2],
      ]),
    ), // a Map (cbor-x tags it 259)
    Buffer.from('a261610161610f', 'hex'), // {"a": 1, "a": 15}: a repeated key
    Buffer.from('a162ff6101', 'hex'), // a key that is not UTF-8 (cbor-x decodes it as U+FFFD)
    Buffer.from('a16161d81c82d81d0001', 'hex'), // {"a": 28([29(0), 1])}: value sharing depends on the rest of the decode
    Buffer.from('a1616101', 'hex').subarray(0, 3), // truncated
  ];
  const decodable = payloads.map((p) => {
    try {
      reference.decode(p);
      return true;
    } catch {
      return false;
    }
  });
  const events = payloads.map((p, i) => transformed(i + 1, p));
  const wire = encodeBatch({ gatewayId: 'gw-1', incarnation: '0123456789abcdef' }, 'r', 'dev-1', events);
  const p = plain(wire);
  assert.equal(p.shapes, undefined, 'no shapes field');
  p.ev.forEach((e, i) => {
    const data = e[3] as Tag;
    assert.ok(data instanceof Tag && data.tag === 24, `event ${i} as tag 24`);
    assert.ok(Buffer.from(data.value as Uint8Array).equals(payloads[i]!), `event ${i} unchanged`);
  });
  const ok = payloads.filter((_, i) => decodable[i]);
  assert.equal(ok.length, payloads.length - 1, 'only the truncated item does not decode');
  assertLossless(
    decodeBatch(
      encodeBatch(
        { gatewayId: 'gw-1', incarnation: '0123456789abcdef' },
        'r',
        'dev-1',
        ok.map((p, i) => transformed(i + 1, p)),
      ),
    ),
    ok,
  );
});

test('a record with a single map keeps it as tag 24: shaping it would cost more than it saves', () => {
  const events = [transformed(1, encodeValue(READING)), ev(2, 'site/a/dev-1', Buffer.from('raw'))];
  const wire = encodeBatch({ gatewayId: 'gw-1', incarnation: '0123456789abcdef' }, 'r', 'dev-1', events);
  assert.equal(plain(wire).shapes, undefined);
  assert.ok(plain(wire).ev[0]![3] instanceof Tag);
  assert.equal(wire.length, format2(events).length + INC_BYTES);
  const batch = decodeBatch(wire);
  assert.deepStrictEqual(batch.events[0]!.value, READING);
  assert.equal(batch.events[1]!.payload.toString(), 'raw');
});

test('mixed shapes, tag 24 items and raw payloads in one batch', () => {
  const a = { temp: 21.5, site: 'a' };
  const b = { level: 3, what: 'fire' };
  const values: unknown[] = [a, b, [1, 2], { ...a, temp: 22 }, {}, b, null];
  const events: SequencedEvent[] = values.map((v, i) => transformed(10 + 2 * i, encodeValue(v)));
  events.splice(2, 0, ev(11, 'site/a/dev-1', Buffer.from('raw')));
  const wire = encodeBatch({ gatewayId: 'gw-1', incarnation: '0123456789abcdef' }, 'r', 'dev-1', events);
  const p = plain(wire);
  assert.deepEqual(p.shapes, [['temp', 'site'], ['level', 'what'], []]);
  assert.deepEqual(
    p.ev.map((e): unknown => (Array.isArray(e[3]) ? e[3][0] : e[3] instanceof Tag ? 'tag 24' : 'raw')),
    [0, 1, 'raw', 'tag 24', 0, 2, 1, 'tag 24'],
  );
  const batch = decodeBatch(wire);
  assert.deepStrictEqual(
    batch.events.filter((e) => 'value' in e).map((e) => e.value),
    values,
  );
  assert.equal(batch.events[2]!.payload.toString(), 'raw');
  assert.deepEqual(
    batch.events.map((e) => e.seq),
    events.map((e) => e.seq),
  );
});

test('shaping keeps what a decoder sees of every value: nested maps, byte strings, big integers, negative zero, floats, tags', () => {
  const payloads = [
    encodeValue({
      nested: { b: 1, a: { deep: [1, { x: null }] } },
      bytes: Buffer.from([0, 255, 1]),
      flags: [true, false, null, undefined],
      big: 2n ** 64n - 1n,
      huge: -(2n ** 70n),
      small: -(2n ** 63n),
      floats: [0.1, -1.5e300, Infinity, -Infinity, NaN, 1e-320],
      date: new Date(1_795_430_000_123),
      set: new Set(['a', 1]),
      uuid: new Tag(Buffer.alloc(16, 0xab), 37),
      intKeys: new Map([[1, 'one']]),
      proto: { ['__proto__']: 1 },
      text: 'ünïcødé ✓',
    }),
    Buffer.from('a3627a30f980006166f93e00627a64fb8000000000000000', 'hex'), // {"z0": -0.0 (half), "f": 1.5 (half), "zd": -0.0 (double)}
    Buffer.from('a2616101695f5f70726f746f5f5f02', 'hex'), // {"a": 1, "__proto__": 2}
    Buffer.from('a1616180', 'hex'), // {"a": []}
    Buffer.from('a161619f0102ff', 'hex'), // {"a": [_ 1, 2]}: indefinite length
  ];
  const wire = encodeBatch(
    { gatewayId: 'gw-1', incarnation: '0123456789abcdef' },
    'r',
    'dev-1',
    payloads.map((p, i) => transformed(i + 1, p)),
  );
  assert.ok(
    plain(wire).ev.every((e) => Array.isArray(e[3])),
    'all shaped',
  );
  const batch = decodeBatch(wire);
  assertLossless(batch, payloads);
  assert.ok(Object.is((batch.events[1]!.value as { z0: number }).z0, -0));
  assert.equal(Object.getPrototypeOf(batch.events[2]!.value), Object.prototype);
});

test('a dead letter is shaped; its payload prints as base64', () => {
  const payload = Buffer.from('garbage{');
  const deadLetter = {
    route: 'telemetry',
    step: '0:decode',
    reason: 'not JSON',
    topic: 'site/a/dev-1',
    client_id: 'd1',
    received_at: 1_700_000_000_001,
    payload,
  };
  const wire = encodeBatch({ gatewayId: 'gw-1', incarnation: '0123456789abcdef' }, '$dead_letters', 'dev-1', [
    transformed(1, encodeValue(deadLetter)),
    transformed(2, encodeValue(deadLetter)),
  ]);
  assert.equal(plain(wire).shapes!.length, 1);
  const batch = decodeBatch(wire);
  assert.deepStrictEqual(batch.events[1]!.value, deadLetter);
  const line = JSON.parse(batchToJsonLines(batch)[0]!) as { value: Record<string, unknown> };
  assert.equal(line.value.payload, payload.toString('base64'));
  assert.equal(line.value.step, '0:decode');
});

test('format 2 batches (tag 24) still decode', () => {
  // written by format 2's encodeBatch: a raw event and {temp: 21.5, ok: true, raw: h'0102'} as tag 24
  const v2 = Buffer.from(
    'a86176026267776467772d3165726f7574656172636b6579656465762d3162733005627430fb4278bcfe5680000066746f70696373816c736974652f612f6465762d3162657682840000004372617784020700d818581aa36474656d70fb4035800000000000626f6bf563726177420102',
    'hex',
  );
  const batch = decodeBatch(v2);
  assert.equal(batch.version, 2);
  assert.deepEqual(
    batch.events.map((e) => [e.seq, e.receivedAt, e.topic]),
    [
      [5, 1_700_000_000_000, 'site/a/dev-1'],
      [7, 1_700_000_000_007, 'site/a/dev-1'],
    ],
  );
  assert.equal(batch.events[0]!.payload.toString(), 'raw');
  assert.deepStrictEqual(batch.events[1]!.value, { temp: 21.5, ok: true, raw: Buffer.from([1, 2]) });
  assert.ok(!('value' in batch.events[0]!));
});

test('malformed format 3 batches are rejected with EH_ERR_DECODE_FORMAT', () => {
  const base = { v: 3, gw: 'gw', route: 'r', key: 'k', s0: 1, t0: 1000, topics: ['t'], shapes: [['a', 'b']] };
  const bad = [
    { ...base, ev: [[0, 0, 0, [1, 1, 2]]] }, // shape index out of range
    { ...base, ev: [[0, 0, 0, [-1, 1, 2]]] },
    { ...base, ev: [[0, 0, 0, ['0', 1, 2]]] },
    { ...base, ev: [[0, 0, 0, [0, 1]]] }, // fewer values than keys
    { ...base, ev: [[0, 0, 0, [0, 1, 2, 3]]] }, // more
    { ...base, ev: [[0, 0, 0, []]] },
    { ...base, shapes: undefined, ev: [[0, 0, 0, [0, 1, 2]]] }, // no shapes table
    { ...base, shapes: 'a', ev: [[0, 0, 0, Buffer.from('x')]] },
    { ...base, shapes: [['a', 1]], ev: [[0, 0, 0, [0, 1, 2]]] }, // a key that is not a string
    { ...base, shapes: [['a', 'a']], ev: [[0, 0, 0, [0, 1, 2]]] }, // a repeated key
    { ...base, v: 2, ev: [[0, 0, 0, [0, 1, 2]]] }, // shaped data before format 3
    { ...base, v: 5, ev: [[0, 0, 0, Buffer.from('x')]] },
    { ...base, v: 4, ev: [[0, 0, 0, Buffer.from('x')]] }, // format 4 without inc
    { ...base, v: 4, inc: 'i', caps: ['x'], ev: [[0, 0, 0, Buffer.from('x')]] },
    { ...base, v: 4, inc: 'i', caps: [{ a: 'b' }, { a: 'c' }], ev: [[0, 0, 0, Buffer.from('x')]] }, // not one per topic
    { ...base, v: 4, inc: 'i', caps: { a: 1 }, ev: [[0, 0, 0, Buffer.from('x')]] },
  ];
  for (const b of bad) assert.throws(() => decodeBatch(encodeValue(b)), isDecodeFormatError, JSON.stringify(b));
  assert.deepStrictEqual(decodeBatch(encodeValue({ ...base, ev: [[0, 0, 0, [0, 1, 2]]] })).events[0]!.value, {
    a: 1,
    b: 2,
  });
});

/** JSON values, and values with what CBOR has beyond JSON: byte strings, big integers, undefined, floats JSON lacks, integer-keyed maps */
const cborValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.jsonValue(),
    fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
    fc.double(),
    fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
    fc.constant(undefined),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 6 }),
    fc
      .array(fc.tuple(fc.integer({ min: -3, max: 3 }), tie('value')), { maxLength: 3 })
      .map((entries) => new Map(entries)),
  ),
})).value;

test('property: any value with string keys survives encode then decode, alone or among others', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(fc.jsonValue(), fc.dictionary(fc.string({ maxLength: 8 }), cborValue, { maxKeys: 8 }), cborValue),
        { minLength: 1, maxLength: 8 },
      ),
      fc.boolean(),
      (values, withRaw) => {
        const payloads = values.map((v) => encodeValue(v));
        const events = payloads.map((p, i) => transformed(i + 1, p));
        if (withRaw) events.push(ev(values.length + 1, 'site/a/dev-1', Buffer.from('raw')));
        const wire = encodeBatch({ gatewayId: 'gw-1', incarnation: '0123456789abcdef' }, 'r', 'dev-1', events);
        const batch = decodeBatch(wire);
        assertLossless({ ...batch, events: batch.events.slice(0, payloads.length) }, payloads);
        if (withRaw) assert.equal(batch.events.at(-1)!.payload.toString(), 'raw');
        assert.ok(wire.length <= format2(events).length + INC_BYTES, 'never larger than format 2 and the incarnation');
      },
    ),
    { numRuns: 300 },
  );
});

test('captures travel once per record when every topic shares them, else once per topic', () => {
  const withCaps = (seq: number, topic: string, captures: Record<string, string>): SequencedEvent => ({
    ...ev(seq, topic, Buffer.from('x')),
    captures,
  });
  const shared = encodeBatch({ gatewayId: 'gw', incarnation: 'i1' }, 'r', 'dev-1', [
    withCaps(1, 'd/dev-1/a', { device: 'dev-1' }),
    withCaps(2, 'd/dev-1/b', { device: 'dev-1' }),
  ]);
  assert.deepEqual((plain(shared) as unknown as { caps: unknown }).caps, { device: 'dev-1' });
  const each = encodeBatch({ gatewayId: 'gw', incarnation: 'i1' }, 'r', 'k', [
    withCaps(1, 's/a/x', { site: 'a' }),
    withCaps(2, 's/b/x', { site: 'b' }),
    ev(3, 'plain', Buffer.from('y')),
  ]);
  assert.deepEqual((plain(each) as unknown as { caps: unknown }).caps, [{ site: 'a' }, { site: 'b' }, {}]);
  const batch = decodeBatch(each);
  assert.deepEqual(
    batch.events.map((e) => e.captures),
    [{ site: 'a' }, { site: 'b' }, {}],
  );
  assert.deepEqual(
    decodeBatch(shared).events.map((e) => e.captures),
    [{ device: 'dev-1' }, { device: 'dev-1' }],
  );
  assert.equal(
    (
      plain(
        encodeBatch({ gatewayId: 'gw', incarnation: 'i1' }, 'r', 'k', [ev(1, 't', Buffer.from('x'))]),
      ) as unknown as { caps?: unknown }
    ).caps,
    undefined,
    'no captures: no field',
  );
});

test('t0, s0 and integers of values are CBOR integers; the decoder gives numbers where exact and BigInt beyond', () => {
  const wire = encodeBatch({ gatewayId: 'gw', incarnation: 'i1' }, 'r', 'k', [
    transformed(2 ** 40, encodeValue({ ts: 1_795_430_000_123, id: 2n ** 63n + 5n, neg: -(2 ** 53) + 1 })),
  ]);
  // "t0" then 0x1b: an unsigned 64-bit integer
  assert.ok(wire.includes(Buffer.from('6274301b', 'hex')), 't0 as an integer');
  assert.ok(wire.includes(Buffer.from('6273301b', 'hex')), 's0 as an integer');
  const batch = decodeBatch(wire);
  assert.equal(batch.events[0]!.seq, 2 ** 40);
  assert.deepStrictEqual(batch.events[0]!.value, { ts: 1_795_430_000_123, id: 2n ** 63n + 5n, neg: -(2 ** 53) + 1 });
});

test('edgehaul decode prints a __proto__ key as it was sent, and names incarnation and captures', () => {
  const wire = encodeBatch({ gatewayId: 'gw', incarnation: 'i1' }, 'r', 'k', [
    { ...transformed(1, Buffer.from('a2695f5f70726f746f5f5f016161f5', 'hex')), captures: { device: 'k' } }, // {"__proto__": 1, "a": true}
    { ...transformed(2, Buffer.from('a2695f5f70726f746f5f5f026161f4', 'hex')), captures: { device: 'k' } },
  ]);
  const lines = batchToJsonLines(decodeBatch(wire));
  assert.ok(lines[0]!.includes('"value":{"__proto__":1,"a":true}'), lines[0]);
  assert.ok(lines[1]!.includes('"value":{"__proto__":2,"a":false}'), lines[1]);
  assert.ok(lines[0]!.includes('"incarnation":"i1"') && lines[0]!.includes('"captures":{"device":"k"}'), lines[0]);
});
