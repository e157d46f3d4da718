/**
 * What every emulated card's image file shares, whichever card application it holds (GIDS in
 * src/gids/emulator, PIV in src/piv/emulator): the per-user "secure element key" that seals the
 * secrets, the AES-256-GCM seal whose associated data is the hash of the image's public JSON (so
 * editing a public value, a PIN counter say, breaks the seal), the atomic save, and the one error
 * type an image raises. The PIN, PUK, administrator or management keys and private keys are only
 * ever written inside the seal.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, linkSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { removeQuietly, syncDirectory, writeFileAtomic, writeTempBeside } from './atomic-file.js';
import { CardlinkError } from './errors.js';
import { cardlinkHome } from './home.js';

export type CardImageErrorCode =
  /** No image file at the path, and the caller did not ask to create one. */
  | 'IMAGE_NOT_FOUND'
  /** The file is not a card image this version understands (truncated, edited, wrong format). */
  | 'IMAGE_CORRUPT'
  /** The sealed secrets do not open with this machine's secure element key, or the image was altered. */
  | 'IMAGE_SEAL'
  /** Reading or writing the image or its secure element key failed at the file system level. */
  | 'IMAGE_IO'
  /** Another process (emulate, another command) has the image open: two writers would lose changes. */
  | 'IMAGE_IN_USE';

/** A card image could not be loaded or saved; the message names the file and what to do. */
export class CardImageError extends CardlinkError {
  declare readonly code: CardImageErrorCode;
  readonly path: string | undefined;
  constructor(code: CardImageErrorCode, message: string, options?: { path?: string; cause?: unknown }) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.path = options?.path;
  }
}

export const SEAL_KEY_FILE = 'emulator-seal.key';
const SEAL_ALG = 'A256GCM';
const SEAL_KEY_BYTES = 32;

export function imageIoError(what: string, path: string, cause: unknown): CardImageError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new CardImageError('IMAGE_IO', `${what} ${path}: ${reason}`, { path, cause });
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/** IMAGE_CORRUPT naming the first thing that is wrong. */
export function imageCorrupt(reason: string): never {
  throw new CardImageError('IMAGE_CORRUPT', `card image is not valid: ${reason}`);
}

/**
 * Replaces the image file atomically and durably (src/atomic-file.ts: temp file, fsync, rename,
 * directory fsync). On failure the previous file is untouched and CardImageError IMAGE_IO is thrown.
 */
export function saveImageFile(path: string, bytes: Uint8Array): void {
  try {
    writeFileAtomic(path, bytes);
  } catch (cause) {
    throw imageIoError('could not save the card image', path, cause);
  }
}

/** The image file's bytes, or undefined when there is none (any other failure is IMAGE_IO). */
export function readImageFile(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (cause) {
    if (errno(cause) !== 'ENOENT') throw imageIoError('could not read the card image', path, cause);
    return undefined;
  }
}

/** The same error with the image's path in front of its message. */
export function withImagePath(e: unknown, path: string): unknown {
  if (!(e instanceof CardImageError)) return e;
  if (e.path === path) return e;
  return new CardImageError(e.code, `${path}: ${e.message}`, { path, cause: e.cause });
}

/**
 * The card an emulator keeps in the image at `path`: decoded from the file, or, when there is no
 * file and `create` is set, a blank card saved at once. Failures name the path. Both emulators
 * open their images through this; each keeps its own format (`decode`, `blank`).
 */
export function loadImageCard<C>(path: string, o: { create?: boolean; decode: (bytes: Buffer) => C; blank: () => { card: C; image: Uint8Array } }): C {
  const bytes = readImageFile(path);
  try {
    if (bytes !== undefined) return o.decode(bytes);
    if (o.create !== true) throw new CardImageError('IMAGE_NOT_FOUND', `no card image at ${path}`, { path });
    const { card, image } = o.blank();
    saveImageFile(path, image);
    return card;
  } catch (e) {
    throw withImagePath(e, path);
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
    throw imageIoError('could not create the secure element key', path, cause);
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
    throw imageIoError('could not read the secure element key', path, cause);
  }
  if (key.length !== SEAL_KEY_BYTES) {
    throw new CardImageError('IMAGE_SEAL', `${path} is not a ${SEAL_KEY_BYTES}-byte secure element key`, { path });
  }
  const out = new Uint8Array(key);
  key.fill(0);
  return out;
}

function associatedData(pub: Record<string, unknown>): Buffer {
  return createHash('sha256').update(JSON.stringify(pub)).digest();
}

/** The image file: `pub` as JSON plus `secrets` sealed under `sealKey` with `pub` as associated data. */
export function sealImage(pub: Record<string, unknown>, secrets: Uint8Array, sealKey: Uint8Array): Uint8Array {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', sealKey, iv);
  cipher.setAAD(associatedData(pub));
  const data = Buffer.concat([cipher.update(secrets), cipher.final()]);
  const sealed = { alg: SEAL_ALG, iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
  return new Uint8Array(Buffer.from(JSON.stringify({ ...pub, sealed }, null, 2) + '\n', 'utf8'));
}

/** Parses an image file's JSON (IMAGE_CORRUPT when it is not JSON). */
export function parseImageJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    imageCorrupt('not JSON (truncated or overwritten?)');
  }
}

export function imageField<T>(obj: unknown, name: string, check: (v: unknown) => v is T): T {
  const value = typeof obj === 'object' && obj !== null ? (obj as Record<string, unknown>)[name] : undefined;
  if (!check(value)) imageCorrupt(`field "${name}" is missing or has the wrong type`);
  return value;
}

