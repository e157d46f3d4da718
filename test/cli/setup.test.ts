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
