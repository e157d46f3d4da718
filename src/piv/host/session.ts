import { createCipheriv, createDecipheriv, randomBytes, type KeyObject } from 'node:crypto';
import { ApduChannel } from '../../apdu/channel.js';
import { ApduError, SW } from '../../apdu/status.js';
import { encodeTag, encodeTlv, findTlv, parseTlvs, readTlv, type Tlv } from '../../ber-tlv.js';
import { concat, equalBytes } from '../../bytes.js';
import type { Transport } from '../../transport/transport.js';
import {
  ALG,
  certificateObjectOf,
  DAT,
  DATA_TAG,
  INS,
  isAsymmetricAlg,
  isKeySlot,
  isSymmetricAlg,
  KEY_REF,
  OBJECT,
  PIV_AID,
  SYMMETRIC,
  TAG_LIST,
  type AsymmetricAlg,
  type SymmetricAlg,
} from '../protocol/constants.js';
import { encodeCertificateObject, parseCertificateObject, parsePublicKeyTemplate, pinBlock, type CertificateObject } from '../protocol/objects.js';
import { PinError, PivError } from './errors.js';

/** What SELECT told about the application (800-73-4 Part 2 §3.1.1, Table 3: the application property template). */
export interface PivApplication {
  /** The PIX (tag 4F), or the full AID that early cards return. */
  pix: Uint8Array;
  /** Application label (tag 50), if the card gives one. */
  label?: string;
  /** Algorithm identifiers the card announces (tags AC/80). */
  algorithms: number[];
}

export interface PivPinStatus {
  /** The PIN is verified in this session (VERIFY without data answered 9000). */
  verified: boolean;
  /** Tries left, when the card says (63Cx); undefined when it is verified. */
  triesLeft: number | undefined;
}

/**
 * One session with a PIV card application over a transport: the PIV host driver (NIST SP 800-73-4
 * Part 2, docs/sources.md#sp800-73-4), with the Yubico extensions cardlink uses marked as such
 * (docs/sources.md#yubico-piv). It speaks PIV: data objects, the PIN and PUK, the card management
 * key, the key slots. It decides no policy (which freshness source to move, when) — that is the
 * card layer's business, as for GidsSession.
 */
export class PivSession {
  readonly channel: ApduChannel;

  constructor(readonly transport: Transport) {
    this.channel = new ApduChannel(transport);
  }

  /** Selects the PIV application by its AID (Part 2 §3.1.1); NOT_PIV when the card has none. */
  async select(): Promise<PivApplication> {
    const r = await this.channel.send({ cla: 0, ins: INS.SELECT, p1: 0x04, p2: 0x00, data: PIV_AID, le: 256 });
    if (r.sw !== SW.OK) throw new PivError('NOT_PIV', `${this.transport.name}: no PIV application (SELECT answered ${hex4(r.sw)})`);
    const apt = tryFind(r.data, 0x61);
    const inner = apt ? tryParse(apt) : [];
    const pix = findTlv(inner, 0x4f)?.value;
    if (!pix) throw new PivError('PIV_BAD_RESPONSE', `${this.transport.name}: SELECT PIV answered without an application property template`);
    const label = findTlv(inner, 0x50)?.value;
    const ac = findTlv(inner, 0xac)?.value;
    const algorithms = ac ? tryParse(ac).filter((t) => t.tag === 0x80 && t.value.length === 1).map((t) => t.value[0]!) : [];
    return { pix: pix.slice(), ...(label ? { label: Buffer.from(label).toString('latin1') } : {}), algorithms };
  }

  // ---- data objects (Part 2 §3.1.2, §3.3.1) ------------------------------------------------------

  /**
   * GET DATA of one object: its value (inside tag 53; the discovery object's inside 7E), or
   * undefined when the card does not have it (6A82).
   */
  async getObject(tag: number): Promise<Uint8Array | undefined> {
    const r = await this.channel.send({ cla: 0, ins: INS.GET_DATA, p1: 0x3f, p2: 0xff, data: tagList(tag), le: 256 });
    if (r.sw === SW.FILE_NOT_FOUND || r.sw === SW.REFERENCED_DATA_NOT_FOUND) return undefined;
    if (r.sw !== SW.OK) throw new ApduError(r.sw, `GET DATA ${objectName(tag)}`);
    if (r.data.length === 0) return undefined;
    let tlv: Tlv;
    try {
      const read = readTlv(r.data, 0);
      if (read.next !== r.data.length) throw new Error('trailing bytes');
      tlv = read.tlv;
    } catch {
      throw new PivError('PIV_BAD_RESPONSE', `GET DATA ${objectName(tag)}: the answer is not one BER-TLV object`);
    }
    if (tlv.tag !== wrapperOf(tag)) throw new PivError('PIV_BAD_RESPONSE', `GET DATA ${objectName(tag)}: the card answered tag ${tlv.tag.toString(16)}`);
    return tlv.value.slice();
  }

