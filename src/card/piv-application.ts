/**
 * The PIV application behind MinidriverCard (card-application.ts): a PIV card (NIST SP 800-73-4,
 * docs/sources.md#sp800-73-4) as cardlink's user sees it, in the terms Windows' inbox PIV
 * minidriver presents it (docs/piv.md, "How Windows' inbox minidriver sees a PIV card"):
 *
 * - containers are the key slots, in the order 9A, 9C, 9D, 9E, 82…95; a slot is listed when
 *   cardlink knows its key (its certificate, or the public key cardlink recorded at `gen`);
 * - a container's name is the CHUID GUID's first 13 bytes in GUID text order followed by the
 *   slot's certificate object tag (unofficial [SSPI]); 9A is the default container; 9C and 9E
 *   hold signature keys (`ksc`), the others key exchange keys (`kxc`) — assumed, docs/piv.md;
 * - there is no `cardcf`: Windows keys its cache on the CHUID GUID and drops it when the card is
 *   re-inserted (unofficial [BLOG]). So a write needs a CHUID on the card — `gen` and `install`
 *   write one when it is missing — and nothing else; changing an existing CHUID would rename every
 *   container (links must then be redone), which only `check --repair` of a missing one does.
 *
 * Plain PIV cannot return a slot's public key (GENERATE is the only command that answers with
 * it). cardlink records the public key of each key it generates in a data object of its own, in
 * the vendor range Yubico also uses for its objects: 5FFF20 (Yubico's tools use 5FFF00, 5FFF01 and
 * 5FFF10-5FFF15, docs/sources.md#yubico-piv). A slot without a record (a key made by another tool)
 * is known by its certificate's key. Writes need the card management key (ManagementKeySource).
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { encodeTlv, findTlv, parseTlvs } from '../ber-tlv.js';
import { concat, equalBytes, hex } from '../bytes.js';
import { PivError } from '../piv/host/errors.js';
import { PivSession, pkcs1SignatureBlock } from '../piv/host/session.js';
import {
  ALG,
  certificateObjectOf,
  KEY_REF,
  KEY_SLOTS,
  OBJECT,
  pinPolicyOf,
  type AsymmetricAlg,
  type SymmetricAlg,
} from '../piv/protocol/constants.js';
import { encodeCertificateObject, newChuid, parseChuid, parseKeyHistory, encodeKeyHistory, type CertificateObject, type Chuid, type KeyHistory } from '../piv/protocol/objects.js';
import { CardlinkError } from '../errors.js';
import { keyId } from '../thumbprint.js';
import type { Transport } from '../transport/transport.js';
import type { CardApplication, CreateContainerOptions, PinState } from './card-application.js';
import type { ContainerInfo } from './card-files.js';
import { parseCertificate } from './certificate.js';
import { sameFinding, type CheckReport, type Finding, type RepairReport } from './check/report.js';
import type { BuiltCsr, CsrOptions } from './csr.js';
import { digestInfoOf, type HashName } from './digest-info.js';
import { CardError } from './errors.js';
import { refuseSurprises, type InstallOptions, type InstallResult } from './install.js';
import type { MinidriverPort } from './minidriver-port.js';
import { pivContainerName, pivKeySpec, pivMinidriver } from './piv-minidriver.js';

/** The card management key and its algorithm (SP 800-78-4 Table 6-2: 3DES, AES-128/192/256). */
export interface ManagementKey {
  key: Uint8Array;
  alg: SymmetricAlg;
}

/** Asked only when a write needs it (CLI: CARDLINK_MGMT_KEY or a prompt); the caller may zero the key afterwards. */
export type ManagementKeySource = () => Promise<ManagementKey>;

/** cardlink's record of the public keys it generated, per slot: `E0 { 80 slot, 81 SubjectPublicKeyInfo }`… */
export const PUBLIC_KEY_RECORD = 0x5fff20;

/**
 * PIV defines no command for a PIN's try limit (Yubico's GET METADATA has it, docs/piv.md): the
 * factory limit of YubiKeys and the emulator, 3, is assumed unless the card reports more tries.
 */
const ASSUMED_PIN_TRY_LIMIT = 3;

/** Windows' container order (docs/piv.md): 9A, 9C, 9D, 9E, then the retired slots 82…95. */
const SLOT_ORDER: readonly number[] = KEY_SLOTS;
const RETIRED: readonly number[] = KEY_SLOTS.filter((s) => s >= KEY_REF.RETIRED_FIRST && s <= KEY_REF.RETIRED_LAST);

