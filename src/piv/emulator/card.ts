import { constants, createCipheriv, createPublicKey, diffieHellman, generateKeyPairSync, privateDecrypt, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { parseCommand, type CommandApdu } from '../../apdu/command.js';
import type { CardProcessor } from '../../apdu/processor.js';
import { encodeResponse } from '../../apdu/response.js';
import { SW } from '../../apdu/status.js';
import { encodeTlv, findTlv, parseTlvs, readTlv, type Tlv } from '../../ber-tlv.js';
import { concat } from '../../bytes.js';
import {
  ALG,
  DAT,
  DATA_TAG,
  INS,
  isAsymmetricAlg,
  isKeySlot,
  isPivObject,
  KEY_REF,
  OBJECT,
  PIN_LENGTH,
  PIN_PROTECTED_OBJECTS,
  PIV_AID,
  PIV_PIX,
  pinPolicyOf,
  SYMMETRIC,
  TAG_LIST,
  type AsymmetricAlg,
} from '../protocol/constants.js';
import { CURVES, encodeDiscovery, encodePublicKeyTemplate, isPinBlock, pinBlock } from '../protocol/objects.js';
import { CARD_SW, CHAIN_BUFFER_LIMIT, DEFAULT_ATR, FACTORY, MAX_OBJECT_BYTES, YUBICO_VERSION } from './constants.js';
import { bigintFrom, derSignature, ecdsaSign, NIST_CURVES } from './ecdsa.js';
import { PivVolatile, type PivKey, type PivState } from './state.js';

const EMPTY = new Uint8Array(0);
const CLA_CHAIN = 0x10;
const CHAINABLE: readonly number[] = [INS.PUT_DATA, INS.GENERAL_AUTHENTICATE, INS.GENERATE_ASYMMETRIC_KEY_PAIR];

/** A status word a command ends with; never escapes PivCard.process. */
class Status {
  constructor(readonly sw: number) {}
}
const statuses = new Map<number, Status>();
function fail(sw: number): never {
  let s = statuses.get(sw);
  if (s === undefined) statuses.set(sw, (s = new Status(sw)));
  throw s;
}

/** Saving the image failed: the command had no effect. */
class StorageFailure {
  constructor(readonly cause: unknown) {}
}

export interface PivCardOptions {
  /** Serial number the Yubico GET SERIAL extension reports (default: random). */
  serial?: number;
}

/**
 * A PIV card application (NIST SP 800-73-4 Part 2, docs/sources.md#sp800-73-4) with the Yubico
 * extensions GET VERSION and GET SERIAL (docs/sources.md#yubico-piv), as an APDU processor.
 *
 * After a reset no application is selected: SELECT of the PIV AID (full, truncated, or down to
 * its RID, as yubico-piv-tool sends it) selects it, any other AID gets 6A82, and every other
 * command gets 6986 until then.
 *
 * What PIV leaves to the card, and how the emulator decides it:
 * - the PIN and PUK try counters are saved before the comparison (a card pulled mid-VERIFY has
 *   spent the try, as on a real chip); a wrong management key is refused (6982) and not counted:
 *   PIV defines no retry counter for the card management key, and YubiKeys have none;
 * - PUT DATA and GENERATE need the management key; GET DATA of fingerprints, facial image,
 *   printed information and iris images needs the PIN (Part 1 Table 3); the private keys follow
 *   their slot's PIN policy (9E none, 9C "PIN Always", the others once per session);
 * - an empty PUT DATA deletes the object (as YubiKeys do, which yubico-piv-tool relies on);
 * - re-selecting the PIV application keeps the security status; selecting another AID fails and
 *   leaves PIV selected (ISO 7816-4: a failed SELECT changes nothing);
 * - commands chain (CLA 10) for PUT DATA, GENERAL AUTHENTICATE and GENERATE; a different command
 *   in the middle of a chain drops the chain; answers longer than Le wait for GET RESPONSE (61xx).
 * Persistent state changes only through complete commands: if saving fails (onPersistentChange
 * throws) the command is undone and answered 6581; an internal fault is undone and answered 6F00.
 */
export class PivCard implements CardProcessor {
  readonly atr: Uint8Array = DEFAULT_ATR.slice();
  /** Called with the next state before it takes effect (openPivCardImage saves the image here). */
  onPersistentChange?: (next: PivState) => void;
  private state: PivState;
  private v = new PivVolatile();

  private constructor(state: PivState) {
    this.state = state;
  }

  /** A factory-fresh card: the factory PIN, PUK and management key, no keys, no objects but discovery. */
  static blank(options: PivCardOptions = {}): PivCard {
    return new PivCard({
      objects: new Map([[OBJECT.DISCOVERY, encodeDiscovery()]]),
      pin: pinBlock(FACTORY.PIN)!,
      pinTries: FACTORY.PIN_TRIES,
      pinTryLimit: FACTORY.PIN_TRIES,
      puk: pinBlock(FACTORY.PUK)!,
      pukTries: FACTORY.PUK_TRIES,
      pukTryLimit: FACTORY.PUK_TRIES,
      managementKey: { alg: FACTORY.MANAGEMENT_KEY_ALG, value: FACTORY.MANAGEMENT_KEY.slice() },
      keys: new Map(),
      serial: options.serial ?? randomInt(10_000_000, 99_999_999),
    });
  }

  /** The card whose persistent state is `state` (checked by the image decoder). */
  static fromState(state: PivState): PivCard {
    return new PivCard(state);
  }

  /** The persistent state (private keys as KeyObjects: seal them before they go anywhere). */
  snapshot(): PivState {
    return this.state;
  }

  reset(): void {
    this.v = new PivVolatile();
  }

  process(apdu: Uint8Array): Uint8Array {
    try {
      const reply = this.handle(new Uint8Array(apdu));
      return encodeResponse(reply.data, reply.sw);
    } catch (e) {
      this.v.chain = null;
      this.v.pending = null;
      if (e instanceof StorageFailure) {
        this.v = new PivVolatile();
        this.v.selected = true;
        return encodeResponse(EMPTY, CARD_SW.MEMORY_FAILURE);
      }
      return encodeResponse(EMPTY, SW.UNKNOWN);
    }
  }

  /** Makes `next` the persistent state: saved first; on failure nothing changes. */
  private commit(next: PivState): void {
    try {
      this.onPersistentChange?.(next);
    } catch (cause) {
      throw new StorageFailure(cause);
    }
    this.state = next;
  }

  private handle(apdu: Uint8Array): { data: Uint8Array; sw: number } {
    let cmd: CommandApdu;
    try {
      cmd = parseCommand(apdu);
    } catch {
      return { data: EMPTY, sw: SW.WRONG_LENGTH };
    }
    try {
      const data = this.dispatch(cmd);
      return this.transmit(cmd, data);
    } catch (e) {
      if (!(e instanceof Status)) throw e;
      return { data: EMPTY, sw: e.sw };
    }
  }

  /** At most Le bytes now (256 when Le is absent); the rest waits for GET RESPONSE, announced as 61xx. */
  private transmit(cmd: CommandApdu, data: Uint8Array): { data: Uint8Array; sw: number } {
    const le = cmd.le ?? 256;
    const n = Math.min(le, data.length);
    const rest = data.subarray(n);
    this.v.pending = rest.length > 0 ? rest.slice() : null;
    const sw = rest.length > 0 ? CARD_SW.BYTES_REMAINING | (Math.min(rest.length, 256) & 0xff) : SW.OK;
    return { data: data.subarray(0, n), sw };
  }

  private isPivSelect(cmd: CommandApdu): boolean {
    const name = cmd.data ?? EMPTY;
    return cmd.ins === INS.SELECT && cmd.p1 === 0x04 && name.length >= 5 && name.length <= PIV_AID.length && name.every((b, i) => b === PIV_AID[i]);
  }

  private dispatch(cmd: CommandApdu): Uint8Array {
    const v = this.v;
    if ((cmd.cla & ~CLA_CHAIN) !== 0) fail(SW.CLA_NOT_SUPPORTED);
    if (cmd.ins === INS.SELECT) {
      if (cmd.p1 !== 0x04) fail(SW.FUNCTION_NOT_SUPPORTED);
      if (!this.isPivSelect(cmd)) fail(SW.FILE_NOT_FOUND);
      v.chain = null;
      v.pending = null;
      v.selected = true;
      return this.applicationPropertyTemplate();
    }
    if (!v.selected) fail(SW.COMMAND_NOT_ALLOWED_NO_EF);
    if (cmd.ins === INS.GET_RESPONSE) {
      const pending = v.pending ?? EMPTY;
      v.pending = null;
      return pending;
    }
    v.pending = null;

    // "PIN Always": only the command right after a successful VERIFY may use it.
    const pinJustVerified = v.pinJustVerified;
    v.pinJustVerified = false;

    let data = cmd.data ?? EMPTY;
    const chained = (cmd.cla & CLA_CHAIN) !== 0;
    const c = v.chain;
    if (c !== null && (c.ins !== cmd.ins || c.p1 !== cmd.p1 || c.p2 !== cmd.p2)) v.chain = null;
    if (chained || v.chain !== null) {
      if (!CHAINABLE.includes(cmd.ins)) fail(SW.CHAINING_NOT_SUPPORTED);
      const chain = v.chain ?? { ins: cmd.ins, p1: cmd.p1, p2: cmd.p2, parts: [], bytes: 0 };
      if (chain.bytes + data.length > CHAIN_BUFFER_LIMIT) {
        v.chain = null;
        fail(SW.NOT_ENOUGH_MEMORY);
      }
      chain.parts.push(data.slice());
      chain.bytes += data.length;
      if (chained) {
        v.chain = chain;
        // The PIN Always grant survives the pieces of the chain that uses it.
        v.pinJustVerified = pinJustVerified;
        return EMPTY;
      }
      v.chain = null;
      data = concat(...chain.parts);
    }

    switch (cmd.ins) {
      case INS.GET_DATA:
        return this.getData(cmd, data);
      case INS.PUT_DATA:
        return this.putData(cmd, data);
      case INS.VERIFY:
        return this.verify(cmd, data);
      case INS.CHANGE_REFERENCE_DATA:
        return this.changeReferenceData(cmd, data);
      case INS.RESET_RETRY_COUNTER:
        return this.resetRetryCounter(cmd, data);
      case INS.GENERAL_AUTHENTICATE:
        return this.generalAuthenticate(cmd, data, pinJustVerified);
      case INS.GENERATE_ASYMMETRIC_KEY_PAIR:
        return this.generate(cmd, data);
      case INS.YK_GET_VERSION:
        return YUBICO_VERSION.slice();
      case INS.YK_GET_SERIAL: {
        const out = Buffer.alloc(4);
        out.writeUInt32BE(this.state.serial >>> 0);
        return new Uint8Array(out);
      }
      default:
        fail(SW.INS_NOT_SUPPORTED);
    }
  }

  /** Part 2 §3.1.1 Table 3: 61 { 4F PIX, 79 { 4F AID }, 50 label, AC { 80 alg.. 06 00 } }. */
  private applicationPropertyTemplate(): Uint8Array {
    const algs = [ALG.TDES, ALG.RSA_1024, ALG.RSA_2048, ALG.AES_128, ALG.AES_192, ALG.AES_256, ALG.ECC_P256, ALG.ECC_P384];
    return encodeTlv(
      0x61,
      encodeTlv(0x4f, PIV_PIX),
      encodeTlv(0x79, encodeTlv(0x4f, PIV_AID)),
      encodeTlv(0x50, new Uint8Array(Buffer.from('cardlink PIV emulator', 'latin1'))),
      encodeTlv(0xac, ...algs.map((a) => encodeTlv(0x80, new Uint8Array([a]))), encodeTlv(0x06, EMPTY)),
    );
  }

  // ---- data objects ---------------------------------------------------------------------------

  /** The object a tag list names (`5C len tag`, tag of 1-3 bytes). */
  private objectTag(data: Uint8Array): { tag: number; next: number } {
    let t: { tlv: Tlv; next: number };
    try {
      t = readTlv(data, 0);
    } catch {
      fail(SW.WRONG_DATA);
    }
    if (t.tlv.tag !== TAG_LIST || t.tlv.value.length < 1 || t.tlv.value.length > 3) fail(SW.WRONG_DATA);
    return { tag: t.tlv.value.reduce((n, b) => n * 256 + b, 0), next: t.next };
  }

  private getData(cmd: CommandApdu, data: Uint8Array): Uint8Array {
    if (cmd.p1 !== 0x3f || cmd.p2 !== 0xff) fail(SW.INCORRECT_P1P2);
    const { tag, next } = this.objectTag(data);
    if (next !== data.length) fail(SW.WRONG_DATA);
    if (PIN_PROTECTED_OBJECTS.includes(tag) && !this.v.pinVerified) fail(SW.SECURITY_STATUS_NOT_SATISFIED);
    const value = this.state.objects.get(tag);
    if (value === undefined) fail(SW.FILE_NOT_FOUND);
    return encodeTlv(tag === OBJECT.DISCOVERY ? OBJECT.DISCOVERY : tag === OBJECT.BIOMETRIC_GROUP_TEMPLATE ? tag : DATA_TAG, value);
  }

  private putData(cmd: CommandApdu, data: Uint8Array): Uint8Array {
    if (cmd.p1 !== 0x3f || cmd.p2 !== 0xff) fail(SW.INCORRECT_P1P2);
    if (!this.v.managementAuthenticated) fail(SW.SECURITY_STATUS_NOT_SATISFIED);
    let tag: number;
    let value: Uint8Array;
    try {
      if (data[0] === OBJECT.DISCOVERY) {
        const { tlv, next } = readTlv(data, 0);
        if (next !== data.length) fail(SW.WRONG_DATA);
        tag = OBJECT.DISCOVERY;
        value = tlv.value;
      } else {
        const { tag: t, next } = this.objectTag(data);
        const inner = readTlv(data, next);
        if (inner.tlv.tag !== DATA_TAG || inner.next !== data.length) fail(SW.WRONG_DATA);
        tag = t;
        value = inner.tlv.value;
      }
    } catch (e) {
      if (e instanceof Status) throw e;
      fail(SW.WRONG_DATA);
    }
    // PIV objects and the vendor range 5FFFxx (Yubico keeps its own objects there).
    if (!isPivObject(tag) && !(tag >= 0x5fff00 && tag <= 0x5fffff)) fail(SW.WRONG_DATA);
    if (value.length > MAX_OBJECT_BYTES) fail(SW.NOT_ENOUGH_MEMORY);
    const objects = new Map(this.state.objects);
    if (value.length === 0) objects.delete(tag);
    else objects.set(tag, value.slice());
    this.commit({ ...this.state, objects });
    return EMPTY;
  }

  // ---- PIN and PUK ----------------------------------------------------------------------------

  private verify(cmd: CommandApdu, data: Uint8Array): Uint8Array {
    // Only the PIV Card Application PIN: no global PIN on this card (discovery says 40 00).
    if (cmd.p2 !== KEY_REF.PIN) fail(SW.REFERENCED_DATA_NOT_FOUND);
    if (cmd.p1 === 0xff) {
      if (data.length !== 0) fail(SW.WRONG_DATA);
      this.v.pinVerified = false;
      return EMPTY;
    }
    if (cmd.p1 !== 0x00) fail(SW.INCORRECT_P1P2);
    const s = this.state;
    if (data.length === 0) {
      if (this.v.pinVerified) return EMPTY;
      if (s.pinTries === 0) fail(SW.AUTH_METHOD_BLOCKED);
      fail(0x63c0 | s.pinTries);
    }
    if (data.length !== PIN_LENGTH.PADDED) fail(SW.WRONG_DATA);
    if (s.pinTries === 0) fail(SW.AUTH_METHOD_BLOCKED);
    this.v.pinVerified = false;
    // The try is spent (and saved) before the comparison.
    this.commit({ ...s, pinTries: s.pinTries - 1 });
    if (!timingSafeEqual(data, s.pin)) fail(0x63c0 | (s.pinTries - 1));
    this.commit({ ...this.state, pinTries: s.pinTryLimit });
    this.v.pinVerified = true;
    this.v.pinJustVerified = true;
    return EMPTY;
  }

  /** Spends one try of the PIN or PUK, then compares; the wrong value ends the command with 63Cx. */
  private checkReference(ref: 'pin' | 'puk', presented: Uint8Array): void {
    const s = this.state;
    const tries = ref === 'pin' ? s.pinTries : s.pukTries;
    if (tries === 0) fail(SW.AUTH_METHOD_BLOCKED);
    this.commit(ref === 'pin' ? { ...s, pinTries: tries - 1 } : { ...s, pukTries: tries - 1 });
    if (!timingSafeEqual(presented, ref === 'pin' ? s.pin : s.puk)) fail(0x63c0 | (tries - 1));
  }

  private changeReferenceData(cmd: CommandApdu, data: Uint8Array): Uint8Array {
    if (cmd.p1 !== 0x00) fail(SW.INCORRECT_P1P2);
    if (cmd.p2 !== KEY_REF.PIN && cmd.p2 !== KEY_REF.PUK) fail(SW.REFERENCED_DATA_NOT_FOUND);
    if (data.length !== 2 * PIN_LENGTH.PADDED) fail(SW.WRONG_DATA);
    const next = data.subarray(PIN_LENGTH.PADDED);
    if (!isPinBlock(next)) fail(SW.WRONG_DATA);
    const ref = cmd.p2 === KEY_REF.PIN ? 'pin' : 'puk';
    if (ref === 'pin') this.v.pinVerified = false;
    this.checkReference(ref, data.subarray(0, PIN_LENGTH.PADDED));
    const s = this.state;
    this.commit(ref === 'pin' ? { ...s, pin: next.slice(), pinTries: s.pinTryLimit } : { ...s, puk: next.slice(), pukTries: s.pukTryLimit });
    return EMPTY;
  }

  private resetRetryCounter(cmd: CommandApdu, data: Uint8Array): Uint8Array {
    if (cmd.p1 !== 0x00) fail(SW.INCORRECT_P1P2);
    if (cmd.p2 !== KEY_REF.PIN) fail(SW.REFERENCED_DATA_NOT_FOUND);
    if (data.length !== 2 * PIN_LENGTH.PADDED) fail(SW.WRONG_DATA);
    const pin = data.subarray(PIN_LENGTH.PADDED);
    if (!isPinBlock(pin)) fail(SW.WRONG_DATA);
    this.v.pinVerified = false;
    this.checkReference('puk', data.subarray(0, PIN_LENGTH.PADDED));
    const s = this.state;
    this.commit({ ...s, pukTries: s.pukTryLimit, pin: pin.slice(), pinTries: s.pinTryLimit });
    return EMPTY;
  }

  // ---- GENERAL AUTHENTICATE -------------------------------------------------------------------

  private generalAuthenticate(cmd: CommandApdu, data: Uint8Array, pinJustVerified: boolean): Uint8Array {
    let items: Tlv[];
    try {
      const outer = parseTlvs(data);
      if (outer.length !== 1 || outer[0]!.tag !== DAT.TEMPLATE) fail(SW.WRONG_DATA);
      items = parseTlvs(outer[0]!.value);
    } catch (e) {
      if (e instanceof Status) throw e;
      fail(SW.WRONG_DATA);
    }
    if (cmd.p2 === KEY_REF.MANAGEMENT) return this.managementKeyAuthentication(cmd.p1, items);
    if (!isKeySlot(cmd.p2)) fail(SW.REFERENCED_DATA_NOT_FOUND);
    const key = this.state.keys.get(cmd.p2);
    if (key === undefined) fail(SW.REFERENCED_DATA_NOT_FOUND);
    if (cmd.p1 !== key.alg) fail(SW.INCORRECT_P1P2);
    const policy = pinPolicyOf(cmd.p2);
    if (policy === 'once' && !this.v.pinVerified) fail(SW.SECURITY_STATUS_NOT_SATISFIED);
    if (policy === 'always' && !(this.v.pinVerified && pinJustVerified)) fail(SW.SECURITY_STATUS_NOT_SATISFIED);
    const response = findTlv(items, DAT.RESPONSE);
    const challenge = findTlv(items, DAT.CHALLENGE);
    const peer = findTlv(items, DAT.EXPONENTIATION);
    if (response === undefined || response.value.length !== 0) fail(SW.WRONG_DATA);
    let result: Uint8Array;
    if (challenge !== undefined && peer === undefined) result = this.privateOperation(key, challenge.value);
    else if (peer !== undefined && challenge === undefined) result = this.keyAgreement(key, peer.value);
    else fail(SW.WRONG_DATA);
    return encodeTlv(DAT.TEMPLATE, encodeTlv(DAT.RESPONSE, result));
  }

  /** RSA: the raw private operation on a modulus-length block; ECC: an ECDSA signature of the hash. */
  private privateOperation(key: PivKey, input: Uint8Array): Uint8Array {
    if (key.alg === ALG.RSA_1024 || key.alg === ALG.RSA_2048) {
      if (input.length !== (key.alg === ALG.RSA_1024 ? 128 : 256)) fail(SW.WRONG_DATA);
      try {
        return new Uint8Array(privateDecrypt({ key: key.privateKey, padding: constants.RSA_NO_PADDING }, input));
      } catch {
        fail(SW.WRONG_DATA); // the block is not below the modulus
      }
    }
    const curve = CURVES[key.alg as typeof ALG.ECC_P256 | typeof ALG.ECC_P384];
    if (input.length === 0 || input.length > 2 * curve.bytes) fail(SW.WRONG_DATA);
    const d = bigintFrom(Buffer.from(key.privateKey.export({ format: 'jwk' }).d!, 'base64url'));
    return derSignature(ecdsaSign(NIST_CURVES[curve.name], d, input));
  }

  private keyAgreement(key: PivKey, point: Uint8Array): Uint8Array {
    if (key.alg !== ALG.ECC_P256 && key.alg !== ALG.ECC_P384) fail(SW.WRONG_DATA);
    const { name, bytes } = CURVES[key.alg];
    if (point.length !== 1 + 2 * bytes || point[0] !== 0x04) fail(SW.WRONG_DATA);
    try {
      const x = Buffer.from(point.subarray(1, 1 + bytes)).toString('base64url');
      const y = Buffer.from(point.subarray(1 + bytes)).toString('base64url');
      const publicKey = createPublicKey({ key: { kty: 'EC', crv: name, x, y }, format: 'jwk' });
      return new Uint8Array(diffieHellman({ privateKey: key.privateKey, publicKey }));
    } catch {
      fail(SW.WRONG_DATA); // not a point of the curve
    }
  }

  /**
   * Card management key authentication (Part 2 Appendix A): mutual (witness 80 out, 80 + 81 in,
   * 82 out) or external (81 challenge out, 82 in). A wrong answer is refused and not counted.
   */
  private managementKeyAuthentication(alg: number, items: Tlv[]): Uint8Array {
    const v = this.v;
    const mk = this.state.managementKey;
    // Any new attempt starts over: rights from an earlier authentication end here.
    v.managementAuthenticated = false;
    if (alg !== mk.alg) fail(SW.INCORRECT_P1P2);
    const { block, cipher } = SYMMETRIC[mk.alg];
    const encrypt = (b: Uint8Array): Uint8Array => {
      const c = createCipheriv(cipher, mk.value, null);
      c.setAutoPadding(false);
      return new Uint8Array(Buffer.concat([c.update(b), c.final()]));
    };
    const witness = findTlv(items, DAT.WITNESS);
    const challenge = findTlv(items, DAT.CHALLENGE);
    const response = findTlv(items, DAT.RESPONSE);
    if (witness !== undefined && witness.value.length === 0 && challenge === undefined && response === undefined) {
      const w = new Uint8Array(randomBytes(block));
      v.witness = w;
      v.challenge = null;
      return encodeTlv(DAT.TEMPLATE, encodeTlv(DAT.WITNESS, encrypt(w)));
    }
    if (witness !== undefined && challenge !== undefined && response === undefined) {
      const expected = v.witness;
      v.witness = null;
      if (expected === null) fail(SW.CONDITIONS_NOT_SATISFIED);
      if (witness.value.length !== block || challenge.value.length !== block) fail(SW.WRONG_DATA);
      if (!timingSafeEqual(witness.value, expected)) fail(SW.SECURITY_STATUS_NOT_SATISFIED);
      v.managementAuthenticated = true;
      return encodeTlv(DAT.TEMPLATE, encodeTlv(DAT.RESPONSE, encrypt(challenge.value)));
    }
    if (challenge !== undefined && challenge.value.length === 0 && witness === undefined && response === undefined) {
      const c = new Uint8Array(randomBytes(block));
      v.challenge = c;
      v.witness = null;
      return encodeTlv(DAT.TEMPLATE, encodeTlv(DAT.CHALLENGE, c));
    }
    if (response !== undefined && witness === undefined && challenge === undefined) {
      const c = v.challenge;
      v.challenge = null;
      if (c === null) fail(SW.CONDITIONS_NOT_SATISFIED);
      if (response.value.length !== block) fail(SW.WRONG_DATA);
      if (!timingSafeEqual(response.value, encrypt(c))) fail(SW.SECURITY_STATUS_NOT_SATISFIED);
      v.managementAuthenticated = true;
      return EMPTY;
    }
    v.witness = null;
    v.challenge = null;
    fail(SW.WRONG_DATA);
  }

  // ---- GENERATE ASYMMETRIC KEY PAIR -----------------------------------------------------------

  private generate(cmd: CommandApdu, data: Uint8Array): Uint8Array {
    if (cmd.p1 !== 0x00) fail(SW.INCORRECT_P1P2);
    if (!isKeySlot(cmd.p2)) fail(SW.INCORRECT_P1P2);
    if (!this.v.managementAuthenticated) fail(SW.SECURITY_STATUS_NOT_SATISFIED);
    let alg: number | undefined;
    try {
      const crt = parseTlvs(data);
      if (crt.length !== 1 || crt[0]!.tag !== 0xac) fail(SW.WRONG_DATA);
      // 80: the algorithm; Yubico's AA (PIN policy) and AB (touch policy) are accepted and ignored.
      alg = findTlv(parseTlvs(crt[0]!.value), 0x80)?.value[0];
    } catch (e) {
      if (e instanceof Status) throw e;
      fail(SW.WRONG_DATA);
    }
    if (alg === undefined || !isAsymmetricAlg(alg)) fail(SW.WRONG_DATA);
    const pair =
      alg === ALG.RSA_1024 || alg === ALG.RSA_2048
        ? generateKeyPairSync('rsa', { modulusLength: alg === ALG.RSA_1024 ? 1024 : 2048, publicExponent: 65537 })
        : generateKeyPairSync('ec', { namedCurve: CURVES[alg].name });
    const keys = new Map(this.state.keys);
    keys.set(cmd.p2, { alg: alg as AsymmetricAlg, privateKey: pair.privateKey });
    this.commit({ ...this.state, keys });
    return encodePublicKeyTemplate(pair.publicKey);
  }
}
