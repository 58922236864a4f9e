import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Encoder } from 'cbor-x';
import { parseJsonExact, wideIntegers } from '../../../src/core/numbers.js';
import { compileDecode } from '../../../src/transform/steps/decode.js';
import type { Working } from '../../../src/transform/step.js';

const encoder = new Encoder({ useRecords: false, tagUint8Array: false, variableMapSize: true });

test('parseJsonExact: integers beyond 2^53 keep every digit (BigInt); everything else is what JSON.parse gives', () => {
  assert.deepStrictEqual(
    parseJsonExact('{"id":18446744073709551615,"n":-9007199254740993,"ok":9007199254740991,"f":1.5}'),
    { id: 18446744073709551615n, n: -9007199254740993n, ok: 9007199254740991, f: 1.5 },
  );
  // a run of 16 digits inside a string takes the exact parser and changes nothing
  assert.deepStrictEqual(parseJsonExact('{"s":"1234567890123456","x":1e300,"z":-0}'), {
    s: '1234567890123456',
    x: 1e300,
    z: -0,
  });
  const proto = parseJsonExact('{"__proto__":{"a":1},"big":12345678901234567890}') as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(proto), Object.prototype);
  assert.deepStrictEqual(Object.keys(proto), ['__proto__', 'big']);
  for (const text of ['[1,2', '{"a":}', '', 'tru', '[1234567890123456789'])
    assert.throws(() => parseJsonExact(text), text);
});

test('wideIntegers: integers of more than 32 bits become CBOR integers, floats stay floats; the input is not changed', () => {
  const reading = {
    ts: 1_795_430_000_123,
    n: 5,
    t: 21.5,
    neg: -(2 ** 40),
    nested: [{ ts: 2 ** 32 }],
    big: 2n ** 70n,
    f: 2 ** 60,
  };
  const copy = structuredClone(reading);
  const bytes = encoder.encode(wideIntegers(reading));
  assert.deepStrictEqual(reading, copy, 'input untouched');
  // ts: 0x1b + 8 bytes (major type 0), not 0xfb (float64)
  assert.ok(bytes.includes(Buffer.from('6274731b000001a2', 'hex')), bytes.toString('hex'));
  const same = { a: 1, b: [2, 'x'], c: 1.5 };
  assert.equal(wideIntegers(same), same, 'nothing to change: the same object');
  // 2^60 is a float64 beyond the safe range: it stays a float
  assert.ok(bytes.includes(Buffer.from('6166fb43b0000000000000', 'hex')));
});

function working(payload: string): Working {
  return {
    topic: 't',
    clientId: 'c',
    receivedAt: 0,
    payload: Buffer.from(payload),
    vars: {},
    value: undefined,
    eventTime: 0,
    kafkaTopic: 'k',
    key: 'k',
    priority: 0,
  };
}

test('decode json keeps 64-bit integers exact', () => {
  const step = compileDecode({ format: 'json' });
  const out = step.run(working('{"id":9223372036854775807,"ts":1795430000123}'), 0) as Working;
  assert.deepStrictEqual(out.value, { id: 9223372036854775807n, ts: 1_795_430_000_123 });
});