interface SlotState {
  slot: number;
  certificate?: CertificateObject;
  /** Why the certificate object could not be read (CERT_MALFORMED). */
  certificateError?: string;
  /** The public key cardlink recorded at `gen`, SPKI DER. */
  recorded?: Uint8Array;
}

interface PivSnapshot {
  chuid: Chuid | undefined;
  chuidError?: string;
  keyHistory: KeyHistory | undefined;
  keyHistoryError?: string;
  record: Map<number, Uint8Array>;
  slots: SlotState[];
}

/** `9a`, `9A`, `0x9a`: a slot named by its key reference; undefined when `text` is not one. */
export function parseSlot(text: string): number | undefined {
  const m = /^(?:0x)?([0-9a-f]{2})$/i.exec(text.trim());
  if (!m) return undefined;
  const n = Number.parseInt(m[1]!, 16);
  return SLOT_ORDER.includes(n) ? n : undefined;
}

export function slotName(slot: number): string {
  return slot.toString(16).toUpperCase().padStart(2, '0');
}

function algOfKey(key: KeyObject, slot: number): { alg: AsymmetricAlg; name: string; bits: number } {
  if (key.asymmetricKeyType === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits === 2048) return { alg: ALG.RSA_2048, name: 'RSA-2048', bits };
    if (bits === 1024) return { alg: ALG.RSA_1024, name: 'RSA-1024', bits };
  } else if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return { alg: ALG.ECC_P256, name: 'ECC P-256', bits: 256 };
    if (curve === 'secp384r1') return { alg: ALG.ECC_P384, name: 'ECC P-384', bits: 384 };
  }
  throw new CardError('BAD_ALGORITHM', `slot ${slotName(slot)}: its key is not one PIV holds (RSA-1024/2048, ECC P-256/P-384)`);
}

function spkiOf(key: KeyObject): Uint8Array {
  return new Uint8Array(key.export({ type: 'spki', format: 'der' }));
}

function encodeRecord(record: Map<number, Uint8Array>): Uint8Array {
  const entries = [...record].sort(([a], [b]) => a - b).map(([slot, spki]) => encodeTlv(0xe0, encodeTlv(0x80, new Uint8Array([slot])), encodeTlv(0x81, spki)));
  return concat(...entries);
}

function parseRecord(value: Uint8Array | undefined): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  if (!value || value.length === 0) return out;
  try {
    for (const e of parseTlvs(value)) {
      if (e.tag !== 0xe0) continue;
      const inner = parseTlvs(e.value);
      const slot = findTlv(inner, 0x80)?.value;
      const spki = findTlv(inner, 0x81)?.value;
      if (slot?.length === 1 && spki) out.set(slot[0]!, spki.slice());
    }
  } catch {
    // A damaged record only costs the recorded keys: slots fall back to their certificates' keys.
  }
  return out;
}

export interface PivOpenOptions {
  managementKey?: ManagementKeySource;
}

/** A PIV data object as `card files` shows it: PIV has no file system, only these (read-only here). */
export interface PivDataObject {
  tag: string;
  name: string;
  size: number;
}

const OBJECT_NAMES: Array<[number, string]> = [
  [OBJECT.CARD_CAPABILITY_CONTAINER, 'Card Capability Container'],
  [OBJECT.CHUID, 'Card Holder Unique Identifier (CHUID)'],
  [OBJECT.DISCOVERY, 'Discovery Object'],
  [OBJECT.KEY_HISTORY, 'Key History Object'],
  [OBJECT.SECURITY_OBJECT, 'Security Object'],
  ...SLOT_ORDER.map((s): [number, string] => [certificateObjectOf(s), `certificate of slot ${slotName(s)}`]),
  [PUBLIC_KEY_RECORD, "cardlink's public key record"],
];

export class PivApplication implements CardApplication {
  readonly kind = 'piv' as const;
  private authenticated = false;
  /** Kept in memory for slots whose PIN policy is "always" (9C): VERIFY right before each use. Dropped by logout(). */
  private pin: string | undefined;

  private constructor(
    readonly session: PivSession,
    private readonly managementKey: ManagementKeySource | undefined,
  ) {}

