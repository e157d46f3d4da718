/**
 * TLV reading the way the card reads it. Command data (FCP, CRT, MSE, GENERAL AUTHENTICATE, key
 * import) uses one-byte tags; data objects use full BER tags. Lengths are short form, 81 xx or
 * 82 xx xx up to 0x7FFF (GidsApplet parses lengths into a signed 16-bit value). Parsers return
 * undefined for malformed input: the caller picks the status word.
 */

import { MAX_DO_VALUE } from './constants.js';

export interface SimpleTlv {
  readonly tag: number;
  readonly value: Uint8Array;
}

interface LengthField {
  readonly length: number;
  readonly size: number;
}

function readLength(buf: Uint8Array, offset: number): LengthField | undefined {
  const first = buf[offset];
  if (first === undefined) return undefined;
  if (first < 0x80) return { length: first, size: 1 };
  if (first === 0x81) {
    const n = buf[offset + 1];
    return n === undefined ? undefined : { length: n, size: 2 };
  }
  if (first === 0x82) {
    const hi = buf[offset + 1];
    const lo = buf[offset + 2];
    if (hi === undefined || lo === undefined) return undefined;
    const length = (hi << 8) | lo;
    return length > MAX_DO_VALUE ? undefined : { length, size: 3 };
  }
  return undefined;
}

function readSimple(buf: Uint8Array, offset: number): { tlv: SimpleTlv; next: number } | undefined {
  const tag = buf[offset];
  if (tag === undefined) return undefined;
  const len = readLength(buf, offset + 1);
  if (len === undefined) return undefined;
  const start = offset + 1 + len.size;
  const end = start + len.length;
  if (end > buf.length) return undefined;
  return { tlv: { tag, value: buf.subarray(start, end) }, next: end };
}

/** A list of one-byte-tag TLVs that exactly fills `buf`. */
export function parseSimpleTlvs(buf: Uint8Array): SimpleTlv[] | undefined {
  const out: SimpleTlv[] = [];
  let offset = 0;
  while (offset < buf.length) {
    const r = readSimple(buf, offset);
    if (r === undefined) return undefined;
    out.push(r.tlv);
    offset = r.next;
  }
  return out;
}

/**
 * The first element tagged `tag`, walking from the start and stopping at the first element that
 * does not parse (GidsApplet looks tags up this way, without requiring the rest to be well formed).
 */
export function findSimpleTlv(buf: Uint8Array, tag: number): SimpleTlv | undefined {
  let offset = 0;
  while (offset < buf.length) {
    const r = readSimple(buf, offset);
    if (r === undefined) return undefined;
    if (r.tlv.tag === tag) return r.tlv;
    offset = r.next;
  }
  return undefined;
}

/** The only element of `buf` when it is exactly one TLV with that tag. */
export function singleSimpleTlv(buf: Uint8Array, tag: number): SimpleTlv | undefined {
  const r = readSimple(buf, 0);
  return r !== undefined && r.next === buf.length && r.tlv.tag === tag ? r.tlv : undefined;
}

/** BER tag bytes at the start of `buf` (1 to 4 bytes), or undefined when the tag is cut short. */
export function readBerTag(buf: Uint8Array): Uint8Array | undefined {
  const first = buf[0];
  if (first === undefined) return undefined;
  if ((first & 0x1f) !== 0x1f) return buf.subarray(0, 1);
  for (let i = 1; i < 4; i++) {
    const b = buf[i];
    if (b === undefined) return undefined;
    if ((b & 0x80) === 0) return buf.subarray(0, i + 1);
  }
  return undefined;
}

export interface DoHeader {
  readonly tag: Uint8Array;
  readonly headerLength: number;
  readonly valueLength: number;
}

/** Tag and length of the data object starting `buf`; the value itself may still be missing. */
export function readDoHeader(buf: Uint8Array): DoHeader | undefined {
  const tag = readBerTag(buf);
  if (tag === undefined) return undefined;
  const len = readLength(buf, tag.length);
  if (len === undefined) return undefined;
  return { tag, headerLength: tag.length + len.size, valueLength: len.length };
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
