/**
 * The minidriver port over a PIV card: the card as Windows' inbox PIV minidriver presents it to
 * the Base CSP and the KSP (docs/piv.md "How Windows' inbox minidriver sees a PIV card"). A PIV
 * card has no minidriver file system; every file is built from PIV data objects (NIST SP 800-73-4,
 * docs/sources.md#sp800-73-4):
 * - `cardid` is the CHUID's GUID (tag 34) [SSPI, unofficial]; a card without a CHUID has no
 *   identity, and `begin` refuses it with PIV_NO_CHUID (what the inbox minidriver then does is not
 *   known; the model assumes it cannot serve the card);
 * - containers are the key slots whose certificate object exists, in the order 9A, 9C, 9D, 9E,
 *   82…95 (the retired slots only when the key history counts retired certificates on the card,
 *   as OpenSC's card-piv.c reads them [CPIV]); each is named from the CHUID GUID and the slot's
 *   certificate object tag [SSPI]; 9A is the default; 9A, 9D and the retired slots hold an
 *   AT_KEYEXCHANGE key (`kxcNN`), 9C and 9E an AT_SIGNATURE key (`kscNN`) — 9A as observed
 *   [SSPI], the others assumed from the slots' purposes [PIV1];
 * - `mscp/cmapfile` is built from those containers; `mscp/kxcNN` / `kscNN` is the slot's
 *   certificate, DER (decompressed when the object holds it gzip-compressed);
 * - there is no `cardcf`: `begin` says the freshness counters live on the host
 *   (`freshnessSource: 'host'`), where the minidriver keeps them [BLOG, unofficial].
 *
 * Plain PIV cannot return a slot's public key, so a container's public key is its certificate's;
 * a slot with a key but no certificate is no container (Windows cannot see it either).
 * It keeps nothing from one `begin` to the next; within one, the slot scan (which certificate
 * objects exist, and what they hold) is read once — PIV's equivalent of GIDS' master file table.
 */
import type { KeyObject } from 'node:crypto';
import { parseTlvs, readTlv } from '../ber-tlv.js';
import { concat } from '../bytes.js';
import { pkcs1SignatureBlock, type PivSession } from '../piv/host/session.js';
import { ALG, certificateObjectOf, KEY_REF, OBJECT, type AsymmetricAlg } from '../piv/protocol/constants.js';
import { parseChuid, parseKeyHistory } from '../piv/protocol/objects.js';
import {
  CONTAINER_DEFAULT,
  CONTAINER_VALID,
  MSCP_DIRECTORY,
  parseCertificateFileName,
  parseFilePath,
  serializeCardId,
  serializeCmapfile,
  type CardCf,
  type KeySpec,
} from '../minidriver/index.js';
import { parseCertificate, type ParsedCertificate } from './certificate.js';
import { digestInfo } from './digest-info.js';
import { CardError } from './errors.js';
import { emsaPssEncode } from './gids-minidriver.js';
import type { CardFreshness, MinidriverContainer, MinidriverPort, PinInfo, SignDigestRequest } from './minidriver-port.js';

/** The slots in container order: the four named slots, then the twenty retired ones. */
export const PIV_CONTAINER_SLOTS: readonly number[] = [
  KEY_REF.AUTHENTICATION,
  KEY_REF.SIGNATURE,
  KEY_REF.KEY_MANAGEMENT,
  KEY_REF.CARD_AUTHENTICATION,
  ...Array.from({ length: KEY_REF.RETIRED_LAST - KEY_REF.RETIRED_FIRST + 1 }, (_, i) => KEY_REF.RETIRED_FIRST + i),
];

/** The key spec the minidriver gives a slot's key: signature-only for 9C and 9E, key exchange otherwise. */
export function pivKeySpec(slot: number): KeySpec {
  return slot === KEY_REF.SIGNATURE || slot === KEY_REF.CARD_AUTHENTICATION ? 'sig' : 'kx';
}

/**
 * The container name Windows' PIV minidriver gives a slot [SSPI, unofficial]: the first 13 bytes
 * of the CHUID GUID and the 3-byte certificate object tag, as one GUID in text form — bytes
 * 3 2 1 0 - 5 4 - 7 6 - 8 9 - 10..15 (the first three groups little-endian, as GUIDs print).
 */
export function pivContainerName(chuidGuid: Uint8Array, slot: number): string {
  const tag = certificateObjectOf(slot);
  const b = concat(chuidGuid.subarray(0, 13), new Uint8Array([(tag >> 16) & 0xff, (tag >> 8) & 0xff, tag & 0xff]));
  const h = (...i: number[]): string => i.map((n) => b[n]!.toString(16).padStart(2, '0')).join('');
  return `${h(3, 2, 1, 0)}-${h(5, 4)}-${h(7, 6)}-${h(8, 9)}-${h(10, 11, 12, 13, 14, 15)}`;
}

/** The 6-hex-digit tail of a PIV container name: which slot's certificate object it names, whatever the CHUID. */
export function pivContainerSlotTag(name: string): string | undefined {
  const m = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{6}(5fc1[0-2][0-9a-f])$/i.exec(name);
  return m ? m[1]!.toLowerCase() : undefined;
}

