/**
 * The model's crypt32: certificate contexts, the registry-backed `CurrentUser\My` system store,
 * context properties and CryptAcquireCertificatePrivateKey, as one process sees them. Several
 * ModelCertStoreHost instances over the same directory are several processes on one machine.
 *
 * Persistence: one file per certificate, named by its SHA-1 and holding the serialized element
 * (serialize.ts). On Windows the user's `My` store is a set of such files under the roaming profile,
 * `%APPDATA%\Microsoft\SystemCertificates\My\Certificates\<SHA1>` [MIG]; Wine keeps the same
 * element in the `Blob` value of the registry key
 * `HKCU\Software\Microsoft\SystemCertificates\My\Certificates\<SHA1>` [wine-native-check]. The
 * model lays its directory out like Wine's key, so the contract suite can compare the two.
 */
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../atomic-file.js';
import { equalBytes } from '../../bytes.js';
import { certSha1, certThumbprint } from '../../thumbprint.js';
import {
  ACQUIRE,
  ADD,
  CERT_NCRYPT_KEY_SPEC,
  HRESULT,
  KEY_PROV_FLAG,
  PROP,
  PROV_TYPE,
  SET_PROP,
  type AddDisposition,
} from '../constants.js';
import { WinError } from '../errors.js';
import { parseElement, parseKeyProvInfo, serializeElement, serializeKeyProvInfo, type SerializedProperty } from '../serialize.js';
import type { AcquiredKey, CertContext, CertStore, CertStoreHost, HashAlgorithm, KeyProvInfo } from '../store.js';
import type { HealingSource } from './hypotheses.js';
import { NO_PROVIDERS, type ModelKeyHandle, type ModelKeyProviders } from './providers.js';

/** Handle-valued properties: never copied to a store, never persisted [ADD remarks]. */
const HANDLE_PROPS = new Set<number>([PROP.KEY_PROV_HANDLE, PROP.KEY_CONTEXT, PROP.NCRYPT_KEY_HANDLE]);

export const MY_STORE_PATH = ['HKCU', 'Software', 'Microsoft', 'SystemCertificates', 'My', 'Certificates'];
/**
 * Where the model keeps the KEY_PROV_INFO recorded per key identifier (the store
 * CryptGetKeyIdentifierProperty reads [KIDP]). Its real location is not documented; the model's
 * is its own choice.
 */
export const KEY_IDENTIFIER_PATH = ['HKCU', 'Software', 'Microsoft', 'SystemCertificates', 'KeyIdentifiers'];

/** CERT_KEY_IDENTIFIER_PROP_ID's fallback: SHA-1 of the SubjectPublicKeyInfo, upper-case hex [SCCP]. */
export function keyIdentifier(cert: X509Certificate): string {
  return createHash('sha1').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('hex').toUpperCase();
}

interface Property {
  data: Uint8Array;
  /** Set with CERT_SET_PROPERTY_INHIBIT_PERSIST_FLAG: in memory on this element only. */
  inMemory: boolean;
}

/** One certificate element as this process holds it; contexts are references to it. */
class Element {
  readonly props = new Map<number, Property>();
  /** The handle CACHE left on the element, freed with it (the store's close, or the free context's). */
  cached: { key: AcquiredKey; handle: ModelKeyHandle } | undefined;
  constructor(
    readonly encoded: Uint8Array,
    readonly thumbprint: string,
    readonly store: ModelCertStore | undefined,
    /** The certificate once parsed (at CertCreateCertificateContext, or on first use). */
    public parsed?: X509Certificate,
  ) {}

  /** The certificate, decoded at most once per element. */
  certificate(operation: string): X509Certificate {
    this.parsed ??= parseCertificate(this.encoded, operation);
    return this.parsed;
  }
}

class ModelContext implements CertContext {
  constructor(
    readonly element: Element,
    readonly host: ModelCertStoreHost,
  ) {}
  get encoded(): Uint8Array {
    return this.element.encoded;
  }
  get thumbprint(): string {
    return this.element.thumbprint;
  }
}

function parseCertificate(encoded: Uint8Array, operation: string): X509Certificate {
  try {
    return new X509Certificate(encoded);
  } catch (err) {
    // CertCreateCertificateContext fails with an ASN.1 error for garbage; Wine reports
    // CRYPT_E_ASN1_BADTAG [wine-native-check], and the model reports the same for anything
    // that does not decode (Windows may name a finer ASN.1 error for some inputs).
    throw WinError.of('CRYPT_E_ASN1_BADTAG', operation, `not a DER certificate (${(err as Error).message})`);
  }
}

