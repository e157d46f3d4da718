/**
 * The one way cardlink replaces a file: a temporary file in the same directory (mode 0600 unless
 * told otherwise), written and fsynced, renamed over the target, then the directory fsynced so the
 * rename itself survives a power cut. A reader sees the old file or the new one, never a mix; on
 * failure the old file is untouched and the temporary file is removed.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** File mode of the new file (default 0o600: cardlink's files are the user's alone). */
  mode?: number;
  /** Create the parent directory (mode 0o700) when it is missing. */
  mkdir?: boolean;
}

/** Writes `bytes` to a new fsynced file next to `path` and returns its name. */
export function writeTempBeside(path: string, data: Uint8Array | string, mode = 0o600): string {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const fd = openSync(tmp, 'wx', mode);
  try {
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    removeQuietly(tmp);
    throw e;
  }
  closeSync(fd);
  return tmp;
}

export function writeFileAtomic(path: string, data: Uint8Array | string, options: AtomicWriteOptions = {}): void {
  if (options.mkdir) mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = writeTempBeside(path, data, options.mode ?? 0o600);
  try {
    renameSync(tmp, path);
  } catch (e) {
    removeQuietly(tmp);
    throw e;
  }
  syncDirectory(dirname(path));
}

export function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some platforms (Windows) cannot open or sync a directory; the rename itself is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone, or never created: nothing to clean up.
  }
}
