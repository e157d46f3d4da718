/**
 * The Base Smart Card CSP (CryptoAPI) and the Smart Card KSP (CNG) of the model: one class, two
 * instances per process, reading the card through the Smart Card service's global cache.
 *
 * Modelled behaviour and its sources:
 * - Each transaction starts by reading `cardid` and `cardcf`; cached items are looked up under
 *   the card GUID, the matching freshness counter and a lookup name, and a miss reads the card and
 *   fills the cache [FSR][ARCH][RC][WC]. Lookup names follow the inbox minidriver
 *   (`Cached_GeneralFile/mscp/cmapfile`, `Cached_GeneralFile/mscp/ksc00`, `Cached_ContainerInfo_00`)
 *   [BLOG, unofficial].
 * - Which counter keys which item is not documented (docs/sources.md#open-questions); the model
 *   keys files by wFilesFreshness and container data (public keys) by wContainersFreshness, the
 *   split the Minidriver spec gives the two counters [FSR].
 * - Everything the sources leave open is a parameter (hypotheses.ts): the cache mode
 *   (CP_CARD_CACHE_MODE: the global cache, a per-process one cleared on removal, or none [DEVG]),
 *   whether the absence of a file is cached (`negativeCaching`; an absent file is cached under
 *   `Cached_NoFile/<path>`), which counter keys which item (`freshness`).
 * - A card without `cardcf` (PIV) has its counters on the host, in the minidriver: a card that
 *   stays in the reader keeps its freshness, a re-insertion moves it (piv-cache.ts) [BLOG].
 * - The minidriver (the MinidriverPort in the reader) keeps nothing between transactions (model
 *   assumption): each provider operation starts with its `begin()`, and the card application's
 *   file index is read afresh in each, so only the Base CSP/KSP data cache can go stale. A
 *   signature goes to the card through the minidriver, with no card data cache on the way.
 * - Container names: `\\.\reader\name`, `\\.\reader\` (default container), a bare name, or empty
 *   (default container) [ARCH][CREQ]. A missing container is NTE_BAD_KEYSET; a key spec the
 *   container has no key for is NTE_NO_KEY [GUK].
 * - PINs: each provider instance (one per process and API) keeps its own PIN cache, CryptoAPI and
 *   CNG separate [PIN][KSPP] (whether they share one is undocumented:
 *   docs/sources.md#open-questions); card removal clears them [AEX][PIN].
 * - The Base CSP checks each signature it makes against the container's public key as it knows it
 *   — from the cache — so a stale cached key makes signing fail [seed answer]; the model reports
 *   NTE_BAD_SIGNATURE (code not documented). The KSP is not known to do this and does not.
 * - UI: without a card, or needing a PIN it has not cached, a provider would show a dialog. With
 *   CRYPT_SILENT / SILENT it fails with NTE_SILENT_CONTEXT [CACPK]; otherwise the model asks its
 *   `PinSource` (the user), and a dialog nobody answers is SCARD_W_CANCELLED_BY_USER (assumption).
 */
import { constants, createPublicKey, publicDecrypt, X509Certificate, type KeyObject } from 'node:crypto';
import { hex } from '../../bytes.js';
import { CardlinkError } from '../../errors.js';
import { PinError, digestInfo, type HashName, type MinidriverPort } from '../../card/index.js';
import {
  MSCP_DIRECTORY,
  certificateFileName,
  decodeCertificateFile,
  isDefaultContainer,
  isValidContainer,
  parseCmapfile,
  type CardCf,
  type ContainerRecord,
} from '../../minidriver/index.js';
import { AT_KEYEXCHANGE, AT_SIGNATURE, HRESULT, MS_SCARD_PROV, MS_SMART_CARD_KSP, PROV_TYPE } from '../constants.js';
import { WinError } from '../errors.js';
import type { HashAlgorithm, KeyProvInfo } from '../store.js';
import type { ModelKeyHandle } from './providers.js';
import { cacheFreshness, DOCUMENTED, type Hypotheses } from './hypotheses.js';
import { pivCardCf } from './piv-cache.js';
import type { CardDataCache } from './scardsvr.js';

/** The user in front of the machine: answers a PIN dialog, or undefined to cancel it. */
export type PinSource = () => string | undefined;

