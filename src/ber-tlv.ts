import { CardlinkError } from './errors.js';

/** BER-TLV (ISO/IEC 7816-4) as GIDS and PIV use it: tags of 1-3 bytes, lengths in short form or 81/82/83 long form. */
export interface Tlv {
  tag: number;
  value: Uint8Array;
}

export class TlvError extends CardlinkError {
  readonly offset: number;
  constructor(offset: number, reason: string) {
    super('TLV_FORMAT', `malformed BER-TLV at offset ${offset}: ${reason}`);
    this.offset = offset;
  }
}

export function encodeLength(n: number): Uint8Array {
  if (n < 0x80) return new Uint8Array([n]);
  if (n <= 0xff) return new Uint8Array([0x81, n]);
  if (n <= 0xffff) return new Uint8Array([0x82, n >> 8, n & 0xff]);
  if (n <= 0xffffff) return new Uint8Array([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  throw new RangeError(`TLV length ${n} too large`);
}

export function encodeTag(tag: number): Uint8Array {
  if (tag <= 0xff) return new Uint8Array([tag]);
  if (tag <= 0xffff) return new Uint8Array([tag >> 8, tag & 0xff]);
  return new Uint8Array([tag >> 16, (tag >> 8) & 0xff, tag & 0xff]);
}

export function encodeTlv(tag: number, ...values: Uint8Array[]): Uint8Array {
  const len = values.reduce((n, v) => n + v.length, 0);
  const t = encodeTag(tag);
  const l = encodeLength(len);
  const out = new Uint8Array(t.length + l.length + len);
  out.set(t, 0);
  out.set(l, t.length);
  let off = t.length + l.length;
  for (const v of values) {
    out.set(v, off);
    off += v.length;
  }
  return out;
}

/** Reads one TLV at `offset`; returns it and the offset just past it. */
export function readTlv(buf: Uint8Array, offset: number): { tlv: Tlv; next: number; headerLength: number } {
  let p = offset;
  if (p >= buf.length) throw new TlvError(p, 'missing tag');
  let tag = buf[p++]!;
  if ((tag & 0x1f) === 0x1f) {
    let more = true;
    for (let i = 0; more; i++) {
      if (i >= 2) throw new TlvError(offset, 'tag longer than 3 bytes');
      if (p >= buf.length) throw new TlvError(p, 'truncated tag');
      const b = buf[p++]!;
      tag = (tag << 8) | b;
      more = (b & 0x80) !== 0;
    }
  }
  if (p >= buf.length) throw new TlvError(p, 'missing length');
  let len = buf[p++]!;
  if (len === 0x80 || len > 0x83) throw new TlvError(p - 1, `unsupported length byte ${len.toString(16)}`);
  if (len > 0x80) {
    const n = len - 0x80;
    if (p + n > buf.length) throw new TlvError(p, 'truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p++]!;
  }
  if (p + len > buf.length) throw new TlvError(p, `value of ${len} bytes runs past the end (${buf.length - p} left)`);
  return { tlv: { tag, value: buf.subarray(p, p + len) }, next: p + len, headerLength: p - offset };
}

/** Parses a concatenation of TLVs that must exactly fill `buf`. */
export function parseTlvs(buf: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  let off = 0;
  while (off < buf.length) {
    const { tlv, next } = readTlv(buf, off);
    out.push(tlv);
    off = next;
  }
  return out;
}

export function findTlv(tlvs: Tlv[], tag: number): Tlv | undefined {
  return tlvs.find((t) => t.tag === tag);
}
