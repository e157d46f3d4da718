/**
 * Key EFs: GENERATE ASYMMETRIC KEY PAIR, public key read, key import (PUT DATA 3FFF), and
 * PERFORM SECURITY OPERATION (sign, decipher) with the key chosen by MSE.
 */
import type { CommandApdu } from '../../apdu/command.js';
import { SW } from '../../apdu/status.js';
import { RSA_BITS_BY_ALG } from '../protocol/constants.js';
import { OP } from './acl.js';
import { SIGN_PKCS1_MAX_INPUT } from './constants.js';
import {
  decryptOaep,
  decryptPkcs1,
  encodePublicKey,
  generateRsaKey,
  rsaKeyFromDer,
  rsaPrivateRaw,
  signPkcs1,
} from './rsa.js';
import { fail, type CardContext, type EfRecord, type KeyMaterial, type RsaKey } from './state.js';
import { findSimpleTlv, parseSimpleTlvs } from './tlv.js';

const EMPTY = new Uint8Array(0);

/** Data of a command that may come as a chain: the pieces so far, or undefined until the last one. */
export interface ChainedInput {
  /** This APDU belongs to a chain (it carries the chaining bit or continues one). */
  readonly partOfChain: boolean;
  /** All the data of the chain once its last piece is here; undefined before (answer 9000). */
  collect(): Uint8Array | undefined;
}

function oneByte(value: Uint8Array | undefined): number {
  if (value?.length !== 1) fail(SW.REFERENCE_DATA_NOT_USABLE);
  return value[0]!;
}

function keyFile(ctx: CardContext, keyRef: number): EfRecord {
  const file = ctx.findKeyEf(keyRef);
  if (file === undefined) fail(SW.REFERENCE_DATA_NOT_USABLE);
  return file;
}

function storeKey(ctx: CardContext, file: EfRecord, key: KeyMaterial): void {
  const next: EfRecord = { ...file, key };
  ctx.ensureRoom(file, next);
  ctx.putFile(next);
}

/** `AC L { 80 01 <alg> 83 01 <key ref> }`: a new RSA key in B0kk; the answer is its public key. */
export function generateKeyPair(ctx: CardContext, cmd: CommandApdu, input: ChainedInput): Uint8Array {
  if (cmd.p1 !== 0x00 || cmd.p2 !== 0x00) fail(SW.INCORRECT_P1P2);
  const data = input.collect();
  if (data === undefined) return EMPTY;
  const outer = parseSimpleTlvs(data);
  const template = outer?.length === 1 ? outer[0] : undefined;
  if (template === undefined || parseSimpleTlvs(template.value) === undefined) fail(SW.REFERENCE_DATA_NOT_USABLE);
  const keyRef = oneByte(findSimpleTlv(template.value, 0x83)?.value);
  const alg = oneByte(findSimpleTlv(template.value, 0x80)?.value);
  const file = keyFile(ctx, keyRef);
  ctx.checkEf(file, OP.KEY_GENERATE);
  const bits = RSA_BITS_BY_ALG[alg];
  if (bits === undefined) fail(SW.FUNCTION_NOT_SUPPORTED);
  const key = generateRsaKey(bits);
  storeKey(ctx, file, key);
  return encodePublicKey(key);
}

/** `70 08 84 01 <key ref> A5 03 7F 49 80` (GET DATA 3FFF): the public key as `7F49 {81 n}{82 e}`. */
export function readPublicKey(ctx: CardContext, keyRef: number): Uint8Array {
  const file = keyFile(ctx, keyRef);
  ctx.checkEf(file, OP.KEY_READ_PUBLIC);
  if (file.key?.kind !== 'rsa') fail(SW.REFERENCED_DATA_NOT_FOUND);
  return encodePublicKey(file.key);
}

/**
 * PUT DATA 3FFF: `70 { 84 01 <key ref>, A5 { [83 01 <type>] [84 01 00] 87 <key> } }`. Type 1
 * (the default) is a 24-byte 3DES key, type 2 a PKCS#1 RSAPrivateKey with its CRT components;
 * a key wrapped under another key (84 ≠ 00) is not supported.
 */
