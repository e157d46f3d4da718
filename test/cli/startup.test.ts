/**
 * Start-up cost is module loading (bench/startup.ts measures it). What `cardlink --help`, a typo
 * or `card ls` load is fixed by their static imports, so that is what is checked here: the help
 * path loads no layer below the CLI, and the card commands do not load the ASN.1/X.509 library
 * (about 100 ms) that only csr needs.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';

/** Every module loaded by importing `entry`: static imports and re-exports, not `import type` nor import(). */
function staticClosure(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    if (!file.endsWith('.ts')) return;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)) {
      if (m[1]) continue;
      const spec = m[2]!;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else seen.add(`package:${spec}`);
    }
  };
  visit(resolve(entry));
  return new Set([...seen].map((f) => (f.startsWith('package:') ? f : relative('.', f))));
}

describe('commands load lazily', () => {
  test('cardlink --help, a typo or any help page loads only the CLI frame and Node built-ins', () => {
    const loaded = [...staticClosure('src/cli/main.ts')];
    const below = loaded.filter((f) => /^src\/(card|gids|apdu|transport|minidriver|service|windows|agent|demo|vpcd)\//.test(f) || f.startsWith('src/cli/commands/'));
    assert.deepEqual(below, []);
    const packages = loaded.filter((f) => f.startsWith('package:') && !f.startsWith('package:node:'));
    assert.deepEqual(packages, []);
  });

  test('card commands (ls, info, install) do not load the X.509/ASN.1 library that only csr needs', () => {
    const loaded = [...staticClosure(join('src', 'cli', 'commands', 'card.ts'))];
    assert.ok(loaded.includes('src/card/minidriver-card.ts'), 'the scan follows imports');
    assert.deepEqual(loaded.filter((f) => f === 'src/x509.ts' || f.startsWith('package:@peculiar/') || f === 'src/card/csr.ts'), []);
  });
});

describe('a slow card operation says what it is doing', () => {
  test('after the threshold: a line on stderr, then the elapsed time; before it: nothing', async () => {
    const { withProgress } = await import('../../src/cli/progress.js');
    let stderr = '';
    const io = { stdout: () => undefined, stderr: (t: string) => void (stderr += t), env: {} };
    const slow = await withProgress(io, 'generating an RSA-2048 key on the card', () => new Promise((r) => setTimeout(() => r(42), 150)), 30);
    assert.equal(slow, 42);
    assert.match(stderr, /^generating an RSA-2048 key on the card…\ngenerating an RSA-2048 key on the card: 0\.\d s\n$/);
    stderr = '';
    await withProgress(io, 'quick', async () => 1, 1000);
    assert.equal(stderr, '');
  });
});