  /** Selects the PIV application on the card behind `transport` (NOT_PIV when it has none). */
  static async open(transport: Transport, options: PivOpenOptions = {}): Promise<PivApplication> {
    const session = new PivSession(transport);
    await session.select();
    return new PivApplication(session, options.managementKey);
  }

  /**
   * The minidriver port for PIV is h16b's `PivMinidriver` (src/card/piv-minidriver.ts); the
   * integrator joins it here: `return new PivMinidriver(new PivSession(this.session.transport))`.
   */
  /** The card as Windows' PIV minidriver presents it (docs/piv.md): what `link` and `doctor` see. */
  minidriver(): MinidriverPort {
    return pivMinidriver(new PivSession(this.session.transport));
  }

  // ---- reading -------------------------------------------------------------------------------

  /**
   * The card's objects as last read, for the reads of one command (`card ls` asks for every
   * container's certificate: without it each would read all the slots again). Dropped before and
   * after every write this application makes; `full` reads (check, repair) always go to the card.
   */
  private snapshot: PivSnapshot | undefined;

  private async writing<T>(write: () => Promise<T>): Promise<T> {
    this.snapshot = undefined;
    try {
      return await write();
    } finally {
      this.snapshot = undefined;
    }
  }

  private async readSnapshot(full: boolean): Promise<PivSnapshot> {
    if (!full && this.snapshot) return this.snapshot;
    const read = await this.readCard(full);
    if (!full) this.snapshot = read;
    return read;
  }

  private async readCard(full: boolean): Promise<PivSnapshot> {
    let chuid: Chuid | undefined;
    let chuidError: string | undefined;
    const chuidValue = await this.session.getObject(OBJECT.CHUID);
    if (chuidValue !== undefined && chuidValue.length > 0) {
      try {
        chuid = parseChuid(chuidValue);
      } catch (e) {
        chuidError = (e as Error).message;
      }
    }
    let keyHistory: KeyHistory | undefined;
    let keyHistoryError: string | undefined;
    const kh = await this.session.getObject(OBJECT.KEY_HISTORY);
    if (kh !== undefined && kh.length > 0) {
      try {
        keyHistory = parseKeyHistory(kh);
      } catch (e) {
        keyHistoryError = (e as Error).message;
      }
    }
    const record = parseRecord(await this.session.getObject(PUBLIC_KEY_RECORD));
    // Retired slots are read when the key history or the record says they are used, or for check.
    const retiredUsed = full || (keyHistory?.onCard ?? 0) > 0 || RETIRED.some((s) => record.has(s));
    const slots: SlotState[] = [];
    for (const slot of SLOT_ORDER) {
      if (RETIRED.includes(slot) && !retiredUsed) continue;
      const state: SlotState = { slot };
      const recorded = record.get(slot);
      if (recorded) state.recorded = recorded;
      try {
        const cert = await this.session.readCertificate(slot);
        if (cert) state.certificate = cert;
      } catch (e) {
        if (!(e instanceof CardlinkError) || e.code !== 'PIV_FORMAT') throw e;
        state.certificateError = e.message;
      }
      slots.push(state);
    }
    return { chuid, ...(chuidError ? { chuidError } : {}), keyHistory, ...(keyHistoryError ? { keyHistoryError } : {}), record, slots };
  }

  private slotKey(s: SlotState): KeyObject | undefined {
    if (s.recorded) return createPublicKey({ key: Buffer.from(s.recorded), format: 'der', type: 'spki' });
    if (s.certificate) {
      try {
        return parseCertificate(s.certificate.der).publicKey;
      } catch {
        return undefined;
      }
    }
    return undefined;
  }

  private describe(snap: PivSnapshot): ContainerInfo[] {
    const out: ContainerInfo[] = [];
    for (const s of snap.slots) {
      const key = this.slotKey(s);
      if (!key && !s.certificate && !s.certificateError) continue;
      let algorithm = 'unknown';
      let keyBits = 0;
      if (key) {
        try {
          const a = algOfKey(key, s.slot);
          algorithm = a.name;
          keyBits = a.bits;
        } catch {
          algorithm = key.asymmetricKeyType ?? 'unknown';
        }
      }
      out.push({
        index: out.length,
        name: snap.chuid ? pivContainerName(snap.chuid.guid, s.slot) : `piv-${slotName(s.slot).toLowerCase()}`,
        keyRef: s.slot,
        slot: s.slot,
        keySpec: pivKeySpec(s.slot),
        keyBits,
        algorithm,
        isDefault: s.slot === KEY_REF.AUTHENTICATION,
        certificateFile: s.certificate || s.certificateError ? certificateObjectOf(s.slot).toString(16).toUpperCase() : undefined,
      });
    }
    return out;
  }

