/**
 * The card image file: the persistent state of one emulated card. Public state is readable JSON;
 * the PIN and every key are in one AES-256-GCM sealed blob whose key (the "secure element key")
 * lives in $CARDLINK_HOME/emulator-seal.key. The public JSON is the blob's associated data, so
 * editing it (say, the PIN try counter) breaks the seal. Every save replaces the file atomically.
 */
import { cardlinkHome } from '../../home.js';
import { createCipheriv, createDecipheriv, createHash, createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { removeQuietly, syncDirectory, writeFileAtomic, writeTempBeside } from '../../atomic-file.js';
import { encodeTlv, findTlv, parseTlvs, type Tlv } from '../protocol/tlv.js';
import { GidsCard, type GidsCardOptions } from './card.js';
import { CardImageError } from './errors.js';
import { CARD_IMAGE_VERSION, type CardImageData, type FileImage, type KeyImage } from './image-format.js';
import type { LifeCycle } from './state.js';

export const SEAL_KEY_FILE = 'emulator-seal.key';
const IMAGE_FORMAT = 'cardlink-gids-card-image';
const SEAL_ALG = 'A256GCM';
const SEAL_KEY_BYTES = 32;

/** Tags of the sealed secrets (a BER-TLV list; never written anywhere unencrypted). */
const SECRET = { PIN: 0xc0, KEY: 0xe0, FID: 0x83, RSA_PKCS8: 0xc1, SYMMETRIC: 0xc2 } as const;

function ioError(what: string, path: string, cause: unknown): CardImageError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new CardImageError('IMAGE_IO', `${what} ${path}: ${reason}`, { path, cause });
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Replaces the image file atomically and durably (src/atomic-file.ts: temp file, fsync, rename,
 * directory fsync). On failure the previous file is untouched and CardImageError IMAGE_IO is thrown.
 */
function saveImage(path: string, bytes: Uint8Array): void {
  try {
    writeFileAtomic(path, bytes);
  } catch (cause) {
    throw ioError('could not save the card image', path, cause);
  }
}

function createSealKey(home: string, path: string): void {
  try {
    mkdirSync(home, { recursive: true, mode: 0o700 });
    const tmp = writeTempBeside(path, randomBytes(SEAL_KEY_BYTES));
    try {
      // link() fails if another process created the key meanwhile: then that key wins.
      linkSync(tmp, path);
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw e;
    } finally {
      removeQuietly(tmp);
    }
    // The key must survive a power cut as surely as the images sealed with it.
    syncDirectory(home);
  } catch (cause) {
    throw ioError('could not create the secure element key', path, cause);
  }
}

/**
 * The 32-byte secure element key that seals card images, created (mode 0600) on first use. A key
 * file that others may read, or of the wrong size, is refused rather than trusted.
 */
export function loadSealKey(home: string = cardlinkHome()): Uint8Array {
  const path = join(home, SEAL_KEY_FILE);
  if (!existsSync(path)) createSealKey(home, path);
  let key: Buffer;
  try {
    if (process.platform !== 'win32' && (statSync(path).mode & 0o077) !== 0) {
      throw new CardImageError('IMAGE_SEAL', `${path} is readable by other users; run: chmod 600 ${path}`, { path });
    }
    key = readFileSync(path);
  } catch (cause) {
    if (cause instanceof CardImageError) throw cause;
    throw ioError('could not read the secure element key', path, cause);
  }
  if (key.length !== SEAL_KEY_BYTES) {
    throw new CardImageError('IMAGE_SEAL', `${path} is not a ${SEAL_KEY_BYTES}-byte secure element key`, { path });
  }
  const out = new Uint8Array(key);
  key.fill(0);
  return out;
}

const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex').toUpperCase();

/** What the public JSON says about one file: everything but the key itself, of which only the kind. */
interface PublicFile {
  fid: number;
  fcp: Uint8Array;
  activated: boolean;
  dataObjects: Uint8Array[];
  keyKind: KeyImage['kind'] | null;
}

interface PublicView {
  capacityBytes: number;
  extendedLength: boolean;
  lifeCycle: LifeCycle;
  pinTriesRemaining: number;
  files: PublicFile[];
}

function publicView(d: CardImageData): PublicView {
  return {
    capacityBytes: d.capacityBytes,
    extendedLength: d.extendedLength === true,
    lifeCycle: d.lifeCycle,
    pinTriesRemaining: d.pinTriesRemaining,
    files: d.files.map((f) => ({ ...f, keyKind: f.key?.kind ?? null })),
  };
}

/** The public JSON exactly as written, built from values so that its hash is canonical. */
function publicPart(v: PublicView): Record<string, unknown> {
  return {
    format: IMAGE_FORMAT,
    version: CARD_IMAGE_VERSION,
    capacityBytes: v.capacityBytes,
    // Only when set: images written before the field existed keep their canonical form (and seal).
    ...(v.extendedLength ? { extendedLength: true } : {}),
    lifeCycle: v.lifeCycle,
    pinTriesRemaining: v.pinTriesRemaining,
    files: v.files.map((f) => ({
      fid: f.fid.toString(16).toUpperCase().padStart(4, '0'),
      fcp: hexOf(f.fcp),
      activated: f.activated,
      dataObjects: f.dataObjects.map(hexOf),
      key: f.keyKind,
    })),
  };
}

function associatedData(pub: Record<string, unknown>): Buffer {
  return createHash('sha256').update(JSON.stringify(pub)).digest();
}

function encodeSecrets(d: CardImageData): Buffer {
  const parts: Uint8Array[] = [];
  const wipe: Buffer[] = [];
  if (d.pin !== null) parts.push(encodeTlv(SECRET.PIN, d.pin));
  for (const f of d.files) {
    if (f.key === undefined) continue;
    const fid = new Uint8Array([f.fid >> 8, f.fid & 0xff]);
    let material: Uint8Array;
    if (f.key.kind === 'rsa') {
      const der = f.key.privateKey.export({ format: 'der', type: 'pkcs8' });
      wipe.push(der);
      material = encodeTlv(SECRET.RSA_PKCS8, der);
    } else {
      material = encodeTlv(SECRET.SYMMETRIC, f.key.value);
    }
    parts.push(encodeTlv(SECRET.KEY, encodeTlv(SECRET.FID, fid), material));
    wipe.push(Buffer.from(material.buffer, material.byteOffset, material.byteLength));
  }
  const out = Buffer.concat(parts);
  for (const p of parts) p.fill(0);
  for (const w of wipe) w.fill(0);
  return out;
}

/** The card image file's bytes: public JSON plus the sealed secrets. */
export function encodeCardImage(d: CardImageData, sealKey: Uint8Array): Uint8Array {
  const pub = publicPart(publicView(d));
  const secrets = encodeSecrets(d);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', sealKey, iv);
  cipher.setAAD(associatedData(pub));
  const data = Buffer.concat([cipher.update(secrets), cipher.final()]);
  secrets.fill(0);
  const sealed = { alg: SEAL_ALG, iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
  return new Uint8Array(Buffer.from(JSON.stringify({ ...pub, sealed }, null, 2) + '\n', 'utf8'));
}

function malformed(reason: string): never {
  throw new CardImageError('IMAGE_CORRUPT', `card image is not valid: ${reason}`);
}

function field<T>(obj: unknown, name: string, check: (v: unknown) => v is T): T {
  const value = typeof obj === 'object' && obj !== null ? (obj as Record<string, unknown>)[name] : undefined;
  if (!check(value)) malformed(`field "${name}" is missing or has the wrong type`);
  return value;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isNumber = (v: unknown): v is number => typeof v === 'number';
const isBoolean = (v: unknown): v is boolean => typeof v === 'boolean';
const isArray = (v: unknown): v is unknown[] => Array.isArray(v);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isKeyKind = (v: unknown): v is KeyImage['kind'] | null => v === null || v === 'rsa' || v === 'symmetric';

function bytesFromHex(text: string): Uint8Array {
  if (text.length % 2 !== 0 || !/^[0-9A-Fa-f]*$/.test(text)) malformed('a hex field is not hex');
  return new Uint8Array(Buffer.from(text, 'hex'));
}

function bytesFromBase64(text: string): Buffer {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) malformed('a base64 field is not base64');
  return Buffer.from(text, 'base64');
}

const LIFE_CYCLES: readonly unknown[] = ['creation', 'operational', 'terminated'] satisfies LifeCycle[];
const isLifeCycle = (v: unknown): v is LifeCycle => LIFE_CYCLES.includes(v);

function readPublicFile(raw: unknown): PublicFile {
  const fidText = field(raw, 'fid', isString);
  if (!/^[0-9A-Fa-f]{4}$/.test(fidText)) malformed(`file id "${fidText}"`);
  return {
    fid: parseInt(fidText, 16),
    fcp: bytesFromHex(field(raw, 'fcp', isString)),
    activated: field(raw, 'activated', isBoolean),
    dataObjects: field(raw, 'dataObjects', isArray).map((d) => bytesFromHex(isString(d) ? d : malformed('a data object is not hex'))),
    keyKind: field(raw, 'key', isKeyKind),
  };
}

function openSealed(sealed: Record<string, unknown>, aad: Buffer, sealKey: Uint8Array): Buffer {
  if (field(sealed, 'alg', isString) !== SEAL_ALG) malformed('unknown seal algorithm');
  const iv = bytesFromBase64(field(sealed, 'iv', isString));
  const tag = bytesFromBase64(field(sealed, 'tag', isString));
  const data = bytesFromBase64(field(sealed, 'data', isString));
  if (iv.length !== 12 || tag.length !== 16) malformed('seal header');
  try {
    const decipher = createDecipheriv('aes-256-gcm', sealKey, iv);
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(data), decipher.final()]);
  } catch (cause) {
    throw new CardImageError(
      'IMAGE_SEAL',
      'the sealed part does not open: the image was sealed with another secure element key or was modified',
      { cause },
    );
  }
}

