import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { isInteger, parse } from 'lossless-json';
import { EdgehaulError } from '../../../src/core/errors.js';
import { decodeBatch, HEADERS } from '../../../src/forward/format.js';
import { buildCorpus, VECTORS_DIR } from '../../support/vectors.js';

interface Manifest {
  vectors: Array<{
    name: string;
    format: number;
    value: string;
    key: string;
    headers: Record<string, string>;
    events: string;
  }>;
  invalid: Array<{ name: string; value: string; error: string }>;
}

const manifest = JSON.parse(readFileSync(join(VECTORS_DIR, 'manifest.json'), 'utf8')) as Manifest;
const read = (name: string): Buffer => readFileSync(join(VECTORS_DIR, name));

/** Expected JSON to the values decodeBatch gives (docs/record-format.md, "Test vectors"). */
function fromExpected(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(fromExpected);
  if (v === null || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1 && keys[0] === '$bytes') return Buffer.from(o.$bytes as string, 'base64');
  if (keys.length === 1 && keys[0] === '$float') return Number(o.$float);
  if (keys.length === 1 && keys[0] === '$map')
    return new Map((o.$map as Array<[unknown, unknown]>).map(([k, x]) => [fromExpected(k), fromExpected(x)]));
  const out: Record<string, unknown> = {};
  for (const k of keys)
    Object.defineProperty(out, k, { value: fromExpected(o[k]), enumerable: true, writable: true, configurable: true });
  return out;
}

const exactNumber = (s: string): number | bigint =>
  isInteger(s) && !Number.isSafeInteger(Number(s)) ? BigInt(s) : Number(s);

test('the checked-in corpus is what the encoder writes now (npm run vectors)', () => {
  for (const [name, bytes] of buildCorpus())
    assert.ok(read(name).equals(bytes), `${name} differs: run npm run vectors`);
});

test('every vector decodes to its expected events', () => {
  assert.ok(manifest.vectors.length >= 10);
  assert.deepEqual(
    [...new Set(manifest.vectors.map((v) => v.format))].sort(),
    [1, 2, 3, 4, 5],
    'every format version still read',
  );
  for (const v of manifest.vectors) {
    const batch = decodeBatch(read(v.value));
    assert.equal(String(batch.version), v.headers[HEADERS.format], v.name);
    assert.equal(batch.key, v.key, v.name);
    const expected = read(v.events)
      .toString('utf8')
      .trim()
      .split('\n')
      .map((l) => fromExpected(parse(l, null, exactNumber)) as Record<string, unknown>);
    const got = batch.events.map((e) => ({
      gateway: batch.gatewayId,
      incarnation: batch.incarnation,
      route: batch.route,
      key: batch.key,
      seq: e.seq,
      received_at: e.receivedAt,
      topic: e.topic,
      captures: { ...e.captures },
      ...(e.aggregate !== undefined ? { aggregate: e.aggregate } : {}),
      ...('value' in e ? { value: e.value } : { payload: e.payload }),
    }));
    assert.equal(got.length, expected.length, v.name);
    got.forEach((g, i) => assert.deepStrictEqual(g, expected[i], `${v.name} event ${i}`));
    assert.equal(v.headers[HEADERS.seqFirst], String(batch.events[0]!.seq));
    assert.equal(v.headers[HEADERS.events], String(batch.events.length));
    if (batch.incarnation !== null) assert.equal(v.headers[HEADERS.incarnation], batch.incarnation);
  }
});

test('every invalid vector fails with one EH_ERR_DECODE_FORMAT error naming the field', () => {
  assert.ok(manifest.invalid.length >= 5);
  for (const v of manifest.invalid) {
    assert.throws(
      () => decodeBatch(read(v.value)),
      (err: unknown) =>
        err instanceof EdgehaulError && err.code === 'EH_ERR_DECODE_FORMAT' && err.message.includes(v.error),
      `${v.name}: an error mentioning ${v.error}`,
    );
  }
});
