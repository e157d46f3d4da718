// `npm run bench startup`: what starting the CLI costs over starting Node itself. Runs the built
// CLI (bin/cardlink → dist/, rebuilt first unless --no-build) and `node -e 0`, alternately, and
// prints the median wall time of each and the difference: the CLI's own module loading and work.
// Target (issue 12): `cardlink --help` and `card ls --image` well under 150 ms above `node -e 0`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const RUNS = Number(process.env.RUNS ?? 15);

if (!process.argv.includes('--no-build')) {
  const built = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  if (built.status !== 0) process.exit(1);
}

const home = mkdtempSync(join(tmpdir(), 'cardlink-bench-startup-'));
const image = join(home, 'card.json');
const env = { ...process.env, CARDLINK_HOME: home, CARDLINK_PIN: '123456', CARDLINK_ADMIN_KEY: '01020304050607080102030405060708'.padEnd(48, '0') };

function run(args: string[]): number {
  const start = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { env, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

try {
  run(['bin/cardlink', 'card', 'init', '--image', image]);
  const cases: Array<[string, string[]]> = [
    ['node -e 0', ['-e', '0']],
    ['cardlink --help', ['bin/cardlink', '--help']],
    ['cardlink card install --help', ['bin/cardlink', 'card', 'install', '--help']],
    ['cardlink card ls --image', ['bin/cardlink', 'card', 'ls', '--image', image]],
    ['cardlink card info --image', ['bin/cardlink', 'card', 'info', '--image', image]],
  ];
  const times = new Map<string, number[]>(cases.map(([name]) => [name, []]));
  // Alternating runs: a busy neighbour on the machine slows every case alike.
  for (let i = 0; i < RUNS; i++) for (const [name, args] of cases) times.get(name)!.push(run(args));
  const base = median(times.get('node -e 0')!);
  const rows = cases.map(([name]) => {
    const m = median(times.get(name)!);
    return { command: name, medianMs: Math.round(m), overNodeMs: Math.round(m - base) };
  });
  console.log(`start-up, median of ${RUNS} runs (wall clock, ${process.version}):`);
  console.table(rows);
} finally {
  rmSync(home, { recursive: true, force: true });
}
