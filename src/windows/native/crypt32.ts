/**
 * CertStoreHost over the real crypt32 / advapi32 / ncrypt through koffi. Loaded only on Windows
 * (native/index.ts imports it dynamically); also runs under Wine with the Windows build of Node
 * (test/windows/native-wine.test.ts). Signatures: the SDK pages in docs/sources.md#crypt32-ncrypt.
 */
import { certThumbprint } from '../../thumbprint.js';
import { AT_KEYEXCHANGE, CERT_FIND_SHA1_HASH, CERT_NCRYPT_KEY_SPEC, ENCODING, PROP, STORE, type AddDisposition } from '../constants.js';
import { WinError } from '../errors.js';
import type { AcquiredKey, CertContext, CertStore, CertStoreHost, HashAlgorithm, KeyProvInfo, KeyProvParam } from '../store.js';
import { BCRYPT_PKCS1_PADDING_INFO, CERT_CONTEXT, CRYPT_DATA_BLOB, CRYPT_KEY_PROV_INFO, CRYPT_KEY_PROV_PARAM, koffi } from './structs.js';

type Ptr = unknown;
type Handle = number | bigint;

const CALG: Record<HashAlgorithm, number> = { SHA1: 0x8004, SHA256: 0x800c, SHA384: 0x800d, SHA512: 0x800e };
const HP_HASHVAL = 2;
/** CryptSetProvParam parameters [SPP][MGW]. */
const PP = { KEYEXCHANGE_PIN: 32, SIGNATURE_PIN: 33 } as const;
/** NCRYPT_PIN_PROPERTY [KSPP]. */
const NCRYPT_PIN_PROPERTY = 'SmartCardPin';
const BCRYPT_PAD_PKCS1 = 2;

/* eslint-disable @typescript-eslint/no-explicit-any -- koffi functions are untyped by nature */
interface Api {
  GetLastError: () => number;
  CertOpenStore: (prov: number, enc: number, hProv: number, flags: number, para: string | null) => Ptr;
  CertCloseStore: (store: Ptr, flags: number) => number;
  CertControlStore: (store: Ptr, flags: number, control: number, para: null) => number;
  CertCreateCertificateContext: (enc: number, der: Uint8Array, cb: number) => Ptr;
  CertDuplicateCertificateContext: (ctx: Ptr) => Ptr;
  CertFreeCertificateContext: (ctx: Ptr) => number;
  SetBlobProperty: (ctx: Ptr, id: number, flags: number, blob: object | null) => number;
  SetKeyProvInfo: (ctx: Ptr, id: number, flags: number, info: object | null) => number;
  CertGetCertificateContextProperty: (ctx: Ptr, id: number, data: Uint8Array | null, cb: number[]) => number;
  CertEnumCertificateContextProperties: (ctx: Ptr, prev: number) => number;
  CertAddEncodedCertificateToStore: (store: Ptr, enc: number, der: Uint8Array, cb: number, disp: number, out: Ptr[]) => number;
  CertAddCertificateContextToStore: (store: Ptr, ctx: Ptr, disp: number, out: Ptr[]) => number;
  CertEnumCertificatesInStore: (store: Ptr, prev: Ptr) => Ptr;
  CertFindCertificateInStore: (store: Ptr, enc: number, flags: number, type: number, para: object, prev: Ptr) => Ptr;
  CertDeleteCertificateFromStore: (ctx: Ptr) => number;
  CryptAcquireCertificatePrivateKey: (ctx: Ptr, flags: number, params: null, h: Handle[], spec: number[], free: number[]) => number;
  CryptReleaseContext: (h: Handle, flags: number) => number;
  CryptCreateHash: (h: Handle, alg: number, key: number, flags: number, out: Handle[]) => number;
  CryptSetHashParam: (h: Handle, param: number, data: Uint8Array, flags: number) => number;
  CryptSignHashW: (h: Handle, spec: number, desc: null, flags: number, sig: Uint8Array | null, len: number[]) => number;
  CryptDestroyHash: (h: Handle) => number;
  NCryptGetProperty: (h: Handle, name: string, out: Uint8Array | null, cb: number, result: number[], flags: number) => number;
  NCryptSignHash: (h: Handle, pad: object | null, hash: Uint8Array, cb: number, sig: Uint8Array | null, cbSig: number, result: number[], flags: number) => number;
  NCryptFreeObject: (h: Handle) => number;
  CryptSetProvParam: (h: Handle, param: number, data: Uint8Array, flags: number) => number;
  NCryptSetProperty: (h: Handle, name: string, data: Uint8Array, cb: number, flags: number) => number;
}

