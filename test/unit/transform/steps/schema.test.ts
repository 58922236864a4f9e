import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { compileStep, STEP_KINDS, stepSchema } from '../../../../src/transform/steps/index.js';
import { CTX } from './fixtures.js';

const steps = z.array(stepSchema);

describe('step schema', () => {
  it('accepts one example of every kind, as in the README', () => {
    const parsed = steps.parse([
      { decode: 'json' },
      { validate: { fields: { temp: { type: 'number', min: -50, max: 150, required: true } } } },
      { filter: "temp > -40 && status != 'test'" },
      {
        map: {
          rename: { t: 'temp' },
          remove: ['debug'],
          set: { unit: 'C' },
          compute: { temp_f: 'temp * 9 / 5 + 32' },
          convert: { pressure: { from: 'psi', to: 'kPa' } },
        },
      },
      {
        enrich: {
          gateway: true,
          site: 'plant-7',
          tags: { line: '3' },
          received_at: true,
          device_time: { field: 'ts', max_skew_secs: 300 },
        },
      },
      { deadband: { field: 'temp', abs: 0.5, percent: 2, max_silence_secs: 300, by: '{device}' } },
      { dedupe: { id: 'msg_id', window_secs: 60, by: '{device}' } },
      {
        window: {
          secs: 60,
          by: '{device}',
          fields: ['temp', 'hum'],
          aggregates: ['count', 'min', 'max', 'mean', 'sum', 'last'],
        },
      },
      { route: { topic: 'alarms.{site}', key: '{device}', priority: 10 } },
    ]);
    assert.deepEqual(
      parsed.map((s) => Object.keys(s)[0]),
      [...STEP_KINDS],
    );
    for (const s of parsed) assert.equal(compileStep(s, CTX).kind, Object.keys(s)[0]);
  });

  it('rejects an unknown kind, two kinds in one item and an empty item, with the path', () => {
    const unknown = steps.safeParse([{ decode: 'json' }, { deduplicate: { id: 'x' } }]);
    assert.equal(unknown.success, false);
    assert.deepEqual(unknown.error.issues[0]!.path, [1]);
    assert.match(unknown.error.issues[0]!.message, /deduplicate/);
    const two = steps.safeParse([{ decode: 'json', filter: 'a > 1' }]);
    assert.match(two.error!.issues[0]!.message, /one kind per step, got decode and filter/);
    const none = steps.safeParse([{}]);
    assert.match(none.error!.issues[0]!.message, /a step is one of decode, validate/);
  });

  it('an unknown option names its path below the step', () => {
    const r = steps.safeParse([{ deadband: { field: 't', abs: 1, max_silence: 5 } }]);
    assert.deepEqual(r.error!.issues[0]!.path, [0, 'deadband']);
    assert.match(r.error!.issues[0]!.message, /max_silence/);
  });
});

describe('expression library', () => {
  it('contains no eval and no new Function (it interprets, never generates code)', () => {
    const require = createRequire(import.meta.url);
    const lib = dirname(require.resolve('@marcbachmann/cel-js'));
    const files = readdirSync(lib).filter((f) => f.endsWith('.js'));
    assert.ok(files.length > 5);
    for (const f of files) {
      const text = readFileSync(join(lib, f), 'utf8');
      assert.doesNotMatch(text, /new Function\s*\(|[^.\w]eval\s*\(/, f);
    }
  });
});
