import { CardFormatError } from './errors.js';

/**
 * Names in the minidriver logical file system: at most 8 characters, two levels (root files and
 * one directory per application). We accept printable ASCII without space and without the
 * characters Windows forbids in file names; case is kept as found (minidrivers compare names
 * case-insensitively, but OpenSC writes upper-case hex such as `kxc0A`, so we must not fold).
 */
export const MAX_FILE_NAME_LENGTH = 8;

/** The Base CSP/KSP application directory, home of cmapfile and the certificate files. */
export const MSCP_DIRECTORY = 'mscp';

const FORBIDDEN_CHARACTERS = '\\/:*?"<>|';

/** Why `name` is not a valid file or directory name (a phrase to follow the name), or undefined. */
export function fileNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (name.length > MAX_FILE_NAME_LENGTH) {
    return `is ${name.length} characters long (at most ${MAX_FILE_NAME_LENGTH})`;
  }
  for (const ch of name) {
    const code = ch.codePointAt(0)!;
    if (code < 0x21 || code > 0x7e) {
      return `contains character 0x${code.toString(16).padStart(2, '0')} (only printable ASCII without space is allowed)`;
    }
    if (FORBIDDEN_CHARACTERS.includes(ch)) return `contains '${ch}', which file names may not contain`;
  }
  return undefined;
}

/** A name quoted for an error message, anything outside printable ASCII shown as \xNN. */
export function quoteName(name: string): string {
  let out = '';
  for (const ch of name) {
    const code = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (code >= 0x20 && code <= 0x7e) out += ch;
    else out += `\\x${code.toString(16).padStart(2, '0')}`;
  }
  return `"${out}"`;
}

/** Splits `cardid` or `mscp/cmapfile` into its directory ('' for the root) and file name. */
export function parseFilePath(path: string): { directory: string; filename: string } {
  const parts = path.split('/');
  if (parts.length > 2) {
    const secondSlash = path.indexOf('/', path.indexOf('/') + 1);
    throw new CardFormatError(path, secondSlash, 'paths have at most two levels (directory/file)');
  }
  const [first, second] = parts as [string, string | undefined];
  const directory = second === undefined ? '' : first;
  const filename = second ?? first;
  if (second !== undefined) checkName(path, 0, 'directory name', directory);
  checkName(path, second === undefined ? 0 : first.length + 1, 'file name', filename);
  return { directory, filename };
}

function checkName(path: string, offset: number, what: string, name: string): void {
  const problem = fileNameProblem(name);
  if (problem !== undefined) throw new CardFormatError(path, offset, `${what} ${quoteName(name)} ${problem}`);
}

/** AT_KEYEXCHANGE (`kx`, files `kxcNN`) or AT_SIGNATURE (`sig`, files `kscNN`). */
export type KeySpec = 'kx' | 'sig';

/** The largest container index that two hex digits can name. */
export const MAX_CERTIFICATE_FILE_INDEX = 0xff;

/**
 * `kxcNN` / `kscNN` for a container index, NN in upper-case hex as OpenSC's GIDS driver writes it
 * (`ksc%02X`). Indices 0-9 read the same in every known convention; above that producers differ.
 */
export function certificateFileName(index: number, keySpec: KeySpec): string {
  const prefix = keySpec === 'kx' ? 'kxc' : 'ksc';
  if (!Number.isInteger(index) || index < 0 || index > MAX_CERTIFICATE_FILE_INDEX) {
    throw new CardFormatError(
      `${MSCP_DIRECTORY}/${prefix}??`,
      0,
      `container index ${index} cannot be written as two hex digits (0..${MAX_CERTIFICATE_FILE_INDEX})`,
    );
  }
  return prefix + index.toString(16).toUpperCase().padStart(2, '0');
}

/**
 * The container index and key spec a certificate file name stands for, or undefined if the name
 * is not one. Prefix and digits are read case-insensitively (`kxc0a` and `kxc0A` are both 10), so
 * keep the name as found for card I/O and use this only for its meaning.
 */
export function parseCertificateFileName(name: string): { index: number; keySpec: KeySpec } | undefined {
  const match = /^(ksc|kxc)([0-9a-f]{2})$/i.exec(name);
  if (match === null) return undefined;
  return {
    index: Number.parseInt(match[2]!, 16),
    keySpec: match[1]!.toLowerCase() === 'kxc' ? 'kx' : 'sig',
  };
}