export interface ModelCertStoreHostOptions {
  /** The machine's state directory (the `model:DIR` of `--store`). */
  stateDir: string;
  /** The key providers installed on the machine (the smart card stack); none by default. */
  providers?: ModelKeyProviders;
  /** Where healing finds a missing KEY_PROV_INFO (hypotheses.ts); the key identifier store by default. */
  healing?: HealingSource;
}

export class ModelCertStoreHost implements CertStoreHost {
  readonly name: string;
  readonly stateDir: string;
  private readonly providers: ModelKeyProviders;
  readonly healing: HealingSource;

  constructor(options: ModelCertStoreHostOptions) {
    this.stateDir = options.stateDir;
    this.name = `model:${options.stateDir}`;
    this.providers = options.providers ?? NO_PROVIDERS;
    this.healing = options.healing ?? 'key-identifier';
  }

  /** The directory standing for the key identifier store. */
  get keyIdPath(): string {
    return join(this.stateDir, ...KEY_IDENTIFIER_PATH);
  }

  /** The directory standing for the `My` registry key. */
  get myPath(): string {
    return join(this.stateDir, ...MY_STORE_PATH);
  }

  async createContext(encoded: Uint8Array): Promise<CertContext> {
    const parsed = parseCertificate(encoded, 'CertCreateCertificateContext');
    return new ModelContext(new Element(encoded.slice(), certThumbprint(encoded), undefined, parsed), this);
  }

  async openCurrentUserMy(): Promise<CertStore> {
    mkdirSync(this.myPath, { recursive: true });
    return new ModelCertStore(this, this.myPath);
  }

  own(context: CertContext, operation: string): ModelContext {
    if (!(context instanceof ModelContext) || context.host !== this) {
      throw new WinError(HRESULT.E_INVALIDARG, operation, 'the context does not belong to this store host');
    }
    return context;
  }

  async setProperty(context: CertContext, propId: number, data: Uint8Array | null, flags = 0): Promise<void> {
    const ctx = this.own(context, 'CertSetCertificateContextProperty');
    if (propId === PROP.KEY_PROV_INFO) {
      throw new WinError(HRESULT.E_INVALIDARG, 'CertSetCertificateContextProperty', 'KEY_PROV_INFO takes a CRYPT_KEY_PROV_INFO (setKeyProvInfo), not a blob');
    }
    setElementProperty(ctx.element, propId, data, flags);
  }

  async getProperty(context: CertContext, propId: number): Promise<Uint8Array | undefined> {
    const ctx = this.own(context, 'CertGetCertificateContextProperty');
    if (propId === PROP.KEY_PROV_INFO) {
      throw new WinError(HRESULT.E_INVALIDARG, 'CertGetCertificateContextProperty', 'KEY_PROV_INFO is a CRYPT_KEY_PROV_INFO (getKeyProvInfo), not a blob');
    }
    ctx.element.store?.resync(ctx.element);
    if (propId === PROP.SHA1_HASH) return sha1Of(ctx.element);
    return ctx.element.props.get(propId)?.data.slice();
  }

  async setKeyProvInfo(context: CertContext, info: KeyProvInfo | null, flags = 0): Promise<void> {
    const ctx = this.own(context, 'CertSetCertificateContextProperty');
    setElementProperty(ctx.element, PROP.KEY_PROV_INFO, info ? serializeKeyProvInfo(info) : null, flags);
  }

  async getKeyProvInfo(context: CertContext): Promise<KeyProvInfo | undefined> {
    const ctx = this.own(context, 'CertGetCertificateContextProperty');
    ctx.element.store?.resync(ctx.element);
    const p = ctx.element.props.get(PROP.KEY_PROV_INFO);
    return p ? parseKeyProvInfo(p.data) : undefined;
  }

  async propertyIds(context: CertContext): Promise<number[]> {
    const ctx = this.own(context, 'CertEnumCertificateContextProperties');
    ctx.element.store?.resync(ctx.element);
    return [...ctx.element.props.keys()];
  }

  async freeContext(context: CertContext): Promise<void> {
    const ctx = this.own(context, 'CertFreeCertificateContext');
    // The cached key handle dies with the last context of a free-standing element; elements of
    // a store keep theirs until the store closes (the model does not count references).
    if (!ctx.element.store) releaseCached(ctx.element);
  }

  async close(): Promise<void> {}

