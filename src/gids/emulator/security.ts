/**
 * User PIN and administrator commands: VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER,
 * GENERAL AUTHENTICATE, MANAGE SECURITY ENVIRONMENT, and the PIN status DOs.
 */
import { createCipheriv, createDecipheriv, randomBytes, timingSafeEqual } from 'node:crypto';
import type { CommandApdu } from '../../apdu/command.js';
import { SW } from '../../apdu/status.js';
import { PIN_MAX_LENGTH, PIN_MIN_LENGTH, PIN_REF_DEAUTH_ALL, PIN_REF_USER, PIN_TRY_LIMIT } from '../protocol/constants.js';
import { OP } from './acl.js';
import { fail, fcpInfo, pinTriesStatus, type CardContext } from './state.js';
import { findSimpleTlv, parseSimpleTlvs } from './tlv.js';

const EMPTY = new Uint8Array(0);

function isUserPinRef(ref: number): boolean {
  return ref === PIN_REF_USER || ref === 0x00;
}

/**
 * OwnerPIN.check: the try counter goes down and is stored before the comparison, so pulling the
 * card (or failing the save) never yields a free try; a match restores it.
 */
function checkPin(ctx: CardContext, candidate: Uint8Array): boolean {
  const wasValidated = ctx.v.pinValidated;
  ctx.v.pinValidated = false;
  if (wasValidated) ctx.v.se = null;
  ctx.setPinTries(ctx.p.pinTriesRemaining - 1);
  ctx.commit();
  const pin = ctx.p.pin;
  const match = pin !== null && pin.length === candidate.length && timingSafeEqual(pin, candidate);
  if (!match) return false;
  ctx.setPinTries(PIN_TRY_LIMIT);
  ctx.v.pinValidated = true;
  return true;
}

function pinLengthOk(n: number): boolean {
  return n >= PIN_MIN_LENGTH && n <= PIN_MAX_LENGTH;
}

/** Replaces the PIN; like OwnerPIN.update this restores the tries and logs the user out. */
function updatePin(ctx: CardContext, pin: Uint8Array): void {
  ctx.setPin(pin);
  ctx.v.pinValidated = false;
  ctx.v.se = null;
}

export function verify(ctx: CardContext, cmd: CommandApdu): Uint8Array {
  if (cmd.p1 !== 0x00) fail(SW.INCORRECT_P1P2);
  if (cmd.p2 === PIN_REF_DEAUTH_ALL) {
    ctx.deauthenticateAll();
    return EMPTY;
  }
  if (!isUserPinRef(cmd.p2)) fail(SW.REFERENCED_DATA_NOT_FOUND);
  const data = cmd.data ?? EMPTY;
  const tries = ctx.p.pinTriesRemaining;
  if (tries === 0) fail(SW.AUTH_METHOD_BLOCKED);
  // A length no PIN can have is refused without costing a try.
  if (data.length > 0 && !pinLengthOk(data.length)) fail(pinTriesStatus(tries));
  if (data.length === 0) {
    if (ctx.initMode) return EMPTY;
    fail(pinTriesStatus(tries));
  }
  if (!checkPin(ctx, data)) fail(pinTriesStatus(ctx.p.pinTriesRemaining));
  return EMPTY;
}

export function changeReferenceData(ctx: CardContext, cmd: CommandApdu): Uint8Array {
  const data = cmd.data ?? EMPTY;
  if (cmd.p1 === 0x01) {
    if (!isUserPinRef(cmd.p2)) fail(SW.REFERENCED_DATA_NOT_FOUND);
    if (!pinLengthOk(data.length)) fail(SW.WRONG_LENGTH);
    if (!ctx.initMode && !ctx.v.pinValidated) fail(SW.SECURITY_STATUS_NOT_SATISFIED);
    updatePin(ctx, data);
    return EMPTY;
  }
  if (cmd.p1 !== 0x00) fail(SW.INCORRECT_P1P2);
  if (!isUserPinRef(cmd.p2)) fail(SW.REFERENCED_DATA_NOT_FOUND);
  if (data.length < 2 * PIN_MIN_LENGTH || data.length > 2 * PIN_MAX_LENGTH) fail(pinTriesStatus(ctx.p.pinTriesRemaining));
  // The old PIN is the first |PIN| bytes; its length is not revealed before the check is paid for.
  const oldLength = Math.min(ctx.p.pin?.length ?? 0, data.length);
  if (ctx.p.pinTriesRemaining === 0) fail(SW.AUTH_METHOD_BLOCKED);
  if (!checkPin(ctx, data.subarray(0, oldLength))) fail(pinTriesStatus(ctx.p.pinTriesRemaining));
  const next = data.subarray(oldLength);
  if (!pinLengthOk(next.length)) fail(SW.WRONG_LENGTH);
  updatePin(ctx, next);
  ctx.v.pinValidated = true;
  return EMPTY;
}