function bind(): Api {
  const kernel32 = koffi.load('kernel32.dll');
  const crypt32 = koffi.load('crypt32.dll');
  const advapi32 = koffi.load('advapi32.dll');
  const ncrypt = koffi.load('ncrypt.dll');
  const out = (t: string | object) => koffi.out(koffi.pointer(t as any));
  const inout = (t: string) => koffi.inout(koffi.pointer(t));
  const f = (lib: ReturnType<typeof koffi.load>, name: string, ret: string, args: any[]) => lib.func('__stdcall', name, ret, args) as any;
  return {
    GetLastError: f(kernel32, 'GetLastError', 'uint32_t', []),
    CertOpenStore: f(crypt32, 'CertOpenStore', 'void *', ['uintptr_t', 'uint32_t', 'uintptr_t', 'uint32_t', 'str16']),
    CertCloseStore: f(crypt32, 'CertCloseStore', 'int', ['void *', 'uint32_t']),
    CertControlStore: f(crypt32, 'CertControlStore', 'int', ['void *', 'uint32_t', 'uint32_t', 'void *']),
    CertCreateCertificateContext: f(crypt32, 'CertCreateCertificateContext', 'void *', ['uint32_t', 'uint8_t *', 'uint32_t']),
    CertDuplicateCertificateContext: f(crypt32, 'CertDuplicateCertificateContext', 'void *', ['void *']),
    CertFreeCertificateContext: f(crypt32, 'CertFreeCertificateContext', 'int', ['void *']),
    SetBlobProperty: f(crypt32, 'CertSetCertificateContextProperty', 'int', ['void *', 'uint32_t', 'uint32_t', koffi.pointer(CRYPT_DATA_BLOB)]),
    SetKeyProvInfo: f(crypt32, 'CertSetCertificateContextProperty', 'int', ['void *', 'uint32_t', 'uint32_t', koffi.pointer(CRYPT_KEY_PROV_INFO)]),
    CertGetCertificateContextProperty: f(crypt32, 'CertGetCertificateContextProperty', 'int', ['void *', 'uint32_t', 'void *', inout('uint32_t')]),
    CertEnumCertificateContextProperties: f(crypt32, 'CertEnumCertificateContextProperties', 'uint32_t', ['void *', 'uint32_t']),
    CertAddEncodedCertificateToStore: f(crypt32, 'CertAddEncodedCertificateToStore', 'int', ['void *', 'uint32_t', 'uint8_t *', 'uint32_t', 'uint32_t', out('void *')]),
    CertAddCertificateContextToStore: f(crypt32, 'CertAddCertificateContextToStore', 'int', ['void *', 'void *', 'uint32_t', out('void *')]),
    CertEnumCertificatesInStore: f(crypt32, 'CertEnumCertificatesInStore', 'void *', ['void *', 'void *']),
    CertFindCertificateInStore: f(crypt32, 'CertFindCertificateInStore', 'void *', ['void *', 'uint32_t', 'uint32_t', 'uint32_t', koffi.pointer(CRYPT_DATA_BLOB), 'void *']),
    CertDeleteCertificateFromStore: f(crypt32, 'CertDeleteCertificateFromStore', 'int', ['void *']),
    CryptAcquireCertificatePrivateKey: f(crypt32, 'CryptAcquireCertificatePrivateKey', 'int', ['void *', 'uint32_t', 'void *', out('uintptr_t'), out('uint32_t'), out('int')]),
    CryptReleaseContext: f(advapi32, 'CryptReleaseContext', 'int', ['uintptr_t', 'uint32_t']),
    CryptCreateHash: f(advapi32, 'CryptCreateHash', 'int', ['uintptr_t', 'uint32_t', 'uintptr_t', 'uint32_t', out('uintptr_t')]),
    CryptSetHashParam: f(advapi32, 'CryptSetHashParam', 'int', ['uintptr_t', 'uint32_t', 'uint8_t *', 'uint32_t']),
    CryptSignHashW: f(advapi32, 'CryptSignHashW', 'int', ['uintptr_t', 'uint32_t', 'str16', 'uint32_t', 'uint8_t *', inout('uint32_t')]),
    CryptDestroyHash: f(advapi32, 'CryptDestroyHash', 'int', ['uintptr_t']),
    CryptSetProvParam: f(advapi32, 'CryptSetProvParam', 'int', ['uintptr_t', 'uint32_t', 'uint8_t *', 'uint32_t']),
    NCryptSetProperty: f(ncrypt, 'NCryptSetProperty', 'int32_t', ['uintptr_t', 'str16', 'uint8_t *', 'uint32_t', 'uint32_t']),
    NCryptGetProperty: f(ncrypt, 'NCryptGetProperty', 'int32_t', ['uintptr_t', 'str16', 'uint8_t *', 'uint32_t', out('uint32_t'), 'uint32_t']),
    NCryptSignHash: f(ncrypt, 'NCryptSignHash', 'int32_t', ['uintptr_t', koffi.pointer(BCRYPT_PKCS1_PADDING_INFO), 'uint8_t *', 'uint32_t', 'uint8_t *', 'uint32_t', out('uint32_t'), 'uint32_t']),
    NCryptFreeObject: f(ncrypt, 'NCryptFreeObject', 'int32_t', ['uintptr_t']),
  };
}
/* eslint-enable @typescript-eslint/no-explicit-any */

