/**
 * The minidriver port: the card as Windows' Base CSP and Smart Card KSP see it through a smart
 * card minidriver (CSP/KSP → minidriver → card), and the only way `src/windows/` reaches a card.
 *
 * Each method stands for the minidriver entry point the providers call (Microsoft Smart Card
 * Minidriver Specification, docs/sources.md#minidriver-spec):
 * - `begin`        CardGetProperty(CP_CARD_GUID) and CardReadFile("cardcf"): what a provider reads at
 *                  the start of every transaction to decide whether its cached items are fresh;
 * - `readFile`     CardReadFile (`mscp/cmapfile`, `mscp/kscNN`, `cardid`, ...);
 * - `containers`   CardGetContainerInfo over the containers `cmapfile` marks valid;
 * - `publicKey`    the public key CardGetContainerInfo returns for a container;
 * - `signDigest`   CardSignData over a hash the caller computed (PKCS#1 v1.5 or PSS padding);
 * - `pinStatus`    CardGetProperty(CP_CARD_PIN_INFO) / the tries left;
 * - `verifyPin`    CardAuthenticatePin.
 *
 * An implementation reads the card itself on every call: it keeps nothing between `begin` calls
 * except, within one, the card application's own index of its files (GIDS: the master file
 * table). Caching card data is the business of the caller — the modelled Smart Card service cache
 * in `windows/model/` — never of the port, so a signature always goes to the card as it is now.
 *
 * Implementations: GIDS (`gids-minidriver.ts`) and PIV (`piv-minidriver.ts`: the slots presented
 * as containers the way Windows' inbox PIV minidriver does, docs/piv.md).
 */
import type { HashName } from './digest-info.js';
import type { CardCf, KeySpec } from '../minidriver/index.js';

/** What `begin` reads: the card's identity and its freshness counters. */
export interface CardFreshness {
  /** The 16-byte `cardid` (CP_CARD_GUID): the key of every card cache. */
  cardId: Uint8Array;
  /** The `cardcf` counters (CP_CARD_FRESHNESS); all zero when `freshnessSource` is `host`. */
  cardcf: CardCf;
  /**
   * Where the freshness counters live: `cardcf` (the default) on the card, where a writer moves
   * them (GIDS); `host` when the card has no `cardcf` and the minidriver keeps the counters on the
   * host itself (PIV: docs/piv.md "Freshness without cardcf"), so nothing written on the card
   * moves them and the caller must supply its own.
   */
  freshnessSource?: 'cardcf' | 'host';
}

/** A valid container as CardGetContainerInfo describes it; its index is its `cmapfile` record. */
export interface MinidriverContainer {
  /** bContainerIndex. */
  index: number;
  /** The container name (`cmapfile` wszGuid). */
  name: string;
  /** AT_KEYEXCHANGE (`kx`) or AT_SIGNATURE (`sig`): the one key the container holds. */
  keySpec: KeySpec;
  keyBits: number;
  /** CONTAINER_MAP_RECORD's default flag. */
  isDefault: boolean;
}

/** CardSignData's input: a hash computed by the caller and the padding the card must apply. */
export interface SignDigestRequest {
  hash: HashName;
  digest: Uint8Array;
  /** CARD_PADDING_PKCS1 (DigestInfo, RFC 8017 §9.2; the default) or CARD_PADDING_PSS (RFC 8017 §9.1). */
  padding?: 'pkcs1' | 'pss';
  /** PSS salt length in bytes (default: the hash length, as BCRYPT_PSS_PADDING_INFO is usually filled). */
  saltLength?: number;
}

export interface PinInfo {
  triesLeft: number;
  tryLimit: number;
}

export interface MinidriverPort {
  /** The reader (or image) the card is in, for messages. */
  readonly name: string;
  /**
   * Starts a read of the card: reads `cardid` and `cardcf` afresh. Everything read until the next
   * `begin` belongs to the same card state (the card application's file index is read at most
   * once per `begin`).
   */
  begin(): Promise<CardFreshness>;
  /** CardReadFile of `dir/name` or a root file; undefined when the card has no such file. */
  readFile(path: string): Promise<Uint8Array | undefined>;
  /** The valid containers, from `cmapfile` as read from the card now. */
  containers(): Promise<MinidriverContainer[]>;
  /** The container's public key, SubjectPublicKeyInfo DER, read from the card. */
  publicKey(index: number): Promise<Uint8Array>;
  /**
   * Signs a digest with the container's key, on the card (needs the PIN verified). RSA: the
   * signature block; ECDSA: r‖s, each the size of the curve (what CardSignData and NCryptSignHash
   * return for ECC keys).
   */
  signDigest(index: number, request: SignDigestRequest): Promise<Uint8Array>;
  /**
   * CardRSADecrypt with PKCS#1 v1.5 padding (RFC 8017 §7.2.2): the plaintext of a cryptogram made
   * for the container's RSA key (needs the PIN verified). Optional: not every port offers it.
   */
  rsaDecrypt?(index: number, cryptogram: Uint8Array): Promise<Uint8Array>;
  pinStatus(): Promise<PinInfo>;
  /** Presents the user PIN; a wrong or blocked PIN is a PinError (code PIN_INCORRECT / PIN_BLOCKED). */
  verifyPin(pin: string): Promise<void>;
  /**
   * CardGetChallenge: a fresh administrator challenge from the card, good for one answer in this
   * connection. Optional: a card without challenge/response leaves it out.
   */
  getChallenge?(): Promise<Uint8Array>;
  /**
   * CardAuthenticateChallenge then CardUnblockPin (CARD_AUTHENTICATE_PIN_CHALLENGE_RESPONSE): the
   * response to the last challenge, and the new PIN with a full retry counter. A refused response
   * is an AdminAuthError with the tries the card reports.
   */
  unblockPinWithResponse?(response: Uint8Array, newPin: string): Promise<void>;
}
