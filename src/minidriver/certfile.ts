import { inflateSync } from 'node:zlib';
import { deflate } from 'pako';
import { CardFormatError } from './errors.js';
import { hexByte, readU16, writeU16 } from './fields.js';

/** `01 00`: the compression method/version word that starts a compressed certificate file. */
const COMPRESSED_MAGIC = [0x01, 0x00] as const;
const HEADER_SIZE = 4;
/** The uncompressed length is an LE16, so a certificate to compress can be at most this long. */
export const MAX_COMPRESSED_CERTIFICATE_SIZE = 0xffff;

export interface CertificateFile {
  der: Uint8Array;
  compressed: boolean;
}

/**
 * Reads `01 00` + LE16 length + zlib stream, or a plain DER certificate (as some minidrivers store
 * it). Rejected: any other start, a truncated header, a corrupt or truncated zlib stream, bytes
 * after it, an inflated size different from the length field (inflation is abandoned as soon as
 * it passes that LE16, so a zip bomb costs about 64 KiB), and content that is not exactly one DER
 * SEQUENCE.
 *
 * Not preserved: the zlib stream itself. Only the DER is meaningful and files are written fresh
 * with `encodeCertificateFile`, which reproduces any stream made by zlib's default level (OpenSC,
 * cardlink) byte for byte; streams from other levels or compressors read fine but re-encode
 * differently.
 */
export function decodeCertificateFile(b: Uint8Array, file = 'mscp/kxc00'): CertificateFile {
  if (b[0] === COMPRESSED_MAGIC[0]) return { der: inflateCertificate(b, file), compressed: true };
  if (b[0] === 0x30) {
    checkDerSequence(b, file, 0, 'plain certificate');
    return { der: new Uint8Array(b), compressed: false };
  }
  if (b.length === 0) throw new CardFormatError(file, 0, 'certificate file is empty');
  throw new CardFormatError(
    file,
    0,
    `starts with ${hexByte(b[0]!)}: neither a compressed certificate (01 00) nor a DER SEQUENCE (30)`,
  );
}

/**
 * The compressed form Windows' Base CSP and OpenSC write: `01 00`, LE16 length, zlib stream at the
 * default level. pako (a port of reference zlib) is used rather than node:zlib because Node's
 * bundled zlib fork emits different streams for the same level; pako reproduces reference zlib,
 * and so OpenSC's bytes, exactly.
 */
export function encodeCertificateFile(der: Uint8Array, file = 'mscp/kxc00'): Uint8Array {
  if (der.length > MAX_COMPRESSED_CERTIFICATE_SIZE) {
    throw new CardFormatError(
      file,
      2,
      `certificate is ${der.length} bytes; the length field holds at most ${MAX_COMPRESSED_CERTIFICATE_SIZE}`,
    );
  }
  checkDerSequence(der, file, HEADER_SIZE, 'certificate to store');
  const stream = deflate(der);
  const out = new Uint8Array(HEADER_SIZE + stream.length);
  out.set(COMPRESSED_MAGIC, 0);
  writeU16(out, 2, der.length);
  out.set(stream, HEADER_SIZE);
  return out;
}

function inflateCertificate(b: Uint8Array, file: string): Uint8Array {
  if (b.length < HEADER_SIZE) {
    throw new CardFormatError(file, b.length, `compressed certificate header is truncated (${b.length} of ${HEADER_SIZE} bytes)`);
  }
  if (b[1] !== COMPRESSED_MAGIC[1]) {
    throw new CardFormatError(file, 1, `compression version is ${hexByte(b[0]!)} ${hexByte(b[1]!)}, expected 01 00`);
  }
  const declared = readU16(b, 2);
  const stream = b.subarray(HEADER_SIZE);
  let inflated: Uint8Array;
  let consumed: number;
  try {
    // `info: true` makes inflateSync also return the engine, whose bytesWritten is the number of
    // input bytes the zlib stream used; @types/node does not model that overload. A limit of 0 is
    // refused by zlib, and 1 gives the same verdict for a declared length of 0.
    const result = inflateSync(stream, { maxOutputLength: Math.max(declared, 1), info: true }) as unknown as {
      buffer: Uint8Array;
      engine: { bytesWritten: number };
    };
    inflated = result.buffer;
    consumed = result.engine.bytesWritten;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new CardFormatError(file, 2, `zlib stream inflates to more than the ${declared} bytes the length field declares`, {
        cause: err,
      });
    }
    const message = err instanceof Error ? err.message : String(err);
    throw new CardFormatError(file, HEADER_SIZE, `zlib stream is corrupt (${message})`, { cause: err });
  }
  if (consumed !== stream.length) {
    throw new CardFormatError(file, HEADER_SIZE + consumed, `${stream.length - consumed} bytes follow the end of the zlib stream`);
  }
  if (inflated.length !== declared) {
    throw new CardFormatError(file, 2, `zlib stream inflates to ${inflated.length} bytes but the length field declares ${declared}`);
  }
  const der = new Uint8Array(inflated);
  checkDerSequence(der, file, HEADER_SIZE, 'decompressed certificate');
  return der;
}

/**
 * Requires `der` to be exactly one SEQUENCE with a definite length. Problems inside `der` are
 * reported at `fileOffset`, since for compressed content they have no offset in the file itself.
 */
function checkDerSequence(der: Uint8Array, file: string, fileOffset: number, what: string): void {
  const problem = derSequenceProblem(der);
  if (problem !== undefined) throw new CardFormatError(file, fileOffset, `${what} ${problem}`);
}

function derSequenceProblem(der: Uint8Array): string | undefined {
  if (der.length < 2) return `is ${der.length} bytes, too short for a DER SEQUENCE`;
  if (der[0] !== 0x30) return `starts with ${hexByte(der[0]!)}, not a DER SEQUENCE (30)`;
  const first = der[1]!;
  let length = first;
  let headerSize = 2;
  if (first >= 0x80) {
    const n = first & 0x7f;
    if (n === 0) return 'has an indefinite length, which DER does not allow';
    if (n > 3) return `has a ${n}-byte length field, too long for a certificate file`;
    if (der.length < 2 + n) return 'ends inside its length field';
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + der[2 + i]!;
    headerSize = 2 + n;
  }
  if (headerSize + length !== der.length) return `declares ${headerSize + length} bytes but has ${der.length}`;
  return undefined;
}
