import { CardFormatError } from './errors.js';
import { fileNameProblem, quoteName } from './names.js';

/** Little-endian integers and NUL-padded names shared by the fixed-layout formats (internal). */

export function readU16(b: Uint8Array, offset: number): number {
  return b[offset]! | (b[offset + 1]! << 8);
}

export function readU32(b: Uint8Array, offset: number): number {
  return (b[offset]! | (b[offset + 1]! << 8) | (b[offset + 2]! << 16)) + b[offset + 3]! * 0x1000000;
}

export function writeU16(out: Uint8Array, offset: number, value: number): void {
  out[offset] = value & 0xff;
  out[offset + 1] = value >>> 8;
}

export function writeU32(out: Uint8Array, offset: number, value: number): void {
  out[offset] = value & 0xff;
  out[offset + 1] = (value >>> 8) & 0xff;
  out[offset + 2] = (value >>> 16) & 0xff;
  out[offset + 3] = value >>> 24;
}

/** Throws unless `value` fits an unsigned field of `bits` bits (8, 16 or 32). */
export function checkUint(file: string, offset: number, what: string, value: number, bits: 8 | 16 | 32): void {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** bits) {
    throw new CardFormatError(file, offset, `${what} ${value} does not fit in ${bits} unsigned bits`);
  }
}

export function hexByte(value: number): string {
  return `0x${value.toString(16).toUpperCase().padStart(2, '0')}`;
}

/**
 * Reads a NUL-padded ASCII name field of `width` bytes; '' when the field is all zero. Bytes after
 * the first NUL must be zero too, or the field could not be written back as read.
 */
export function readPaddedName(b: Uint8Array, offset: number, width: number, file: string, what: string): string {
  let end = offset;
  while (end < offset + width && b[end] !== 0) end++;
  for (let i = end; i < offset + width; i++) {
    if (b[i] !== 0) throw new CardFormatError(file, i, `${what} has byte ${hexByte(b[i]!)} after its NUL terminator`);
  }
  const name = String.fromCharCode(...b.subarray(offset, end));
  if (name.length > 0) {
    const problem = fileNameProblem(name);
    if (problem !== undefined) throw new CardFormatError(file, offset, `${what} ${quoteName(name)} ${problem}`);
  }
  return name;
}

/** Writes a name ('' allowed) into a zeroed field; the caller has sized the field for 8 characters. */
export function writePaddedName(out: Uint8Array, offset: number, name: string, file: string, what: string): void {
  if (name.length > 0) {
    const problem = fileNameProblem(name);
    if (problem !== undefined) throw new CardFormatError(file, offset, `${what} ${quoteName(name)} ${problem}`);
  }
  for (let i = 0; i < name.length; i++) out[offset + i] = name.charCodeAt(i);
}
