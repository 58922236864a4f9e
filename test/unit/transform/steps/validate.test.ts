import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertConfigError, assertFails, runValue, step, working } from './fixtures.js';

const rules = {
  validate: {
    fields: {
      temp: { type: 'number', min: -50, max: 150, required: true },
      id: { type: 'string', pattern: '^[a-z0-9-]+$' },
      state: { type: 'string', enum: ['on', 'off'] },
      n: { type: 'integer' },
      tags: { type: 'array', max_length: 2 },
      note: { type: 'string', nullable: true },
    },
  },
};

describe('validate step', () => {
  it('passes a valid value unchanged', () => {
    const value = { temp: 21.5, id: 'dev-1', state: 'on', n: 3, tags: ['a'], note: null, other: 1 };
    assert.equal(runValue(step(rules), working({ value })), value);
  });

  it('fails naming the field and the rule', () => {
    const s = step(rules);
    assertFails(s, working({ value: { id: 'x' } }), /^validate temp: required$/);
    assertFails(s, working({ value: { temp: '21' } }), /^validate temp: expected number, got a string$/);
    assertFails(s, working({ value: { temp: 151 } }), /^validate temp: 151 is above max 150$/);
    assertFails(s, working({ value: { temp: -51 } }), /^validate temp: -51 is below min -50$/);
    assertFails(s, working({ value: { temp: 1, id: 'Dev 1' } }), /^validate id: does not match pattern/);
    assertFails(
      s,
      working({ value: { temp: 1, state: 'dim' } }),
      /^validate state: "dim" is not one of \["on","off"\]$/,
    );
    assertFails(s, working({ value: { temp: 1, n: 1.5 } }), /^validate n: expected integer/);
    assertFails(s, working({ value: { temp: 1, tags: [1, 2, 3] } }), /^validate tags: length 3 is above max_length 2$/);
    assertFails(s, working({ value: { temp: 1, id: null } }), /^validate id: is null$/);
    assertFails(s, working({ value: [1] }), /^validate: value is an array, not an object$/);
  });

  it('allow_other_fields: false fails on an unlisted field', () => {
    const s = step({ validate: { fields: { a: { type: 'number' } }, allow_other_fields: false } });
    assertFails(s, working({ value: { a: 1, b: 2 } }), /^validate b: field not allowed$/);
  });

  it('rejects contradictory or unknown rules with their path', () => {
    assertConfigError({ validate: { fields: { t: { type: 'float' } } } }, ['validate', 'fields', 't', 'type']);
    assertConfigError(
      { validate: { fields: { t: { type: 'number', min: 5, max: 1 } } } },
      ['validate', 'fields', 't'],
      /above max/,
    );
    assertConfigError(
      { validate: { fields: { t: { type: 'string', min: 1 } } } },
      ['validate', 'fields', 't'],
      /number or integer/,
    );
    assertConfigError(
      { validate: { fields: { t: { type: 'string', pattern: '(' } } } },
      ['validate', 'fields', 't', 'pattern'],
      /bad pattern/,
    );
    assertConfigError({ validate: { fields: { t: { type: 'number', minimum: 1 } } } }, ['validate', 'fields', 't']);
  });
});