  async cardId(): Promise<Uint8Array> {
    const value = await this.session.getObject(OBJECT.CHUID);
    if (!value || value.length === 0) throw new CardError('NO_CHUID', `${this.session.transport.name}: the PIV card has no CHUID, so no card identity ('cardlink card check --repair' writes one)`);
    return parseChuid(value).guid;
  }

  async containers(): Promise<ContainerInfo[]> {
    return this.describe(await this.readSnapshot(false));
  }

  async container(nameOrIndex: string | number): Promise<ContainerInfo> {
    return (await this.find(nameOrIndex, await this.readSnapshot(false))).container;
  }

  private async find(nameOrIndex: string | number, snap: PivSnapshot): Promise<{ container: ContainerInfo; state: SlotState }> {
    const all = this.describe(snap);
    const slot = typeof nameOrIndex === 'string' ? parseSlot(nameOrIndex) : undefined;
    const c =
      typeof nameOrIndex === 'number'
        ? all.find((x) => x.index === nameOrIndex)
        : all.find((x) => x.name.toLowerCase() === nameOrIndex.toLowerCase() || (slot !== undefined && x.slot === slot));
    if (!c) {
      const names = all.map((x) => `${x.name} (slot ${slotName(x.slot!)})`).join(', ') || 'none';
      throw new CardError('NO_CONTAINER', `no container '${nameOrIndex}' on the PIV card (containers: ${names}); a slot without a certificate or a key cardlink generated is not listed`, { container: String(nameOrIndex) });
    }
    return { container: c, state: snap.slots.find((s) => s.slot === c.slot)! };
  }

  async publicKey(nameOrIndex: string | number): Promise<KeyObject> {
    return (await this.keyOf(nameOrIndex)).key;
  }

  /** The container and its public key, from one read of the card. */
  private async keyOf(nameOrIndex: string | number): Promise<{ container: ContainerInfo; slot: number; key: KeyObject }> {
    const { container, state } = await this.find(nameOrIndex, await this.readSnapshot(false));
    const key = this.slotKey(state);
    if (!key) throw new CardError('NO_PUBLIC_KEY', `slot ${slotName(state.slot)}: its public key is unknown (a PIV card cannot return it; no certificate and no key recorded by 'cardlink card gen')`, { container: container.name });
    return { container, slot: state.slot, key };
  }

  // ---- management key, CHUID -------------------------------------------------------------------

  private async authenticate(): Promise<void> {
    if (this.authenticated) return;
    if (!this.managementKey) throw new CardError('MGMT_KEY_NEEDED', 'this change to a PIV card needs its management key (CARDLINK_MGMT_KEY, or asked on a terminal)');
    const { key, alg } = await this.managementKey();
    try {
      await this.session.authenticate(key, alg);
    } catch (e) {
      if (e instanceof PivError && e.code === 'MGMT_KEY_REFUSED') {
        throw new PivError('MGMT_KEY_REFUSED', `the card refused the management key (${e.message.replace(/^the card /, '')}); check CARDLINK_MGMT_KEY and --mgmt-alg`);
      }
      throw e;
    } finally {
      key.fill(0);
    }
    this.authenticated = true;
  }

  /** Writes a CHUID with a new GUID when the card has none; returns the GUID in force. */
  private async ensureChuid(snap: PivSnapshot): Promise<{ guid: Uint8Array; written: boolean }> {
    if (snap.chuid) return { guid: snap.chuid.guid, written: false };
    const value = newChuid();
    await this.writing(() => this.session.putObject(OBJECT.CHUID, value));
    const chuid = parseChuid(value);
    snap.chuid = chuid;
    return { guid: chuid.guid, written: true };
  }

  // ---- keys ----------------------------------------------------------------------------------

