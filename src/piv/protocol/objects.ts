/**
 * The PIV data objects cardlink reads and writes, as their BER-TLV contents (the value of tag 53):
 * certificate objects with their CertInfo compression flag, the CHUID, the key history object,
 * the discovery object and the card capability container (NIST SP 800-73-4 Part 1 §3.1 and
 * Appendix A, docs/sources.md#sp800-73-4), and the public key template GENERATE returns (Part 2
 * §3.3.2, Table 11). Pure: no I/O.
 */
import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { encodeTlv, findTlv, parseTlvs, readTlv, TlvError, type Tlv } from '../../ber-tlv.js';
import { concat } from '../../bytes.js';
import { CardlinkError } from '../../errors.js';
import { ALG, PIN_LENGTH, PIN_PAD, PIV_AID, type AsymmetricAlg } from './constants.js';

/** A PIV object that does not have the structure 800-73-4 gives it. */
export class PivFormatError extends CardlinkError {
  constructor(message: string) {
    super('PIV_FORMAT', message);
  }
}

function tlvsOf(value: Uint8Array, what: string): Tlv[] {
  try {
    return parseTlvs(value);
  } catch (e) {
    throw new PivFormatError(`${what}: ${e instanceof TlvError ? e.message : 'malformed BER-TLV'}`);
  }
}

const EDC = new Uint8Array([0xfe, 0x00]);

// ---- certificate objects (Part 1 Table 10-15, Appendix A note on CertInfo) ---------------------

/** CertInfo bit 0: the certificate is gzip-compressed (Part 1 Appendix A, footnote on CertInfo). */
export const CERTINFO_GZIP = 0x01;

export interface CertificateObject {
  /** The DER certificate (decompressed when the object held it compressed). */
  der: Uint8Array;
  /** Whether the object stored it gzip-compressed (CertInfo bit 0). */
  compressed: boolean;
}

/** `70 cert, 71 CertInfo, FE 00`: what yubico-piv-tool and OpenSC's piv-tool write. */
export function encodeCertificateObject(der: Uint8Array, options: { compress?: boolean } = {}): Uint8Array {
  const compress = options.compress === true;
  const body = compress ? new Uint8Array(gzipSync(der)) : der;
  return concat(encodeTlv(0x70, body), encodeTlv(0x71, new Uint8Array([compress ? CERTINFO_GZIP : 0x00])), EDC);
}

/** Parses a certificate object; a missing CertInfo means uncompressed (as OpenSC reads it). */
export function parseCertificateObject(value: Uint8Array): CertificateObject {
  const tlvs = tlvsOf(value, 'certificate object');
  const cert = findTlv(tlvs, 0x70);
  if (!cert) throw new PivFormatError('certificate object without a certificate (tag 70)');
  const info = findTlv(tlvs, 0x71)?.value[0] ?? 0;
  const compressed = (info & CERTINFO_GZIP) !== 0;
  if (!compressed) return { der: cert.value.slice(), compressed };
  try {
    return { der: new Uint8Array(gunzipSync(cert.value, { maxOutputLength: 1 << 20 })), compressed };
  } catch {
    throw new PivFormatError('certificate object says gzip but does not decompress');
  }
}

// ---- CHUID (Part 1 Table 9) --------------------------------------------------------------------

export interface Chuid {
  /** FASC-N, 25 bytes (tag 30). */
  fascn: Uint8Array;
  /** Card UUID, 16 bytes (tag 34): what identifies the card. */
  guid: Uint8Array;
  /** Expiration date YYYYMMDD (tag 35). */
  expires: string;
  /** Issuer asymmetric signature (tag 3E), empty when unsigned. */
  signature: Uint8Array;
  /** Every member as read, to write back what this type does not model. */
  members: Tlv[];
}

/**
 * The FASC-N that yubico-piv-tool writes in a CHUID it sets (agency code 9999, "non-federal
 * issuer"), in the 25-byte BCD-with-parity encoding of TIG SCEPACS.
 */
export const NON_FEDERAL_FASCN = new Uint8Array(Buffer.from('D4E739DA739CED39CE739D836858210842108421C84210C3EB', 'hex'));

export function encodeChuid(c: { fascn?: Uint8Array; guid: Uint8Array; expires: string; signature?: Uint8Array }): Uint8Array {
  if (c.guid.length !== 16) throw new PivFormatError('a CHUID GUID has 16 bytes');
  if (!/^\d{8}$/.test(c.expires)) throw new PivFormatError('a CHUID expiration date is YYYYMMDD');
  const fascn = c.fascn ?? NON_FEDERAL_FASCN;
  if (fascn.length !== 25) throw new PivFormatError('a FASC-N has 25 bytes');
  return concat(
    encodeTlv(0x30, fascn),
    encodeTlv(0x34, c.guid),
    encodeTlv(0x35, new Uint8Array(Buffer.from(c.expires, 'latin1'))),
    encodeTlv(0x3e, c.signature ?? new Uint8Array(0)),
    EDC,
  );
}