class NativeContext implements CertContext {
  freed = false;
  constructor(
    readonly ptr: Ptr,
    readonly encoded: Uint8Array,
    readonly thumbprint: string,
    readonly host: NativeCertStoreHost,
    /** The open store it came from; undefined for CertCreateCertificateContext's contexts. */
    readonly store: NativeStore | undefined,
  ) {}
}

function bytesAt(ptr: Ptr, length: number): Uint8Array {
  return length === 0 ? new Uint8Array(0) : new Uint8Array(koffi.view(ptr, length).slice(0));
}

export class NativeCertStoreHost implements CertStoreHost {
  readonly name = 'native';
  private readonly api: Api;

  constructor() {
    this.api = bind();
  }

  /** Throws the thread's last error as a WinError; call right after a failed BOOL call. */
  fail(operation: string, detail?: string): never {
    throw new WinError(this.api.GetLastError(), operation, detail);
  }

  wrap(ptr: Ptr, store?: NativeStore): NativeContext {
    const ctx = koffi.decode(ptr, CERT_CONTEXT) as { pbCertEncoded: Ptr; cbCertEncoded: number };
    const encoded = bytesAt(ctx.pbCertEncoded, ctx.cbCertEncoded);
    return new NativeContext(ptr, encoded, certThumbprint(encoded), this, store);
  }

  own(context: CertContext, operation: string): NativeContext {
    if (!(context instanceof NativeContext) || context.host !== this) {
      throw WinError.of('E_INVALIDARG', operation, 'the context does not belong to this store host');
    }
    if (context.freed) throw WinError.of('E_INVALIDARG', operation, 'the context was already freed');
    return context;
  }

  async createContext(encoded: Uint8Array): Promise<CertContext> {
    const ptr = this.api.CertCreateCertificateContext(ENCODING, encoded, encoded.length);
    if (!ptr) this.fail('CertCreateCertificateContext');
    return this.wrap(ptr);
  }

  openSystemStore(provider: number): Ptr {
    const store = this.api.CertOpenStore(provider, 0, 0, STORE.SYSTEM_CURRENT_USER, 'My');
    if (!store) this.fail('CertOpenStore', 'CurrentUser\\My');
    return store;
  }

  async openCurrentUserMy(): Promise<CertStore> {
    return new NativeStore(this, this.api, this.openSystemStore(STORE.PROV_SYSTEM_W));
  }

  async setProperty(context: CertContext, propId: number, data: Uint8Array | null, flags = 0): Promise<void> {
    const op = 'CertSetCertificateContextProperty';
    const ctx = this.own(context, op);
    if (propId === PROP.KEY_PROV_INFO) throw WinError.of('E_INVALIDARG', op, 'KEY_PROV_INFO takes a CRYPT_KEY_PROV_INFO (setKeyProvInfo), not a blob');
    const blob = data === null ? null : { cbData: data.length, pbData: Buffer.from(data) };
    if (!this.api.SetBlobProperty(ctx.ptr, propId, flags >>> 0, blob)) this.fail(op, `property ${propId}`);
    ctx.store?.commit();
  }

  private rawProperty(ctx: NativeContext, propId: number): Buffer | undefined {
    const cb = [0];
    if (!this.api.CertGetCertificateContextProperty(ctx.ptr, propId, null, cb)) {
      const err = this.api.GetLastError();
      if (err === 0x80092004) return undefined; // CRYPT_E_NOT_FOUND
      throw new WinError(err, 'CertGetCertificateContextProperty', `property ${propId}`);
    }
    const buf = Buffer.alloc(cb[0]!);
    if (!this.api.CertGetCertificateContextProperty(ctx.ptr, propId, buf, cb)) this.fail('CertGetCertificateContextProperty', `property ${propId}`);
    return buf.subarray(0, cb[0]!);
  }

