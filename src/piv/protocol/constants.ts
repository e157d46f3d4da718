/**
 * The PIV card application's numbers, shared by the host (src/piv/host) and the emulator
 * (src/piv/emulator). From NIST SP 800-73-4 (docs/sources.md#sp800-73-4) Part 1 (data model:
 * AID, data objects, key references) and Part 2 (card commands), and SP 800-78-4 (algorithm
 * identifiers, docs/sources.md#sp800-78-4). Values marked "Yubico extension" come from Yubico's
 * public description of its PIV extensions (docs/sources.md#yubico-piv) and are not part of PIV.
 */

/** The PIV AID, version 1.0 (800-73-4 Part 1 §2.2): RID A000000308, PIX 00001000 0100. */
export const PIV_AID = new Uint8Array([0xa0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00]);
/** The AID without its version: what OpenSC's card-piv.c selects (the card matches by prefix, Part 2 §3.1.1). */
export const PIV_AID_TRUNCATED = PIV_AID.subarray(0, 9);
/** The PIX the application property template returns in tag 4F (Part 2 §3.1.1, Table 3). */
export const PIV_PIX = PIV_AID.subarray(5);

/** Instructions (Part 2 §3); the F-range ones are Yubico extensions. */
export const INS = {
  SELECT: 0xa4,
  GET_DATA: 0xcb,
  PUT_DATA: 0xdb,
  VERIFY: 0x20,
  CHANGE_REFERENCE_DATA: 0x24,
  RESET_RETRY_COUNTER: 0x2c,
  GENERAL_AUTHENTICATE: 0x87,
  GENERATE_ASYMMETRIC_KEY_PAIR: 0x47,
  GET_RESPONSE: 0xc0,
  /** Yubico extension: firmware version, 3 bytes. */
  YK_GET_VERSION: 0xfd,
  /** Yubico extension (YubiKey 5): serial number, 4 bytes big-endian. */
  YK_GET_SERIAL: 0xf8,
} as const;

/**
 * Key references (800-73-4 Part 1 §3.1 Table 4 and §3.3; 800-78-4 Table 6-1). The retired key
 * management keys are 82..95.
 */
export const KEY_REF = {
  GLOBAL_PIN: 0x00,
  PIN: 0x80,
  PUK: 0x81,
  MANAGEMENT: 0x9b,
  AUTHENTICATION: 0x9a,
  SIGNATURE: 0x9c,
  KEY_MANAGEMENT: 0x9d,
  CARD_AUTHENTICATION: 0x9e,
  RETIRED_FIRST: 0x82,
  RETIRED_LAST: 0x95,
} as const;

/** Cryptographic algorithm identifiers (SP 800-78-4 Table 6-2 and 6-3). */
export const ALG = {
  TDES: 0x03,
  RSA_1024: 0x06,
  RSA_2048: 0x07,
  AES_128: 0x08,
  AES_192: 0x0a,
  AES_256: 0x0c,
  ECC_P256: 0x11,
  ECC_P384: 0x14,
} as const;

export type SymmetricAlg = typeof ALG.TDES | typeof ALG.AES_128 | typeof ALG.AES_192 | typeof ALG.AES_256;
export type AsymmetricAlg = typeof ALG.RSA_1024 | typeof ALG.RSA_2048 | typeof ALG.ECC_P256 | typeof ALG.ECC_P384;

/** Key length in bytes and block size of each management key algorithm. */
export const SYMMETRIC: Record<SymmetricAlg, { keyBytes: number; block: number; cipher: string }> = {
  [ALG.TDES]: { keyBytes: 24, block: 8, cipher: 'des-ede3' },
  [ALG.AES_128]: { keyBytes: 16, block: 16, cipher: 'aes-128-ecb' },
  [ALG.AES_192]: { keyBytes: 24, block: 16, cipher: 'aes-192-ecb' },
  [ALG.AES_256]: { keyBytes: 32, block: 16, cipher: 'aes-256-ecb' },
};

export function isSymmetricAlg(alg: number): alg is SymmetricAlg {
  return alg === ALG.TDES || alg === ALG.AES_128 || alg === ALG.AES_192 || alg === ALG.AES_256;
}

export function isAsymmetricAlg(alg: number): alg is AsymmetricAlg {
  return alg === ALG.RSA_1024 || alg === ALG.RSA_2048 || alg === ALG.ECC_P256 || alg === ALG.ECC_P384;
}

export const ALG_NAMES: Record<AsymmetricAlg, string> = {
  [ALG.RSA_1024]: 'RSA-1024',
  [ALG.RSA_2048]: 'RSA-2048',
  [ALG.ECC_P256]: 'ECC P-256',
  [ALG.ECC_P384]: 'ECC P-384',
};