interface Secrets {
  pin: Uint8Array | null;
  keys: Map<number, KeyImage>;
}

function parseSealed(bytes: Uint8Array): Tlv[] {
  try {
    return parseTlvs(bytes);
  } catch {
    malformed('the sealed part is not well formed');
  }
}

function readSecrets(plain: Buffer): Secrets {
  const secrets: Secrets = { pin: null, keys: new Map() };
  for (const t of parseSealed(plain)) {
    if (t.tag === SECRET.PIN) {
      secrets.pin = new Uint8Array(t.value); // a copy: Buffer#slice would be a view of `plain`, wiped below
      continue;
    }
    if (t.tag !== SECRET.KEY) malformed('unknown sealed element');
    const inner = parseSealed(t.value);
    const fid = findTlv(inner, SECRET.FID)?.value;
    if (fid?.length !== 2) malformed('sealed key without its file id');
    const rsa = findTlv(inner, SECRET.RSA_PKCS8)?.value;
    const sym = findTlv(inner, SECRET.SYMMETRIC)?.value;
    let key: KeyImage;
    if (rsa !== undefined) {
      let privateKey: KeyObject;
      try {
        // A view, not a copy: the caller wipes the plaintext these bytes live in.
        privateKey = createPrivateKey({ key: Buffer.from(rsa.buffer, rsa.byteOffset, rsa.byteLength), format: 'der', type: 'pkcs8' });
      } catch {
        malformed('sealed private key does not parse');
      }
      key = { kind: 'rsa', privateKey };
    } else if (sym !== undefined) {
      key = { kind: 'symmetric', value: new Uint8Array(sym) };
    } else {
      malformed('sealed key of unknown kind');
    }
    secrets.keys.set((fid[0]! << 8) | fid[1]!, key);
  }
  return secrets;
}