/** A slot that holds a certificate, as one `begin` found it. */
interface PivSlotView extends MinidriverContainer {
  slot: number;
  alg: AsymmetricAlg;
  certificate: ParsedCertificate;
}

/** The PIV algorithm of a certificate's public key, or undefined when PIV has none for it. */
function algOf(key: KeyObject): { alg: AsymmetricAlg; bits: number } | undefined {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'rsa') {
    if (d?.modulusLength === 2048) return { alg: ALG.RSA_2048, bits: 2048 };
    if (d?.modulusLength === 1024) return { alg: ALG.RSA_1024, bits: 1024 };
  }
  if (key.asymmetricKeyType === 'ec') {
    if (d?.namedCurve === 'prime256v1') return { alg: ALG.ECC_P256, bits: 256 };
    if (d?.namedCurve === 'secp384r1') return { alg: ALG.ECC_P384, bits: 384 };
  }
  return undefined;
}

/** An all-zero CARD_CACHE_FILE_FORMAT: what `begin` returns in place of a `cardcf` the card does not have. */
const NO_CARDCF: CardCf = { version: 0, pinsFreshness: 0, containersFreshness: 0, filesFreshness: 0, appFreshness: [] };

/** What the PIV minidriver is opened with besides the session. */
export interface PivMinidriverOptions {
  /** The reader (or image) name for messages; the transport's name by default. */
  name?: string;
}

export class PivMinidriver implements MinidriverPort {
  private guid: Uint8Array | undefined;
  /** The slot scan, read at most once per `begin`. */
  private scan: PivSlotView[] | undefined;

  constructor(
    private readonly session: PivSession,
    private readonly options: PivMinidriverOptions = {},
  ) {}

  get name(): string {
    return this.options.name ?? this.session.transport.name;
  }

  async begin(): Promise<CardFreshness> {
    this.scan = undefined;
    this.guid = undefined;
    await this.session.select();
    const raw = await this.session.getObject(OBJECT.CHUID);
    if (!raw) {
      throw new CardError(
        'PIV_NO_CHUID',
        `${this.name}: the PIV card has no CHUID, so Windows' PIV minidriver has no card identity to cache its data under or to name containers after; write one with 'cardlink card check --repair' (new card identity: links must be redone)`,
      );
    }
    this.guid = parseChuid(raw).guid;
    return { cardId: this.guid.slice(), cardcf: { ...NO_CARDCF, appFreshness: [] }, freshnessSource: 'host' };
  }

  private async slots(): Promise<PivSlotView[]> {
    if (this.scan) return this.scan;
    if (!this.guid) await this.begin();
    const guid = this.guid!;
    const history = await this.session.getObject(OBJECT.KEY_HISTORY);
    const retired = history ? parseKeyHistory(history).onCard > 0 : false;
    const out: PivSlotView[] = [];
    for (const slot of PIV_CONTAINER_SLOTS) {
      if (slot >= KEY_REF.RETIRED_FIRST && slot <= KEY_REF.RETIRED_LAST && !retired) break;
      const object = await this.session.readCertificate(slot);
      if (!object) continue;
      const certificate = parseCertificate(object.der);
      const a = algOf(certificate.publicKey);
      if (!a) continue; // a key PIV does not define: no container Windows could use
      const keySpec = pivKeySpec(slot);
      out.push({ index: out.length, name: pivContainerName(guid, slot), keySpec, keyBits: a.bits, isDefault: slot === KEY_REF.AUTHENTICATION, slot, alg: a.alg, certificate });
    }
    this.scan = out;
    return out;
  }

  /** The slot behind container `index`, and the PIV slot number, as the current `begin` read them. */
  async slotOf(index: number): Promise<PivSlotView> {
    const s = (await this.slots())[index];
    if (!s) throw new CardError('NO_CONTAINER', `${this.name}: container ${index} has no certificate on the PIV card`, { container: String(index) });
    return s;
  }

  async readFile(path: string): Promise<Uint8Array | undefined> {
    const p = parseFilePath(path);
    const dir = p.directory.toLowerCase();
    const file = p.filename.toLowerCase();
    if (dir === '' && file === 'cardid') {
      if (!this.guid) await this.begin();
      return serializeCardId(this.guid!);
    }
    if (dir !== MSCP_DIRECTORY) return undefined;
    const slots = await this.slots();
    if (file === 'cmapfile') {
      return serializeCmapfile(
        slots.map((s) => ({
          name: s.name,
          flags: CONTAINER_VALID | (s.isDefault ? CONTAINER_DEFAULT : 0),
          sigKeyBits: s.keySpec === 'sig' ? s.keyBits : 0,
          kxKeyBits: s.keySpec === 'kx' ? s.keyBits : 0,
        })),
      );
    }
    const named = parseCertificateFileName(file);
    const s = named ? slots[named.index] : undefined;
    return s && s.keySpec === named!.keySpec ? s.certificate.der.slice() : undefined;
  }