/**
 * A provider's own connection to the card: SCardConnect in SCARD_SHARE_SHARED mode [SCON] and a
 * minidriver over it, for one transaction [SBT]. It fails with SCARD_E_SHARING_VIOLATION while
 * another application (cardlink, say) holds the card exclusively.
 */
export interface CardConnection {
  port: MinidriverPort;
  close(): Promise<void>;
}
export type CardConnector = () => Promise<CardConnection>;

/** One smart card reader of the machine and the card in it, if any. */
export class CardReader {
  /** The inserted card (its identity: a re-insertion of the same card is the same object). */
  card: object | undefined;
  /**
   * How many insertions the reader has seen: the event count SCardGetStatusChange reports in
   * dwEventState's upper word [BLOG], which a PIV minidriver folds into its freshness (piv-cache.ts).
   */
  insertions = 0;
  private connector: CardConnector | undefined;
  constructor(readonly name: string) {}

  /**
   * Puts a card in: either a minidriver port every process shares (no connection sharing is
   * modelled then), or a connector that opens a connection of the provider's own each time.
   */
  insert(card: MinidriverPort | CardConnector): void {
    this.card = card;
    this.insertions++;
    this.connector = typeof card === 'function' ? card : async () => ({ port: card, close: async () => {} });
  }

  remove(): void {
    this.card = undefined;
    this.connector = undefined;
  }

  /** SCardConnect(SHARED): a connection for one provider transaction. */
  async connect(operation: string): Promise<CardConnection> {
    if (!this.connector) throw WinError.of('SCARD_E_NO_SMARTCARD', operation, `no card in '${this.name}'`);
    try {
      return await this.connector();
    } catch (err) {
      if (err instanceof CardlinkError && err.code === 'SHARING_VIOLATION') throw WinError.of('SCARD_E_SHARING_VIOLATION', operation, `'${this.name}': ${err.message}`);
      throw err;
    }
  }
}

interface Txn {
  card: MinidriverPort;
  cardId: Uint8Array;
  cf: CardCf;
  /** A CRYPT_MACHINE_KEYSET context: no data cache on the way [ARCH]. */
  noCache: boolean;
}

const HASH: Record<HashAlgorithm, HashName> = { SHA1: 'sha1', SHA256: 'sha256', SHA384: 'sha384', SHA512: 'sha512' };

export interface CardCertificate {
  der: Uint8Array;
  info: KeyProvInfo;
  container: string;
  /** The container carries CONTAINER_MAP_DEFAULT_CONTAINER. */
  isDefault: boolean;
}

/** The lookup-name prefix under which negative caching keeps "this file is not on the card". */
export const NO_FILE_PREFIX = 'Cached_NoFile/';

/** CP_CACHE_MODE_SESSION_ONLY: the same rule as the global cache, held by one provider instance. */
class SessionCache implements CardDataCache {
  private readonly items = new Map<string, { freshness: number; data: Uint8Array }>();
  read(cardId: Uint8Array, freshness: number, name: string): Uint8Array {
    const item = this.items.get(`${hex(cardId)}|${name}`);
    if (!item || item.freshness !== freshness) throw WinError.of('SCARD_W_CACHE_ITEM_NOT_FOUND', 'session cache', name);
    return item.data.slice();
  }
  write(cardId: Uint8Array, freshness: number, name: string, data: Uint8Array): void {
    this.items.set(`${hex(cardId)}|${name}`, { freshness, data: data.slice() });
  }
  clear(): void {
    this.items.clear();
  }
}

export class SmartCardProvider {
  readonly name: string;
  /** Per-process PIN cache, by card GUID. In memory only. */
  private readonly pins = new Map<string, string>();
  /** The process's own data cache, used in CP_CACHE_MODE_SESSION_ONLY. */
  private readonly processCache = new SessionCache();

  constructor(
    readonly api: 'CryptoAPI' | 'CNG',
    private readonly reader: CardReader,
    private readonly scardsvr: CardDataCache,
    private readonly pinSource: PinSource,
    private readonly hypotheses: Hypotheses = DOCUMENTED,
  ) {
    this.name = api === 'CryptoAPI' ? MS_SCARD_PROV : MS_SMART_CARD_KSP;
  }

  clearPins(): void {
    this.pins.clear();
  }

  /** The card left the reader: a session-only cache goes with it [DEVG]. */
  cardRemoved(): void {
    this.pins.clear();
    this.processCache.clear();
  }

