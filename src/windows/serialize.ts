/**
 * The serialized certificate store element, and the serialized CRYPT_KEY_PROV_INFO inside it.
 * Windows keeps the user's `My` store as one file per certificate in this format under the roaming
 * profile (`%APPDATA%\Microsoft\SystemCertificates\My\Certificates\<SHA1>`) [MIG]; Wine keeps it
 * as the `Blob` value of `HKCU\Software\Microsoft\SystemCertificates\My\Certificates\<SHA1>`. The
 * model store persists exactly this, so a model directory and Wine's registry hold the same bytes.
 *
 * Element: a run of properties, each framed `{u32 propId, u32 1, u32 cb}` + cb bytes, ending
 * with the encoded certificate as property 32 (CERT_CERT_PROP_ID) [WINE serialize.c][BPAU].
 * KEY_PROV_INFO: the struct with 32-bit offsets (from the start of the property) in place of its
 * pointers — 7 DWORDs — then the provider parameters `{dwParam, offData, cbData, dwFlags}`, then
 * the NUL-terminated UTF-16LE strings and the parameter data [BPAU]. All little-endian.
 */
import { CardlinkError } from '../errors.js';
import { PROP } from './constants.js';
import type { KeyProvInfo, KeyProvParam } from './store.js';

export class SerializedElementError extends CardlinkError {
  constructor(message: string) {
    super('WIN_SERIALIZED_ELEMENT', `serialized certificate element: ${message}`);
  }
}

export interface SerializedProperty {
  propId: number;
  data: Uint8Array;
}

function utf16z(text: string): Uint8Array {
  const b = Buffer.from(text + '\0', 'utf16le');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function readUtf16z(bytes: Uint8Array, offset: number, what: string): string {
  if (offset === 0) return '';
  let end = offset;
  while (end + 1 < bytes.length && (bytes[end] !== 0 || bytes[end + 1] !== 0)) end += 2;
  if (end + 1 >= bytes.length) throw new SerializedElementError(`${what} at offset ${offset} is not NUL-terminated`);
  return Buffer.from(bytes.subarray(offset, end)).toString('utf16le');
}

const HEADER = 28;
const PARAM = 16;

export function serializeKeyProvInfo(info: KeyProvInfo): Uint8Array {
  const container = utf16z(info.containerName);
  const provider = utf16z(info.providerName);
  const paramsAt = HEADER;
  let cursor = paramsAt + PARAM * info.params.length;
  const containerAt = cursor;
  cursor += container.length;
  const providerAt = cursor;
  cursor += provider.length;
  const dataAt: number[] = [];
  for (const p of info.params) {
    dataAt.push(cursor);
    cursor += p.data.length;
  }
  const out = new Uint8Array(cursor);
  const v = new DataView(out.buffer);
  v.setUint32(0, containerAt, true);
  v.setUint32(4, providerAt, true);
  v.setUint32(8, info.providerType >>> 0, true);
  v.setUint32(12, info.flags >>> 0, true);
  v.setUint32(16, info.params.length, true);
  v.setUint32(20, info.params.length > 0 ? paramsAt : 0, true);
  v.setUint32(24, info.keySpec >>> 0, true);
  info.params.forEach((p, i) => {
    const at = paramsAt + i * PARAM;
    v.setUint32(at, p.param >>> 0, true);
    v.setUint32(at + 4, p.data.length > 0 ? dataAt[i]! : 0, true);
    v.setUint32(at + 8, p.data.length, true);
    v.setUint32(at + 12, p.flags >>> 0, true);
    out.set(p.data, dataAt[i]!);
  });
  out.set(container, containerAt);
  out.set(provider, providerAt);
  return out;
}

export function parseKeyProvInfo(bytes: Uint8Array): KeyProvInfo {
  if (bytes.length < HEADER) throw new SerializedElementError(`KEY_PROV_INFO of ${bytes.length} bytes (min ${HEADER})`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = v.getUint32(16, true);
  const paramsAt = v.getUint32(20, true);
  if (count > 0 && (paramsAt < HEADER || paramsAt + count * PARAM > bytes.length)) {
    throw new SerializedElementError(`KEY_PROV_INFO parameter table (${count} at ${paramsAt}) overruns ${bytes.length} bytes`);
  }
  const params: KeyProvParam[] = [];
  for (let i = 0; i < count; i++) {
    const at = paramsAt + i * PARAM;
    const off = v.getUint32(at + 4, true);
    const cb = v.getUint32(at + 8, true);
    if (cb > 0 && off + cb > bytes.length) throw new SerializedElementError(`KEY_PROV_INFO parameter ${i} overruns the property`);
    params.push({ param: v.getUint32(at, true), data: bytes.slice(off, off + cb), flags: v.getUint32(at + 12, true) });
  }
  return {
    containerName: readUtf16z(bytes, v.getUint32(0, true), 'container name'),
    providerName: readUtf16z(bytes, v.getUint32(4, true), 'provider name'),
    providerType: v.getUint32(8, true),
    flags: v.getUint32(12, true),
    params,
    keySpec: v.getUint32(24, true),
  };
}

/** Frames the properties (in the given order) and the certificate as one element. */
export function serializeElement(encoded: Uint8Array, properties: SerializedProperty[]): Uint8Array {
  const parts = [...properties, { propId: PROP.CERT, data: encoded }];
  const out = new Uint8Array(parts.reduce((n, p) => n + 12 + p.data.length, 0));
  const v = new DataView(out.buffer);
  let at = 0;
  for (const p of parts) {
    v.setUint32(at, p.propId >>> 0, true);
    v.setUint32(at + 4, 1, true);
    v.setUint32(at + 8, p.data.length, true);
    out.set(p.data, at + 12);
    at += 12 + p.data.length;
  }
  return out;
}

export function parseElement(bytes: Uint8Array): { encoded: Uint8Array; properties: SerializedProperty[] } {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const properties: SerializedProperty[] = [];
  let encoded: Uint8Array | undefined;
  let at = 0;
  while (at < bytes.length) {
    if (at + 12 > bytes.length) throw new SerializedElementError(`truncated property header at offset ${at}`);
    const propId = v.getUint32(at, true);
    const one = v.getUint32(at + 4, true);
    const cb = v.getUint32(at + 8, true);
    if (one !== 1) throw new SerializedElementError(`property ${propId} at offset ${at} has marker ${one}, expected 1`);
    if (at + 12 + cb > bytes.length) throw new SerializedElementError(`property ${propId} at offset ${at} overruns the element`);
    const data = bytes.slice(at + 12, at + 12 + cb);
    if (propId === PROP.CERT) encoded = data;
    else properties.push({ propId, data });
    at += 12 + cb;
  }
  if (!encoded) throw new SerializedElementError('no certificate (property 32)');
  return { encoded, properties };
}
