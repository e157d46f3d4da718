/**
 * The PIV card image file: the persistent state of one emulated PIV card, in the same sealed
 * format family as the GIDS image (src/card-image.ts): public state readable JSON, the PIN, PUK,
 * management key and private keys in the AES-256-GCM seal whose associated data is the public
 * JSON. `format` says which card application the image holds.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { encodeTlv, findTlv, parseTlvs, type Tlv } from '../../ber-tlv.js';
import {
  bytesFromHex,
  hexOf,
  imageCorrupt,
  imageField,
  isArray,
  isNumber,
  isObject,
  isString,
  loadImageCard,
  loadSealKey,
  openSealedImage,
  parseImageJson,
  saveImageFile,
  sealImage,
} from '../../card-image.js';
import { ALG, isAsymmetricAlg, isKeySlot, isSymmetricAlg, PIN_LENGTH, SYMMETRIC, type AsymmetricAlg, type SymmetricAlg } from '../protocol/constants.js';
import { isPinBlock } from '../protocol/objects.js';
import { PivCard, type PivCardOptions } from './card.js';
import { MAX_OBJECT_BYTES } from './constants.js';
import type { PivKey, PivState } from './state.js';

export const PIV_IMAGE_FORMAT = 'cardlink-piv-card-image';
export const PIV_IMAGE_VERSION = 1;

/** Tags of the sealed secrets (a BER-TLV list; never written anywhere unencrypted). */
const SECRET = { PIN: 0xc0, PUK: 0xc1, MANAGEMENT_KEY: 0xc2, KEY: 0xe0, SLOT: 0x83, PKCS8: 0xc3 } as const;

function publicPart(s: PivState): Record<string, unknown> {
  return {
    format: PIV_IMAGE_FORMAT,
    version: PIV_IMAGE_VERSION,
    serial: s.serial,
    pinTries: s.pinTries,
    pinTryLimit: s.pinTryLimit,
    pukTries: s.pukTries,
    pukTryLimit: s.pukTryLimit,
    managementKeyAlg: s.managementKey.alg,
    objects: Object.fromEntries([...s.objects].sort(([a], [b]) => a - b).map(([tag, value]) => [tag.toString(16).toUpperCase(), hexOf(value)])),
    keys: [...s.keys].sort(([a], [b]) => a - b).map(([slot, k]) => ({ slot: slot.toString(16).toUpperCase(), alg: k.alg })),
  };
}

function encodeSecrets(s: PivState): Buffer {
  const parts: Uint8Array[] = [encodeTlv(SECRET.PIN, s.pin), encodeTlv(SECRET.PUK, s.puk), encodeTlv(SECRET.MANAGEMENT_KEY, s.managementKey.value)];
  const wipe: Buffer[] = [];
  for (const [slot, k] of s.keys) {
    const der = k.privateKey.export({ format: 'der', type: 'pkcs8' });
    wipe.push(der);
    parts.push(encodeTlv(SECRET.KEY, encodeTlv(SECRET.SLOT, new Uint8Array([slot])), encodeTlv(SECRET.PKCS8, der)));
  }
  const out = Buffer.concat(parts);
  for (const p of parts) p.fill(0);
  for (const w of wipe) w.fill(0);
  return out;
}

/** The image file's bytes for a PIV card state. */
export function encodePivCardImage(s: PivState, sealKey: Uint8Array): Uint8Array {
  const secrets = encodeSecrets(s);
  try {
    return sealImage(publicPart(s), secrets, sealKey);
  } finally {
    secrets.fill(0);
  }
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 15;

function keyAlgOf(key: KeyObject): AsymmetricAlg | undefined {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'rsa') return d?.modulusLength === 1024 ? ALG.RSA_1024 : d?.modulusLength === 2048 ? ALG.RSA_2048 : undefined;
  if (key.asymmetricKeyType === 'ec') return d?.namedCurve === 'prime256v1' ? ALG.ECC_P256 : d?.namedCurve === 'secp384r1' ? ALG.ECC_P384 : undefined;
  return undefined;
}

function sealedTlvs(bytes: Uint8Array): Tlv[] {
  try {
    return parseTlvs(bytes);
  } catch {
    imageCorrupt('the sealed part is not well formed');
  }
}

/**
 * Parses and unseals a PIV card image. IMAGE_CORRUPT if it is not a well-formed image this
 * version reads, IMAGE_SEAL if the secrets do not open with `sealKey`.
 */