  /** Where this provider caches card data, per CP_CARD_CACHE_MODE; undefined for no cache. */
  private get cache(): CardDataCache | undefined {
    const mode = this.hypotheses.cacheMode;
    return mode === 'global' ? this.scardsvr : mode === 'session-only' ? this.processCache : undefined;
  }

  hasCachedPin(cardId: Uint8Array): boolean {
    return this.pins.has(hex(cardId));
  }

  /**
   * One provider transaction: its own connection to the card (shared mode), `cardid` and `cardcf`
   * read at the start [FSR], the connection closed at the end — a provider holds the card only for
   * the operation, like the Base CSP's transactions [SBT].
   */
  private async txn<T>(operation: string, silent: boolean, fn: (t: Txn) => Promise<T>, noCache = false): Promise<T> {
    if (!this.reader.card) {
      if (silent) throw WinError.of('NTE_SILENT_CONTEXT', operation, `no card in '${this.reader.name}' and the context may not ask for one`);
      throw WinError.of('SCARD_W_CANCELLED_BY_USER', operation, `no card in '${this.reader.name}'; nobody inserted one`);
    }
    const conn = await this.reader.connect(operation);
    try {
      const { cardId, cardcf, freshnessSource } = await this.begin(conn.port, operation);
      // A card without cardcf (PIV): the minidriver's own counters on the host (piv-cache.ts).
      const cf = freshnessSource === 'host' ? pivCardCf(this.cache, cardId, this.hypotheses.pivFreshness === 'insertion' ? this.reader.insertions : 0) : cardcf;
      return await fn({ card: conn.port, cardId, cf, noCache });
    } finally {
      await conn.close();
    }
  }

  /** CardAcquireContext's reads; a PIV card without a CHUID gives the minidriver no card GUID to work with (assumption: it refuses the card). */
  private async begin(port: MinidriverPort, operation: string): ReturnType<MinidriverPort['begin']> {
    try {
      return await port.begin();
    } catch (err) {
      if (err instanceof CardlinkError && err.code === 'PIV_NO_CHUID') throw WinError.of('SCARD_E_CARD_UNSUPPORTED', operation, err.message);
      throw err;
    }
  }

  private cached(t: Txn, freshness: number, name: string): Uint8Array | undefined {
    const cache = this.cache;
    if (!cache || t.noCache) return undefined;
    try {
      return cache.read(t.cardId, freshness, name);
    } catch (err) {
      if (err instanceof WinError && (err.hresult === HRESULT.SCARD_W_CACHE_ITEM_NOT_FOUND || err.hresult === HRESULT.SCARD_W_CACHE_ITEM_STALE)) return undefined;
      throw err;
    }
  }

  private remember(t: Txn, freshness: number, name: string, data: Uint8Array): void {
    const cache = this.cache;
    if (!cache || t.noCache) return;
    try {
      cache.write(t.cardId, freshness, name, data);
    } catch (err) {
      // Too big for the cache (or no service): the provider just reads the card next time.
      if (!(err instanceof WinError)) throw err;
    }
  }

  /** CardReadFile through the cache: `path` like `mscp/cmapfile`. */
  private async file(t: Txn, path: string): Promise<Uint8Array | undefined> {
    const key = `Cached_GeneralFile/${path}`;
    const freshness = cacheFreshness(this.hypotheses, t.cf, 'files');
    const hit = this.cached(t, freshness, key);
    if (hit) return hit;
    if (this.hypotheses.negativeCaching && this.cached(t, freshness, `${NO_FILE_PREFIX}${path}`)) return undefined;
    const raw = await t.card.readFile(path);
    if (raw) this.remember(t, freshness, key, raw);
    else if (this.hypotheses.negativeCaching) this.remember(t, freshness, `${NO_FILE_PREFIX}${path}`, new Uint8Array([0]));
    return raw;
  }

  private async cmapfile(t: Txn): Promise<ContainerRecord[]> {
    const raw = await this.file(t, `${MSCP_DIRECTORY}/cmapfile`);
    return raw ? parseCmapfile(raw) : [];
  }

  private async publicKeySpki(t: Txn, index: number): Promise<Uint8Array> {
    const key = `Cached_ContainerInfo_${index.toString().padStart(2, '0')}`;
    const freshness = cacheFreshness(this.hypotheses, t.cf, 'containers');
    const hit = this.cached(t, freshness, key);
    if (hit) return hit;
    const spki = await t.card.publicKey(index);
    this.remember(t, freshness, key, spki);
    return spki;
  }

