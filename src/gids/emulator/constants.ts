/**
 * Card-side constants: what GidsApplet answers that the host never needs to know, and the limits
 * of the emulated chip. Shared GIDS values live in gids/protocol.
 */

/**
 * `3B 8C 01 "cardlinkGIDS" 80`: direct convention, T=1 only (TD1 = 01), 12 historical bytes naming
 * the emulator, TCK. OpenSC finds GIDS cards by SELECT, not by ATR, so the ATR must only stay out
 * of other drivers' tables: jcardsim's `3B 80 80 01 01` is listed by OpenSC's PIV (PIVKey),
 * sc-hsm (SoC) and a muscle variant, and the `3B 8x 80 01` contactless family is matched with
 * wildcard masks (GoID, Uruguayan eID). No table has a 16-byte entry that matches this one.
 */
export const DEFAULT_ATR = new Uint8Array([
  0x3b, 0x8c, 0x01, ...Buffer.from('cardlinkGIDS', 'latin1'), 0x80,
]);

/** EEPROM the emulated chip offers to files, DOs and keys (configurable per card, kept in the image). */
export const DEFAULT_CAPACITY_BYTES = 128 * 1024;

/** The application DF's FID as GidsApplet registers it internally (SELECT 3F00 selects the application too). */
export const FID_MASTER = 0x3f00;

/** FCP of the application DF (SELECT with P2=04). */
export const APPLICATION_FCP = new Uint8Array([0x62, 0x08, 0x82, 0x01, 0x38, 0x8c, 0x03, 0x03, 0x30, 0x30]);

/** File management data of the application (SELECT with P2=08): PIN usage policy and card capabilities. */
export const APPLICATION_FMD = new Uint8Array([0x64, 0x09, 0x5f, 0x2f, 0x01, 0x60, 0x7f, 0x65, 0x02, 0x80, 0x00]);

/**
 * Most bytes of one command APDU and of one response APDU when the emulated card takes extended
 * lengths (ISO 7816-4 extended length information, as the FCI announces them): 4 KiB of data
 * either way, enough for a certificate in one PUT DATA, small enough that an 8 KB one is chained.
 */
export const EXTENDED_MAX_COMMAND_APDU = 4096 + 9;
export const EXTENDED_MAX_RESPONSE_APDU = 4096 + 2;

/**
 * EF.ATR content for `00 CB 2F 01 02 5C 00`: card service data (43) and card capabilities (47) as
 * GidsApplet reports them; the pre-issuing data (46) names this emulator instead of GidsApplet's vendor.
 */
export const EF_ATR_DATA = new Uint8Array([
  0x43, 0x01, 0xf4, 0x47, 0x03, 0x08, 0x01, 0x80, 0x46, 0x08, ...Buffer.from('cardlink', 'latin1'),
]);

/** GidsApplet limits: children per DF, DOs per BER-TLV EF, largest DO value (signed Java short). */
export const MAX_FILES = 30;
export const MAX_DATA_OBJECTS = 30;
export const MAX_DO_VALUE = 0x7fff;

/**
 * Largest chained input for PSO, GENERATE and key import. GidsApplet's 530/1220-byte buffers would
 * refuse a 4096-bit key import; this is large enough for any RSA key GIDS defines.
 */
export const CHAIN_BUFFER_LIMIT = 8192;

/** Card-padded PKCS#1 signatures take at most this much input, in one APDU (GidsApplet). */
export const SIGN_PKCS1_MAX_INPUT = 247;

/** Status words the card side needs beyond the shared table in apdu/status. */
export const CARD_SW = {
  /** 63Cx: wrong PIN, x tries left. */
  PIN_TRIES_LEFT: 0x63c0,
  /** The image could not be written: the command had no effect (ISO 7816-4 "memory failure"). */
  MEMORY_FAILURE: 0x6581,
  /** 61xx: xx more bytes wait for GET RESPONSE (00 = 256 or more). */
  BYTES_REMAINING: 0x6100,
} as const;