  /**
   * Generates a key in a slot (`name` is the slot, e.g. `9a`, or its container name) with the
   * management key: the record entry of the slot goes first, then GENERATE, then the new record
   * entry, so a card pulled midway never pairs the new key with the old record. A slot that holds
   * a certificate is refused (its key would no longer match: `card rm-cert` first).
   */
  async createContainer(name: string, options: CreateContainerOptions = {}): Promise<ContainerInfo & { publicKey: KeyObject }> {
    const snap = await this.readSnapshot(false);
    let slot = parseSlot(name);
    if (slot === undefined) {
      const byName = this.describe(snap).find((c) => c.name.toLowerCase() === name.toLowerCase());
      if (!byName) throw new CardError('BAD_CONTAINER_NAME', `'${name}' is not a PIV slot (9a, 9c, 9d, 9e, 82-95) nor a container on the card`, { container: name });
      slot = byName.slot!;
    }
    let alg: AsymmetricAlg;
    if (options.curve === 'p256') alg = ALG.ECC_P256;
    else if (options.curve === 'p384') alg = ALG.ECC_P384;
    else if ((options.bits ?? 2048) === 2048) alg = ALG.RSA_2048;
    else if (options.bits === 1024) alg = ALG.RSA_1024;
    else throw new CardError('BAD_ALGORITHM', `RSA-${options.bits} is not a PIV key (RSA-2048, ECC P-256, P-384; SP 800-78-4)`, { container: name });
    if (options.keySpec !== undefined && options.keySpec !== pivKeySpec(slot)) {
      throw new CardError('WRONG_KEY_SPEC', `slot ${slotName(slot)} holds ${pivKeySpec(slot) === 'kx' ? 'a key exchange (kx)' : 'a signature (sig)'} key as Windows presents it; choose another slot`, { container: name });
    }
    const state = snap.slots.find((s) => s.slot === slot);
    if (state?.certificate || state?.certificateError) {
      throw new CardError('CONTAINER_EXISTS', `slot ${slotName(slot)} holds a certificate: a new key would not match it; remove it first ('cardlink card rm-cert --container ${slotName(slot).toLowerCase()}')`, { container: name });
    }
    await this.authenticate();
    const { guid } = await this.ensureChuid(snap);
    if (snap.record.delete(slot)) await this.writing(() => this.session.putObject(PUBLIC_KEY_RECORD, encodeRecord(snap.record)));
    const publicKey = await this.writing(() => this.session.generateKey(slot, alg));
    snap.record.set(slot, spkiOf(publicKey));
    try {
      await this.writing(() => this.session.putObject(PUBLIC_KEY_RECORD, encodeRecord(snap.record)));
    } catch (e) {
      // A card that refuses cardlink's object still has the key: it is then known by its certificate once installed.
      if (!(e instanceof CardlinkError) || e.code === 'CARD_REMOVED') throw e;
    }
    const recorded = spkiOf(publicKey);
    const slots = state ? snap.slots.map((s) => (s.slot === slot ? { slot, recorded } : s)) : [...snap.slots, { slot, recorded }];
    slots.sort((x, y) => SLOT_ORDER.indexOf(x.slot) - SLOT_ORDER.indexOf(y.slot));
    const info = this.describe({ ...snap, slots }).find((c) => c.slot === slot);
    if (!info) throw new CardError('CARD_INTERNAL', `slot ${slotName(slot)} vanished after its key was generated (card ${hex(guid)})`, { container: name });
    return { ...info, publicKey };
  }

  /** Signs `data` with the slot's key: PKCS#1 v1.5 (the block built here) for RSA, ECDSA for ECC. Needs the PIN. */
  async sign(nameOrIndex: string | number, data: Uint8Array, hash: HashName = 'sha256'): Promise<Uint8Array> {
    const { slot, key } = await this.keyOf(nameOrIndex);
    const toSign = key.asymmetricKeyType === 'ec' ? new Uint8Array(createHash(hash).update(data).digest()) : digestInfoOf(hash, data);
    return this.signPrepared(slot, key, toSign);
  }

  /** The private key operation on a DigestInfo (RSA) or a hash (ECC), with the PIN right before it for "PIN always" slots. */
  private async signPrepared(slot: number, key: KeyObject, toSign: Uint8Array): Promise<Uint8Array> {
    const { alg, bits } = algOfKey(key, slot);
    const input = alg === ALG.RSA_1024 || alg === ALG.RSA_2048 ? pkcs1SignatureBlock(toSign, bits / 8) : toSign;
    if (pinPolicyOf(slot) === 'always' && this.pin !== undefined) await this.session.verifyPin(this.pin);
    return this.session.sign(slot, alg, input);
  }

