/**
 * GIDS protocol constants shared by the host driver and the card emulator.
 * Source for every value: OpenSC card-gids.[ch] and GidsApplet (docs/sources.md#opensc-gids,
 * docs/sources.md#gidsapplet).
 */

/** Full GIDS v2 application AID as GidsApplet registers it. */
export const GIDS_AID = new Uint8Array([0xa0, 0x00, 0x00, 0x03, 0x97, 0x42, 0x54, 0x46, 0x59, 0x02, 0x01]);
/** The 9-byte partial AID OpenSC selects with. */
export const GIDS_AID_PARTIAL = GIDS_AID.subarray(0, 9);

/** FCI returned to SELECT by AID with P2=00 (tag 61, as Windows 10 needs). */
export const GIDS_FCI = new Uint8Array([
  0x61, 0x12, 0x4f, 0x0b, ...GIDS_AID, 0x73, 0x03, 0x40, 0x01, 0xc0,
]);

export const INS = {
  SELECT: 0xa4,
  GET_DATA: 0xcb,
  PUT_DATA: 0xdb,
  CREATE_FILE: 0xe0,
  ACTIVATE_FILE: 0x44,
  DELETE_FILE: 0xe4,
  TERMINATE_DF: 0xe6,
  VERIFY: 0x20,
  CHANGE_REFERENCE_DATA: 0x24,
  RESET_RETRY_COUNTER: 0x2c,
  MSE: 0x22,
  GENERAL_AUTHENTICATE: 0x87,
  GENERATE_ASYMMETRIC_KEY_PAIR: 0x47,
  PSO: 0x2a,
  GET_RESPONSE: 0xc0,
} as const;

/** The application DF's FID. */
export const FID_APPLICATION = 0x3fff;

/** The six BER-TLV EFs and their compact ACL bytes (PUT, GET). */
export const EF = {
  UserCreateDeleteDirAc: 0xa000,
  EveryoneReadUserWriteAc: 0xa010,
  UserWriteExecuteAc: 0xa011,
  EveryoneReadAdminWriteAc: 0xa012,
  UserReadWriteAc: 0xa013,
  AdminReadWriteAc: 0xa014,
} as const;

export const EF_ACL: ReadonlyArray<{ efid: number; put: number; get: number }> = [
  { efid: 0xa000, put: 0x30, get: 0x00 },
  { efid: 0xa010, put: 0x30, get: 0x00 },
  { efid: 0xa011, put: 0x30, get: 0xff },
  { efid: 0xa012, put: 0x20, get: 0x00 },
  { efid: 0xa013, put: 0x30, get: 0x30 },
  { efid: 0xa014, put: 0x20, get: 0x20 },
];

/** Data objects. */
export const DO = {
  MASTER_FILE_TABLE: 0xdf1f, // in A000
  KEY_MAP: 0xdf20, // in A000 (same number as cardid, different EF)
  CARDID: 0xdf20, // in A012
  CARDAPPS: 0xdf21, // in A010
  CARDCF: 0xdf22, // in A010
  CMAPFILE: 0xdf23, // in A010
  PIN_STATUS: 0x7f71,
  PUK_STATUS: 0x7f73,
} as const;

/** The first DO number OpenSC hands out to new files in A010. */
export const FIRST_FILE_DO = 0xdf21;

/** Key references: user PIN 80, admin key 80 (in its own EF B080), containers 81 + index. */
export const PIN_REF_USER = 0x80;
export const PIN_REF_DEAUTH_ALL = 0x82;
export const ADMIN_KEY_REF = 0x80;
export const ADMIN_KEY_FID = 0xb080;
export const FIRST_KEY_REF = 0x81;
export const MAX_CONTAINERS = 126;

export function keyFid(keyRef: number): number {
  return 0xb000 | keyRef;
}

/** Algorithm ids (tag 80), RSA sizes. */
export const ALG_RSA: Record<number, number> = { 1024: 0x06, 2048: 0x07, 3072: 0x08, 4096: 0x09 };
export const RSA_BITS_BY_ALG: Record<number, number> = { 0x06: 1024, 0x07: 2048, 0x08: 3072, 0x09: 4096 };

/** Usage nibble OR-ed onto the algorithm id in a CRT. */
export const USAGE = {
  DECIPHER_RAW: 0x00,
  DECIPHER_PKCS1: 0x40,
  DECIPHER_OAEP: 0x80,
  SIGN_RAW: 0x10,
  SIGN_PKCS1: 0x50,
} as const;

/** Key types in the key map. */
export const KEYTYPE_EXCHANGE = 0x9a;
export const KEYTYPE_SIGNATURE = 0x9c;

/** Compact ACL security-condition bytes. */
export const SC = { ALWAYS: 0x00, NEVER: 0xff } as const;

/** GIDS default PIN try limit (GidsApplet). */
export const PIN_TRY_LIMIT = 3;
export const PIN_MIN_LENGTH = 4;
export const PIN_MAX_LENGTH = 16;
