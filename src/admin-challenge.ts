/**
 * The administrator challenge/response that unblocks a PIN offline, shared by the card side (the
 * host driver answers with a key it holds) and the help desk (the service answers with the key it
 * derives for that card). One definition, so both compute the same bytes.
 *
 * The card issues an 8-byte random challenge C (GIDS GENERAL AUTHENTICATE "external
 * authentication", `7C 02 81 00` → `7C 0A 81 08 C`); the response is C enciphered with the card's
 * 3-key 3DES administrator key. GIDS uses 3DES-CBC with a zero IV and no padding for its admin
 * cryptograms, which on one 8-byte block is the same as the single-block ECB encipherment the
 * minidriver's CardGetChallenge/CardAuthenticateChallenge pair expects
 * (docs/sources.md#admin-challenge, [GA] GidsPINManager external authenticate).
 */
import { createCipheriv } from 'node:crypto';
import { fromHex, hex } from './bytes.js';
import { CardlinkError } from './errors.js';

export const ADMIN_CHALLENGE_BYTES = 8;
export const ADMIN_KEY_BYTES = 24;

/** A challenge or response that is not 16 hex digits, or a key that is not 48. */
export class AdminChallengeError extends CardlinkError {
  constructor(message: string) {
    super('BAD_ADMIN_CHALLENGE', message);
  }
}

/** E_K(C): 3DES-EDE3, one block, zero IV. */
export function adminChallengeResponse(adminKey: Uint8Array, challenge: Uint8Array): Uint8Array {
  if (adminKey.length !== ADMIN_KEY_BYTES) throw new AdminChallengeError(`an administrator key has ${ADMIN_KEY_BYTES} bytes (48 hex digits)`);
  if (challenge.length !== ADMIN_CHALLENGE_BYTES) throw new AdminChallengeError(`a challenge has ${ADMIN_CHALLENGE_BYTES} bytes (16 hex digits)`);
  const c = createCipheriv('des-ede3-cbc', adminKey, Buffer.alloc(8));
  c.setAutoPadding(false);
  return new Uint8Array(Buffer.concat([c.update(challenge), c.final()]));
}

/** `1A2B 3C4D 5E6F 7081`: four digits a group, easy to read out over the phone. */
export function groupedHex(bytes: Uint8Array): string {
  return hex(bytes).replace(/(.{4})(?=.)/g, '$1 ');
}

/** 16 hex digits, spaces and dashes allowed (as people type what they were read out). */
export function parseChallengeHex(text: string, what: 'challenge' | 'response'): Uint8Array {
  const clean = text.replace(/[\s-]+/g, '');
  if (!/^[0-9a-fA-F]{16}$/.test(clean)) throw new AdminChallengeError(`the ${what} is 16 hex digits (8 bytes), e.g. 1A2B 3C4D 5E6F 7081`);
  return fromHex(clean);
}