  /**
   * PUT DATA of one object (chained when longer than one short APDU). An empty value deletes the
   * object on the cards cardlink knows (YubiKey, the emulator, as yubico-piv-tool relies on).
   * Needs the management key (authenticate()).
   */
  async putObject(tag: number, value: Uint8Array): Promise<void> {
    const data = tag === OBJECT.DISCOVERY ? encodeTlv(OBJECT.DISCOVERY, value) : concat(tagList(tag), encodeTlv(DATA_TAG, value));
    await this.channel.sendOk({ cla: 0, ins: INS.PUT_DATA, p1: 0x3f, p2: 0xff, data }, `PUT DATA ${objectName(tag)}`);
  }

  /** The certificate of a key slot, decompressed if the card holds it gzip-compressed; undefined when there is none. */
  async readCertificate(slot: number): Promise<CertificateObject | undefined> {
    const value = await this.getObject(certificateObjectOf(checkSlot(slot)));
    return value === undefined || value.length === 0 ? undefined : parseCertificateObject(value);
  }

  /** Writes a slot's certificate object (CertInfo says whether it is gzip-compressed). Needs the management key. */
  async writeCertificate(slot: number, der: Uint8Array, options: { compress?: boolean } = {}): Promise<void> {
    await this.putObject(certificateObjectOf(checkSlot(slot)), encodeCertificateObject(der, options));
  }

  /** Empties a slot's certificate object. Needs the management key. */
  async deleteCertificate(slot: number): Promise<void> {
    await this.putObject(certificateObjectOf(checkSlot(slot)), new Uint8Array(0));
  }

  // ---- PIN and PUK (Part 2 §3.2.1-3.2.3) ---------------------------------------------------------

  /** VERIFY without data: is the PIN verified, and if not how many tries are left (Part 2 §3.2.1). */
  async pinStatus(): Promise<PivPinStatus> {
    const r = await this.channel.send({ cla: 0, ins: INS.VERIFY, p1: 0x00, p2: KEY_REF.PIN });
    if (r.sw === SW.OK) return { verified: true, triesLeft: undefined };
    if ((r.sw & 0xfff0) === 0x63c0) return { verified: false, triesLeft: r.sw & 0x0f };
    if (r.sw === SW.AUTH_METHOD_BLOCKED) return { verified: false, triesLeft: 0 };
    throw new ApduError(r.sw, 'VERIFY (PIN status)');
  }

  async verifyPin(pin: string): Promise<void> {
    const data = block(pin, 'PIN');
    const r = await this.channel.send({ cla: 0, ins: INS.VERIFY, p1: 0x00, p2: KEY_REF.PIN, data });
    data.fill(0);
    throwReferenceStatus(r.sw, 'PIN', 'VERIFY');
  }

  /** Resets the PIN's verified state (VERIFY with P1 = FF, Part 2 §3.2.1). */
  async logout(): Promise<void> {
    await this.channel.sendOk({ cla: 0, ins: INS.VERIFY, p1: 0xff, p2: KEY_REF.PIN }, 'VERIFY (reset security status)');
  }

  async changePin(oldPin: string, newPin: string): Promise<void> {
    await this.changeReference(KEY_REF.PIN, oldPin, newPin);
  }

  async changePuk(oldPuk: string, newPuk: string): Promise<void> {
    await this.changeReference(KEY_REF.PUK, oldPuk, newPuk);
  }

  /** RESET RETRY COUNTER: the PUK sets a new PIN and restores its tries (Part 2 §3.2.3). */
  async unblockPin(puk: string, newPin: string): Promise<void> {
    const a = block(puk, 'PUK');
    const b = block(newPin, 'PIN');
    const data = concat(a, b);
    a.fill(0);
    b.fill(0);
    const r = await this.channel.send({ cla: 0, ins: INS.RESET_RETRY_COUNTER, p1: 0x00, p2: KEY_REF.PIN, data });
    data.fill(0);
    throwReferenceStatus(r.sw, 'PUK', 'RESET RETRY COUNTER');
  }