export function resetRetryCounter(ctx: CardContext, cmd: CommandApdu): Uint8Array {
  if (ctx.initMode) fail(SW.COMMAND_NOT_ALLOWED_NO_EF);
  if (cmd.p1 !== 0x02) fail(SW.INCORRECT_P1P2);
  if (cmd.p2 !== PIN_REF_USER) fail(SW.REFERENCED_DATA_NOT_FOUND);
  if (!ctx.status.admin) fail(SW.SECURITY_STATUS_NOT_SATISFIED);
  const data = cmd.data ?? EMPTY;
  if (!pinLengthOk(data.length)) fail(SW.WRONG_LENGTH);
  ctx.setPin(data);
  ctx.deauthenticateAll();
  return EMPTY;
}

/** `7F71 06 97 01 <tries left> 93 01 <try limit>`; there is no PUK (7F73 → 6A88). */
export function pinStatus(ctx: CardContext, id: number): Uint8Array {
  if (id !== 0x7f71 && id !== 0x7f72) fail(SW.REFERENCED_DATA_NOT_FOUND);
  return new Uint8Array([id >> 8, id & 0xff, 0x06, 0x97, 0x01, ctx.p.pinTriesRemaining, 0x93, 0x01, PIN_TRY_LIMIT]);
}

/**
 * MSE SET. P1=41 (sign/decipher): 80 algorithm, 84 key reference. P1=81/C1 (authentication):
 * 83 key reference, algorithm 02. The key EF's CRT must hold a template tagged P2 with that
 * algorithm, and its MSE access rule is checked here: PSO itself checks nothing more.
 */
export function manageSecurityEnvironment(ctx: CardContext, cmd: CommandApdu): Uint8Array {
  const data = cmd.data ?? EMPTY;
  if (parseSimpleTlvs(data) === undefined) fail(SW.REFERENCE_DATA_NOT_USABLE);
  let alg: number;
  let keyRef: number;
  if (cmd.p1 === 0x81 || cmd.p1 === 0xc1) {
    keyRef = oneByte(findSimpleTlv(data, 0x83)?.value);
    alg = 0x02;
  } else if (cmd.p1 === 0x41) {
    alg = oneByte(findSimpleTlv(data, 0x80)?.value);
    keyRef = oneByte(findSimpleTlv(data, 0x84)?.value);
  } else if (cmd.p1 === 0xf3) {
    // RESTORE leaves no key selected, which GidsApplet then refuses.
    fail(SW.REFERENCE_DATA_NOT_USABLE);
  } else {
    fail(SW.FUNCTION_NOT_SUPPORTED);
  }
  if (keyRef === 0xff) fail(SW.REFERENCE_DATA_NOT_USABLE);
  const file = ctx.findKeyEf(keyRef);
  if (file === undefined || !crtAllows(fcpInfo(file.fcp).crt, cmd.p2, alg)) fail(SW.REFERENCE_DATA_NOT_USABLE);
  ctx.checkEf(file, OP.KEY_MSE);
  ctx.v.authKeyFid = cmd.p1 === 0x41 ? null : file.fid;
  ctx.v.se = { alg, keyFid: file.fid };
  return EMPTY;
}

function oneByte(value: Uint8Array | undefined): number {
  if (value?.length !== 1) fail(SW.REFERENCE_DATA_NOT_USABLE);
  return value[0]!;
}

/** Does the CRT hold a template tagged `usage` (B6, B8, A4) that contains `80 01 alg`? */
function crtAllows(crt: Uint8Array | undefined, usage: number, alg: number): boolean {
  const templates = crt === undefined ? undefined : parseSimpleTlvs(crt);
  return (templates ?? []).some((t) => {
    if (t.tag !== usage) return false;
    const a = findSimpleTlv(t.value, 0x80)?.value;
    return a?.length === 1 && a[0] === alg;
  });
}

function tdes(key: Uint8Array, data: Uint8Array, encrypt: boolean): Uint8Array {
  // 3-key 3DES-EDE in CBC mode with a zero IV and no padding, as the GIDS minidriver uses it.
  const iv = Buffer.alloc(8);
  const c = encrypt ? createCipheriv('des-ede3-cbc', key, iv) : createDecipheriv('des-ede3-cbc', key, iv);
  c.setAutoPadding(false);
  return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
}

