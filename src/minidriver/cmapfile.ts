import { CardFormatError } from './errors.js';
import { checkUint, hexByte, readU16, writeU16 } from './fields.js';

const FILE = 'mscp/cmapfile';

/** CONTAINER_MAP_RECORD: wszGuid WCHAR[40], bFlags, bReserved, wSigKeySizeBits, wKeyExchangeKeySizeBits. */
export const CMAP_RECORD_SIZE = 86;
/** UTF-16 units of a container name; the 40th unit is its NUL terminator. */
export const MAX_CONTAINER_NAME_LENGTH = 39;
export const CONTAINER_VALID = 0x01;
export const CONTAINER_DEFAULT = 0x02;

const NAME_UNITS = MAX_CONTAINER_NAME_LENGTH + 1;
const FLAGS_OFFSET = 2 * NAME_UNITS;

/**
 * One container slot; the record index is the container index. A deleted slot is normally all
 * zero, but an invalid record keeps whatever name and sizes it has, so it is written back as found.
 */
export interface ContainerRecord {
  name: string;
  flags: number;
  sigKeyBits: number;
  kxKeyBits: number;
}

export function isValidContainer(r: ContainerRecord): boolean {
  return (r.flags & CONTAINER_VALID) !== 0;
}

export function isDefaultContainer(r: ContainerRecord): boolean {
  return (r.flags & CONTAINER_DEFAULT) !== 0;
}

/** Sets or clears the default flag of a record (in place). */
export function setDefaultContainer(r: ContainerRecord, isDefault: boolean): void {
  r.flags = isDefault ? r.flags | CONTAINER_DEFAULT : r.flags & ~CONTAINER_DEFAULT;
}

export function emptyContainerRecord(): ContainerRecord {
  return { name: '', flags: 0, sigKeyBits: 0, kxKeyBits: 0 };
}

/**
 * Rejected, per record: a name without NUL terminator, non-zero units after it, unpaired
 * surrogates or a backslash in the name, flag bits other than valid/default, default without
 * valid, a non-zero bReserved. Table-level rules (one default, unique names) are left to the
 * caller, which can then report and repair them.
 */
export function parseCmapfile(b: Uint8Array): ContainerRecord[] {
  const extra = b.length % CMAP_RECORD_SIZE;
  if (extra !== 0) {
    throw new CardFormatError(
      FILE,
      b.length - extra,
      `cmapfile is ${b.length} bytes, not a multiple of the ${CMAP_RECORD_SIZE}-byte record`,
    );
  }
  const records: ContainerRecord[] = [];
  for (let base = 0; base < b.length; base += CMAP_RECORD_SIZE) {
    const i = base / CMAP_RECORD_SIZE;
    const name = readContainerName(b, base, i);
    const flags = b[base + FLAGS_OFFSET]!;
    const flagProblem = flagsProblem(flags, i);
    if (flagProblem !== undefined) throw new CardFormatError(FILE, base + FLAGS_OFFSET, flagProblem);
    const reserved = b[base + FLAGS_OFFSET + 1]!;
    if (reserved !== 0) {
      throw new CardFormatError(FILE, base + FLAGS_OFFSET + 1, `record ${i} bReserved is ${hexByte(reserved)}, expected 0`);
    }
    records.push({
      name,
      flags,
      sigKeyBits: readU16(b, base + FLAGS_OFFSET + 2),
      kxKeyBits: readU16(b, base + FLAGS_OFFSET + 4),
    });
  }
  return records;
}

export function serializeCmapfile(records: readonly ContainerRecord[]): Uint8Array {
  const out = new Uint8Array(records.length * CMAP_RECORD_SIZE);
  records.forEach((r, i) => {
    const base = i * CMAP_RECORD_SIZE;
    const problem = containerNameProblem(r.name, i);
    if (problem !== undefined) throw new CardFormatError(FILE, base, problem);
    checkUint(FILE, base + FLAGS_OFFSET, `record ${i} bFlags`, r.flags, 8);
    const flagProblem = flagsProblem(r.flags, i);
    if (flagProblem !== undefined) throw new CardFormatError(FILE, base + FLAGS_OFFSET, flagProblem);
    checkUint(FILE, base + FLAGS_OFFSET + 2, `record ${i} wSigKeySizeBits`, r.sigKeyBits, 16);
    checkUint(FILE, base + FLAGS_OFFSET + 4, `record ${i} wKeyExchangeKeySizeBits`, r.kxKeyBits, 16);
    for (let u = 0; u < r.name.length; u++) writeU16(out, base + 2 * u, r.name.charCodeAt(u));
    out[base + FLAGS_OFFSET] = r.flags;
    writeU16(out, base + FLAGS_OFFSET + 2, r.sigKeyBits);
    writeU16(out, base + FLAGS_OFFSET + 4, r.kxKeyBits);
  });
  return out;
}

function readContainerName(b: Uint8Array, base: number, i: number): string {
  const units: number[] = [];
  let u = 0;
  for (; u < NAME_UNITS; u++) {
    const unit = readU16(b, base + 2 * u);
    if (unit === 0) break;
    units.push(unit);
  }
  if (u === NAME_UNITS) throw new CardFormatError(FILE, base, `record ${i} name is not NUL-terminated`);
  for (let rest = u + 1; rest < NAME_UNITS; rest++) {
    if (readU16(b, base + 2 * rest) !== 0) {
      throw new CardFormatError(FILE, base + 2 * rest, `record ${i} name has non-zero data after its NUL terminator`);
    }
  }
  const name = String.fromCharCode(...units);
  const problem = containerNameProblem(name, i);
  if (problem !== undefined) throw new CardFormatError(FILE, base, problem);
  return name;
}

function containerNameProblem(name: string, i: number): string | undefined {
  if (name.length > MAX_CONTAINER_NAME_LENGTH) {
    return `record ${i} name is ${name.length} UTF-16 units long (at most ${MAX_CONTAINER_NAME_LENGTH})`;
  }
  for (let u = 0; u < name.length; u++) {
    const unit = name.charCodeAt(u);
    if (unit === 0) return `record ${i} name contains a NUL character`;
    if (unit === 0x5c) return `record ${i} name contains a backslash`;
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = name.charCodeAt(u + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return `record ${i} name is not valid UTF-16 (unpaired surrogate)`;
      u++;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) {
      return `record ${i} name is not valid UTF-16 (unpaired surrogate)`;
    }
  }
  return undefined;
}

function flagsProblem(flags: number, i: number): string | undefined {
  if ((flags & ~(CONTAINER_VALID | CONTAINER_DEFAULT)) !== 0) {
    return `record ${i} bFlags ${hexByte(flags)} has reserved bits set`;
  }
  if ((flags & CONTAINER_DEFAULT) !== 0 && (flags & CONTAINER_VALID) === 0) {
    return `record ${i} is marked default but not valid`;
  }
  return undefined;
}
