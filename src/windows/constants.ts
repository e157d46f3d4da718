/**
 * The CryptoAPI, CNG and smart card numbers cardlink's Windows side speaks, in one place. Values
 * are those of the Windows SDK headers (wincrypt.h, ncrypt.h, winerror.h; checked against the
 * mingw-w64 copies); the pages they come from are listed in docs/sources.md#crypt32-ncrypt.
 */

/** Certificate context property ids (CertSetCertificateContextProperty). */
export const PROP = {
  KEY_PROV_HANDLE: 1,
  KEY_PROV_INFO: 2,
  SHA1_HASH: 3,
  KEY_CONTEXT: 5,
  KEY_SPEC: 6,
  FRIENDLY_NAME: 11,
  SMART_CARD_DATA: 16,
  ARCHIVED: 19,
  KEY_IDENTIFIER: 20,
  ENROLLMENT: 26,
  /** The encoded certificate inside a serialized store element (not settable). */
  CERT: 32,
  REQUEST_ORIGINATOR: 71,
  SMART_CARD_ROOT_INFO: 76,
  NCRYPT_KEY_HANDLE: 78,
} as const;

/** CertSetCertificateContextProperty dwFlags. */
export const SET_PROP = {
  /** The property lives on this in-memory context only and is never written to the store. */
  INHIBIT_PERSIST: 0x40000000,
  IGNORE_PERSIST_ERROR: 0x80000000,
} as const;

/** CertAddCertificateContextToStore dispositions. */
export const ADD = {
  NEW: 1,
  USE_EXISTING: 2,
  REPLACE_EXISTING: 3,
  ALWAYS: 4,
  REPLACE_EXISTING_INHERIT_PROPERTIES: 5,
  NEWER: 6,
  NEWER_INHERIT_PROPERTIES: 7,
} as const;
export type AddDisposition = (typeof ADD)[keyof typeof ADD];

/** CryptAcquireCertificatePrivateKey dwFlags. */
export const ACQUIRE = {
  CACHE: 0x1,
  USE_PROV_INFO: 0x2,
  COMPARE_KEY: 0x4,
  NO_HEALING: 0x8,
  SILENT: 0x40,
  WINDOW_HANDLE: 0x80,
  ALLOW_NCRYPT_KEY: 0x10000,
  PREFER_NCRYPT_KEY: 0x20000,
  ONLY_NCRYPT_KEY: 0x40000,
  NCRYPT_KEY_MASK: 0x70000,
} as const;

/** CRYPT_KEY_PROV_INFO.dwFlags. */
export const KEY_PROV_FLAG = {
  /** CERT_SET_KEY_PROV_HANDLE_PROP_ID = CERT_SET_KEY_CONTEXT_PROP_ID: cache the handle on the context. */
  SET_KEY_CONTEXT: 0x1,
  MACHINE_KEYSET: 0x20,
  SILENT: 0x40,
} as const;

/** dwKeySpec values. */
export const AT_KEYEXCHANGE = 1;
export const AT_SIGNATURE = 2;
/** Output of CryptAcquireCertificatePrivateKey meaning "the handle is a CNG key". */
export const CERT_NCRYPT_KEY_SPEC = 0xffffffff;

/** dwProvType values; 0 means the provider is a CNG key storage provider. */
export const PROV_TYPE = {
  CNG: 0,
  RSA_FULL: 1,
  RSA_AES: 24,
} as const;

export const MS_SCARD_PROV = 'Microsoft Base Smart Card Crypto Provider';
export const MS_SMART_CARD_KSP = 'Microsoft Smart Card Key Storage Provider';

/** CertOpenStore arguments. */
export const STORE = {
  PROV_MEMORY: 2,
  PROV_SYSTEM_W: 10,
  /** The registry physical store of a system store; its deletes persist under Wine (see native/). */
  PROV_SYSTEM_REGISTRY_W: 13,
  SYSTEM_CURRENT_USER: 0x00010000,
  SYSTEM_LOCAL_MACHINE: 0x00020000,
  OPEN_EXISTING: 0x4000,
  READONLY: 0x8000,
} as const;
export const ENCODING = 0x00010001; // X509_ASN_ENCODING | PKCS_7_ASN_ENCODING
export const CERT_FIND_SHA1_HASH = 0x10000;

