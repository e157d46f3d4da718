import type { KeyObject } from 'node:crypto';
import type { AsymmetricAlg, SymmetricAlg } from '../protocol/constants.js';

export interface PivKey {
  readonly alg: AsymmetricAlg;
  readonly privateKey: KeyObject;
}

/**
 * Everything a power cycle keeps. Never changed in place: a command builds the next state and
 * the card commits it (saved first), so a failed save leaves the previous state whole.
 */
export interface PivState {
  /** Object tag → value (the content of tag 53; the discovery object's content of 7E). */
  readonly objects: ReadonlyMap<number, Uint8Array>;
  /** PIN and PUK as 8-byte padded blocks (SP 800-73-4 Part 2 §2.4.3). */
  readonly pin: Uint8Array;
  readonly pinTries: number;
  readonly pinTryLimit: number;
  readonly puk: Uint8Array;
  readonly pukTries: number;
  readonly pukTryLimit: number;
  readonly managementKey: { readonly alg: SymmetricAlg; readonly value: Uint8Array };
  /** Key slot → its private key. */
  readonly keys: ReadonlyMap<number, PivKey>;
  /** What the Yubico GET SERIAL extension answers. */
  readonly serial: number;
}

/** Everything a power cycle forgets. */
export class PivVolatile {
  selected = false;
  pinVerified = false;
  /** The PIN was verified by the command just before (for "PIN Always" keys such as 9C). */
  pinJustVerified = false;
  managementAuthenticated = false;
  /** The witness sent encrypted in step 1 of mutual authentication, awaiting its return. */
  witness: Uint8Array | null = null;
  /** The challenge sent in step 1 of external (one-way) authentication. */
  challenge: Uint8Array | null = null;
  /** A command chain in progress (CLA bit 10). */
  chain: { ins: number; p1: number; p2: number; parts: Uint8Array[]; bytes: number } | null = null;
  /** Response bytes waiting for GET RESPONSE. */
  pending: Uint8Array | null = null;
}