/** Data object tags (800-73-4 Part 1 Table 3), as the 3-byte BER tags GET/PUT DATA name them. */
export const OBJECT = {
  CARD_CAPABILITY_CONTAINER: 0x5fc107,
  CHUID: 0x5fc102,
  CERT_AUTHENTICATION: 0x5fc105,
  FINGERPRINTS: 0x5fc103,
  PRINTED_INFORMATION: 0x5fc109,
  FACIAL_IMAGE: 0x5fc108,
  CERT_SIGNATURE: 0x5fc10a,
  CERT_KEY_MANAGEMENT: 0x5fc10b,
  CERT_CARD_AUTHENTICATION: 0x5fc101,
  SECURITY_OBJECT: 0x5fc106,
  DISCOVERY: 0x7e,
  KEY_HISTORY: 0x5fc10c,
  /** Retired X.509 certificates for key management 1..20: 5FC10D..5FC120. */
  CERT_RETIRED_FIRST: 0x5fc10d,
  IRIS_IMAGES: 0x5fc121,
  BIOMETRIC_GROUP_TEMPLATE: 0x7f61,
  SM_CERT_SIGNER: 0x5fc122,
  PAIRING_CODE_REFERENCE: 0x5fc123,
} as const;

/** Objects only readable after PIN verification (Part 1 Table 3 access rule "PIN"). */
export const PIN_PROTECTED_OBJECTS: readonly number[] = [
  OBJECT.FINGERPRINTS,
  OBJECT.PRINTED_INFORMATION,
  OBJECT.FACIAL_IMAGE,
  OBJECT.IRIS_IMAGES,
];

/** The data objects of 800-73-4 Part 1 Table 3 (retired certificates included). */
export function isPivObject(tag: number): boolean {
  if (tag >= OBJECT.CERT_RETIRED_FIRST && tag <= OBJECT.CERT_RETIRED_FIRST + 19) return true;
  return (Object.values(OBJECT) as number[]).includes(tag);
}

/** Key slots that hold an asymmetric key and a certificate. */
export const KEY_SLOTS: readonly number[] = [
  KEY_REF.AUTHENTICATION,
  KEY_REF.SIGNATURE,
  KEY_REF.KEY_MANAGEMENT,
  KEY_REF.CARD_AUTHENTICATION,
  ...Array.from({ length: 20 }, (_, i) => KEY_REF.RETIRED_FIRST + i),
];

export function isKeySlot(ref: number): boolean {
  return KEY_SLOTS.includes(ref);
}

/** The certificate object of a key slot (Part 1 Table 4b: 9A→5FC105, 9C→5FC10A, 9D→5FC10B, 9E→5FC101, 82..95→5FC10D..). */
export function certificateObjectOf(slot: number): number {
  switch (slot) {
    case KEY_REF.AUTHENTICATION:
      return OBJECT.CERT_AUTHENTICATION;
    case KEY_REF.SIGNATURE:
      return OBJECT.CERT_SIGNATURE;
    case KEY_REF.KEY_MANAGEMENT:
      return OBJECT.CERT_KEY_MANAGEMENT;
    case KEY_REF.CARD_AUTHENTICATION:
      return OBJECT.CERT_CARD_AUTHENTICATION;
    default:
      if (slot >= KEY_REF.RETIRED_FIRST && slot <= KEY_REF.RETIRED_LAST) return OBJECT.CERT_RETIRED_FIRST + (slot - KEY_REF.RETIRED_FIRST);
      throw new RangeError(`0x${slot.toString(16)} is not a PIV key slot`);
  }
}

/**
 * PIN policy of each key slot (Part 1 §3.1 and Table 4b): card authentication (9E) needs none; the
 * digital signature key (9C) needs the PIN immediately before each use ("PIN Always"); the others
 * need the PIN once per session.
 */
export type PinPolicy = 'never' | 'once' | 'always';
export function pinPolicyOf(slot: number): PinPolicy {
  if (slot === KEY_REF.CARD_AUTHENTICATION) return 'never';
  if (slot === KEY_REF.SIGNATURE) return 'always';
  return 'once';
}

/** Dynamic authentication template (Part 2 §3.2.4, Table 7) and its members. */
export const DAT = { TEMPLATE: 0x7c, WITNESS: 0x80, CHALLENGE: 0x81, RESPONSE: 0x82, EXPONENTIATION: 0x85 } as const;

/** PIN and PUK: 6 to 8 bytes, padded to 8 with FF (Part 2 §2.4.3). */
export const PIN_LENGTH = { MIN: 6, MAX: 8, PADDED: 8 } as const;
export const PIN_PAD = 0xff;

/** The interindustry data object wrapping every PIV object's value (Part 1 §3: tag 53). */
export const DATA_TAG = 0x53;
/** The tag list of GET DATA (Part 2 §3.1.2). */
export const TAG_LIST = 0x5c;