/** The HRESULTs cardlink can meet, by name; WinError carries one of these. */
export const HRESULT = {
  S_OK: 0,
  E_INVALIDARG: 0x80070057,
  CRYPT_E_NOT_FOUND: 0x80092004,
  CRYPT_E_REVOKED: 0x80092010,
  CRYPT_E_EXISTS: 0x80092005,
  CRYPT_E_NO_KEY_PROPERTY: 0x8009200b,
  CRYPT_E_ASN1_BADTAG: 0x8009310b,
  NTE_BAD_KEY: 0x80090003,
  NTE_BAD_SIGNATURE: 0x80090006,
  NTE_BAD_ALGID: 0x80090008,
  NTE_NO_KEY: 0x8009000d,
  NTE_EXISTS: 0x8009000f,
  NTE_NOT_FOUND: 0x80090011,
  NTE_BAD_PROV_TYPE: 0x80090014,
  NTE_BAD_PUBLIC_KEY: 0x80090015,
  NTE_BAD_KEYSET: 0x80090016,
  NTE_KEYSET_NOT_DEF: 0x80090019,
  NTE_PROV_TYPE_NO_MATCH: 0x8009001b,
  NTE_SILENT_CONTEXT: 0x80090022,
  NTE_NOT_SUPPORTED: 0x80090029,
  NTE_USER_CANCELLED: 0x80090036,
  SCARD_E_SHARING_VIOLATION: 0x8010000b,
  SCARD_E_NO_SMARTCARD: 0x8010000c,
  SCARD_F_INTERNAL_ERROR: 0x80100001,
  SCARD_E_CARD_UNSUPPORTED: 0x8010001c,
  SCARD_E_NO_SERVICE: 0x8010001d,
  SCARD_E_FILE_NOT_FOUND: 0x80100024,
  SCARD_E_INVALID_CHV: 0x8010002a,
  SCARD_E_NO_KEY_CONTAINER: 0x80100030,
  SCARD_W_REMOVED_CARD: 0x80100069,
  SCARD_W_WRONG_CHV: 0x8010006b,
  SCARD_W_CHV_BLOCKED: 0x8010006c,
  SCARD_W_CANCELLED_BY_USER: 0x8010006e,
  SCARD_W_CARD_NOT_AUTHENTICATED: 0x8010006f,
  SCARD_W_CACHE_ITEM_NOT_FOUND: 0x80100070,
  SCARD_W_CACHE_ITEM_STALE: 0x80100071,
  SCARD_W_CACHE_ITEM_TOO_BIG: 0x80100072,
} as const;
export type HresultName = keyof typeof HRESULT;

/** The SDK message text (paraphrased) for each HRESULT, so a user sees what Windows would say. */
export const HRESULT_TEXT: Record<HresultName, string> = {
  S_OK: 'success',
  E_INVALIDARG: 'one or more arguments are not valid',
  CRYPT_E_NOT_FOUND: 'cannot find object or property',
  CRYPT_E_REVOKED: 'the certificate is revoked',
  CRYPT_E_EXISTS: 'the object or property already exists',
  CRYPT_E_NO_KEY_PROPERTY: 'cannot find the certificate and private key for decryption (no key provider information)',
  CRYPT_E_ASN1_BADTAG: 'ASN.1 bad tag value met',
  NTE_BAD_KEY: 'bad key',
  NTE_BAD_SIGNATURE: 'invalid signature',
  NTE_BAD_ALGID: 'invalid algorithm specified',
  NTE_NO_KEY: 'key does not exist',
  NTE_EXISTS: 'object already exists',
  NTE_NOT_FOUND: 'object was not found',
  NTE_BAD_PROV_TYPE: 'invalid provider type specified',
  NTE_BAD_PUBLIC_KEY: "the provider's public key does not match the certificate's",
  NTE_BAD_KEYSET: 'keyset does not exist',
  NTE_KEYSET_NOT_DEF: 'the requested provider does not exist',
  NTE_PROV_TYPE_NO_MATCH: 'the provider type does not match the registered value',
  NTE_SILENT_CONTEXT: 'the provider needs to show UI but the context is silent',
  NTE_NOT_SUPPORTED: 'the requested operation is not supported',
  NTE_USER_CANCELLED: 'the action was cancelled by the user',
  SCARD_E_SHARING_VIOLATION: 'the smart card cannot be accessed because of other connections outstanding',
  SCARD_E_NO_SMARTCARD: 'the operation requires a smart card, but no smart card is in the device',
  SCARD_F_INTERNAL_ERROR: 'an internal consistency check failed',
  SCARD_E_CARD_UNSUPPORTED: 'the smart card does not meet minimal requirements for support',
  SCARD_E_NO_SERVICE: 'the Smart Card Resource Manager is not running',
  SCARD_E_FILE_NOT_FOUND: 'the file does not exist on the smart card',
  SCARD_E_INVALID_CHV: 'the supplied PIN is incorrect',
  SCARD_E_NO_KEY_CONTAINER: 'the requested key container does not exist on the smart card',
  SCARD_W_REMOVED_CARD: 'the smart card has been removed',
  SCARD_W_WRONG_CHV: 'the card cannot be accessed because the wrong PIN was presented',
  SCARD_W_CHV_BLOCKED: 'the card cannot be accessed because the maximum number of PIN entry attempts has been reached',
  SCARD_W_CANCELLED_BY_USER: 'the action was cancelled by the user',
  SCARD_W_CARD_NOT_AUTHENTICATED: 'no PIN was presented to the smart card',
  SCARD_W_CACHE_ITEM_NOT_FOUND: 'the requested item could not be found in the cache',
  SCARD_W_CACHE_ITEM_STALE: 'the requested cache item is too old and was deleted from the cache',
  SCARD_W_CACHE_ITEM_TOO_BIG: 'the new cache item exceeds the maximum per-item size',
};

export function hresultName(value: number): HresultName | undefined {
  const v = value >>> 0;
  for (const [name, code] of Object.entries(HRESULT)) if (code === v) return name as HresultName;
  return undefined;
}

export function hresultHex(value: number): string {
  return '0x' + (value >>> 0).toString(16).toUpperCase().padStart(8, '0');
}
