// One seed for every random suite (fast-check properties and the model's random runs): taken from
// CARDLINK_SEED, or drawn and printed, so that any run can be repeated exactly with
// `CARDLINK_SEED=<seed> npm test -- <file>`. scripts/run-tests.mjs draws it once for a whole run
// and loads this module into every test process; a test file run on its own imports it itself.
import fc from 'fast-check';

function seedFromEnv(): number {
  const raw = process.env.CARDLINK_SEED;
  if (raw === undefined || raw === '') return (Date.now() ^ (process.pid << 8)) >>> 0;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`CARDLINK_SEED must be an integer from 0 to 4294967295, not '${raw}'`);
  return n;
}

export const SEED = seedFromEnv();
process.env.CARDLINK_SEED = String(SEED);
fc.configureGlobal({ seed: SEED });

// scripts/run-tests.mjs prints the seed once for the whole run.
let printed = process.env.CARDLINK_SEED_PRINTED === '1';
/** Prints the seed once per process (to stderr, which node:test passes through). */
export function printSeed(suite = 'random suites'): number {
  if (!printed) process.stderr.write(`${suite}: seed ${SEED} (repeat with CARDLINK_SEED=${SEED})\n`);
  printed = true;
  return SEED;
}
printSeed();

/**
 * A uniform pseudo-random generator on [0, 1) from a 32-bit seed (mulberry32): for suites that
 * draw their own parameters, so that a formula over uniform draws predicts their rates.
 */
export function uniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x100000000;
  };
}

/** An integer drawn uniformly from min..max inclusive. */
export function integer(rand: () => number, min: number, max: number): number {
  return min + Math.floor(rand() * (max - min + 1));
}