  async getProperty(context: CertContext, propId: number): Promise<Uint8Array | undefined> {
    const op = 'CertGetCertificateContextProperty';
    const ctx = this.own(context, op);
    if (propId === PROP.KEY_PROV_INFO) throw WinError.of('E_INVALIDARG', op, 'KEY_PROV_INFO is a CRYPT_KEY_PROV_INFO (getKeyProvInfo), not a blob');
    const raw = this.rawProperty(ctx, propId);
    return raw ? new Uint8Array(raw) : undefined;
  }

  async setKeyProvInfo(context: CertContext, info: KeyProvInfo | null, flags = 0): Promise<void> {
    const op = 'CertSetCertificateContextProperty';
    const ctx = this.own(context, op);
    if (info === null) {
      if (!this.api.SetKeyProvInfo(ctx.ptr, PROP.KEY_PROV_INFO, flags >>> 0, null)) this.fail(op, 'KEY_PROV_INFO');
      ctx.store?.commit();
      return;
    }
    const params = allocParams(info.params);
    try {
      const struct = {
        pwszContainerName: info.containerName,
        pwszProvName: info.providerName,
        dwProvType: info.providerType >>> 0,
        dwFlags: info.flags >>> 0,
        cProvParam: info.params.length,
        rgProvParam: params.array,
        dwKeySpec: info.keySpec >>> 0,
      };
      if (!this.api.SetKeyProvInfo(ctx.ptr, PROP.KEY_PROV_INFO, flags >>> 0, struct)) this.fail(op, 'KEY_PROV_INFO');
    } finally {
      params.free();
    }
    ctx.store?.commit();
  }

  async getKeyProvInfo(context: CertContext): Promise<KeyProvInfo | undefined> {
    const ctx = this.own(context, 'CertGetCertificateContextProperty');
    const raw = this.rawProperty(ctx, PROP.KEY_PROV_INFO);
    if (!raw) return undefined;
    // The returned block holds the struct followed by what its pointers point at.
    const s = koffi.decode(raw, CRYPT_KEY_PROV_INFO) as {
      pwszContainerName: string | null;
      pwszProvName: string | null;
      dwProvType: number;
      dwFlags: number;
      cProvParam: number;
      rgProvParam: Ptr;
      dwKeySpec: number;
    };
    const params: KeyProvParam[] = [];
    if (s.cProvParam > 0 && s.rgProvParam) {
      const list = koffi.decode(s.rgProvParam, CRYPT_KEY_PROV_PARAM, s.cProvParam) as { dwParam: number; pbData: Ptr; cbData: number; dwFlags: number }[];
      for (const p of list) params.push({ param: p.dwParam, data: p.pbData ? bytesAt(p.pbData, p.cbData) : new Uint8Array(0), flags: p.dwFlags });
    }
    return {
      containerName: s.pwszContainerName ?? '',
      providerName: s.pwszProvName ?? '',
      providerType: s.dwProvType,
      flags: s.dwFlags,
      params,
      keySpec: s.dwKeySpec,
    };
  }

  async propertyIds(context: CertContext): Promise<number[]> {
    const ctx = this.own(context, 'CertEnumCertificateContextProperties');
    const ids: number[] = [];
    for (let id = this.api.CertEnumCertificateContextProperties(ctx.ptr, 0); id !== 0; id = this.api.CertEnumCertificateContextProperties(ctx.ptr, id)) ids.push(id);
    return ids;
  }

  async acquirePrivateKey(context: CertContext, flags: number): Promise<AcquiredKey> {
    const op = 'CryptAcquireCertificatePrivateKey';
    const ctx = this.own(context, op);
    const handle: Handle[] = [0];
    const spec = [0];
    const callerFree = [0];
    if (!this.api.CryptAcquireCertificatePrivateKey(ctx.ptr, flags >>> 0, null, handle, spec, callerFree)) this.fail(op);
    const keySpec = spec[0]! >>> 0;
    return new NativeKey(this.api, handle[0]!, keySpec, callerFree[0] !== 0);
  }

