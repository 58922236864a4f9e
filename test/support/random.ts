/** mulberry32: a small seeded PRNG, so a failing run can be repeated with its printed seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed of a test's random choices: `EDGEHAUL_TEST_SEED` when set (to repeat a run), else the clock. */
export function testSeed(env: string = 'EDGEHAUL_TEST_SEED'): number {
  return Number(process.env[env] ?? Date.now() % 2 ** 31);
}
