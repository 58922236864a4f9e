import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { parseConfig } from '../../../../src/config/load.js';

const dir = resolve(import.meta.dirname, '../../../../../config/examples');

describe('config/examples', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));

  it('holds the three documented examples', () => {
    assert.deepEqual(files.sort(), ['forwarding.yaml', 'sparkplug.yaml', 'telemetry.yaml']);
  });

  for (const file of files) {
    it(`${file} is a valid config whose steps all compile (as check-config does)`, () => {
      const config = parseConfig(readFileSync(join(dir, file), 'utf8'), file);
      assert.ok(config.routes.length >= 2);
      if (file !== 'forwarding.yaml') assert.ok(config.routes.every((r) => r.steps.length > 0));
    });
  }
});
