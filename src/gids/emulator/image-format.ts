/**
 * CardImageData: the persistent state of a card as plain values, the hand-over between the
 * emulator and its storage. Private keys stay KeyObjects here; image.ts seals them on disk.
 */
import type { KeyObject } from 'node:crypto';
import { PIN_MAX_LENGTH, PIN_MIN_LENGTH, PIN_TRY_LIMIT } from '../protocol/constants.js';
import { FID_APPLICATION } from '../protocol/constants.js';
import { FID_MASTER, MAX_DATA_OBJECTS, MAX_FILES } from './constants.js';
import { CardImageError } from './errors.js';
import { rsaKeyFromPrivateKey } from './rsa.js';
import { isDataObject, parseFcp, type EfRecord, type KeyMaterial, type LifeCycle, type PersistentState } from './state.js';
import { readBerTag, sameBytes } from './tlv.js';

export const CARD_IMAGE_VERSION = 1;

export type KeyImage = { kind: 'rsa'; privateKey: KeyObject } | { kind: 'symmetric'; value: Uint8Array };

export interface FileImage {
  fid: number;
  /** The FCP as CREATE FILE received it. */
  fcp: Uint8Array;
  activated: boolean;
  /** Raw DOs (tag, length, value) of a BER-TLV EF, in storage order; empty for key EFs. */
  dataObjects: Uint8Array[];
  key?: KeyImage;
}

export interface CardImageData {
  version: typeof CARD_IMAGE_VERSION;
  capacityBytes: number;
  /** The card takes extended-length APDUs and says so in its FCI; absent (older images) = false. */
  extendedLength?: boolean;
  lifeCycle: LifeCycle;
  /** The user PIN, null before it was first set. */
  pin: Uint8Array | null;
  pinTriesRemaining: number;
  files: FileImage[];
}

const LIFE_CYCLES: readonly LifeCycle[] = ['creation', 'operational', 'terminated'];

/** A real copy: `slice` on a Buffer (which callers may pass for any Uint8Array) is only a view. */
function copy(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}

function keyImage(key: KeyMaterial): KeyImage {
  return key.kind === 'rsa' ? { kind: 'rsa', privateKey: key.privateKey } : { kind: 'symmetric', value: copy(key.value) };
}

export function imageFromState(p: PersistentState): CardImageData {
  return {
    version: CARD_IMAGE_VERSION,
    capacityBytes: p.capacityBytes,
    extendedLength: p.extendedLength,
    lifeCycle: p.lifeCycle,
    pin: p.pin === null ? null : copy(p.pin),
    pinTriesRemaining: p.pinTriesRemaining,
    files: p.files.map((f) => ({
      fid: f.fid,
      fcp: copy(f.fcp),
      activated: f.activated,
      dataObjects: f.dataObjects.map(copy),
      ...(f.key === undefined ? {} : { key: keyImage(f.key) }),
    })),
  };
}

function corrupt(reason: string): never {
  throw new CardImageError('IMAGE_CORRUPT', `card image is not valid: ${reason}`);
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

function keyFromImage(k: KeyImage, fid: number): KeyMaterial {
  if (k.kind === 'symmetric') {
    if (!(k.value instanceof Uint8Array) || k.value.length !== 24) corrupt(`key EF ${hex4(fid)}: administrator key is not 24 bytes`);
    return { kind: 'symmetric', value: copy(k.value) };
  }
  const key = rsaKeyFromPrivateKey(k.privateKey);
  if (key === undefined) corrupt(`key EF ${hex4(fid)}: not an RSA private key of 1024, 2048, 3072 or 4096 bits`);
  return key;
}

function fileFromImage(f: FileImage): EfRecord {
  if (!Number.isInteger(f.fid) || f.fid < 0 || f.fid > 0xffff) corrupt(`file id ${String(f.fid)}`);
  const where = `EF ${hex4(f.fid)}`;
  if (!(f.fcp instanceof Uint8Array)) corrupt(`${where}: no FCP`);
  const parsed = parseFcp(f.fcp);
  if (parsed === undefined || parsed.fid !== f.fid) corrupt(`${where}: FCP does not describe this file`);
  if (f.fid === FID_APPLICATION || f.fid === FID_MASTER) corrupt(`${where}: reserved file id`);
  if (typeof f.activated !== 'boolean' || !Array.isArray(f.dataObjects)) corrupt(`${where}: incomplete record`);
  if (parsed.kind === 'key' && f.dataObjects.length > 0) corrupt(`${where}: a key EF holds no data objects`);
  if (parsed.kind === 'bertlv' && f.key !== undefined) corrupt(`${where}: a BER-TLV EF holds no key`);
  if (f.dataObjects.length > MAX_DATA_OBJECTS) corrupt(`${where}: more than ${MAX_DATA_OBJECTS} data objects`);
  const tags: Uint8Array[] = [];
  for (const d of f.dataObjects) {
    if (!(d instanceof Uint8Array) || !isDataObject(d)) corrupt(`${where}: malformed data object`);
    const tag = readBerTag(d)!;
    if (tags.some((t) => sameBytes(t, tag))) corrupt(`${where}: two data objects with the same tag`);
    tags.push(tag);
  }
  return {
    fid: f.fid,
    kind: parsed.kind,
    fcp: copy(f.fcp),
    activated: f.activated,
    dataObjects: f.dataObjects.map(copy),
    key: f.key === undefined ? undefined : keyFromImage(f.key, f.fid),
  };
}

/** Checks everything the emulator relies on; CardImageError IMAGE_CORRUPT names the first problem. */
export function stateFromImage(d: CardImageData): PersistentState {
  if (d.version !== CARD_IMAGE_VERSION) corrupt(`version ${String(d.version)} (this cardlink reads ${CARD_IMAGE_VERSION})`);
  if (!Number.isSafeInteger(d.capacityBytes) || d.capacityBytes <= 0) corrupt('capacity');
  if (d.extendedLength !== undefined && typeof d.extendedLength !== 'boolean') corrupt('extended length flag');
  if (!LIFE_CYCLES.includes(d.lifeCycle)) corrupt(`life cycle ${String(d.lifeCycle)}`);
  if (d.pin !== null && (!(d.pin instanceof Uint8Array) || d.pin.length < PIN_MIN_LENGTH || d.pin.length > PIN_MAX_LENGTH)) {
    corrupt('PIN length');
  }
  const tries = d.pinTriesRemaining;
  if (!Number.isInteger(tries) || tries < 0 || tries > PIN_TRY_LIMIT) corrupt('PIN try counter');
  if (!Array.isArray(d.files) || d.files.length > MAX_FILES) corrupt(`more than ${MAX_FILES} files`);
  const files = d.files.map(fileFromImage);
  if (new Set(files.map((f) => f.fid)).size !== files.length) corrupt('two files with the same id');
  return {
    lifeCycle: d.lifeCycle,
    capacityBytes: d.capacityBytes,
    extendedLength: d.extendedLength === true,
    pin: d.pin === null ? null : copy(d.pin),
    pinTriesRemaining: tries,
    files,
  };
}