  async containers(): Promise<MinidriverContainer[]> {
    return (await this.slots()).map(({ index, name, keySpec, keyBits, isDefault }) => ({ index, name, keySpec, keyBits, isDefault }));
  }

  async publicKey(index: number): Promise<Uint8Array> {
    const s = await this.slotOf(index);
    return new Uint8Array(s.certificate.publicKey.export({ type: 'spki', format: 'der' }));
  }

  async signDigest(index: number, request: SignDigestRequest): Promise<Uint8Array> {
    const s = await this.slotOf(index);
    if (s.alg === ALG.ECC_P256 || s.alg === ALG.ECC_P384) {
      if ((request.padding ?? 'pkcs1') !== 'pkcs1') throw new CardError('BAD_ALGORITHM', `${this.name}: container ${index} holds an ECC key: PSS padding is for RSA`);
      const size = s.keyBits / 8;
      // ECDSA uses the leftmost bits of a longer hash (FIPS 186-4 §6.4); the card signs what it gets.
      const der = await this.session.sign(s.slot, s.alg, request.digest.subarray(0, Math.min(request.digest.length, size)));
      return ecdsaDerToRaw(der, size);
    }
    const bytes = s.keyBits / 8;
    const block =
      (request.padding ?? 'pkcs1') === 'pkcs1'
        ? pkcs1SignatureBlock(digestInfo(request.hash, request.digest), bytes)
        : emsaPssEncode(request.hash, request.digest, s.keyBits - 1, request.saltLength ?? request.digest.length);
    return this.session.sign(s.slot, s.alg, block);
  }

  async rsaDecrypt(index: number, cryptogram: Uint8Array): Promise<Uint8Array> {
    const s = await this.slotOf(index);
    if (s.alg !== ALG.RSA_1024 && s.alg !== ALG.RSA_2048) throw new CardError('BAD_ALGORITHM', `${this.name}: container ${index} holds an ECC key, which agrees keys and does not decrypt`);
    const block = await this.session.decipher(s.slot, s.alg, cryptogram);
    return unpadPkcs1Encryption(block, s.keyBits / 8, this.name);
  }

  async pinStatus(): Promise<PinInfo> {
    const st = await this.session.pinStatus();
    // Plain PIV does not tell the try limit; 3 is the factory value of YubiKeys and the emulator
    // [YKPIV]. A verified PIN has its full count (a right value resets it, Part 2 §3.2.1).
    const tryLimit = Math.max(3, st.triesLeft ?? 0);
    return { triesLeft: st.verified ? tryLimit : (st.triesLeft ?? tryLimit), tryLimit };
  }

  async verifyPin(pin: string): Promise<void> {
    // The slot scan first, so that a signature right after this VERIFY is the next command: the
    // digital signature key (9C) is "PIN Always" and wants nothing between the two [PIV1].
    await this.slots();
    await this.session.verifyPin(pin);
  }
}

/** The minidriver port of a PIV card: what `MinidriverCard.minidriver()` returns for a PIV card. */
export function pivMinidriver(session: PivSession, options: PivMinidriverOptions = {}): PivMinidriver {
  return new PivMinidriver(session, options);
}

/** ECDSA-Sig-Value (DER SEQUENCE of two INTEGERs, RFC 3279 §2.2.3) → r‖s of `size` bytes each (IEEE P1363). */
export function ecdsaDerToRaw(der: Uint8Array, size: number): Uint8Array {
  try {
    const { tlv, next } = readTlv(der, 0);
    if (tlv.tag !== 0x30 || next !== der.length) throw new Error('not one SEQUENCE');
    const ints = parseTlvs(tlv.value);
    if (ints.length !== 2 || ints.some((t) => t.tag !== 0x02)) throw new Error('not two INTEGERs');
    return concat(...ints.map((t) => fixed(t.value, size)));
  } catch (err) {
    throw new CardError('PIV_BAD_SIGNATURE', `the card's ECDSA signature is not a DER ECDSA-Sig-Value: ${(err as Error).message}`, { cause: err });
  }
}

function fixed(v: Uint8Array, size: number): Uint8Array {
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i++;
  const t = v.subarray(i);
  if (t.length > size) throw new Error(`an integer of ${t.length} bytes for a ${size}-byte curve`);
  return concat(new Uint8Array(size - t.length), t);
}

/** EME-PKCS1-v1_5 decoding (RFC 8017 §7.2.2): `00 02 PS 00 M`, PS at least 8 non-zero bytes. */
function unpadPkcs1Encryption(block: Uint8Array, k: number, name: string): Uint8Array {
  const em = block.length < k ? concat(new Uint8Array(k - block.length), block) : block;
  const sep = em.indexOf(0, 2);
  if (em[0] !== 0 || em[1] !== 2 || sep < 10) throw new CardError('DECRYPT_FAILED', `${name}: the cryptogram does not decrypt to a PKCS#1 v1.5 block for this key`);
  return em.slice(sep + 1);
}