  private async changeReference(ref: number, oldValue: string, newValue: string): Promise<void> {
    const what = ref === KEY_REF.PUK ? 'PUK' : 'PIN';
    const a = block(oldValue, what);
    const b = block(newValue, what);
    const data = concat(a, b);
    a.fill(0);
    b.fill(0);
    const r = await this.channel.send({ cla: 0, ins: INS.CHANGE_REFERENCE_DATA, p1: 0x00, p2: ref, data });
    data.fill(0);
    throwReferenceStatus(r.sw, what, 'CHANGE REFERENCE DATA');
  }

  // ---- card management key (Part 2 §3.2.4, Appendix A.1-A.2 "mutual authentication") -------------

  /**
   * Mutual authentication with the card management key (9B): the card sends an encrypted witness,
   * we return it decrypted with a challenge of ours, the card returns our challenge encrypted
   * (SP 800-73-4 Part 2 Appendix A; the sequence yubico-piv-tool and ykman use). 3DES or AES.
   */
  async authenticate(managementKey: Uint8Array, alg: SymmetricAlg = ALG.TDES): Promise<void> {
    if (!isSymmetricAlg(alg)) throw new PivError('PIV_BAD_ALGORITHM', `0x${(alg as number).toString(16)} is not a management key algorithm`);
    const { keyBytes, block: size } = SYMMETRIC[alg];
    if (managementKey.length !== keyBytes) {
      throw new PivError('MGMT_KEY_FORMAT', `a ${algName(alg)} management key has ${keyBytes} bytes (${keyBytes * 2} hex digits), not ${managementKey.length}`);
    }
    const step1 = await this.channel.send({
      cla: 0,
      ins: INS.GENERAL_AUTHENTICATE,
      p1: alg,
      p2: KEY_REF.MANAGEMENT,
      data: encodeTlv(DAT.TEMPLATE, encodeTlv(DAT.WITNESS, new Uint8Array(0))),
      le: 256,
    });
    if (step1.sw === SW.INCORRECT_P1P2 || step1.sw === SW.WRONG_DATA) {
      throw new PivError('MGMT_KEY_REFUSED', `the card's management key is not a ${algName(alg)} key`);
    }
    if (step1.sw !== SW.OK) throw new ApduError(step1.sw, 'GENERAL AUTHENTICATE (witness)');
    const witness = ecb(alg, managementKey, datItem(step1.data, DAT.WITNESS, size), false);
    const challenge = new Uint8Array(randomBytes(size));
    const step2 = await this.channel.send({
      cla: 0,
      ins: INS.GENERAL_AUTHENTICATE,
      p1: alg,
      p2: KEY_REF.MANAGEMENT,
      data: encodeTlv(DAT.TEMPLATE, encodeTlv(DAT.WITNESS, witness), encodeTlv(DAT.CHALLENGE, challenge)),
      le: 256,
    });
    witness.fill(0);
    if (step2.sw === SW.SECURITY_STATUS_NOT_SATISFIED || step2.sw === SW.WRONG_DATA) {
      throw new PivError('MGMT_KEY_REFUSED', 'the card refused the management key');
    }
    if (step2.sw === SW.AUTH_METHOD_BLOCKED) throw new PivError('MGMT_KEY_REFUSED', 'the card has blocked its management key');
    if (step2.sw !== SW.OK) throw new ApduError(step2.sw, 'GENERAL AUTHENTICATE (response)');
    const expected = ecb(alg, managementKey, challenge, true);
    if (!equalBytes(datItem(step2.data, DAT.RESPONSE, size), expected)) {
      throw new PivError('PIV_CARD_AUTH_FAILED', 'the card did not prove knowledge of the management key');
    }
  }

  // ---- keys (Part 2 §3.2.4 GENERAL AUTHENTICATE, §3.3.2 GENERATE ASYMMETRIC KEY PAIR) -------------

  /** Generates a key pair in a slot (needs the management key); returns its public key. */
  async generateKey(slot: number, alg: AsymmetricAlg): Promise<KeyObject> {
    checkSlot(slot);
    checkAlg(alg);
    const data = encodeTlv(0xac, encodeTlv(0x80, new Uint8Array([alg])));
    const r = await this.channel.send({ cla: 0, ins: INS.GENERATE_ASYMMETRIC_KEY_PAIR, p1: 0x00, p2: slot, data, le: 256 });
    if (r.sw !== SW.OK) throw new ApduError(r.sw, `GENERATE ASYMMETRIC KEY PAIR ${hex2(slot)}`);
    return parsePublicKeyTemplate(r.data, alg);
  }

