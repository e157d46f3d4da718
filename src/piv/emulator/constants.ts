/**
 * Card-side constants of the PIV emulator: its ATR, factory state and limits. Shared PIV values
 * live in src/piv/protocol.
 */
import { ALG } from '../protocol/constants.js';

function withCheckByte(bytes: number[]): Uint8Array {
  return new Uint8Array([...bytes, bytes.slice(1).reduce((x, b) => x ^ b, 0)]);
}

/**
 * `3B 8C 01 "cardlink PIV" TCK`: direct convention, T=1 only, 12 historical bytes naming the
 * emulator. OpenSC's PIV driver recognises a PIV card by SELECT when no ATR table entry and no
 * historical-byte rule matches (card-piv.c piv_match_card_continued: "Yubikey" names and compact-
 * TLV tags 50/F0 only; the first byte here is not 80), so it stays PIV_II_GENERIC: no Yubico quirks.
 */
export const DEFAULT_ATR = withCheckByte([0x3b, 0x8c, 0x01, ...Buffer.from('cardlink PIV', 'latin1')]);

/**
 * The factory state, which PIV leaves to the issuer: the values a YubiKey ships with (Yubico's
 * PIV documentation, docs/sources.md#yubico-piv), because yubico-piv-tool, ykman and users expect
 * them on a fresh card: PIN 123456, PUK 12345678, 3 tries each, 3DES management key 010203040506070801...
 */
export const FACTORY = {
  PIN: '123456',
  PUK: '12345678',
  PIN_TRIES: 3,
  PUK_TRIES: 3,
  MANAGEMENT_KEY_ALG: ALG.TDES,
  MANAGEMENT_KEY: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8]),
} as const;

/**
 * What the emulator answers to the Yubico GET VERSION extension: 5.2.7, the last firmware line
 * before GET METADATA (5.3), so hosts do not ask for the metadata the emulator does not model.
 */
export const YUBICO_VERSION = new Uint8Array([5, 2, 7]);

/** Largest object value the emulator stores (about a YubiKey's per-object limit). */
export const MAX_OBJECT_BYTES = 3072;
/** Largest chained command data (PUT DATA of the largest object, with its header). */
export const CHAIN_BUFFER_LIMIT = 4096;

/** Status words the card side needs beyond src/apdu/status. */
export const CARD_SW = {
  MEMORY_FAILURE: 0x6581,
  BYTES_REMAINING: 0x6100,
} as const;
