import { CardFormatError } from './errors.js';
import { checkUint, hexByte, readU16, readU32, writeU16, writeU32 } from './fields.js';

const FILE = 'GIDS key map (A000/DF20)';

export const KEY_MAP_VERSION = 0x01;
/** state LE32, algid, keytype, key FID LE16, LE16 (FFFF), LE16 (0000). */
export const KEY_MAP_RECORD_SIZE = 12;
export const KEY_STATE_DELETED = 0;
export const KEY_STATE_USED = 1;

/** What OpenSC and FreeRDP's virtual GIDS write in the two LE16 fields of unknown meaning. */
const DEFAULT_RESERVED8 = 0xffff;
const DEFAULT_RESERVED10 = 0x0000;

/**
 * One key slot, at the same index as its cmapfile record. The LE16 fields at offsets 8 and 10
 * have no known meaning; rather than reject a card that has something else there, the parser
 * keeps them in `reserved8`/`reserved10`, present only when they differ from FFFF/0000 (the
 * values the serializer writes when they are absent).
 */
export interface KeyMapRecord {
  state: number;
  algId: number;
  keyType: number;
  keyFid: number;
  reserved8?: number;
  reserved10?: number;
}

/** A slot whose key was deleted, as OpenSC writes it: all zero but key FID FFFF. */
export function deletedKeyMapRecord(): KeyMapRecord {
  return { state: KEY_STATE_DELETED, algId: 0, keyType: 0, keyFid: 0xffff };
}

/** Rejected: a missing or wrong version byte, a partial record, a state other than 0 or 1. */
export function parseKeyMap(b: Uint8Array): KeyMapRecord[] {
  if (b.length === 0) throw new CardFormatError(FILE, 0, 'key map is empty (no version byte)');
  if (b[0] !== KEY_MAP_VERSION) {
    throw new CardFormatError(FILE, 0, `version byte is ${hexByte(b[0]!)}, expected ${hexByte(KEY_MAP_VERSION)}`);
  }
  const extra = (b.length - 1) % KEY_MAP_RECORD_SIZE;
  if (extra !== 0) {
    throw new CardFormatError(
      FILE,
      b.length - extra,
      `${extra} trailing bytes do not make a whole ${KEY_MAP_RECORD_SIZE}-byte record`,
    );
  }
  const records: KeyMapRecord[] = [];
  for (let base = 1; base < b.length; base += KEY_MAP_RECORD_SIZE) {
    const i = records.length;
    const state = readU32(b, base);
    if (state !== KEY_STATE_USED && state !== KEY_STATE_DELETED) {
      throw new CardFormatError(FILE, base, `record ${i} state is ${state}, expected 0 (deleted) or 1 (used)`);
    }
    const record: KeyMapRecord = { state, algId: b[base + 4]!, keyType: b[base + 5]!, keyFid: readU16(b, base + 6) };
    const reserved8 = readU16(b, base + 8);
    const reserved10 = readU16(b, base + 10);
    if (reserved8 !== DEFAULT_RESERVED8) record.reserved8 = reserved8;
    if (reserved10 !== DEFAULT_RESERVED10) record.reserved10 = reserved10;
    records.push(record);
  }
  return records;
}

export function serializeKeyMap(records: readonly KeyMapRecord[]): Uint8Array {
  const out = new Uint8Array(1 + records.length * KEY_MAP_RECORD_SIZE);
  out[0] = KEY_MAP_VERSION;
  records.forEach((r, i) => {
    const base = 1 + i * KEY_MAP_RECORD_SIZE;
    if (r.state !== KEY_STATE_USED && r.state !== KEY_STATE_DELETED) {
      throw new CardFormatError(FILE, base, `record ${i} state is ${r.state}, expected 0 (deleted) or 1 (used)`);
    }
    checkUint(FILE, base + 4, `record ${i} algid`, r.algId, 8);
    checkUint(FILE, base + 5, `record ${i} keytype`, r.keyType, 8);
    checkUint(FILE, base + 6, `record ${i} key FID`, r.keyFid, 16);
    const reserved8 = r.reserved8 ?? DEFAULT_RESERVED8;
    const reserved10 = r.reserved10 ?? DEFAULT_RESERVED10;
    checkUint(FILE, base + 8, `record ${i} field at offset 8`, reserved8, 16);
    checkUint(FILE, base + 10, `record ${i} field at offset 10`, reserved10, 16);
    writeU32(out, base, r.state);
    out[base + 4] = r.algId;
    out[base + 5] = r.keyType;
    writeU16(out, base + 6, r.keyFid);
    writeU16(out, base + 8, reserved8);
    writeU16(out, base + 10, reserved10);
  });
  return out;
}