/**
 * Parses and unseals a card image file. CardImageError IMAGE_CORRUPT if it is not a well-formed
 * image, IMAGE_SEAL if the secrets do not open with `sealKey` (other machine, or edited file).
 */
export function decodeCardImage(bytes: Uint8Array, sealKey: Uint8Array): CardImageData {
  let plain: Buffer | undefined;
  try {
    let json: unknown;
    try {
      json = JSON.parse(Buffer.from(bytes).toString('utf8'));
    } catch {
      malformed('not JSON (truncated or overwritten?)');
    }
    if (field(json, 'format', isString) !== IMAGE_FORMAT) malformed('not a cardlink GIDS card image');
    const version = field(json, 'version', isNumber);
    if (version !== CARD_IMAGE_VERSION) malformed(`version ${version} (this cardlink reads version ${CARD_IMAGE_VERSION})`);
    const view: PublicView = {
      capacityBytes: field(json, 'capacityBytes', isNumber),
      extendedLength: isObject(json) && 'extendedLength' in json ? field(json, 'extendedLength', isBoolean) : false,
      lifeCycle: field(json, 'lifeCycle', isLifeCycle),
      pinTriesRemaining: field(json, 'pinTriesRemaining', isNumber),
      files: field(json, 'files', isArray).map(readPublicFile),
    };
    // Associated data from the values read, so that only a change of meaning breaks the seal.
    plain = openSealed(field(json, 'sealed', isObject), associatedData(publicPart(view)), sealKey);
    const secrets = readSecrets(plain);
    const files: FileImage[] = view.files.map(({ keyKind, ...f }) => {
      const key = secrets.keys.get(f.fid);
      if ((key?.kind ?? null) !== keyKind) malformed(`the sealed key of file ${f.fid.toString(16)} does not match its record`);
      return key === undefined ? f : { ...f, key };
    });
    if (secrets.keys.size !== files.filter((f) => f.key !== undefined).length) malformed('sealed keys without a file');
    return {
      version: CARD_IMAGE_VERSION,
      capacityBytes: view.capacityBytes,
      extendedLength: view.extendedLength,
      lifeCycle: view.lifeCycle,
      pin: secrets.pin,
      pinTriesRemaining: view.pinTriesRemaining,
      files,
    };
  } finally {
    plain?.fill(0);
  }
}

