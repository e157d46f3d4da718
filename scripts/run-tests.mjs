#!/usr/bin/env node
// Runs the node:test suites written in TypeScript (through tsx). Arguments filter test files by
// substring: `npm test -- minidriver emulator`.
//
// When a selected file lives in test/pcsc/, a private pcscd with the vpcd virtual readers is started
// once around the whole run (scripts/pcsc-up.sh) and stopped by PID at the end (pcsc-down.sh); its
// log is printed when the run fails. The PC/SC test files share one pcscd and its two vpcd slots, so
// they take a lock among themselves (test/pcsc/harness.ts).
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const passthrough = process.argv.slice(2).filter((a) => a.startsWith('-'));
const files = walk('test')
  .map((f) => relative('.', f))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}

const needsPcsc = files.some((f) => f.startsWith(join('test', 'pcsc') + '/'));
const pcscState = resolve(process.env.PCSC_STATE_DIR ?? '.pcsc-state');
const env = { ...process.env };
// One seed for every random suite of the run (test/helpers/random-seed.ts), printed so that the run
// can be repeated: CARDLINK_SEED=<seed> npm test -- <files>.
env.CARDLINK_SEED ||= String(Math.floor(Math.random() * 0x100000000));
env.CARDLINK_SEED_PRINTED = '1';
console.log(`# random suites: seed ${env.CARDLINK_SEED} (repeat with CARDLINK_SEED=${env.CARDLINK_SEED})`);
let pcscUp = false;

function pcscDown() {
  if (!pcscUp) return;
  pcscUp = false;
  spawnSync('bash', ['scripts/pcsc-down.sh'], { stdio: 'inherit', env });
}

if (needsPcsc) {
  env.PCSC_STATE_DIR = pcscState;
  env.CARDLINK_PCSC_TESTS = '1';
  // APDU-level pcscd logging, so the log printed on a failure shows what went over the wire.
  env.PCSCD_DEBUG ??= '1';
  rmSync(join(pcscState, 'pcscd.log'), { force: true });
  const up = spawnSync('bash', ['scripts/pcsc-up.sh'], { stdio: 'inherit', env });
  if (up.status !== 0) {
    console.error('could not start pcscd for the PC/SC tests (scripts/pcsc-up.sh failed)');
    process.exit(1);
  }
  pcscUp = true;
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      pcscDown();
      process.exit(130);
    });
  }
}

let status = 1;
try {
  const res = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--import', './test/helpers/random-seed.ts', '--test', '--test-concurrency=2', '--test-timeout=600000', ...passthrough, ...files],
    { stdio: 'inherit', env },
  );
  status = res.status ?? 1;
  if (status !== 0 && needsPcsc) {
    const log = join(pcscState, 'pcscd.log');
    if (existsSync(log)) {
      const lines = readFileSync(log, 'utf8').trimEnd().split('\n');
      console.error(`\n--- pcscd log (${log}, last ${Math.min(lines.length, 300)} of ${lines.length} lines) ---`);
      console.error(lines.slice(-300).join('\n'));
      console.error('--- end of pcscd log ---');
    }
  }
} finally {
  pcscDown();
}
process.exit(status);
