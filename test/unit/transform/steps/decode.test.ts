import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { encode } from 'cbor-x';
import fc from 'fast-check';
import { StepFailure } from '../../../../src/transform/step.js';
import { assertConfigError, assertFails, runValue, step, working } from './fixtures.js';

const require = createRequire(import.meta.url);
const sparkplug = (require('sparkplug-payload') as { get(ns: string): { encodePayload(p: unknown): Uint8Array } }).get(
  'spBv1.0',
);

describe('decode step', () => {
  it('json: an object payload becomes the value', () => {
    assert.deepEqual(runValue(step({ decode: 'json' }), working({ payload: '{"temp":21.5,"id":"a"}' })), {
      temp: 21.5,
      id: 'a',
    });
  });

  it('json: bad JSON, empty payload and invalid UTF-8 fail with the reason', () => {
    const s = step({ decode: 'json' });
    assertFails(s, working({ payload: '{"temp":' }), /^decode json: .*JSON/);
    assertFails(s, working({ payload: '' }), /^decode json: empty payload$/);
    assertFails(s, working({ payload: Buffer.from([0x22, 0xff, 0x22]) }), /^decode json: .*(utf-8|UTF-8|encoded data)/);
  });

  it('json: a "__proto__" key stays a field and does not change the prototype', () => {
    const v = runValue(step({ decode: 'json' }), working({ payload: '{"__proto__":{"polluted":1},"a":1}' })) as Record<
      string,
      unknown
    >;
    assert.equal(Object.getPrototypeOf(v), Object.prototype);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  it('cbor: decodes, and trailing bytes fail', () => {
    const s = step({ decode: 'cbor' });
    assert.deepEqual(runValue(s, working({ payload: encode({ temp: 3, on: true }) })), { temp: 3, on: true });
    assertFails(s, working({ payload: Buffer.concat([encode({ a: 1 }), Buffer.from([1])]) }), /^decode cbor: /);
  });

  it('number: a plain reading becomes { value } or the configured field', () => {
    assert.deepEqual(runValue(step({ decode: 'number' }), working({ payload: ' 21.5\n' })), { value: 21.5 });
    assert.deepEqual(runValue(step({ decode: { format: 'number', field: 'temp' } }), working({ payload: '-4e2' })), {
      temp: -400,
    });
    const s = step({ decode: 'number' });
    for (const bad of ['', 'abc', '0x10', '1,5', 'Infinity', '1e999', '12 13'])
      assertFails(s, working({ payload: bad }), /^decode number: /);
  });

  it('text: UTF-8 text, invalid UTF-8 fails', () => {
    assert.deepEqual(runValue(step({ decode: { format: 'text', field: 'line' } }), working({ payload: 'héllo' })), {
      line: 'héllo',
    });
    assertFails(step({ decode: 'text' }), working({ payload: Buffer.from([0xc3]) }), /^decode text: /);
  });

  it('raw: the payload bytes as they are', () => {
    const payload = Buffer.from([0, 1, 2]);
    assert.equal(runValue(step({ decode: 'raw' }), working({ payload })), payload);
  });

  it('sparkplug_b: metrics with 64-bit values as numbers where exact, else strings', () => {
    const payload = Buffer.from(
      sparkplug.encodePayload({
        timestamp: 1_700_000_000_000,
        seq: 3,
        metrics: [
          { name: 'temp', type: 'Double', value: 21.5, timestamp: 1_700_000_000_001 },
          { name: 'count', type: 'Int64', value: 12_345_678_901_234 },
          { name: 'on', type: 'Boolean', value: true },
        ],
      }),
    );
    const v = runValue(step({ decode: 'sparkplug_b' }), working({ payload })) as {
      timestamp: number;
      seq: number;
      metrics: Array<Record<string, unknown>>;
    };
    assert.equal(v.timestamp, 1_700_000_000_000);
    assert.equal(v.seq, 3);
    assert.deepEqual(v.metrics[0], { name: 'temp', type: 'Double', value: 21.5, timestamp: 1_700_000_000_001 });
    assert.equal(v.metrics[1]!.value, 12_345_678_901_234);
    assert.equal(v.metrics[2]!.value, true);

    const flat = runValue(step({ decode: { format: 'sparkplug_b', flatten: true } }), working({ payload }));
    assert.deepEqual(flat, { timestamp: 1_700_000_000_000, seq: 3, temp: 21.5, count: 12_345_678_901_234, on: true });
    assertFails(step({ decode: 'sparkplug_b' }), working({ payload: 'garbage-not-proto' }), /^decode sparkplug_b: /);
  });

  it('rejects unknown formats and options that do not apply', () => {
    assertConfigError({ decode: 'xml' }, ['decode', 'format'], /expected one of "json"/);
    assertConfigError({ decode: { format: 'json', field: 'v' } }, ['decode', 'field'], /number and text only/);
    assertConfigError({ decode: { format: 'number', flatten: true } }, ['decode', 'flatten']);
    assertConfigError({ decode: { format: 'json', extra: 1 } }, ['decode']);
  });

  it('property: any payload either decodes or fails with a StepFailure carrying a reason, for every format', () => {
    const formats = ['json', 'cbor', 'number', 'text', 'raw', 'sparkplug_b'] as const;
    const steps = formats.map((f) => [f, step({ decode: f })] as const);
    const payloads = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.json().map((s) => new TextEncoder().encode(s)),
      fc.jsonValue().map((v) => new Uint8Array(encode(v))),
      fc.double().map((d) => new TextEncoder().encode(String(d))),
      fc.string({ unit: 'binary', maxLength: 32 }).map((s) => new TextEncoder().encode(s)),
    );
    fc.assert(
      fc.property(payloads, (bytes) => {
        for (const [format, s] of steps) {
          const ev = working({ payload: Buffer.from(bytes) });
          try {
            const out = s.run(ev, 0);
            assert.equal(out, ev, `${format} returns the event`);
            if (format !== 'raw') assert.notEqual(ev.value, undefined, `${format} gives a value`);
          } catch (err) {
            assert.ok(err instanceof StepFailure, `${format} threw ${String(err)}`);
            assert.ok(
              err.reason.startsWith(`decode ${format}: `) && err.reason.length > `decode ${format}: `.length,
              err.reason,
            );
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});