  async csr(nameOrIndex: string | number, subject: string, options: CsrOptions = {}): Promise<BuiltCsr> {
    const { slot, key } = await this.keyOf(nameOrIndex);
    const { buildCsr } = await import('./csr.js');
    return buildCsr(subject, key, (toSign) => this.signPrepared(slot, key, toSign), options);
  }

  // ---- certificates --------------------------------------------------------------------------

  async readCertificate(nameOrIndex: string | number): Promise<Uint8Array | undefined> {
    const { container, state } = await this.find(nameOrIndex, await this.readSnapshot(false));
    if (state.certificateError) throw new CardError('CERT_UNREADABLE', `slot ${slotName(state.slot)}: ${state.certificateError}`, { container: container.name });
    return state.certificate?.der;
  }

  /**
   * Offline install into the slot whose key the certificate certifies, checked against the
   * slot's key (recorded at `gen`, or the certificate there now). The CHUID is written first when
   * the card has none — Windows needs the identity to cache and name the container — and is
   * otherwise left alone: Windows sees the new certificate after the card is re-inserted.
   */
  async installCertificate(input: Uint8Array | string, options: InstallOptions = {}): Promise<InstallResult> {
    const parsed = parseCertificate(input);
    const snap = await this.readSnapshot(false);
    let target: { container: ContainerInfo; state: SlotState };
    if (options.container !== undefined) {
      const slot = parseSlot(options.container);
      const listed = this.describe(snap).some((c) => c.name.toLowerCase() === options.container!.toLowerCase() || c.slot === slot);
      if (!listed && slot !== undefined) {
        throw new CardError('KEY_UNKNOWN', `slot ${slotName(slot)}: its key is unknown to cardlink (no certificate, no key recorded by 'cardlink card gen'), so the certificate cannot be checked against it`, { container: options.container });
      }
      target = await this.find(options.container, snap);
      const key = this.slotKey(target.state);
      if (!key || keyId(key) !== parsed.keyId) {
        throw new CardError('KEY_MISMATCH', `the certificate's public key (SHA-256 ${parsed.keyId.slice(0, 16)}…) is not the key of slot ${slotName(target.state.slot)}${key ? ` (${keyId(key).slice(0, 16)}…)` : ''}`, { container: options.container });
      }
    } else {
      const found = snap.slots.find((s) => {
        const key = this.slotKey(s);
        return key !== undefined && keyId(key) === parsed.keyId;
      });
      if (!found) {
        throw new CardError('NO_MATCHING_CONTAINER', `no slot of the PIV card holds the key of '${parsed.subject}' (public key SHA-256 ${parsed.keyId.slice(0, 16)}…); known slots: ${this.describe(snap).map((c) => slotName(c.slot!)).join(', ') || 'none'}`);
      }
      target = await this.find(slotName(found.slot), snap);
    }
    const slot = target.state.slot;
    const current = target.state.certificate?.der;
    const file = certificateObjectOf(slot).toString(16).toUpperCase();
    if (current && equalBytes(current, parsed.der) && snap.chuid) {
      return { container: target.container, file, replaced: false, unchanged: true, verified: false, storedBytes: current.length, derBytes: parsed.der.length, chuid: { guid: hex(snap.chuid.guid), written: false } };
    }
    if (options.force !== true) refuseSurprises(parsed, current, options.now ?? new Date());
    await this.authenticate();
    const chuid = await this.ensureChuid(snap);
    await this.writing(() => this.session.writeCertificate(slot, parsed.der));
    let verified = false;
    if (options.verify === true) {
      const back = await this.session.readCertificate(slot);
      if (!back || !equalBytes(back.der, parsed.der)) throw new CardError('VERIFY_FAILED', `slot ${slotName(slot)}: the certificate read back differs from the one written`, { container: target.container.name });
      verified = true;
    }
    const container = { ...target.container, certificateFile: file, ...(chuid.written ? { name: pivContainerName(chuid.guid, slot) } : {}) };
    return { container, file, replaced: current !== undefined, unchanged: false, verified, storedBytes: encodeCertificateObject(parsed.der).length, derBytes: parsed.der.length, chuid: { guid: hex(chuid.guid), written: chuid.written } };
  }