export function decodePivCardImage(bytes: Uint8Array, sealKey: Uint8Array): PivState {
  const json = parseImageJson(bytes);
  if (imageField(json, 'format', isString) !== PIV_IMAGE_FORMAT) imageCorrupt('not a cardlink PIV card image');
  const version = imageField(json, 'version', isNumber);
  if (version !== PIV_IMAGE_VERSION) imageCorrupt(`version ${version} (this cardlink reads version ${PIV_IMAGE_VERSION})`);
  const serial = imageField(json, 'serial', isNumber);
  if (!Number.isInteger(serial) || serial < 0 || serial > 0xffffffff) imageCorrupt('serial');
  const pinTryLimit = imageField(json, 'pinTryLimit', isCount);
  const pinTries = imageField(json, 'pinTries', isCount);
  const pukTryLimit = imageField(json, 'pukTryLimit', isCount);
  const pukTries = imageField(json, 'pukTries', isCount);
  if (pinTryLimit === 0 || pukTryLimit === 0 || pinTries > pinTryLimit || pukTries > pukTryLimit) imageCorrupt('try counters');
  const mkAlg = imageField(json, 'managementKeyAlg', isNumber);
  if (!isSymmetricAlg(mkAlg)) imageCorrupt('management key algorithm');
  const objects = new Map<number, Uint8Array>();
  for (const [tagText, valueText] of Object.entries(imageField(json, 'objects', isObject))) {
    if (!/^[0-9A-F]{2,6}$/.test(tagText) || typeof valueText !== 'string') imageCorrupt(`object "${tagText}"`);
    const value = bytesFromHex(valueText);
    if (value.length === 0 || value.length > MAX_OBJECT_BYTES) imageCorrupt(`object ${tagText}: size`);
    objects.set(parseInt(tagText, 16), value);
  }
  const publicKeys = new Map<number, AsymmetricAlg>();
  for (const k of imageField(json, 'keys', isArray)) {
    const slotText = imageField(k, 'slot', isString);
    const slot = parseInt(slotText, 16);
    const alg = imageField(k, 'alg', isNumber);
    if (!/^[0-9A-F]{2}$/.test(slotText) || !isKeySlot(slot) || !isAsymmetricAlg(alg) || publicKeys.has(slot)) imageCorrupt(`key record "${slotText}"`);
    publicKeys.set(slot, alg);
  }
  const pub = {
    format: PIV_IMAGE_FORMAT,
    version,
    serial,
    pinTries,
    pinTryLimit,
    pukTries,
    pukTryLimit,
    managementKeyAlg: mkAlg,
    objects: Object.fromEntries([...objects].sort(([a], [b]) => a - b).map(([tag, value]) => [tag.toString(16).toUpperCase(), hexOf(value)])),
    keys: [...publicKeys].sort(([a], [b]) => a - b).map(([slot, alg]) => ({ slot: slot.toString(16).toUpperCase(), alg })),
  };
  const plain = openSealedImage((json as Record<string, unknown>).sealed, pub, sealKey);
  try {
    const tlvs = sealedTlvs(plain);
    const pin = findTlv(tlvs, SECRET.PIN)?.value;
    const puk = findTlv(tlvs, SECRET.PUK)?.value;
    const mk = findTlv(tlvs, SECRET.MANAGEMENT_KEY)?.value;
    if (!pin || !isPinBlock(pin) || !puk || !isPinBlock(puk) || pin.length !== PIN_LENGTH.PADDED) imageCorrupt('sealed PIN or PUK');
    if (!mk || mk.length !== SYMMETRIC[mkAlg as SymmetricAlg].keyBytes) imageCorrupt('sealed management key');
    const keys = new Map<number, PivKey>();
    for (const t of tlvs.filter((x) => x.tag === SECRET.KEY)) {
      const inner = sealedTlvs(t.value);
      const slot = findTlv(inner, SECRET.SLOT)?.value;
      const der = findTlv(inner, SECRET.PKCS8)?.value;
      if (slot?.length !== 1 || !der) imageCorrupt('sealed key without its slot');
      let privateKey: KeyObject;
      try {
        privateKey = createPrivateKey({ key: Buffer.from(der.buffer, der.byteOffset, der.byteLength), format: 'der', type: 'pkcs8' });
      } catch {
        imageCorrupt('sealed private key does not parse');
      }
      const alg = publicKeys.get(slot[0]!);
      if (alg === undefined || keyAlgOf(privateKey) !== alg || keys.has(slot[0]!)) imageCorrupt(`the sealed key of slot ${hexOf(slot)} does not match its record`);
      keys.set(slot[0]!, { alg, privateKey });
    }
    if (keys.size !== publicKeys.size) imageCorrupt('a key record without its sealed key');
    return {
      objects,
      pin: new Uint8Array(pin),
      pinTries,
      pinTryLimit,
      puk: new Uint8Array(puk),
      pukTries,
      pukTryLimit,
      managementKey: { alg: mkAlg, value: new Uint8Array(mk) },
      keys,
      serial,
    };
  } finally {
    plain.fill(0);
  }
}

export interface OpenPivCardImageOptions extends PivCardOptions {
  /** Create a blank (factory) card image when there is none at the path. */
  create?: boolean;
  /** Where the secure element key lives (default: cardlinkHome()). */
  home?: string;
}

/**
 * The emulated PIV card stored at `path` (created blank if absent and `create` is set). The card
 * saves itself, atomically, before each change of its persistent state takes effect.
 */
export function openPivCardImage(path: string, options: OpenPivCardImageOptions = {}): PivCard {
  const sealKey = loadSealKey(options.home);
  const card = loadImageCard(path, {
    ...(options.create !== undefined ? { create: options.create } : {}),
    decode: (bytes) => PivCard.fromState(decodePivCardImage(bytes, sealKey)),
    blank: () => {
      const blank = PivCard.blank(options.serial === undefined ? {} : { serial: options.serial });
      return { card: blank, image: encodePivCardImage(blank.snapshot(), sealKey) };
    },
  });
  card.onPersistentChange = (next) => saveImageFile(path, encodePivCardImage(next, sealKey));
  return card;
}