  async freeContext(context: CertContext): Promise<void> {
    const ctx = this.own(context, 'CertFreeCertificateContext');
    ctx.freed = true;
    this.api.CertFreeCertificateContext(ctx.ptr);
  }

  async close(): Promise<void> {}
}

/** CRYPT_KEY_PROV_PARAM array in native memory for the duration of one call. */
function allocParams(params: KeyProvParam[]): { array: Ptr | null; free(): void } {
  if (params.length === 0) return { array: null, free() {} };
  const blocks: Ptr[] = [];
  const values = params.map((p) => {
    let pbData: Ptr | null = null;
    if (p.data.length > 0) {
      pbData = koffi.alloc('uint8_t', p.data.length);
      koffi.encode(pbData, koffi.array('uint8_t', p.data.length), Array.from(p.data));
      blocks.push(pbData);
    }
    return { dwParam: p.param >>> 0, pbData, cbData: p.data.length, dwFlags: p.flags >>> 0 };
  });
  const array = koffi.alloc(CRYPT_KEY_PROV_PARAM, params.length);
  koffi.encode(array, koffi.array(CRYPT_KEY_PROV_PARAM, params.length), values);
  blocks.push(array);
  return { array, free: () => blocks.forEach((b) => koffi.free(b)) };
}

class NativeKey implements AcquiredKey {
  readonly api: 'CryptoAPI' | 'CNG';
  private released = false;
  constructor(
    private readonly fns: Api,
    private readonly handle: Handle,
    readonly keySpec: number,
    readonly callerFree: boolean,
  ) {
    this.api = keySpec === CERT_NCRYPT_KEY_SPEC ? 'CNG' : 'CryptoAPI';
  }

  private lastError(operation: string): never {
    throw new WinError(this.fns.GetLastError(), operation);
  }

  async setPin(pin: string): Promise<void> {
    // The PIN in a buffer of our own, wiped after the call: it never reaches a log or argv.
    if (this.api === 'CNG') {
      const data = new Uint8Array(Buffer.from(`${pin}\0`, 'utf16le'));
      try {
        const status = this.fns.NCryptSetProperty(this.handle, NCRYPT_PIN_PROPERTY, data, data.length, 0);
        if (status !== 0) throw new WinError(status, 'NCryptSetProperty(SmartCardPin)');
      } finally {
        data.fill(0);
      }
      return;
    }
    const data = new Uint8Array(Buffer.from(`${pin}\0`, 'latin1'));
    try {
      const param = this.keySpec === AT_KEYEXCHANGE ? PP.KEYEXCHANGE_PIN : PP.SIGNATURE_PIN;
      if (!this.fns.CryptSetProvParam(this.handle, param, data, 0)) this.lastError('CryptSetProvParam(PP_*_PIN)');
    } finally {
      data.fill(0);
    }
  }

  async signHash(algorithm: HashAlgorithm, hash: Uint8Array): Promise<Uint8Array> {
    return this.api === 'CNG' ? this.signCng(algorithm, hash) : this.signCapi(algorithm, hash);
  }

  private signCapi(algorithm: HashAlgorithm, hash: Uint8Array): Uint8Array {
    const h: Handle[] = [0];
    if (!this.fns.CryptCreateHash(this.handle, CALG[algorithm], 0, 0, h)) this.lastError('CryptCreateHash');
    try {
      if (!this.fns.CryptSetHashParam(h[0]!, HP_HASHVAL, hash, 0)) this.lastError('CryptSetHashParam');
      const len = [0];
      if (!this.fns.CryptSignHashW(h[0]!, this.keySpec, null, 0, null, len)) this.lastError('CryptSignHash');
      const sig = new Uint8Array(len[0]!);
      if (!this.fns.CryptSignHashW(h[0]!, this.keySpec, null, 0, sig, len)) this.lastError('CryptSignHash');
      // CryptoAPI returns RSA signatures little-endian.
      return sig.subarray(0, len[0]!).reverse();
    } finally {
      this.fns.CryptDestroyHash(h[0]!);
    }
  }