export function parseChuid(value: Uint8Array): Chuid {
  const members = tlvsOf(value, 'CHUID');
  const guid = findTlv(members, 0x34)?.value;
  if (!guid || guid.length !== 16) throw new PivFormatError('CHUID without a 16-byte GUID (tag 34)');
  return {
    fascn: findTlv(members, 0x30)?.value.slice() ?? new Uint8Array(0),
    guid: guid.slice(),
    expires: Buffer.from(findTlv(members, 0x35)?.value ?? new Uint8Array(0)).toString('latin1'),
    signature: findTlv(members, 0x3e)?.value.slice() ?? new Uint8Array(0),
    members,
  };
}

/** A fresh CHUID with a random GUID, expiring on `expires` (default 20 years from now, as card issuers do). */
export function newChuid(expires?: string): Uint8Array {
  const y = new Date().getUTCFullYear() + 20;
  return encodeChuid({ guid: new Uint8Array(randomBytes(16)), expires: expires ?? `${y}0101` });
}

// ---- key history (Part 1 Table 19) -------------------------------------------------------------

export interface KeyHistory {
  /** Retired keys whose certificates are on the card (tag C1). */
  onCard: number;
  /** Retired keys whose certificates are off the card (tag C2). */
  offCard: number;
  /** Where the off-card certificates are (tag F3), if any. */
  url?: string;
}

export function encodeKeyHistory(h: KeyHistory): Uint8Array {
  if (h.onCard < 0 || h.onCard > 20 || h.offCard < 0 || h.onCard + h.offCard > 20) {
    throw new PivFormatError('the key history counts at most 20 retired keys');
  }
  return concat(
    encodeTlv(0xc1, new Uint8Array([h.onCard])),
    encodeTlv(0xc2, new Uint8Array([h.offCard])),
    ...(h.url === undefined ? [] : [encodeTlv(0xf3, new Uint8Array(Buffer.from(h.url, 'utf8')))]),
    EDC,
  );
}

export function parseKeyHistory(value: Uint8Array): KeyHistory {
  const tlvs = tlvsOf(value, 'key history object');
  const on = findTlv(tlvs, 0xc1)?.value;
  const off = findTlv(tlvs, 0xc2)?.value;
  if (on?.length !== 1 || off?.length !== 1) throw new PivFormatError('key history object without its two counts (C1, C2)');
  const url = findTlv(tlvs, 0xf3)?.value;
  return { onCard: on[0]!, offCard: off[0]!, ...(url ? { url: Buffer.from(url).toString('utf8') } : {}) };
}

// ---- discovery object (Part 1 Table 18) and card capability container (Table 8) -----------------

/** PIN usage policy first byte: bit 7 PIV PIN, bit 6 global PIN satisfies (Part 1 §3.3.2). */
export const PIN_POLICY_PIV_PIN = 0x40;

/** The discovery object's value (inside tag 7E): the PIV AID and the PIN usage policy. */
export function encodeDiscovery(pinPolicy = new Uint8Array([PIN_POLICY_PIV_PIN, 0x00])): Uint8Array {
  return concat(encodeTlv(0x4f, PIV_AID), encodeTlv(0x5f2f, pinPolicy));
}

export function parseDiscovery(value: Uint8Array): { aid: Uint8Array; pinPolicy: Uint8Array } {
  const tlvs = tlvsOf(value, 'discovery object');
  const aid = findTlv(tlvs, 0x4f)?.value;
  const policy = findTlv(tlvs, 0x5f2f)?.value;
  if (!aid || !policy || policy.length !== 2) throw new PivFormatError('discovery object without AID or PIN usage policy');
  return { aid: aid.slice(), pinPolicy: policy.slice() };
}

/**
 * A card capability container as yubico-piv-tool writes one: card identifier F0 = GSC-RID
 * A000000116, manufacturer FF, card type 02, then 14 random bytes; versions 21; data model 10.
 */
export function newCardCapabilityContainer(): Uint8Array {
  const id = concat(new Uint8Array([0xa0, 0x00, 0x00, 0x01, 0x16, 0xff, 0x02]), new Uint8Array(randomBytes(14)));
  const empty = (tag: number): Uint8Array => encodeTlv(tag, new Uint8Array(0));
  return concat(
    encodeTlv(0xf0, id),
    encodeTlv(0xf1, new Uint8Array([0x21])),
    encodeTlv(0xf2, new Uint8Array([0x21])),
    empty(0xf3),
    encodeTlv(0xf4, new Uint8Array([0x00])),
    encodeTlv(0xf5, new Uint8Array([0x10])),
    empty(0xf6),
    empty(0xf7),
    empty(0xfa),
    empty(0xfb),
    empty(0xfc),
    empty(0xfd),
    EDC,
  );
}