  /**
   * The private key operation on `input`: for RSA a full modulus-length block (the caller pads:
   * see pkcs1SignatureBlock), answered with the raw result; for ECC a hash, answered with a DER
   * ECDSA-Sig-Value. The slot's PIN policy applies (9C wants the PIN right before each use).
   */
  async sign(slot: number, alg: AsymmetricAlg, input: Uint8Array): Promise<Uint8Array> {
    return this.privateKeyOperation(slot, alg, DAT.CHALLENGE, input, 'sign');
  }

  /** RSA decryption (the raw block; the caller strips the padding). */
  async decipher(slot: number, alg: AsymmetricAlg, cryptogram: Uint8Array): Promise<Uint8Array> {
    if (alg !== ALG.RSA_1024 && alg !== ALG.RSA_2048) throw new PivError('PIV_BAD_ALGORITHM', 'decryption is an RSA operation; ECC keys agree keys (ecdh)');
    return this.privateKeyOperation(slot, alg, DAT.CHALLENGE, cryptogram, 'decipher');
  }

  /** ECDH with the slot's ECC key and the peer's uncompressed point: the shared secret (x coordinate). */
  async ecdh(slot: number, alg: AsymmetricAlg, peerPoint: Uint8Array): Promise<Uint8Array> {
    if (alg !== ALG.ECC_P256 && alg !== ALG.ECC_P384) throw new PivError('PIV_BAD_ALGORITHM', 'key agreement needs an ECC key');
    return this.privateKeyOperation(slot, alg, DAT.EXPONENTIATION, peerPoint, 'ECDH');
  }

  private async privateKeyOperation(slot: number, alg: AsymmetricAlg, tag: number, input: Uint8Array, what: string): Promise<Uint8Array> {
    checkSlot(slot);
    checkAlg(alg);
    const data = encodeTlv(DAT.TEMPLATE, encodeTlv(DAT.RESPONSE, new Uint8Array(0)), encodeTlv(tag, input));
    const r = await this.channel.send({ cla: 0, ins: INS.GENERAL_AUTHENTICATE, p1: alg, p2: slot, data, le: 256 });
    if (r.sw === SW.REFERENCED_DATA_NOT_FOUND) throw new PivError('PIV_NO_KEY', `slot ${hex2(slot)} holds no ${algName(alg)} key`);
    if (r.sw !== SW.OK) throw new ApduError(r.sw, `GENERAL AUTHENTICATE (${what}) ${hex2(slot)}`);
    const outer = tryFind(r.data, DAT.TEMPLATE);
    const result = outer ? findTlv(tryParse(outer), DAT.RESPONSE)?.value : undefined;
    if (!result || result.length === 0) throw new PivError('PIV_BAD_RESPONSE', `GENERAL AUTHENTICATE (${what}): no response (tag 82) in the answer`);
    return result.slice();
  }

  // ---- Yubico extensions (docs/sources.md#yubico-piv) -------------------------------------------

  /** Yubico extension GET VERSION (INS FD): "major.minor.patch", or undefined on a card without it. */
  async yubicoVersion(): Promise<string | undefined> {
    const r = await this.channel.send({ cla: 0, ins: INS.YK_GET_VERSION, p1: 0, p2: 0, le: 256 });
    if (r.sw !== SW.OK || r.data.length !== 3) return undefined;
    return `${r.data[0]}.${r.data[1]}.${r.data[2]}`;
  }

  /** Yubico extension GET SERIAL (INS F8, YubiKey 5), or undefined on a card without it. */
  async yubicoSerial(): Promise<number | undefined> {
    const r = await this.channel.send({ cla: 0, ins: INS.YK_GET_SERIAL, p1: 0, p2: 0, le: 256 });
    if (r.sw !== SW.OK || r.data.length !== 4) return undefined;
    return Buffer.from(r.data).readUInt32BE(0);
  }
}

/** EMSA-PKCS1-v1_5 (RFC 8017 §9.2): `00 01 FF.. 00 DigestInfo`, the block an RSA PIV key signs raw. */
export function pkcs1SignatureBlock(digestInfo: Uint8Array, modulusBytes: number): Uint8Array {
  if (digestInfo.length > modulusBytes - 11) throw new RangeError('DigestInfo too long for the modulus');
  const out = new Uint8Array(modulusBytes).fill(0xff);
  out[0] = 0x00;
  out[1] = 0x01;
  out[modulusBytes - digestInfo.length - 1] = 0x00;
  out.set(digestInfo, modulusBytes - digestInfo.length);
  return out;
}