  /**
   * Drops cardlink's record of a slot's key, so the slot is free again (unlisted) for the next
   * `gen` or enrollment: plain PIV has no command that deletes a key (800-73-4 Part 2 has none),
   * so this is how an enrollment whose submission failed takes back the key it made. A slot
   * holding a certificate is refused (its key is in use: `rm-cert` first). Management key.
   */
  async forgetKey(nameOrIndex: string | number): Promise<{ container: ContainerInfo }> {
    const snap = await this.readSnapshot(false);
    const { container, state } = await this.find(nameOrIndex, snap);
    if (state.certificate || state.certificateError) {
      throw new CardError('CONTAINER_EXISTS', `slot ${slotName(state.slot)} holds a certificate: its key is in use; remove the certificate first ('cardlink card rm-cert --container ${slotName(state.slot).toLowerCase()}')`, { container: container.name });
    }
    if (snap.record.delete(state.slot)) {
      await this.authenticate();
      await this.writing(() => this.session.putObject(PUBLIC_KEY_RECORD, encodeRecord(snap.record)));
    }
    return { container };
  }

  /** Empties the slot's certificate object (the key and cardlink's record of it stay). Idempotent. */
  async removeCertificate(containerName: string): Promise<{ container: ContainerInfo; file: string | undefined }> {
    const { container, state } = await this.find(containerName, await this.readSnapshot(false));
    if (!state.certificate && !state.certificateError) return { container, file: undefined };
    await this.authenticate();
    await this.writing(() => this.session.deleteCertificate(state.slot));
    return { container: { ...container, certificateFile: undefined }, file: container.certificateFile };
  }

  // ---- check and repair ------------------------------------------------------------------------

  /**
   * What keeps Windows (and cardlink) from using the card as it should: no CHUID, a certificate
   * object that does not parse or decompress, a certificate whose key is not the slot's key (as
   * cardlink recorded it), a key history whose on-card count disagrees with the retired slots
   * that hold certificates (800-73-4 Part 1 §3.3.2: keysWithOnCardCerts).
   */
  async check(): Promise<CheckReport> {
    return this.checkSnapshot(await this.readSnapshot(true));
  }

  private checkSnapshot(snap: PivSnapshot): CheckReport {
    const findings: Finding[] = [];
    if (!snap.chuid) {
      findings.push({
        code: 'CHUID_MISSING',
        severity: 'error',
        message: snap.chuidError ? `the CHUID is damaged (${snap.chuidError})` : "the card has no CHUID: Windows' PIV minidriver has no identity to cache the card under or to name its containers by",
        fix: "write a CHUID with a new GUID (the containers get new names: links made by 'cardlink link' must be redone)",
      });
    }
    for (const s of snap.slots) {
      const name = snap.chuid ? pivContainerName(snap.chuid.guid, s.slot) : `piv-${slotName(s.slot).toLowerCase()}`;
      const file = certificateObjectOf(s.slot).toString(16).toUpperCase();
      if (s.certificateError) {
        findings.push({ code: 'CERT_MALFORMED', severity: 'error', message: `slot ${slotName(s.slot)}: ${s.certificateError}`, fix: "not repaired (cardlink does not guess a certificate): install it again with 'cardlink card install'", container: name, file });
        continue;
      }
      if (!s.certificate) continue;
      let certKey: KeyObject;
      try {
        certKey = parseCertificate(s.certificate.der).publicKey;
      } catch (e) {
        findings.push({ code: 'CERT_MALFORMED', severity: 'error', message: `slot ${slotName(s.slot)}: ${(e as Error).message}`, fix: "not repaired: install the certificate again with 'cardlink card install'", container: name, file });
        continue;
      }
      if (s.recorded && !equalBytes(spkiOf(certKey), s.recorded)) {
        findings.push({
          code: 'CERT_KEY_MISMATCH',
          severity: 'error',
          message: `slot ${slotName(s.slot)}: the certificate's public key is not the slot's key (as recorded when cardlink generated it)`,
          fix: "not repaired: install the certificate issued for this slot's key, or generate a new key and enrol again",
          container: name,
          file,
        });
      }
    }
    const retiredWithCert = snap.slots.filter((s) => RETIRED.includes(s.slot) && (s.certificate || s.certificateError)).length;
    const onCard = snap.keyHistory?.onCard ?? 0;
    if (snap.keyHistoryError || (snap.keyHistory ? onCard !== retiredWithCert : retiredWithCert > 0)) {
      findings.push({
        code: 'KEY_HISTORY_MISMATCH',
        severity: 'warning',
        message: snap.keyHistoryError
          ? `the key history object is damaged (${snap.keyHistoryError})`
          : `the key history says ${onCard} retired key${onCard === 1 ? '' : 's'} with certificates on the card, but ${retiredWithCert} retired slot${retiredWithCert === 1 ? ' holds' : 's hold'} one`,
        fix: `write the key history with ${retiredWithCert} on-card retired key${retiredWithCert === 1 ? '' : 's'}`,
      });
    }
    return { app: 'piv', cardId: snap.chuid ? hex(snap.chuid.guid) : '', findings };
  }