  private signCng(algorithm: HashAlgorithm, hash: Uint8Array): Uint8Array {
    const group = new Uint8Array(64);
    const got = [0];
    let status = this.fns.NCryptGetProperty(this.handle, 'Algorithm Group', group, group.length, got, 0);
    if (status !== 0) throw new WinError(status, 'NCryptGetProperty', 'Algorithm Group');
    const isRsa = Buffer.from(group.subarray(0, got[0]!)).toString('utf16le').replace(/\0+$/, '') === 'RSA';
    const pad = isRsa ? { pszAlgId: algorithm } : null;
    const flags = isRsa ? BCRYPT_PAD_PKCS1 : 0;
    const size = [0];
    status = this.fns.NCryptSignHash(this.handle, pad, hash, hash.length, null, 0, size, flags);
    if (status !== 0) throw new WinError(status, 'NCryptSignHash');
    const sig = new Uint8Array(size[0]!);
    status = this.fns.NCryptSignHash(this.handle, pad, hash, hash.length, sig, sig.length, size, flags);
    if (status !== 0) throw new WinError(status, 'NCryptSignHash');
    return sig.subarray(0, size[0]!);
  }

  async release(): Promise<void> {
    if (!this.callerFree || this.released) return;
    this.released = true;
    if (this.api === 'CNG') this.fns.NCryptFreeObject(this.handle);
    else this.fns.CryptReleaseContext(this.handle, 0);
  }
}

const CERT_STORE_CTRL_COMMIT = 3;

class NativeStore implements CertStore {
  constructor(
    private readonly host: NativeCertStoreHost,
    private readonly api: Api,
    private readonly store: Ptr,
  ) {}

  /**
   * Flushes the store to its backing (files under the roaming profile on Windows [MIG], the
   * registry under Wine). Windows persists each change as it is made; Wine's
   * registry store writes only when closed or committed, so without this a second process
   * would not see an add until this one closed the store. On Windows the commit is a no-op.
   */
  commit(): void {
    if (!this.api.CertControlStore(this.store, 0, CERT_STORE_CTRL_COMMIT, null)) this.host.fail('CertControlStore', 'COMMIT');
  }

  async addEncoded(encoded: Uint8Array, disposition: AddDisposition): Promise<CertContext> {
    const out: Ptr[] = [null];
    if (!this.api.CertAddEncodedCertificateToStore(this.store, ENCODING, encoded, encoded.length, disposition, out)) this.host.fail('CertAddEncodedCertificateToStore');
    this.commit();
    return this.host.wrap(out[0], this);
  }

  async add(context: CertContext, disposition: AddDisposition): Promise<CertContext> {
    const op = 'CertAddCertificateContextToStore';
    const ctx = this.host.own(context, op);
    const out: Ptr[] = [null];
    if (!this.api.CertAddCertificateContextToStore(this.store, ctx.ptr, disposition, out)) this.host.fail(op);
    this.commit();
    return this.host.wrap(out[0], this);
  }

  async enumerate(): Promise<CertContext[]> {
    const out: CertContext[] = [];
    // Each call frees the previous context, so keep a duplicate of every one handed out.
    for (let p = this.api.CertEnumCertificatesInStore(this.store, null); p; p = this.api.CertEnumCertificatesInStore(this.store, p)) {
      out.push(this.host.wrap(this.api.CertDuplicateCertificateContext(p), this));
    }
    return out;
  }

  private findIn(store: Ptr, thumbprint: string): Ptr {
    const hash = Buffer.from(thumbprint, 'hex');
    return this.api.CertFindCertificateInStore(store, ENCODING, 0, CERT_FIND_SHA1_HASH, { cbData: hash.length, pbData: hash }, null);
  }

  async find(thumbprint: string): Promise<CertContext | undefined> {
    const p = this.findIn(this.store, thumbprint);
    return p ? this.host.wrap(p, this) : undefined;
  }

  /**
   * Deletes through the system store, then once more through its registry physical store: under
   * Wine the first delete reports success but never reaches the registry, while a delete from the
   * CERT_STORE_PROV_SYSTEM_REGISTRY_W store persists [wine-native-check]. On Windows the first
   * delete persists and the second finds nothing.
   */
  async delete(context: CertContext): Promise<void> {
    const op = 'CertDeleteCertificateFromStore';
    const ctx = this.host.own(context, op);
    ctx.freed = true; // CertDeleteCertificateFromStore frees its argument, even on failure
    if (!this.api.CertDeleteCertificateFromStore(ctx.ptr)) this.host.fail(op);
    const registry = this.host.openSystemStore(STORE.PROV_SYSTEM_REGISTRY_W);
    try {
      const again = this.findIn(registry, ctx.thumbprint);
      if (again && !this.api.CertDeleteCertificateFromStore(again)) this.host.fail(op, 'registry store');
    } finally {
      this.api.CertCloseStore(registry, 0);
    }
  }

  async close(): Promise<void> {
    this.api.CertCloseStore(this.store, 0);
  }
}
