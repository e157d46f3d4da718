import { CardFormatError } from './errors.js';
import { readPaddedName, writePaddedName } from './fields.js';

const FILE = 'cardapps';

/** Each application is an 8-byte NUL-padded name (a full 8-character name has no terminator). */
export const CARDAPPS_ENTRY_SIZE = 8;

/** Rejected: a length that is not a multiple of 8, an all-zero entry, an invalid name. */
export function parseCardApps(b: Uint8Array): string[] {
  const extra = b.length % CARDAPPS_ENTRY_SIZE;
  if (extra !== 0) {
    throw new CardFormatError(
      FILE,
      b.length - extra,
      `cardapps is ${b.length} bytes, not a multiple of ${CARDAPPS_ENTRY_SIZE}`,
    );
  }
  const names: string[] = [];
  for (let off = 0; off < b.length; off += CARDAPPS_ENTRY_SIZE) {
    const what = `entry ${off / CARDAPPS_ENTRY_SIZE}`;
    const name = readPaddedName(b, off, CARDAPPS_ENTRY_SIZE, FILE, what);
    if (name === '') throw new CardFormatError(FILE, off, `${what} is empty`);
    names.push(name);
  }
  return names;
}

export function serializeCardApps(names: readonly string[]): Uint8Array {
  const out = new Uint8Array(names.length * CARDAPPS_ENTRY_SIZE);
  names.forEach((name, i) => {
    const off = i * CARDAPPS_ENTRY_SIZE;
    if (name === '') throw new CardFormatError(FILE, off, `entry ${i} is empty`);
    writePaddedName(out, off, name, FILE, `entry ${i}`);
  });
  return out;
}
