import { CardFormatError } from './errors.js';
import { checkUint, hexByte, readPaddedName, readU32, writePaddedName, writeU32 } from './fields.js';

const FILE = 'GIDS master file table (A000/DF1F)';

export const MASTER_FILE_TABLE_VERSION = 0x01;
/** directory[9], filename[9], 2 padding bytes, DO tag LE32, EFID LE32. */
export const MASTER_FILE_RECORD_SIZE = 28;
const NAME_FIELD = 9;
const PADDING_OFFSET = 18;
const DO_OFFSET = 20;
const EF_OFFSET = 24;

/**
 * Where one minidriver file lives on a GIDS card. `directory` is '' for root files; `filename` is
 * '' for a directory's own entry. DO tag and EFID are kept as the full LE32 values found.
 */
export interface MasterFileRecord {
  directory: string;
  filename: string;
  doTag: number;
  efid: number;
}

/** The table gids-tool and Windows write at initialisation (141 bytes serialized). */
export const INITIAL_MASTER_FILE_TABLE: readonly Readonly<MasterFileRecord>[] = Object.freeze(
  [
    { directory: 'mscp', filename: '', doTag: 0x0000, efid: 0xa000 },
    { directory: '', filename: 'cardid', doTag: 0xdf20, efid: 0xa012 },
    { directory: '', filename: 'cardapps', doTag: 0xdf21, efid: 0xa010 },
    { directory: '', filename: 'cardcf', doTag: 0xdf22, efid: 0xa010 },
    { directory: 'mscp', filename: 'cmapfile', doTag: 0xdf23, efid: 0xa010 },
  ].map((r) => Object.freeze(r)),
);

/**
 * Rejected: a missing or wrong version byte, a partial record, a name field that is not a valid
 * NUL-terminated name followed by zeros, a record with neither directory nor file name, non-zero
 * padding (both known writers zero it). Duplicate or dangling entries are the caller's to judge.
 */
export function parseMasterFileTable(b: Uint8Array): MasterFileRecord[] {
  if (b.length === 0) throw new CardFormatError(FILE, 0, 'table is empty (no version byte)');
  if (b[0] !== MASTER_FILE_TABLE_VERSION) {
    throw new CardFormatError(FILE, 0, `version byte is ${hexByte(b[0]!)}, expected ${hexByte(MASTER_FILE_TABLE_VERSION)}`);
  }
  const extra = (b.length - 1) % MASTER_FILE_RECORD_SIZE;
  if (extra !== 0) {
    throw new CardFormatError(
      FILE,
      b.length - extra,
      `${extra} trailing bytes do not make a whole ${MASTER_FILE_RECORD_SIZE}-byte record`,
    );
  }
  const records: MasterFileRecord[] = [];
  for (let base = 1; base < b.length; base += MASTER_FILE_RECORD_SIZE) {
    const i = records.length;
    const directory = readPaddedName(b, base, NAME_FIELD, FILE, `record ${i} directory`);
    const filename = readPaddedName(b, base + NAME_FIELD, NAME_FIELD, FILE, `record ${i} file name`);
    if (directory === '' && filename === '') {
      throw new CardFormatError(FILE, base, `record ${i} has neither a directory nor a file name`);
    }
    for (const off of [base + PADDING_OFFSET, base + PADDING_OFFSET + 1]) {
      if (b[off] !== 0) throw new CardFormatError(FILE, off, `record ${i} padding byte is ${hexByte(b[off]!)}, expected 0`);
    }
    records.push({ directory, filename, doTag: readU32(b, base + DO_OFFSET), efid: readU32(b, base + EF_OFFSET) });
  }
  return records;
}

export function serializeMasterFileTable(records: readonly Readonly<MasterFileRecord>[]): Uint8Array {
  const out = new Uint8Array(1 + records.length * MASTER_FILE_RECORD_SIZE);
  out[0] = MASTER_FILE_TABLE_VERSION;
  records.forEach((r, i) => {
    const base = 1 + i * MASTER_FILE_RECORD_SIZE;
    if (r.directory === '' && r.filename === '') {
      throw new CardFormatError(FILE, base, `record ${i} has neither a directory nor a file name`);
    }
    writePaddedName(out, base, r.directory, FILE, `record ${i} directory`);
    writePaddedName(out, base + NAME_FIELD, r.filename, FILE, `record ${i} file name`);
    checkUint(FILE, base + DO_OFFSET, `record ${i} DO tag`, r.doTag, 32);
    checkUint(FILE, base + EF_OFFSET, `record ${i} EFID`, r.efid, 32);
    writeU32(out, base + DO_OFFSET, r.doTag);
    writeU32(out, base + EF_OFFSET, r.efid);
  });
  return out;
}
