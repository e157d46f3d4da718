import { CardFormatError } from './errors.js';
import { checkUint, readU16, readU32, writeU16, writeU32 } from './fields.js';

const FILE = 'cardcf';

/** bVersion, bPinsFreshness, wContainersFreshness LE16, wFilesFreshness LE16. */
export const CARDCF_SIZE = 6;

/**
 * CARD_CACHE_FILE_FORMAT. Every value round-trips, so nothing but the length is rejected: the
 * version is kept as found (new GIDS cards hold 0, the CPDK's current version is 1), and the
 * per-application DWORDs the minidriver spec lets follow the 6 bytes are kept in `appFreshness`.
 */
export interface CardCf {
  version: number;
  pinsFreshness: number;
  containersFreshness: number;
  filesFreshness: number;
  appFreshness: number[];
}

export function parseCardCf(b: Uint8Array): CardCf {
  if (b.length < CARDCF_SIZE) {
    throw new CardFormatError(FILE, b.length, `cardcf is ${b.length} bytes, expected at least ${CARDCF_SIZE}`);
  }
  const extra = (b.length - CARDCF_SIZE) % 4;
  if (extra !== 0) {
    throw new CardFormatError(
      FILE,
      b.length - extra,
      `${extra} trailing bytes do not make a whole per-application DWORD`,
    );
  }
  const appFreshness: number[] = [];
  for (let off = CARDCF_SIZE; off < b.length; off += 4) appFreshness.push(readU32(b, off));
  return {
    version: b[0]!,
    pinsFreshness: b[1]!,
    containersFreshness: readU16(b, 2),
    filesFreshness: readU16(b, 4),
    appFreshness,
  };
}

export function serializeCardCf(cf: CardCf): Uint8Array {
  checkUint(FILE, 0, 'bVersion', cf.version, 8);
  checkUint(FILE, 1, 'bPinsFreshness', cf.pinsFreshness, 8);
  checkUint(FILE, 2, 'wContainersFreshness', cf.containersFreshness, 16);
  checkUint(FILE, 4, 'wFilesFreshness', cf.filesFreshness, 16);
  const out = new Uint8Array(CARDCF_SIZE + 4 * cf.appFreshness.length);
  out[0] = cf.version;
  out[1] = cf.pinsFreshness;
  writeU16(out, 2, cf.containersFreshness);
  writeU16(out, 4, cf.filesFreshness);
  cf.appFreshness.forEach((value, i) => {
    const off = CARDCF_SIZE + 4 * i;
    checkUint(FILE, off, `application ${i} freshness`, value, 32);
    writeU32(out, off, value);
  });
  return out;
}

/**
 * The counters after a change of files and/or containers, each wrapping 0xFFFF -> 0 like the
 * LE16 on the card. Callers write this before the change it announces, as OpenSC does.
 */
export function bumpCardCf(cf: CardCf, what: { files?: boolean; containers?: boolean }): CardCf {
  return {
    ...cf,
    appFreshness: [...cf.appFreshness],
    containersFreshness: what.containers ? (cf.containersFreshness + 1) & 0xffff : cf.containersFreshness,
    filesFreshness: what.files ? (cf.filesFreshness + 1) & 0xffff : cf.filesFreshness,
  };
}