export function importKey(ctx: CardContext, input: ChainedInput): Uint8Array {
  const data = input.collect();
  if (data === undefined) return EMPTY;
  const outer = findSimpleTlv(data, 0x70);
  if (outer === undefined) fail(SW.REFERENCE_DATA_NOT_USABLE);
  const keyRef = oneByte(findSimpleTlv(outer.value, 0x84)?.value);
  const crt = findSimpleTlv(outer.value, 0xa5);
  if (crt === undefined || keyRef === 0xff) fail(SW.REFERENCE_DATA_NOT_USABLE);
  const file = keyFile(ctx, keyRef);
  ctx.checkEf(file, OP.KEY_PUT);
  const typeTlv = findSimpleTlv(crt.value, 0x83);
  const keyType = typeTlv === undefined ? 1 : oneByte(typeTlv.value);
  const wrapTlv = findSimpleTlv(crt.value, 0x84);
  if (wrapTlv !== undefined && oneByte(wrapTlv.value) !== 0) fail(SW.FUNCTION_NOT_SUPPORTED);
  const material = findSimpleTlv(crt.value, 0x87)?.value;
  if (material === undefined) fail(SW.REFERENCE_DATA_NOT_USABLE);
  let key: KeyMaterial | undefined;
  if (keyType === 1) key = material.length === 24 ? { kind: 'symmetric', value: material.slice() } : undefined;
  else if (keyType === 2) key = rsaKeyFromDer(material);
  if (key === undefined) fail(SW.REFERENCE_DATA_NOT_USABLE);
  storeKey(ctx, file, key);
  return EMPTY;
}

/** The RSA key of the current security environment, or 6985 when there is none. */
function seKey(ctx: CardContext): RsaKey {
  const se = ctx.v.se;
  const key = se === null ? undefined : ctx.findEf(se.keyFid)?.key;
  if (key?.kind !== 'rsa') fail(SW.CONDITIONS_NOT_SATISFIED);
  return key;
}

/** PSO: COMPUTE DIGITAL SIGNATURE (P1P2 9E9A) or DECIPHER (8086), as the last MSE set up. */
export function performSecurityOperation(ctx: CardContext, cmd: CommandApdu, input: ChainedInput): Uint8Array {
  const p1p2 = (cmd.p1 << 8) | cmd.p2;
  if (p1p2 === 0x9e9a) return sign(ctx, cmd, input);
  if (p1p2 === 0x8086) return decipher(ctx, input);
  fail(SW.INCORRECT_P1P2);
}

function sign(ctx: CardContext, cmd: CommandApdu, input: ChainedInput): Uint8Array {
  const usage = (ctx.v.se?.alg ?? 0) & 0xf0;
  if (usage === 0x10) {
    // The host padded: the input is a whole block, possibly chained.
    const block = input.collect();
    if (block === undefined) return EMPTY;
    const key = seKey(ctx);
    if (block.length !== key.modulus.length) fail(SW.WRONG_LENGTH);
    return rsaPrivateRaw(key, block) ?? fail(SW.WRONG_DATA);
  }
  if (usage === 0x50) {
    // The card pads (PKCS#1 v1.5 type 1) the DigestInfo, which must come in one APDU.
    if (input.partOfChain) fail(SW.WRONG_LENGTH);
    const digestInfo = cmd.data ?? EMPTY;
    const key = seKey(ctx);
    if (digestInfo.length > SIGN_PKCS1_MAX_INPUT) fail(SW.WRONG_LENGTH);
    return signPkcs1(key, digestInfo) ?? fail(SW.WRONG_LENGTH);
  }
  fail(SW.CONDITIONS_NOT_SATISFIED);
}

/** The cryptogram (exactly one modulus long, no padding-indicator byte) → the plaintext. */
function decipher(ctx: CardContext, input: ChainedInput): Uint8Array {
  const cryptogram = input.collect();
  if (cryptogram === undefined) return EMPTY;
  const usage = (ctx.v.se?.alg ?? 0) & 0xf0;
  if (usage !== 0x00 && usage !== 0x40 && usage !== 0x80) fail(SW.FUNCTION_NOT_SUPPORTED);
  const key = seKey(ctx);
  if (cryptogram.length !== key.modulus.length) fail(SW.WRONG_LENGTH);
  const plain =
    usage === 0x80 ? decryptOaep(key, cryptogram) : usage === 0x40 ? decryptPkcs1(key, cryptogram) : rsaPrivateRaw(key, cryptogram);
  return plain ?? fail(SW.WRONG_DATA);
}
