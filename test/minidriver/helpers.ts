import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CardFormatError } from '../../src/minidriver/index.js';

/** Runs `fn`, which must throw a CardFormatError naming `file`, `offset` and a reason matching `reason`. */
export function assertFormatError(fn: () => unknown, expected: { file: string; offset: number; reason: RegExp }): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof CardFormatError, `expected CardFormatError, got ${String(err)}`);
    assert.equal(err.code, 'CARD_FORMAT');
    assert.equal(err.file, expected.file);
    assert.equal(err.offset, expected.offset, `offset of: ${err.message}`);
    assert.match(err.reason, expected.reason);
    assert.equal(err.message, `${err.file}: offset ${err.offset}: ${err.reason}`);
    return true;
  });
}

export function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(`./fixtures/${name}`, import.meta.url)));
}