// ---- PIN / PUK block (Part 2 §2.4.3) ------------------------------------------------------------

/** `pin` as the 8-byte reference data block: 6-8 bytes, padded with FF; undefined when it is not 6-8 bytes. */
export function pinBlock(pin: string): Uint8Array | undefined {
  const raw = Buffer.from(pin, 'utf8');
  if (raw.length < PIN_LENGTH.MIN || raw.length > PIN_LENGTH.MAX || raw.includes(PIN_PAD)) {
    raw.fill(0);
    return undefined;
  }
  const out = new Uint8Array(PIN_LENGTH.PADDED).fill(PIN_PAD);
  out.set(raw);
  raw.fill(0);
  return out;
}

/** Whether an 8-byte block is a well-formed padded PIN or PUK: 6-8 non-FF bytes, then only FF. */
export function isPinBlock(block: Uint8Array): boolean {
  if (block.length !== PIN_LENGTH.PADDED) return false;
  let n = block.indexOf(PIN_PAD);
  if (n < 0) n = PIN_LENGTH.PADDED;
  if (n < PIN_LENGTH.MIN) return false;
  for (let i = n; i < block.length; i++) if (block[i] !== PIN_PAD) return false;
  return true;
}

// ---- public key template (Part 2 §3.3.2, Table 11) ---------------------------------------------

/** The named curve and coordinate length of an ECC algorithm. */
export const CURVES = {
  [ALG.ECC_P256]: { name: 'P-256', bytes: 32 },
  [ALG.ECC_P384]: { name: 'P-384', bytes: 48 },
} as const;

const b64u = (b: Uint8Array): string => Buffer.from(b).toString('base64url');
const unb64u = (s: string | undefined): Uint8Array => new Uint8Array(Buffer.from(s ?? '', 'base64url'));

/** `7F49 { 81 n, 82 e }` for RSA, `7F49 { 86 04||X||Y }` for ECC. */
export function encodePublicKeyTemplate(key: KeyObject): Uint8Array {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty === 'RSA') return encodeTlv(0x7f49, encodeTlv(0x81, unb64u(jwk.n)), encodeTlv(0x82, unb64u(jwk.e)));
  if (jwk.kty === 'EC') return encodeTlv(0x7f49, encodeTlv(0x86, concat(new Uint8Array([0x04]), unb64u(jwk.x), unb64u(jwk.y))));
  throw new PivFormatError(`no PIV public key template for a ${String(jwk.kty)} key`);
}

/** The inverse: a node:crypto public key of the algorithm `alg`. */
export function parsePublicKeyTemplate(data: Uint8Array, alg: AsymmetricAlg): KeyObject {
  let inner: Tlv[];
  try {
    const { tlv, next } = readTlv(data, 0);
    if (tlv.tag !== 0x7f49 || next !== data.length) throw new PivFormatError('public key answer is not one 7F49 template');
    inner = parseTlvs(tlv.value);
  } catch (e) {
    if (e instanceof PivFormatError) throw e;
    throw new PivFormatError('public key template is not well-formed BER-TLV');
  }
  if (alg === ALG.ECC_P256 || alg === ALG.ECC_P384) {
    const { name, bytes } = CURVES[alg];
    const point = findTlv(inner, 0x86)?.value;
    if (!point || point.length !== 1 + 2 * bytes || point[0] !== 0x04) throw new PivFormatError(`public key template without an uncompressed ${name} point`);
    try {
      return createPublicKey({ key: { kty: 'EC', crv: name, x: b64u(point.subarray(1, 1 + bytes)), y: b64u(point.subarray(1 + bytes)) }, format: 'jwk' });
    } catch {
      throw new PivFormatError(`the ${name} point is not on the curve`);
    }
  }
  const n = findTlv(inner, 0x81)?.value;
  const e = findTlv(inner, 0x82)?.value;
  const bits = alg === ALG.RSA_1024 ? 1024 : 2048;
  let start = 0;
  while (n && start < n.length - 1 && n[start] === 0) start++;
  if (!n || !e || (n.length - start) * 8 !== bits) throw new PivFormatError(`public key template without a ${bits}-bit modulus and an exponent`);
  return createPublicKey({ key: { kty: 'RSA', n: b64u(n.subarray(start)), e: b64u(e) }, format: 'jwk' });
}