  /** Resolves a container name form to a cmapfile index [ARCH][CREQ]. */
  private resolve(records: ContainerRecord[], container: string, operation: string): number {
    let name = container;
    const m = /^\\\\\.\\([^\\]+)\\(.*)$/.exec(container);
    if (m) {
      if (m[1] !== this.reader.name) throw WinError.of('NTE_BAD_KEYSET', operation, `no reader '${m[1]}'`);
      name = m[2]!;
    }
    const index = name === '' ? records.findIndex((r) => isValidContainer(r) && isDefaultContainer(r)) : records.findIndex((r) => isValidContainer(r) && r.name === name);
    if (index < 0) throw WinError.of('NTE_BAD_KEYSET', operation, name === '' ? 'the card has no default container' : `no container '${name}' on the card`);
    return index;
  }

  /**
   * CryptAcquireContext + CryptGetUserKey (CSP) or NCryptOpenKey (KSP). A KSP key spec of 0
   * means "whichever key the container holds". `noCache`: a CRYPT_MACHINE_KEYSET context, which
   * the smart card providers serve without their data cache [ARCH] — what doctor compares the
   * cached acquisition with.
   */
  async open(container: string, keySpec: number, silent: boolean, noCache = false): Promise<ModelKeyHandle> {
    const op = this.api === 'CryptoAPI' ? 'CryptAcquireContext' : 'NCryptOpenKey';
    return this.txn(op, silent, async (t) => {
      const records = await this.cmapfile(t);
      const index = this.resolve(records, container, op);
      const record = records[index]!;
      const has = keySpec === AT_SIGNATURE ? record.sigKeyBits > 0 : keySpec === AT_KEYEXCHANGE ? record.kxKeyBits > 0 : this.api === 'CNG' && keySpec === 0;
      if (!has) throw WinError.of('NTE_NO_KEY', this.api === 'CryptoAPI' ? 'CryptGetUserKey' : op, `container '${record.name}' has no ${keySpec === AT_SIGNATURE ? 'signature' : 'key exchange'} key`);
      const legacySpec = keySpec !== 0 ? keySpec : record.kxKeyBits > 0 ? AT_KEYEXCHANGE : AT_SIGNATURE;
      let released = false;
      return {
        api: this.api,
        keySpec: legacySpec,
        publicKeySpki: async () => this.txn(op, silent, (t2) => this.publicKeySpki(t2, index), noCache),
        setPin: async (pin) => this.setPin(pin),
        signHash: async (algorithm, hash) => {
          if (released) throw WinError.of('E_INVALIDARG', 'sign', 'the key handle was released');
          return this.sign(index, algorithm, hash, silent, noCache);
        },
        release: () => {
          released = true;
        },
      };
    }, noCache);
  }

  private async sign(index: number, algorithm: HashAlgorithm, hash: Uint8Array, silent: boolean, noCache: boolean): Promise<Uint8Array> {
    const op = this.api === 'CryptoAPI' ? 'CryptSignHash' : 'NCryptSignHash';
    return this.txn(op, silent, async (t) => {
      const id = hex(t.cardId);
      if ((await t.card.pinStatus()).triesLeft === 0) throw WinError.of('SCARD_W_CHV_BLOCKED', op);
      let pin = this.pins.get(id);
      if (pin === undefined) {
        if (silent) throw WinError.of('NTE_SILENT_CONTEXT', op, 'the PIN is needed and the context may not ask for it');
        pin = this.pinSource();
        if (pin === undefined) throw WinError.of('SCARD_W_CANCELLED_BY_USER', op, 'the PIN dialog was cancelled');
      }
      try {
        await t.card.verifyPin(pin);
      } catch (err) {
        if (!(err instanceof PinError)) throw err;
        this.pins.delete(id);
        throw WinError.of(err.code === 'PIN_BLOCKED' ? 'SCARD_W_CHV_BLOCKED' : 'SCARD_W_WRONG_CHV', op, err.message);
      }
      this.pins.set(id, pin);
      // Straight to the card (CardSignData): no cache of the card's files on this path.
      const signature = await t.card.signDigest(index, { hash: HASH[algorithm], digest: hash });
      if (this.api === 'CryptoAPI') {
        const known = createPublicKey({ key: Buffer.from(await this.publicKeySpki(t, index)), format: 'der', type: 'spki' });
        if (!verifyPrehashed(known, HASH[algorithm], hash, signature)) throw WinError.of('NTE_BAD_SIGNATURE', op, 'the signature does not verify with the public key the provider has cached for this container');
      }
      return signature;
    }, noCache);
  }

