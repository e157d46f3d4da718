/**
 * The card image file: the persistent state of one emulated card. Public state is readable JSON;
 * the PIN and every key are in one AES-256-GCM sealed blob whose key (the "secure element key")
 * lives in $CARDLINK_HOME/emulator-seal.key. The public JSON is the blob's associated data, so
 * editing it (say, the PIN try counter) breaks the seal. Every save replaces the file atomically.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import {
  bytesFromHex,
  hexOf,
  imageCorrupt as malformed,
  imageField as field,
  isArray,
  isBoolean,
  isNumber,
  isObject,
  isString,
  loadImageCard,
  loadSealKey,
  openSealedImage,
  parseImageJson,
  saveImageFile as saveImage,
  sealImage,
} from '../../card-image.js';
import { encodeTlv, findTlv, parseTlvs, type Tlv } from '../protocol/tlv.js';
import { GidsCard, type GidsCardOptions } from './card.js';
import { CARD_IMAGE_VERSION, type CardImageData, type FileImage, type KeyImage } from './image-format.js';
import type { LifeCycle } from './state.js';

export { loadSealKey, lockCardImage, SEAL_KEY_FILE, type CardImageLock, type ImageHolder } from '../../card-image.js';
const IMAGE_FORMAT = 'cardlink-gids-card-image';

/** Tags of the sealed secrets (a BER-TLV list; never written anywhere unencrypted). */
const SECRET = { PIN: 0xc0, KEY: 0xe0, FID: 0x83, RSA_PKCS8: 0xc1, SYMMETRIC: 0xc2 } as const;

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
  const secrets = encodeSecrets(d);
  try {
    return sealImage(publicPart(publicView(d)), secrets, sealKey);
  } finally {
    secrets.fill(0);
  }
}

const isKeyKind = (v: unknown): v is KeyImage['kind'] | null => v === null || v === 'rsa' || v === 'symmetric';

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
    const json = parseImageJson(bytes);
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
    plain = openSealedImage(field(json, 'sealed', isObject), publicPart(view), sealKey);
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
  const card = loadImageCard(path, {
    ...(options.create !== undefined ? { create: options.create } : {}),
    decode: (bytes) => GidsCard.fromImage(decodeCardImage(bytes, sealKey)),
    blank: () => {
      const blank = GidsCard.blank({
        ...(options.capacityBytes === undefined ? {} : { capacityBytes: options.capacityBytes }),
        ...(options.extendedLength === undefined ? {} : { extendedLength: options.extendedLength }),
      });
      return { card: blank, image: encodeCardImage(blank.toImage(), sealKey) };
    },
  });
  card.onPersistentChange = () => saveImage(path, encodeCardImage(card.toImage(), sealKey));
  return card;
}
