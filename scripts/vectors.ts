/**
 * Writes test/vectors from the corpus in test/support/vectors.ts (the real
 * encoder for format 4; docs/record-format.md, "Test vectors").
 *
 *   npm run vectors            write the corpus
 *   npm run vectors -- --check exit 1 when the checked-in corpus differs
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildCorpus, VECTORS_DIR } from '../test/support/vectors.js';

function main(): void {
  const check = process.argv.includes('--check');
  const files = buildCorpus();
  let differ = 0;
  if (!check) mkdirSync(VECTORS_DIR, { recursive: true });
  for (const [name, bytes] of files) {
    const path = join(VECTORS_DIR, name);
    if (check) {
      let old: Buffer | null;
      try {
        old = readFileSync(path);
      } catch {
        old = null;
      }
      if (old === null || !old.equals(bytes)) {
        differ++;
        process.stderr.write(`${name}: differs from what the encoder writes\n`);
      }
    } else writeFileSync(path, bytes);
  }
  if (check && differ > 0) process.exit(1);
  process.stdout.write(`${check ? 'checked' : 'wrote'} ${files.size} files in test/vectors\n`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === resolve(import.meta.dirname, 'vectors.js')) main();