  /** Fixes what is safe to fix (CHUID, key history) with the management key, then checks again. */
  async repair(): Promise<RepairReport> {
    const snap = await this.readSnapshot(true);
    const before = this.checkSnapshot(snap);
    const failures = new Map<string, string>();
    const fixable = before.findings.filter((f) => f.code === 'CHUID_MISSING' || f.code === 'KEY_HISTORY_MISMATCH');
    if (fixable.length > 0) {
      await this.authenticate();
      for (const f of fixable) {
        try {
          if (f.code === 'CHUID_MISSING') {
            await this.writing(() => this.session.putObject(OBJECT.CHUID, newChuid()));
          } else {
            const onCard = snap.slots.filter((s) => RETIRED.includes(s.slot) && (s.certificate || s.certificateError)).length;
            const offCard = Math.min(snap.keyHistory?.offCard ?? 0, 20 - onCard);
            await this.writing(() => this.session.putObject(OBJECT.KEY_HISTORY, encodeKeyHistory({ onCard, offCard, ...(snap.keyHistory?.url !== undefined ? { url: snap.keyHistory.url } : {}) })));
          }
        } catch (e) {
          if (e instanceof CardlinkError && e.code === 'CARD_REMOVED') throw e;
          failures.set(f.code, (e as Error).message);
        }
      }
    }
    const after = this.checkSnapshot(await this.readSnapshot(true));
    for (const f of before.findings) {
      if (f.code !== 'CHUID_MISSING' && f.code !== 'KEY_HISTORY_MISMATCH') {
        f.fixed = false;
        f.failure = 'cardlink does not repair this on a PIV card';
        continue;
      }
      f.fixed = !after.findings.some((g) => sameFinding(f, g));
      if (!f.fixed) f.failure = failures.get(f.code) ?? 'the card still shows it after the write';
    }
    return { before, after };
  }

  // ---- PIN and PUK ---------------------------------------------------------------------------

  async pinStatus(): Promise<PinState> {
    const s = await this.session.pinStatus();
    const triesLeft = s.triesLeft ?? ASSUMED_PIN_TRY_LIMIT;
    return { triesLeft, tryLimit: Math.max(ASSUMED_PIN_TRY_LIMIT, triesLeft) };
  }

  async verifyPin(pin: string): Promise<void> {
    await this.session.verifyPin(pin);
    this.pin = pin;
  }

  changePin(oldPin: string, newPin: string): Promise<void> {
    return this.session.changePin(oldPin, newPin);
  }

  /** RESET RETRY COUNTER: the PUK sets a new PIN (800-73-4 Part 2 §3.2.3). */
  unblockPin(puk: string, newPin: string): Promise<void> {
    return this.session.unblockPin(puk, newPin);
  }

  changePuk(oldPuk: string, newPuk: string): Promise<void> {
    return this.session.changePuk(oldPuk, newPuk);
  }

  async logout(): Promise<void> {
    this.pin = undefined;
    await this.session.logout();
  }

  // ---- data objects (PIV's stand-in for `card files`) -------------------------------------------

  /** The data objects the card holds, with their sizes; PIN-protected ones (printed information, biometrics) are not read. */
  async dataObjects(): Promise<PivDataObject[]> {
    const out: PivDataObject[] = [];
    for (const [tag, name] of OBJECT_NAMES) {
      const value = await this.session.getObject(tag);
      if (value !== undefined && value.length > 0) out.push({ tag: tag.toString(16).toUpperCase(), name, size: value.length });
    }
    return out;
  }
}