function adminKey(ctx: CardContext): Uint8Array {
  const f = ctx.v.authKeyFid === null ? undefined : ctx.findEf(ctx.v.authKeyFid);
  if (f?.key?.kind !== 'symmetric') fail(SW.CONDITIONS_NOT_SATISFIED);
  return f.key.value;
}

function challengeFailed(ctx: CardContext): never {
  ctx.clearAdminChallenge();
  fail(SW.SECURITY_STATUS_NOT_SATISFIED);
}

/**
 * GENERAL AUTHENTICATE with the key chosen by MSE. Mutual: host sends 81 R1 (16 bytes), card
 * answers 81 R2; host sends 82 E(R2‖R1‖Z1‖80), card answers 82 E(R1‖R2‖Z2‖80). External: host
 * sends an empty 81, card answers an 8-byte challenge C, host sends 82 E(C).
 */
export function generalAuthenticate(ctx: CardContext, cmd: CommandApdu): Uint8Array {
  if (ctx.initMode) fail(SW.COMMAND_NOT_ALLOWED_NO_EF);
  if (cmd.p1 !== 0x00 || cmd.p2 !== 0x00) fail(SW.INCORRECT_P1P2);
  const data = cmd.data ?? EMPTY;
  const template = data[0] === 0x7c ? findSimpleTlv(data, 0x7c) : undefined;
  if (template === undefined) fail(SW.REFERENCE_DATA_NOT_USABLE);
  const request = findSimpleTlv(template.value, 0x81);
  if (request !== undefined) return issueChallenge(ctx, request.value);
  const response = findSimpleTlv(template.value, 0x82);
  if (response !== undefined) return checkResponse(ctx, response.value);
  fail(SW.REFERENCE_DATA_NOT_USABLE);
}

function issueChallenge(ctx: CardContext, hostChallenge: Uint8Array): Uint8Array {
  // A new exchange always starts from "not authenticated".
  ctx.clearAdminChallenge();
  let size: number;
  if (hostChallenge.length === 16) {
    ctx.v.hostChallenge = hostChallenge.slice();
    ctx.v.admin = 'mutual-challenge';
    size = 16;
  } else if (hostChallenge.length === 0) {
    ctx.v.admin = 'external-challenge';
    size = 8;
  } else {
    fail(SW.REFERENCE_DATA_NOT_USABLE);
  }
  const challenge = new Uint8Array(randomBytes(size));
  ctx.v.cardChallenge = challenge;
  return new Uint8Array([0x7c, size + 2, 0x81, size, ...challenge]);
}

function checkResponse(ctx: CardContext, cryptogram: Uint8Array): Uint8Array {
  if (cryptogram.length > 40) fail(SW.REFERENCE_DATA_NOT_USABLE);
  const cardChallenge = ctx.v.cardChallenge;
  if (ctx.v.admin === 'mutual-challenge' && cardChallenge !== null && ctx.v.hostChallenge !== null) {
    const hostChallenge = ctx.v.hostChallenge;
    if (cryptogram.length !== 40) challengeFailed(ctx);
    const key = adminKey(ctx);
    const plain = tdes(key, cryptogram, false);
    const ok =
      timingSafeEqual(plain.subarray(0, 16), cardChallenge) &&
      timingSafeEqual(plain.subarray(16, 32), hostChallenge) &&
      plain[39] === 0x80;
    if (!ok) challengeFailed(ctx);
    const answer = new Uint8Array(40);
    answer.set(hostChallenge, 0);
    answer.set(cardChallenge, 16);
    answer.set(randomBytes(7), 32);
    answer[39] = 0x80;
    ctx.clearAdminChallenge();
    ctx.v.admin = 'mutual';
    return new Uint8Array([0x7c, 0x2a, 0x82, 0x28, ...tdes(key, answer, true)]);
  }
  if (ctx.v.admin === 'external-challenge' && cardChallenge !== null) {
    if (cryptogram.length < 8 || cryptogram.length % 8 !== 0) challengeFailed(ctx);
    const plain = tdes(adminKey(ctx), cryptogram, false);
    if (!timingSafeEqual(plain.subarray(0, 8), cardChallenge)) challengeFailed(ctx);
    ctx.clearAdminChallenge();
    ctx.v.admin = 'external';
    return EMPTY;
  }
  // No challenge outstanding: a second response (replay) or a response without a request.
  fail(SW.CONDITIONS_NOT_SATISFIED);
}