export const isString = (v: unknown): v is string => typeof v === 'string';
export const isNumber = (v: unknown): v is number => typeof v === 'number';
export const isBoolean = (v: unknown): v is boolean => typeof v === 'boolean';
export const isArray = (v: unknown): v is unknown[] => Array.isArray(v);
export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function bytesFromHex(text: string): Uint8Array {
  if (text.length % 2 !== 0 || !/^[0-9A-Fa-f]*$/.test(text)) imageCorrupt('a hex field is not hex');
  return new Uint8Array(Buffer.from(text, 'hex'));
}

export const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex').toUpperCase();

function bytesFromBase64(text: string): Buffer {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) imageCorrupt('a base64 field is not base64');
  return Buffer.from(text, 'base64');
}

/**
 * Opens the `sealed` member of an image whose public part, rebuilt from the values read, is `pub`
 * (so that only a change of meaning breaks the seal). The caller wipes the returned plaintext.
 */
export function openSealedImage(sealed: unknown, pub: Record<string, unknown>, sealKey: Uint8Array): Buffer {
  if (!isObject(sealed)) imageCorrupt('field "sealed" is missing or has the wrong type');
  if (imageField(sealed, 'alg', isString) !== SEAL_ALG) imageCorrupt('unknown seal algorithm');
  const iv = bytesFromBase64(imageField(sealed, 'iv', isString));
  const tag = bytesFromBase64(imageField(sealed, 'tag', isString));
  const data = bytesFromBase64(imageField(sealed, 'data', isString));
  if (iv.length !== 12 || tag.length !== 16) imageCorrupt('seal header');
  try {
    const decipher = createDecipheriv('aes-256-gcm', sealKey, iv);
    decipher.setAAD(associatedData(pub));
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

/**
 * Which card application an image file holds, from its `format` field: `gids` or `piv`.
 * IMAGE_CORRUPT when the file is not a cardlink card image at all.
 */
export function cardImageApplication(bytes: Uint8Array): 'gids' | 'piv' {
  const format = imageField(parseImageJson(bytes), 'format', isString);
  if (format === 'cardlink-gids-card-image') return 'gids';
  if (format === 'cardlink-piv-card-image') return 'piv';
  imageCorrupt(`unknown image format "${format}"`);
}

/** Who holds an image: what it is (`emulate`, `cardlink card gen`) and its process. */
export interface ImageHolder {
  holder: string;
  pid: number;
}

export interface CardImageLock {
  path: string;
  release(): void;
}

/** Locks held by this process: path → how many times taken. */
const heldHere = new Map<string, number>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errno(e) === 'EPERM';
  }
}

function youngerThan(path: string, ms: number): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs < ms;
  } catch {
    return false;
  }
}

function readHolder(lockPath: string): ImageHolder | undefined {
  try {
    const v = JSON.parse(readFileSync(lockPath, 'utf8')) as Partial<ImageHolder>;
    return typeof v.pid === 'number' && typeof v.holder === 'string' ? { pid: v.pid, holder: v.holder } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the image's lock file (`PATH.lock`, created exclusively, holding the owner's pid and
 * name): while `emulate` serves a card from the image, a command on the same file would load the
 * same state, and whichever saved last would silently drop the other's changes. A lock whose
 * process is gone is stale and taken over. A process may take its own lock again (tests run
 * several commands in one process; the CLI runs one). Throws IMAGE_IN_USE naming the holder,
 * after waiting up to `waitMs` for a short-lived one to finish (never for emulate).
 */
export async function lockCardImage(path: string, holder: string, options: { waitMs?: number } = {}): Promise<CardImageLock> {
  const lockPath = `${path}.lock`;
  const deadline = Date.now() + (options.waitMs ?? 0);
  const release = (): void => {
    const n = heldHere.get(lockPath) ?? 0;
    if (n > 1) heldHere.set(lockPath, n - 1);
    else if (n === 1) {
      heldHere.delete(lockPath);
      removeQuietly(lockPath);
    }
  };
  for (;;) {
    if (heldHere.has(lockPath)) {
      heldHere.set(lockPath, heldHere.get(lockPath)! + 1);
      return { path: lockPath, release };
    }
    try {
      const fd = openSync(lockPath, 'wx', 0o600);
      try {
        writeSync(fd, JSON.stringify({ holder, pid: process.pid } satisfies ImageHolder));
      } finally {
        closeSync(fd);
      }
      heldHere.set(lockPath, 1);
      return { path: lockPath, release };
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw imageIoError('could not lock the card image', path, e);
    }
    const owner = readHolder(lockPath);
    if (owner === undefined && youngerThan(lockPath, 1000)) {
      // Being written by the process that just created it.
      await new Promise((r) => setTimeout(r, 20));
      continue;
    }
    if (owner === undefined || !alive(owner.pid)) {
      // Stale (its process ended without removing it) or half-written by a process that died.
      try {
        unlinkSync(lockPath);
      } catch (e) {
        if (errno(e) !== 'ENOENT') throw imageIoError('could not remove the stale lock of', path, e);
      }
      continue;
    }
    if (owner.holder === 'emulate' || Date.now() >= deadline) {
      throw new CardImageError('IMAGE_IN_USE', `${path} is in use by ${owner.holder} (pid ${owner.pid})${owner.holder === 'emulate' ? ': use the card through its reader, or stop emulate first' : ''}`, { path });
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
