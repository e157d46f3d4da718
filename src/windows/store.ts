/**
 * CertStoreHost: the CryptoAPI certificate-store operations a linker needs, as one interface with
 * two implementations — the model of the Windows smart card stack (`model/`) and the real thing
 * through crypt32/ncrypt (`native/`). One contract suite (test/windows/contract.ts) runs against
 * both. Failures are WinError with the HRESULT Windows reports.
 */
import type { AddDisposition } from './constants.js';

/** CRYPT_KEY_PROV_PARAM: a provider parameter set on the provider handle after acquisition. */
export interface KeyProvParam {
  param: number;
  data: Uint8Array;
  flags: number;
}

/** CRYPT_KEY_PROV_INFO, field for field (wincrypt.h). */
export interface KeyProvInfo {
  /** pwszContainerName: for smart cards the bare cmapfile name, or a `\\.\reader\name` form. */
  containerName: string;
  /** pwszProvName: a CSP name (dwProvType ≠ 0) or a CNG KSP name (dwProvType = 0). */
  providerName: string;
  /** dwProvType: 1 PROV_RSA_FULL, 24 PROV_RSA_AES, 0 CNG. */
  providerType: number;
  /** dwFlags: KEY_PROV_FLAG bits. */
  flags: number;
  /** cProvParam / rgProvParam; must be empty for CNG. */
  params: KeyProvParam[];
  /** dwKeySpec: AT_KEYEXCHANGE, AT_SIGNATURE, or for CNG 0 / the legacy spec. */
  keySpec: number;
}

/**
 * A certificate context (PCCERT_CONTEXT). Opaque to callers beyond these two fields; each host
 * only accepts the contexts it handed out.
 */
export interface CertContext {
  /** pbCertEncoded: the DER certificate. */
  readonly encoded: Uint8Array;
  /** SHA-1 of the encoding, upper-case hex: the name Windows files the certificate under. */
  readonly thumbprint: string;
}

export type HashAlgorithm = 'SHA1' | 'SHA256' | 'SHA384' | 'SHA512';

/** What CryptAcquireCertificatePrivateKey hands back. */
export interface AcquiredKey {
  /** AT_KEYEXCHANGE / AT_SIGNATURE for a CryptoAPI handle, CERT_NCRYPT_KEY_SPEC for a CNG key. */
  readonly keySpec: number;
  readonly api: 'CryptoAPI' | 'CNG';
  /** FALSE when the handle is cached on the context (CACHE): the caller must not free it. */
  readonly callerFree: boolean;
  /**
   * Signs a hash the caller computed. RSA: PKCS#1 v1.5, big-endian (CryptSignHash's
   * little-endian output is reversed). ECDSA: r‖s, as NCryptSignHash returns it.
   */
  signHash(algorithm: HashAlgorithm, hash: Uint8Array): Promise<Uint8Array>;
  /**
   * Gives the provider the card PIN so that a CRYPT_SILENT / NCRYPT_SILENT_FLAG key can sign with
   * no dialog: CryptSetProvParam(PP_SIGNATURE_PIN or PP_KEYEXCHANGE_PIN) for a CryptoAPI handle
   * [SPP], NCryptSetProperty(NCRYPT_PIN_PROPERTY) for a CNG key [KSPP]. The PIN stays in memory.
   */
  setPin(pin: string): Promise<void>;
  /** CryptReleaseContext / NCryptFreeObject when callerFree; a no-op for a cached handle. */
  release(): Promise<void>;
}

/** An open certificate store (HCERTSTORE). */
export interface CertStore {
  /** CertAddEncodedCertificateToStore. */
  addEncoded(encoded: Uint8Array, disposition: AddDisposition): Promise<CertContext>;
  /** CertAddCertificateContextToStore: the stored copy takes the context's properties. */
  add(context: CertContext, disposition: AddDisposition): Promise<CertContext>;
  /** CertEnumCertificatesInStore, collected. */
  enumerate(): Promise<CertContext[]>;
  /** CertFindCertificateInStore(CERT_FIND_SHA1_HASH). */
  find(thumbprint: string): Promise<CertContext | undefined>;
  /** CertDeleteCertificateFromStore, persisted. */
  delete(context: CertContext): Promise<void>;
  close(): Promise<void>;
}

export interface CertStoreHost {
  /** How it was opened, e.g. `model:/tmp/x` or `native`. */
  readonly name: string;
  /** CertCreateCertificateContext: a context in no store. */
  createContext(encoded: Uint8Array): Promise<CertContext>;
  /** CertOpenStore(CERT_STORE_PROV_SYSTEM_W, CERT_SYSTEM_STORE_CURRENT_USER, "My"). */
  openCurrentUserMy(): Promise<CertStore>;
  /** CertSetCertificateContextProperty for a CRYPT_DATA_BLOB property; null deletes it. */
  setProperty(context: CertContext, propId: number, data: Uint8Array | null, flags?: number): Promise<void>;
  /** CertGetCertificateContextProperty for a blob property; undefined when absent. */
  getProperty(context: CertContext, propId: number): Promise<Uint8Array | undefined>;
  /** CertSetCertificateContextProperty(CERT_KEY_PROV_INFO_PROP_ID); null deletes it. */
  setKeyProvInfo(context: CertContext, info: KeyProvInfo | null, flags?: number): Promise<void>;
  getKeyProvInfo(context: CertContext): Promise<KeyProvInfo | undefined>;
  /** CertEnumCertificateContextProperties, collected. */
  propertyIds(context: CertContext): Promise<number[]>;
  /** CryptAcquireCertificatePrivateKey with ACQUIRE flags. */
  acquirePrivateKey(context: CertContext, flags: number): Promise<AcquiredKey>;
  /** CertFreeCertificateContext. */
  freeContext(context: CertContext): Promise<void>;
  close(): Promise<void>;
}
