/**
 * Setup without surprises (issue 12, point 9): every package of the lock file that runs an
 * install script is named in package.json's allowScripts, and the key algorithms are stated
 * (RSA only) where a user looks: the README and `card gen --help`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { cli } from '../helpers/cli.js';

test('every install script in the lock file is covered by allowScripts', () => {
  const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as { packages: Record<string, { hasInstallScript?: boolean }> };
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { allowScripts: Record<string, boolean>; dependencies: Record<string, string> };
  const withScripts = Object.entries(lock.packages)
    .filter(([, p]) => p.hasInstallScript)
    .map(([path]) => path.replace(/^.*node_modules\//, ''));
  assert.ok(withScripts.length > 0, 'the scan finds install scripts');
  assert.deepEqual(withScripts.filter((name) => !(name in pkg.allowScripts)), []);
  // The lock file's root lists what package.json lists (npm ci refuses a lock out of step).
  const root = (JSON.parse(readFileSync('package-lock.json', 'utf8')) as { packages: Record<string, { dependencies?: Record<string, string> }> }).packages['']!;
  assert.deepEqual(root.dependencies, pkg.dependencies);
});

test('RSA only is said in the README and in card gen --help', async () => {
  assert.match(readFileSync('README.md', 'utf8'), /\*\*Keys are RSA only\*\*/);
  const help = (await cli(['card', 'gen', '--help'])).stdout;
  assert.match(help, /RSA only/);
  assert.match(help, /one of: rsa2048, rsa3072, rsa4096, rsa1024/);
});

/** Whether Node `version` (x.y.z) meets an engines range: `||` alternatives of space-joined comparators (>=, >, <=, <, ^, ~, =, x-ranges). */
function nodeSatisfies(version: string, range: string): boolean {
  const v = version.split('.').map(Number);
  const cmp = (a: number[], b: number[]): number => (a[0]! - b[0]!) || (a[1]! - b[1]!) || (a[2]! - b[2]!);
  return range.split('||').some((alt) =>
    alt.trim().replace(/(>=|<=|>|<|=|\^|~)\s+/g, '$1').split(/\s+/).filter(Boolean).every((c) => {
      const m = /^(>=|<=|>|<|=|\^|~)?v?(\d+|[x*])(?:\.(\d+|[x*]))?(?:\.(\d+|[x*]))?/.exec(c);
      if (!m) throw new Error(`engines range not understood: ${range}`);
      const [, op = '', ...parts] = m;
      const wild = parts.findIndex((p) => p === undefined || p === 'x' || p === '*');
      const n = parts.map((p) => (p === undefined || p === 'x' || p === '*' ? 0 : Number(p)));
      const d = cmp(v, n);
      switch (op) {
        case '>=': return d >= 0;
        case '>': return d > 0;
        case '<=': return d <= 0;
        case '<': return d < 0;
        case '^': return d >= 0 && v[0] === n[0];
        case '~': return d >= 0 && v[0] === n[0] && (wild === 1 || v[1] === n[1]);
        default: return wild === -1 ? d === 0 : parts.slice(0, wild).every((p, i) => Number(p) === v[i]);
      }
    }),
  );
}

test('every package in the lock file accepts Node 20 (no EBADENGINE on the documented version)', () => {
  assert.equal(nodeSatisfies('20.20.2', '>=22'), false, 'the check itself can fail');
  assert.equal(nodeSatisfies('20.20.2', '^18.17.0 || >=20.5.0'), true);
  const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as { packages: Record<string, { engines?: { node?: string } | string[] }> };
  const refused = Object.entries(lock.packages)
    .filter(([, p]) => p.engines && !Array.isArray(p.engines) && p.engines.node !== undefined)
    .filter(([, p]) => !nodeSatisfies('20.0.0', (p.engines as { node: string }).node) && !nodeSatisfies(process.versions.node, (p.engines as { node: string }).node))
    .map(([path, p]) => `${path.replace(/^.*node_modules\//, '')} wants node ${(p.engines as { node: string }).node}`);
  assert.deepEqual(refused, []);
});
