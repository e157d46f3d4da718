/**
 * ECDSA signing of a given hash (FIPS 186-4 §6.4, docs/sources.md#fips186-4), which a PIV card
 * does: GENERAL AUTHENTICATE receives the hash, not the message (SP 800-73-4 Part 2 §3.2.4).
 * node:crypto only signs messages (it hashes them first), so the emulator computes the signature
 * itself, over the NIST curves P-256 and P-384 in Jacobian coordinates (a = -3). It is an
 * emulator's arithmetic: correct, not hardened against timing side channels.
 */
import { randomBytes } from 'node:crypto';

interface Curve {
  p: bigint;
  n: bigint;
  gx: bigint;
  gy: bigint;
  bytes: number;
}

export const NIST_CURVES: Record<'P-256' | 'P-384', Curve> = {
  'P-256': {
    p: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
    n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
    gx: 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n,
    gy: 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n,
    bytes: 32,
  },
  'P-384': {
    p: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffffn,
    n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
    gx: 0xaa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7n,
    gy: 0x3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5fn,
    bytes: 48,
  },
};

type Jacobian = [bigint, bigint, bigint];

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  let result = 1n;
  let b = mod(base, m);
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return result;
}

/** Inverse modulo a prime (Fermat). */
function inv(a: bigint, m: bigint): bigint {
  return modPow(a, m - 2n, m);
}

function double(c: Curve, [x, y, z]: Jacobian): Jacobian {
  if (z === 0n || y === 0n) return [0n, 1n, 0n];
  const p = c.p;
  const delta = (z * z) % p;
  const gamma = (y * y) % p;
  const beta = (x * gamma) % p;
  const alpha = mod(3n * (x - delta) * (x + delta), p);
  const x3 = mod(alpha * alpha - 8n * beta, p);
  const z3 = mod((y + z) * (y + z) - gamma - delta, p);
  const y3 = mod(alpha * (4n * beta - x3) - 8n * gamma * gamma, p);
  return [x3, y3, z3];
}

function add(c: Curve, a: Jacobian, b: Jacobian): Jacobian {
  if (a[2] === 0n) return b;
  if (b[2] === 0n) return a;
  const p = c.p;
  const [x1, y1, z1] = a;
  const [x2, y2, z2] = b;
  const z1z1 = (z1 * z1) % p;
  const z2z2 = (z2 * z2) % p;
  const u1 = (x1 * z2z2) % p;
  const u2 = (x2 * z1z1) % p;
  const s1 = (y1 * z2 * z2z2) % p;
  const s2 = (y2 * z1 * z1z1) % p;
  const h = mod(u2 - u1, p);
  const r = mod(2n * (s2 - s1), p);
  if (h === 0n) return r === 0n ? double(c, a) : [0n, 1n, 0n];
  const i = (4n * h * h) % p;
  const j = (h * i) % p;
  const v = (u1 * i) % p;
  const x3 = mod(r * r - j - 2n * v, p);
  const y3 = mod(r * (v - x3) - 2n * s1 * j, p);
  const z3 = mod(((z1 + z2) * (z1 + z2) - z1z1 - z2z2) * h, p);
  return [x3, y3, z3];
}

/** k·G in affine coordinates. */
export function multiplyBase(c: Curve, k: bigint): { x: bigint; y: bigint } {
  let acc: Jacobian = [0n, 1n, 0n];
  const g: Jacobian = [c.gx, c.gy, 1n];
  for (let i = BigInt(k.toString(2).length - 1); i >= 0n; i--) {
    acc = double(c, acc);
    if ((k >> i) & 1n) acc = add(c, acc, g);
  }
  if (acc[2] === 0n) throw new RangeError('point at infinity');
  const zi = inv(acc[2], c.p);
  const zi2 = (zi * zi) % c.p;
  return { x: (acc[0] * zi2) % c.p, y: (acc[1] * zi2 * zi) % c.p };
}

export function bigintFrom(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt('0x' + Buffer.from(bytes).toString('hex'));
}

/** The hash as an integer: its leftmost bits, as many as the order has (FIPS 186-4 §6.4). */
function hashToInteger(c: Curve, hash: Uint8Array): bigint {
  const nBits = c.n.toString(2).length;
  let e = bigintFrom(hash);
  const hBits = hash.length * 8;
  if (hBits > nBits) e >>= BigInt(hBits - nBits);
  return e;
}

function randomScalar(c: Curve): bigint {
  for (;;) {
    const k = bigintFrom(randomBytes(c.bytes));
    if (k > 0n && k < c.n) return k;
  }
}

/** The signature (r, s) of `hash` with private scalar `d`. */
export function ecdsaSign(c: Curve, d: bigint, hash: Uint8Array): { r: bigint; s: bigint } {
  const e = hashToInteger(c, hash);
  for (;;) {
    const k = randomScalar(c);
    const r = multiplyBase(c, k).x % c.n;
    if (r === 0n) continue;
    const s = mod(inv(k, c.n) * (e + r * d), c.n);
    if (s === 0n) continue;
    return { r, s };
  }
}

function derInteger(v: bigint): Uint8Array {
  let hexText = v.toString(16);
  if (hexText.length % 2) hexText = '0' + hexText;
  let bytes = Buffer.from(hexText, 'hex');
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return new Uint8Array([0x02, bytes.length, ...bytes]);
}

/** ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 5480 §2.2 / X9.62), DER. */
export function derSignature(sig: { r: bigint; s: bigint }): Uint8Array {
  const body = [...derInteger(sig.r), ...derInteger(sig.s)];
  const len = body.length < 0x80 ? [body.length] : [0x81, body.length];
  return new Uint8Array([0x30, ...len, ...body]);
}