  /**
   * CryptAcquireCertificatePrivateKey [CACPK]. Order of checks:
   * 1. CACHE (or USE_PROV_INFO with CERT_SET_KEY_CONTEXT_PROP_ID in the provider info) returns a
   *    handle cached on the context, without comparing keys (documented).
   * 2. No KEY_PROV_INFO: "healing" (see heal()) unless NO_HEALING; then CRYPT_E_NO_KEY_PROPERTY.
   * 3. The NCRYPT flags pick the order of CryptoAPI and CNG: none = CryptoAPI only; ALLOW =
   *    CryptoAPI then CNG; PREFER = CNG then CryptoAPI; ONLY = CNG only (documented). When every
   *    try fails the model reports the last try's error (the sources are silent on which).
   * 4. COMPARE_KEY: the certificate's public key must equal the provider's, else
   *    NTE_BAD_PUBLIC_KEY (documented).
   */
  async acquirePrivateKey(context: CertContext, flags: number): Promise<AcquiredKey> {
    const op = 'CryptAcquireCertificatePrivateKey';
    const ctx = this.own(context, op);
    const element = ctx.element;
    element.store?.resync(element);
    let info = element.props.has(PROP.KEY_PROV_INFO) ? parseKeyProvInfo(element.props.get(PROP.KEY_PROV_INFO)!.data) : undefined;
    const cache =
      (flags & ACQUIRE.CACHE) !== 0 ||
      ((flags & ACQUIRE.USE_PROV_INFO) !== 0 && info !== undefined && (info.flags & KEY_PROV_FLAG.SET_KEY_CONTEXT) !== 0);
    if (cache && element.cached) return element.cached.key;

    if (!info && (flags & ACQUIRE.NO_HEALING) === 0) {
      info = this.heal(element);
      // Healing re-creates the property on the context [CACPK], so a later add carries it.
      if (info) setElementProperty(element, PROP.KEY_PROV_INFO, serializeKeyProvInfo(info), 0);
    }
    if (!info) throw WinError.of('CRYPT_E_NO_KEY_PROPERTY', op, 'the certificate context has no CERT_KEY_PROV_INFO_PROP_ID');

    const silent = (flags & ACQUIRE.SILENT) !== 0 || (info.flags & KEY_PROV_FLAG.SILENT) !== 0;
    const order: ('CryptoAPI' | 'CNG')[] =
      (flags & ACQUIRE.ONLY_NCRYPT_KEY) !== 0
        ? ['CNG']
        : (flags & ACQUIRE.PREFER_NCRYPT_KEY) !== 0
          ? ['CNG', 'CryptoAPI']
          : (flags & ACQUIRE.ALLOW_NCRYPT_KEY) !== 0
            ? ['CryptoAPI', 'CNG']
            : ['CryptoAPI'];
    let handle: ModelKeyHandle | undefined;
    let lastError: unknown;
    for (const api of order) {
      try {
        handle = await this.open(api, info, silent);
        break;
      } catch (err) {
        if (!(err instanceof WinError)) throw err;
        lastError = err;
      }
    }
    if (!handle) throw new WinError((lastError as WinError).hresult, op, (lastError as WinError).message);

    if ((flags & ACQUIRE.COMPARE_KEY) !== 0) {
      const fromCert = new Uint8Array(element.certificate(op).publicKey.export({ type: 'spki', format: 'der' }));
      const fromProvider = new Uint8Array(createPublicKey({ key: Buffer.from(await handle.publicKeySpki()), format: 'der', type: 'spki' }).export({ type: 'spki', format: 'der' }));
      if (!equalBytes(fromCert, fromProvider)) {
        handle.release();
        throw WinError.of('NTE_BAD_PUBLIC_KEY', op, `container '${info.containerName}' holds a different key than the certificate`);
      }
    }
    const key = acquired(handle, !cache);
    if (cache) element.cached = { key, handle };
    return key;
  }

  private async open(api: 'CryptoAPI' | 'CNG', info: KeyProvInfo, silent: boolean): Promise<ModelKeyHandle> {
    if (api === 'CryptoAPI') {
      // CryptAcquireContext rejects provider type 0 (NTE_BAD_PROV_TYPE; same under Wine).
      if (info.providerType === PROV_TYPE.CNG) throw WinError.of('NTE_BAD_PROV_TYPE', 'CryptAcquireContext', `'${info.providerName}' is a CNG provider (dwProvType 0)`);
      return this.providers.openCsp(info.providerName, info.providerType, info.containerName, info.keySpec, silent, machineKeyset(info));
    }
    const ksp = info.providerType === PROV_TYPE.CNG ? info.providerName : this.providers.kspFor(info.providerName);
    if (!ksp) throw WinError.of('NTE_KEYSET_NOT_DEF', 'NCryptOpenStorageProvider', `no key storage provider serves '${info.providerName}'`);
    return this.providers.openKsp(ksp, info.containerName, info.keySpec, silent, machineKeyset(info));
  }