function withPath(e: unknown, path: string): unknown {
  if (!(e instanceof CardImageError)) return e;
  return new CardImageError(e.code, `${path}: ${e.message}`, { path, cause: e.cause });
}

export interface OpenCardImageOptions extends GidsCardOptions {
  /** Create a blank card image when there is none at the path. */
  create?: boolean;
  /** Where the secure element key lives (default: cardlinkHome()). */
  home?: string;
}

/**
 * The emulated card stored at `path` (created blank if absent and `create` is set). The returned
 * card saves itself, atomically, after every APDU that changes its persistent state.
 */
export function openCardImage(path: string, options: OpenCardImageOptions = {}): GidsCard {
  const sealKey = loadSealKey(options.home);
  let bytes: Buffer | undefined;
  try {
    bytes = readFileSync(path);
  } catch (cause) {
    if (errno(cause) !== 'ENOENT') throw ioError('could not read the card image', path, cause);
  }
  let card: GidsCard;
  try {
    if (bytes === undefined) {
      if (options.create !== true) {
        throw new CardImageError('IMAGE_NOT_FOUND', `no card image at ${path}`, { path });
      }
      card = GidsCard.blank({
        ...(options.capacityBytes === undefined ? {} : { capacityBytes: options.capacityBytes }),
        ...(options.extendedLength === undefined ? {} : { extendedLength: options.extendedLength }),
      });
      saveImage(path, encodeCardImage(card.toImage(), sealKey));
    } else {
      card = GidsCard.fromImage(decodeCardImage(bytes, sealKey));
    }
  } catch (e) {
    throw e instanceof CardImageError && e.path === path ? e : withPath(e, path);
  }
  card.onPersistentChange = () => saveImage(path, encodeCardImage(card.toImage(), sealKey));
  return card;
}
