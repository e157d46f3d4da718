/**
 * Error codes name one kind of failure each, across every layer: a script branching on
 * `error.code` (the CLI's --json output, the service's JSON errors) must never have to ask which
 * layer a code came from. Collected from the source, so a new code that collides fails here.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** code → the error classes that raise it, from `new XError('CODE'` and `super('CODE'` in XError. */
function codesByClass(): Map<string, Set<string>> {
  const byCode = new Map<string, Set<string>>();
  const add = (code: string, cls: string): void => {
    if (!byCode.has(code)) byCode.set(code, new Set());
    byCode.get(code)!.add(cls);
  };
  for (const file of walk('src')) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/new (\w+Error)\(\s*'([A-Z][A-Z0-9_]+)'/g)) add(m[2]!, m[1]!);
    for (const m of text.matchAll(/class (\w+) extends CardlinkError \{[\s\S]*?\n\}/g)) {
      for (const s of m[0].matchAll(/super\(\s*'([A-Z][A-Z0-9_]+)'/g)) add(s[1]!, m[1]!);
    }
    for (const m of text.matchAll(/type (\w+?)ErrorCode\s*=([^;]+);/g)) {
      for (const s of m[2]!.matchAll(/'([A-Z][A-Z0-9_]+)'/g)) add(s[1]!, `${m[1]}Error`);
    }
  }
  return byCode;
}

describe('error codes', () => {
  it('were found (the scan still matches how errors are written)', () => {
    const codes = codesByClass();
    assert.ok(codes.size > 40, `only ${codes.size} codes found`);
    for (const known of ['PIN_BLOCKED', 'CARD_FORMAT', 'NO_CARD', 'CSR_INVALID', 'FILE_NOT_FOUND']) assert.ok(codes.has(known), known);
  });

  it('each code belongs to one error class', () => {
    const shared = [...codesByClass()].filter(([, classes]) => classes.size > 1).map(([code, classes]) => `${code}: ${[...classes].sort().join(', ')}`);
    assert.deepEqual(shared, []);
  });
});