  /**
   * "Healing": without NO_HEALING the function tries to re-create a missing KEY_PROV_INFO [CACPK];
   * the document does not say from where, so the source is a hypothesis (hypotheses.ts):
   * `key-identifier` reads the KEY_PROV_INFO recorded for the certificate's public key [KIDP],
   * `my-by-sha1` the copy of the same certificate in `CurrentUser\My` (assumption that fits the
   * seed's report), `none` nothing. A search of every provider's keys
   * (CryptFindCertificateKeyProvInfo [FIND]) is not modelled: it would have made the seed's first
   * attempt succeed, which the seed reports it did not.
   */
  private heal(element: Element): KeyProvInfo | undefined {
    if (this.healing === 'none') return undefined;
    const path = this.healing === 'my-by-sha1' ? join(this.myPath, element.thumbprint) : join(this.keyIdPath, keyIdentifier(element.certificate('CryptAcquireCertificatePrivateKey')));
    const stored = readElementFile(path);
    const p = stored?.properties.find((x) => x.propId === PROP.KEY_PROV_INFO);
    return p ? parseKeyProvInfo(p.data) : undefined;
  }
}

/** CRYPT_MACHINE_KEYSET / NCRYPT_MACHINE_KEY_FLAG in the provider info's dwFlags [KPI]. */
function machineKeyset(info: KeyProvInfo): boolean {
  return (info.flags & KEY_PROV_FLAG.MACHINE_KEYSET) !== 0;
}

function acquired(handle: ModelKeyHandle, callerFree: boolean): AcquiredKey {
  let released = false;
  return {
    keySpec: handle.api === 'CNG' ? CERT_NCRYPT_KEY_SPEC : handle.keySpec,
    api: handle.api,
    callerFree,
    signHash: (algorithm: HashAlgorithm, hash: Uint8Array) => handle.signHash(algorithm, hash),
    setPin: (pin: string) => handle.setPin(pin),
    async release() {
      if (!callerFree || released) return;
      released = true;
      handle.release();
    },
  };
}

function releaseCached(element: Element): void {
  element.cached?.handle.release();
  element.cached = undefined;
}

function sha1Of(element: Element): Uint8Array {
  return certSha1(element.encoded);
}

function setElementProperty(element: Element, propId: number, data: Uint8Array | null, flags: number): void {
  if (propId === PROP.SHA1_HASH || propId === PROP.CERT) {
    throw new WinError(HRESULT.E_INVALIDARG, 'CertSetCertificateContextProperty', `property ${propId} is computed from the certificate`);
  }
  const inMemory = (flags & SET_PROP.INHIBIT_PERSIST) !== 0 || HANDLE_PROPS.has(propId);
  if (data === null) element.props.delete(propId);
  else element.props.set(propId, { data: data.slice(), inMemory });
  if (!inMemory || data === null) element.store?.persist(element);
}

function readElementFile(path: string): { encoded: Uint8Array; properties: SerializedProperty[] } | undefined {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch {
    return undefined;
  }
  return parseElement(new Uint8Array(raw));
}

/**
 * An open `CurrentUser\My`. Reads go back to the registry each time, as a store opened with
 * CERT_STORE_CTRL_AUTO_RESYNC would (model assumption: it makes certificates another process —
 * CertPropSvc — adds visible without reopening; the seed's tool reopens the store anyway).
 */
class ModelCertStore implements CertStore {
  private readonly elements = new Map<string, Element>();
  private closed = false;

  constructor(
    private readonly host: ModelCertStoreHost,
    private readonly path: string,
  ) {}

  private check(op: string): void {
    if (this.closed) throw new WinError(HRESULT.E_INVALIDARG, op, 'the store is closed');
  }

  /** Brings one element's persisted properties up to date with the registry. */
  resync(element: Element): void {
    const stored = readElementFile(join(this.path, element.thumbprint));
    if (!stored) return;
    for (const [id, p] of element.props) if (!p.inMemory) element.props.delete(id);
    for (const p of stored.properties) {
      if (p.propId === PROP.SHA1_HASH) continue;
      if (!element.props.get(p.propId)?.inMemory) element.props.set(p.propId, { data: p.data, inMemory: false });
    }
  }