/** The tag list `5C len tag` that names an object in GET DATA and PUT DATA. */
function tagList(tag: number): Uint8Array {
  return encodeTlv(TAG_LIST, encodeTag(tag));
}

function wrapperOf(tag: number): number {
  if (tag === OBJECT.DISCOVERY) return OBJECT.DISCOVERY;
  if (tag === OBJECT.BIOMETRIC_GROUP_TEMPLATE) return OBJECT.BIOMETRIC_GROUP_TEMPLATE;
  return DATA_TAG;
}

function block(value: string, what: 'PIN' | 'PUK'): Uint8Array {
  const b = pinBlock(value);
  if (!b) throw new PinError('PIN_FORMAT', `a PIV ${what} has 6 to 8 characters`, -1);
  return b;
}

/** Maps VERIFY / CHANGE REFERENCE DATA / RESET RETRY COUNTER status words to PinError. */
function throwReferenceStatus(sw: number, what: 'PIN' | 'PUK', command: string): void {
  if (sw === SW.OK) return;
  const unblock = what === 'PIN' ? 'unblock it with the PUK' : 'only a reset of the PIV application clears it';
  const blocked = what === 'PIN' ? 'PIN_BLOCKED' : 'PUK_BLOCKED';
  if ((sw & 0xfff0) === 0x63c0) {
    const left = sw & 0x0f;
    if (left === 0) throw new PinError(blocked, `wrong ${what}; the ${what} is now blocked (${unblock})`, 0);
    throw new PinError(what === 'PIN' ? 'PIN_INCORRECT' : 'PUK_INCORRECT', `wrong ${what}, ${left} ${left === 1 ? 'try' : 'tries'} left`, left);
  }
  if (sw === SW.AUTH_METHOD_BLOCKED) throw new PinError(blocked, `the ${what} is blocked (${unblock})`, 0);
  if (sw === SW.WRONG_DATA) throw new PinError('PIN_FORMAT', `the card refused the new ${what}'s format`, -1);
  throw new ApduError(sw, command);
}

function datItem(data: Uint8Array, tag: number, length: number): Uint8Array {
  const outer = tryFind(data, DAT.TEMPLATE);
  const item = outer ? findTlv(tryParse(outer), tag)?.value : undefined;
  if (!item || item.length !== length) throw new PivError('PIV_BAD_RESPONSE', `GENERAL AUTHENTICATE: no ${length}-byte item ${hex2(tag)} in the answer`);
  return item;
}

function ecb(alg: SymmetricAlg, key: Uint8Array, data: Uint8Array, encrypt: boolean): Uint8Array {
  const { cipher } = SYMMETRIC[alg];
  const c = encrypt ? createCipheriv(cipher, key, null) : createDecipheriv(cipher, key, null);
  c.setAutoPadding(false);
  return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
}

function tryParse(value: Uint8Array): Tlv[] {
  try {
    return parseTlvs(value);
  } catch {
    return [];
  }
}

function tryFind(data: Uint8Array, tag: number): Uint8Array | undefined {
  return findTlv(tryParse(data), tag)?.value;
}

function checkSlot(slot: number): number {
  if (!isKeySlot(slot)) throw new PivError('PIV_BAD_SLOT', `0x${slot.toString(16)} is not a PIV key slot (9A, 9C, 9D, 9E, 82-95)`);
  return slot;
}

function checkAlg(alg: number): void {
  if (!isAsymmetricAlg(alg)) throw new PivError('PIV_BAD_ALGORITHM', `0x${alg.toString(16)} is not an asymmetric PIV algorithm cardlink supports`);
}

function algName(alg: number): string {
  switch (alg) {
    case ALG.TDES:
      return '3DES';
    case ALG.AES_128:
      return 'AES-128';
    case ALG.AES_192:
      return 'AES-192';
    case ALG.AES_256:
      return 'AES-256';
    case ALG.RSA_1024:
      return 'RSA-1024';
    case ALG.RSA_2048:
      return 'RSA-2048';
    case ALG.ECC_P256:
      return 'ECC P-256';
    case ALG.ECC_P384:
      return 'ECC P-384';
    default:
      return `algorithm ${hex2(alg)}`;
  }
}

function objectName(tag: number): string {
  return tag.toString(16).toUpperCase();
}

function hex2(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, '0');
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}
