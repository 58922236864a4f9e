import { wideIntegers } from '../../../src/core/numbers.js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Encoder, Tag } from 'cbor-x';
import fc from 'fast-check';
import { CborWriter, headSize, intSize, itemEnd, MAJOR_ARRAY, textSize } from '../../../src/forward/cbor-bytes.js';

const encoder = new Encoder({ useRecords: false, tagUint8Array: false, variableMapSize: true });

const values = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.jsonValue(),
    fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
    fc.double(),
    fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    fc.string({ maxLength: 300 }),
    fc.constant(undefined),
    fc.date({ noInvalidDate: true }),
    fc.array(tie('value'), { maxLength: 30 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 30 }),
    fc.tuple(fc.constantFrom(32, 37, 100, 1001, 55799), tie('value')).map(([tag, v]) => new Tag(v, tag)), // tags that need no context
  ),
})).value;

test('property: itemEnd finds the end of any item cbor-x writes, and -1 for any truncation of it', () => {
  fc.assert(
    fc.property(values, fc.nat(), (v, cut) => {
      const b = encoder.encode(v);
      assert.equal(itemEnd(b, 0), b.length);
      const withTail = Buffer.concat([Buffer.from([0x01]), b, Buffer.from([0xf6])]);
      assert.equal(itemEnd(withTail, 1), b.length + 1);
      assert.equal(itemEnd(b.subarray(0, cut % b.length), 0), -1);
    }),
    { numRuns: 500 },
  );
});

test('itemEnd refuses items that are ill-formed or decode differently elsewhere', () => {
  const refused = {
    break: 'ff',
    reserved: '1c',
    'indefinite byte string': '5f4101ff',
    'indefinite text string': '7f6161ff',
    'odd indefinite map': 'bf01ff',
    'unterminated array': '9f01',
    'simple value 0': 'e0',
    'simple value 32': 'f820',
    'value sharing 28': 'd81c01',
    'shared reference 29': 'd81d00',
    'packed table 51': 'd83384808080',
    'record definition': 'd9dfff83010203',
    'stringref namespace 256': 'd9010001',
    'array longer than its bytes': '9a0fffffff',
  };
  for (const [what, hex] of Object.entries(refused)) assert.equal(itemEnd(Buffer.from(hex, 'hex'), 0), -1, what);
  const deep = Buffer.concat([Buffer.alloc(64, 0x81), Buffer.from([0x01])]);
  assert.equal(itemEnd(deep, 0), deep.length, '64 levels');
  assert.equal(itemEnd(Buffer.concat([Buffer.from([0x81]), deep]), 0), -1, '65 levels');
  assert.equal(itemEnd(Buffer.from('d8258401f4f5f7', 'hex'), 0), 7, 'an unknown tag, false, true, undefined');
});

test('the writer fills exactly the size the *Size functions give, and says when it does not', () => {
  const ints = [
    0,
    23,
    24,
    255,
    256,
    65_535,
    65_536,
    2 ** 32 - 1,
    2 ** 32,
    -1,
    -24,
    -25,
    -(2 ** 32),
    -(2 ** 32) - 1,
    Number.MAX_SAFE_INTEGER,
  ];
  const texts = ['', 'a', 'é✓', 'x'.repeat(300)];
  const w = new CborWriter(
    headSize(ints.length + texts.length) +
      ints.reduce((n, i) => n + intSize(i), 0) +
      texts.reduce((n, t) => n + textSize(t), 0),
  );
  w.head(MAJOR_ARRAY, ints.length + texts.length);
  for (const i of ints) w.int(i);
  for (const t of texts) w.text(t);
  assert.ok(
    w.done().equals(encoder.encode(wideIntegers([...ints, ...texts]))),
    'as cbor-x writes them, integers as integers',
  );
  const short = new CborWriter(3);
  short.int(1);
  assert.throws(() => short.done(), /wrote 1 of 3 bytes/);
});
