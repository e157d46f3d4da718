/**
 * The minidriver port over a GIDS card: what a GIDS minidriver does for the Base CSP and the KSP
 * (docs/sources.md#minidriver-spec; the mapping follows OpenSC's card-gids.c, docs/sources.md#opensc-gids).
 * Logical files live in data objects named by the master file table; container i holds the key
 * with reference 0x81 + i, whose algorithm the key map records; CardSignData is MSE SET followed by
 * PSO COMPUTE DIGITAL SIGNATURE, the card padding PKCS#1 v1.5 itself and signing a block the host
 * padded for PSS.
 *
 * It keeps nothing from one `begin` to the next, and never uses cardlink's card cache: this is the
 * path the modelled Base CSP signs through, and it must see the card as it is.
 */
import { createHash, randomBytes } from 'node:crypto';
import { concat } from '../bytes.js';
import type { GidsSession } from '../gids/host/session.js';
import { DO, EF, RSA_BITS_BY_ALG } from '../gids/protocol/constants.js';
import {
  KEY_STATE_USED,
  MSCP_DIRECTORY,
  isDefaultContainer,
  isValidContainer,
  parseCardCf,
  parseCardId,
  parseCmapfile,
  parseFilePath,
  type MasterFileRecord,
} from '../minidriver/index.js';
import { keyRefOf, keySpecOf } from './card-files.js';
import { digestInfo, type HashName } from './digest-info.js';
import { CardError } from './errors.js';
import type { CardFreshness, MinidriverContainer, MinidriverPort, PinInfo, SignDigestRequest } from './minidriver-port.js';

export class GidsMinidriver implements MinidriverPort {
  /** The master file table, read at most once per `begin`. */
  private table: MasterFileRecord[] | undefined;

  constructor(private readonly session: GidsSession) {}

  get name(): string {
    return this.session.transport.name;
  }

  async begin(): Promise<CardFreshness> {
    this.table = undefined;
    const rawId = await this.session.getData(EF.EveryoneReadAdminWriteAc, DO.CARDID);
    if (!rawId) throw new CardError('NOT_INITIALIZED', `${this.name}: the card has no cardid (not initialised?)`);
    const rawCf = await this.session.getData(EF.EveryoneReadUserWriteAc, DO.CARDCF);
    if (!rawCf) throw new CardError('NOT_INITIALIZED', `${this.name}: the card has no cardcf`);
    return { cardId: parseCardId(rawId), cardcf: parseCardCf(rawCf) };
  }

  async readFile(path: string): Promise<Uint8Array | undefined> {
    const p = parseFilePath(path);
    const d = p.directory.toLowerCase();
    const f = p.filename.toLowerCase();
    this.table ??= await this.session.masterTable(true);
    // Minidriver names compare case-insensitively (OpenSC writes kxc0A).
    const rec = this.table.find((r) => r.directory.toLowerCase() === d && r.filename.toLowerCase() === f);
    return rec ? this.session.getData(rec.efid, rec.doTag) : undefined;
  }

  async containers(): Promise<MinidriverContainer[]> {
    const raw = await this.readFile(`${MSCP_DIRECTORY}/cmapfile`);
    const out: MinidriverContainer[] = [];
    for (const [index, r] of (raw ? parseCmapfile(raw) : []).entries()) {
      if (!isValidContainer(r)) continue;
      const keySpec = keySpecOf(r);
      out.push({ index, name: r.name, keySpec, keyBits: keySpec === 'kx' ? r.kxKeyBits : r.sigKeyBits, isDefault: isDefaultContainer(r) });
    }
    return out;
  }

  async publicKey(index: number): Promise<Uint8Array> {
    const key = await this.session.publicKey(keyRefOf(index));
    return new Uint8Array(key.export({ type: 'spki', format: 'der' }));
  }

  async signDigest(index: number, request: SignDigestRequest): Promise<Uint8Array> {
    // The key map says which algorithm the key has: one GET DATA, and no cmapfile to parse.
    const slot = (await this.session.keyMap())[index];
    if (!slot || slot.state !== KEY_STATE_USED) throw new CardError('NO_CONTAINER', `${this.name}: container ${index} has no key on the card`);
    const keyRef = keyRefOf(index);
    if ((request.padding ?? 'pkcs1') === 'pkcs1') return this.session.sign(keyRef, slot.algId, digestInfo(request.hash, request.digest));
    const bits = RSA_BITS_BY_ALG[slot.algId & 0x0f];
    if (bits === undefined) throw new CardError('BAD_ALGORITHM', `${this.name}: container ${index} holds a key of unknown algorithm ${slot.algId}`);
    const block = emsaPssEncode(request.hash, request.digest, bits - 1, request.saltLength ?? request.digest.length);
    return this.session.sign(keyRef, slot.algId, block, true);
  }

  pinStatus(): Promise<PinInfo> {
    return this.session.pinStatus();
  }

  verifyPin(pin: string): Promise<void> {
    return this.session.verifyPin(pin);
  }

  getChallenge(): Promise<Uint8Array> {
    return this.session.adminChallenge();
  }

  async unblockPinWithResponse(response: Uint8Array, newPin: string): Promise<void> {
    await this.session.answerAdminChallenge(response);
    await this.session.unblockPin(newPin);
  }
}

/** EMSA-PSS-ENCODE with MGF1 over the same hash (RFC 8017 §9.1.1), for a digest computed by the caller. */
export function emsaPssEncode(hash: HashName, mHash: Uint8Array, emBits: number, saltLength: number): Uint8Array {
  const hLen = createHash(hash).digest().length;
  const emLen = Math.ceil(emBits / 8);
  if (mHash.length !== hLen) throw new RangeError(`${hash} digest must be ${hLen} bytes, got ${mHash.length}`);
  if (emLen < hLen + saltLength + 2) throw new RangeError(`a ${emBits + 1}-bit key cannot carry a ${saltLength}-byte salt with ${hash}`);
  const salt = randomBytes(saltLength);
  const h = new Uint8Array(createHash(hash).update(concat(new Uint8Array(8), mHash, salt)).digest());
  const db = concat(new Uint8Array(emLen - saltLength - hLen - 2), new Uint8Array([0x01]), salt);
  const mask = mgf1(hash, h, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  db[0]! &= 0xff >> (8 * emLen - emBits);
  return concat(db, h, new Uint8Array([0xbc]));
}

function mgf1(hash: HashName, seed: Uint8Array, length: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let counter = 0, got = 0; got < length; counter++) {
    const c = new Uint8Array([counter >>> 24, (counter >>> 16) & 0xff, (counter >>> 8) & 0xff, counter & 0xff]);
    const block = new Uint8Array(createHash(hash).update(seed).update(c).digest());
    parts.push(block);
    got += block.length;
  }
  return concat(...parts).subarray(0, length);
}