  /**
   * PP_KEYEXCHANGE_PIN / PP_SIGNATURE_PIN (CNG: NCRYPT_PIN_PROPERTY): presents the PIN now and
   * keeps it in this provider's cache for the process.
   */
  async setPin(pin: string): Promise<void> {
    const op = this.api === 'CryptoAPI' ? 'CryptSetProvParam' : 'NCryptSetProperty';
    return this.txn(op, true, async (t) => {
      try {
        await t.card.verifyPin(pin);
      } catch (err) {
        if (!(err instanceof PinError)) throw err;
        throw WinError.of(err.code === 'PIN_BLOCKED' ? 'SCARD_W_CHV_BLOCKED' : 'SCARD_W_WRONG_CHV', op, err.message);
      }
      this.pins.set(hex(t.cardId), pin);
    });
  }

  /**
   * CryptGetKeyParam(KP_CERTIFICATE) / NCRYPT_CERTIFICATE_PROPERTY: the certificate of the key's
   * container, read through the cache like everything else.
   */
  async keyCertificate(container: string, keySpec: number, silent: boolean): Promise<Uint8Array> {
    const op = this.api === 'CryptoAPI' ? 'CryptGetKeyParam' : 'NCryptGetProperty';
    return this.txn(op, silent, async (t) => {
      const records = await this.cmapfile(t);
      const index = this.resolve(records, container, op);
      const path = certificateFileOf(index, keySpec);
      const raw = await this.file(t, path);
      if (!raw) throw WinError.of('SCARD_E_FILE_NOT_FOUND', op, `container '${records[index]!.name}' has no certificate (${path})`);
      return decodeCertificateFile(raw, path).der;
    });
  }

  /**
   * PP_USER_CERTSTORE / NCRYPT_USER_CERTSTORE_PROPERTY: every certificate on the card with the
   * provider info that links it to its container [ARCH][KSPP][ISS2517]: bare container name,
   * the Base CSP (type 1, key spec 1 or 2) or the KSP (type 0, legacy key spec).
   */
  async userCertificates(silent: boolean): Promise<CardCertificate[]> {
    return this.txn('PP_USER_CERTSTORE', silent, async (t) => {
      const out: CardCertificate[] = [];
      const records = await this.cmapfile(t);
      for (const [index, r] of records.entries()) {
        if (!isValidContainer(r)) continue;
        const spec = r.kxKeyBits > 0 ? AT_KEYEXCHANGE : AT_SIGNATURE;
        const path = certificateFileOf(index, spec);
        const raw = await this.file(t, path);
        if (!raw) continue;
        const der = decodeCertificateFile(raw, path).der;
        out.push({
          der,
          container: r.name,
          isDefault: isDefaultContainer(r),
          info: {
            containerName: r.name,
            providerName: this.name,
            providerType: this.api === 'CryptoAPI' ? PROV_TYPE.RSA_FULL : PROV_TYPE.CNG,
            flags: 0,
            params: [],
            keySpec: spec,
          },
        });
      }
      return out;
    });
  }


  /** Whether the certificate's key is one CryptoAPI can use (RSA); ECC needs the KSP [ISS2517]. */
  static cryptoApiCanUse(der: Uint8Array): boolean {
    return new X509Certificate(der).publicKey.asymmetricKeyType === 'rsa';
  }
}

/** `mscp/kxcNN` (AT_KEYEXCHANGE) or `mscp/kscNN` (AT_SIGNATURE): the Base CSP's certificate file names. */
function certificateFileOf(index: number, keySpec: number): string {
  return `${MSCP_DIRECTORY}/${certificateFileName(index, keySpec === AT_KEYEXCHANGE ? 'kx' : 'sig')}`;
}

/** PKCS#1 v1.5 over a hash the caller computed: recover the DigestInfo and compare. */
function verifyPrehashed(key: KeyObject, hash: HashName, digest: Uint8Array, signature: Uint8Array): boolean {
  try {
    const recovered = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, signature);
    return Buffer.compare(recovered, Buffer.from(digestInfo(hash, digest))) === 0;
  } catch {
    return false;
  }
}