  persist(element: Element): void {
    if (element.store !== this) return;
    const props: SerializedProperty[] = [{ propId: PROP.SHA1_HASH, data: sha1Of(element) }];
    for (const [propId, p] of element.props) if (!p.inMemory) props.push({ propId, data: p.data });
    writeFileAtomic(join(this.path, element.thumbprint), serializeElement(element.encoded, props));
    // The key identifier store keeps the link for the public key, beyond this certificate's life
    // in the store (model assumption on when it is written: see heal()).
    const info = element.props.get(PROP.KEY_PROV_INFO);
    if (info && !info.inMemory) {
      const keyId = keyIdentifier(element.certificate('CertAddCertificateContextToStore'));
      writeFileAtomic(join(this.host.keyIdPath, keyId), serializeElement(element.encoded, [{ propId: PROP.KEY_PROV_INFO, data: info.data }]), { mkdir: true });
    }
  }

  private load(thumbprint: string): Element | undefined {
    const stored = readElementFile(join(this.path, thumbprint));
    if (!stored) {
      this.elements.delete(thumbprint);
      return undefined;
    }
    let element = this.elements.get(thumbprint);
    if (!element) {
      element = new Element(stored.encoded, thumbprint, this);
      this.elements.set(thumbprint, element);
    }
    this.resync(element);
    return element;
  }

  async enumerate(): Promise<CertContext[]> {
    this.check('CertEnumCertificatesInStore');
    const out: CertContext[] = [];
    for (const name of readdirSync(this.path).sort()) {
      if (!/^[0-9A-F]{40}$/.test(name)) continue;
      const element = this.load(name);
      if (element) out.push(new ModelContext(element, this.host));
    }
    return out;
  }

  async find(thumbprint: string): Promise<CertContext | undefined> {
    this.check('CertFindCertificateInStore');
    const element = this.load(thumbprint.toUpperCase());
    return element ? new ModelContext(element, this.host) : undefined;
  }

  async addEncoded(encoded: Uint8Array, disposition: AddDisposition): Promise<CertContext> {
    return this.add(await this.host.createContext(encoded), disposition);
  }

  /**
   * CertAddCertificateContextToStore [ADD]. A match is the same certificate (SHA-1 of the
   * encoding), so the NotBefore comparison of NEWER* always finds "not newer". The registry files
   * a certificate under its SHA-1, so ALWAYS cannot keep two copies on disk: the model persists
   * one (assumption).
   */
  async add(context: CertContext, disposition: AddDisposition): Promise<CertContext> {
    const op = 'CertAddCertificateContextToStore';
    this.check(op);
    const source = this.host.own(context, op).element;
    const existing = this.load(source.thumbprint);
    const copyable = [...source.props].filter(([id]) => !HANDLE_PROPS.has(id));
    switch (disposition) {
      case ADD.NEW:
      case ADD.NEWER:
      case ADD.NEWER_INHERIT_PROPERTIES:
        if (existing) throw WinError.of('CRYPT_E_EXISTS', op, `certificate ${source.thumbprint} is already in the store`);
        break;
      case ADD.USE_EXISTING:
      case ADD.REPLACE_EXISTING_INHERIT_PROPERTIES:
        if (existing) {
          // INHERIT: "the existing context inherits properties from the new certificate" — the
          // new values win. USE_EXISTING: "properties from the new certificate are added"; the
          // new values win there too, which is what Wine's crypt32 does (contract suite).
          for (const [id, p] of copyable) existing.props.set(id, { data: p.data.slice(), inMemory: p.inMemory });
          this.persist(existing);
          return new ModelContext(existing, this.host);
        }
        break;
      case ADD.REPLACE_EXISTING:
      case ADD.ALWAYS:
        break;
      default:
        throw WinError.of('E_INVALIDARG', op, `disposition ${String(disposition)} is not a CERT_STORE_ADD_* value`);
    }
    const element = new Element(source.encoded, source.thumbprint, this, source.parsed);
    for (const [id, p] of copyable) element.props.set(id, { data: p.data.slice(), inMemory: p.inMemory });
    this.elements.set(element.thumbprint, element);
    this.persist(element);
    return new ModelContext(element, this.host);
  }

  async delete(context: CertContext): Promise<void> {
    const op = 'CertDeleteCertificateFromStore';
    this.check(op);
    const ctx = this.host.own(context, op);
    if (ctx.element.store !== this) throw WinError.of('E_INVALIDARG', op, 'the context is not from this store');
    rmSync(join(this.path, ctx.element.thumbprint), { force: true });
    this.elements.delete(ctx.element.thumbprint);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const element of this.elements.values()) releaseCached(element);
  }
}
