import { CardFormatError } from './errors.js';

const FILE = 'cardid';

/** cardid holds exactly 16 opaque bytes: the card GUID that Windows' caches are keyed by. */
export const CARDID_SIZE = 16;

export function parseCardId(b: Uint8Array): Uint8Array {
  checkSize(b.length);
  return new Uint8Array(b);
}

export function serializeCardId(id: Uint8Array): Uint8Array {
  checkSize(id.length);
  return new Uint8Array(id);
}

function checkSize(length: number): void {
  if (length !== CARDID_SIZE) {
    throw new CardFormatError(
      FILE,
      Math.min(length, CARDID_SIZE),
      `cardid is ${length} bytes, expected exactly ${CARDID_SIZE}`,
    );
  }
}
