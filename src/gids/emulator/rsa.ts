/**
 * RSA inside the emulated chip. Private keys stay node:crypto KeyObjects; only public values
 * leave this module as bytes.
 */
import {
  constants,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  privateDecrypt,
  privateEncrypt,
  type KeyObject,
} from 'node:crypto';
import { encodeTlv } from '../protocol/tlv.js';
import type { RsaKey } from './state.js';
import { parseSimpleTlvs, singleSimpleTlv } from './tlv.js';

/** Modulus sizes GIDS defines algorithm ids for (06..09). */
export const RSA_KEY_BITS: readonly number[] = [1024, 2048, 3072, 4096];

function fromBase64Url(s: string | undefined): Uint8Array {
  return new Uint8Array(Buffer.from(s ?? '', 'base64url'));
}

function stripZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

function toBigInt(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt('0x' + Buffer.from(b).toString('hex'));
}

/**
 * Wraps a private key the card may hold: RSA with a GIDS modulus size and an exponent that fits
 * the 3 bytes GidsApplet reports it in. Undefined otherwise.
 */
export function rsaKeyFromPrivateKey(privateKey: KeyObject): RsaKey | undefined {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'rsa') return undefined;
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  const modulus = stripZeros(fromBase64Url(jwk.n));
  const exponent = stripZeros(fromBase64Url(jwk.e));
  if (!RSA_KEY_BITS.includes(modulus.length * 8) || (modulus[0]! & 0x80) === 0) return undefined;
  if (exponent.length > 3) return undefined;
  return { kind: 'rsa', privateKey, modulus, exponent };
}

export function generateRsaKey(bits: number): RsaKey {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: 0x10001 });
  const key = rsaKeyFromPrivateKey(privateKey);
  // node:crypto always yields a full-size modulus for these sizes; guard the invariant anyway.
  if (key === undefined) throw new RangeError(`generated RSA key of ${bits} bits is unusable`);
  return key;
}

const RSA_COMPONENTS = ['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi'] as const;

/**
 * Reads a PKCS#1 RSAPrivateKey (SEQUENCE { 0, n, e, d, p, q, dp, dq, qinv }) and checks that the
 * CRT components belong together. Undefined if anything is missing or inconsistent.
 */
export function rsaKeyFromDer(der: Uint8Array): RsaKey | undefined {
  const seq = singleSimpleTlv(der, 0x30);
  const items = seq === undefined ? undefined : parseSimpleTlvs(seq.value);
  if (items === undefined || items.length !== 9 || items.some((t) => t.tag !== 0x02)) return undefined;
  const [version, ...rest] = items.map((t) => t.value);
  if (version === undefined || version.length !== 1 || version[0] !== 0) return undefined;
  const parts = rest.map(stripZeros);
  const [n, e, d, p, q, dp, dq, qi] = parts.map(toBigInt) as [bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint];
  const consistent =
    p > 1n && q > 1n && e > 1n && n === p * q &&
    d % (p - 1n) === dp && d % (q - 1n) === dq &&
    (e * dp) % (p - 1n) === 1n && (e * dq) % (q - 1n) === 1n && (qi * q) % p === 1n;
  if (!consistent) return undefined;
  const jwk: Record<string, string> = { kty: 'RSA' };
  RSA_COMPONENTS.forEach((name, i) => (jwk[name] = Buffer.from(parts[i]!).toString('base64url')));
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: jwk, format: 'jwk' });
  } catch {
    return undefined;
  }
  return rsaKeyFromPrivateKey(privateKey);
}

/** `7F49 { 81 modulus } { 82 exponent }`, the exponent on 3 bytes as GidsApplet writes it. */
export function encodePublicKey(key: RsaKey): Uint8Array {
  const e = new Uint8Array(3);
  e.set(key.exponent, 3 - key.exponent.length);
  return encodeTlv(0x7f49, encodeTlv(0x81, key.modulus), encodeTlv(0x82, e));
}

/** PKCS#1 v1.5 type-1 padding and the private-key operation; undefined if the input is too long. */
export function signPkcs1(key: RsaKey, input: Uint8Array): Uint8Array | undefined {
  if (input.length > key.modulus.length - 11) return undefined;
  return new Uint8Array(privateEncrypt({ key: key.privateKey, padding: constants.RSA_PKCS1_PADDING }, input));
}

/** x^d mod n on a full-length block; undefined if the block is not smaller than the modulus. */
export function rsaPrivateRaw(key: RsaKey, block: Uint8Array): Uint8Array | undefined {
  if (block.length !== key.modulus.length || Buffer.compare(block, key.modulus) >= 0) return undefined;
  return new Uint8Array(privateDecrypt({ key: key.privateKey, padding: constants.RSA_NO_PADDING }, block));
}

/** RSAES-OAEP (SHA-1, as Java Card's ALG_RSA_PKCS1_OAEP) decryption; undefined if it does not decode. */
export function decryptOaep(key: RsaKey, cryptogram: Uint8Array): Uint8Array | undefined {
  try {
    return new Uint8Array(privateDecrypt({ key: key.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING }, cryptogram));
  } catch {
    return undefined;
  }
}

/**
 * RSAES-PKCS1-v1_5 decryption. Node 20 refuses this padding in privateDecrypt, so the block is
 * decrypted raw and the padding checked here without data-dependent branches until the verdict.
 */
export function decryptPkcs1(key: RsaKey, cryptogram: Uint8Array): Uint8Array | undefined {
  const em = rsaPrivateRaw(key, cryptogram);
  return em === undefined ? undefined : unpadPkcs1Type2(em);
}

/** 00 02 PS(≥ 8 non-zero bytes) 00 M → M; undefined if the block is not so shaped. */
export function unpadPkcs1Type2(em: Uint8Array): Uint8Array | undefined {
  let bad = em.length < 11 ? 1 : 0;
  bad |= em[0] ?? 1;
  bad |= (em[1] ?? 0) ^ 0x02;
  let separator = 0;
  let found = 0;
  for (let i = 2; i < em.length; i++) {
    const b = em[i]!;
    const isZero = 1 ^ ((b | -b) >>> 31);
    const first = isZero & (found ^ 1);
    separator |= -first & i;
    found |= isZero;
  }
  bad |= found ^ 1;
  bad |= ((separator - 10) >>> 31) & 1;
  return bad !== 0 ? undefined : em.slice(separator + 1);
}
