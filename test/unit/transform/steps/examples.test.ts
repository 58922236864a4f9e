import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { z } from 'zod';
import { compileStep, stepSchema } from '../../../../src/transform/steps/index.js';
import { CTX } from './fixtures.js';

const dir = resolve(import.meta.dirname, '../../../../../config/examples');

describe('config/examples', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));

  it('holds the three documented examples', () => {
    assert.deepEqual(files.sort(), ['forwarding.yaml', 'sparkplug.yaml', 'telemetry.yaml']);
  });

  for (const file of files) {
    it(`${file}: every route's steps parse and compile`, () => {
      const config = parse(readFileSync(join(dir, file), 'utf8')) as { routes: Array<{ name: string; steps?: unknown }> };
      for (const route of config.routes) {
        const steps = z.array(stepSchema).parse(route.steps ?? []);
        for (const s of steps) compileStep(s, { ...CTX, route: route.name });
      }
    });
  }
});
