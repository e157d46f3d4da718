import type { KeyObject } from 'node:crypto';
import { SW } from '../../apdu/status.js';
import { CardlinkError } from '../../errors.js';
import { PIN_TRY_LIMIT } from '../protocol/constants.js';
import { conditionFor, conditionMet, OP, type SecurityStatus } from './acl.js';
import { APPLICATION_FCP, CARD_SW, MAX_FILES } from './constants.js';
import { findSimpleTlv, parseSimpleTlvs, readDoHeader } from './tlv.js';

export type LifeCycle = 'creation' | 'operational' | 'terminated';

export interface RsaKey {
  readonly kind: 'rsa';
  readonly privateKey: KeyObject;
  /** Big-endian modulus, exactly bits/8 bytes. */
  readonly modulus: Uint8Array;
  /** Big-endian public exponent without leading zeros (at most 3 bytes). */
  readonly exponent: Uint8Array;
}

/** A 3DES-EDE key (24 bytes): the administrator key of B080. */
export interface SymmetricKey {
  readonly kind: 'symmetric';
  readonly value: Uint8Array;
}

export type KeyMaterial = RsaKey | SymmetricKey;

/** BER-TLV EF (descriptor 39) holding data objects, or key EF (descriptor 18) holding one key. */
export type EfKind = 'bertlv' | 'key';

/**
 * One EF of the application. Records are never changed in place: a change replaces the record in
 * the file list, so a snapshot of the persistent state is a shallow copy.
 */
export interface EfRecord {
  readonly fid: number;
  readonly kind: EfKind;
  /** The FCP exactly as CREATE FILE received it (returned by SELECT with P2=04). */
  readonly fcp: Uint8Array;
  /** False until ACTIVATE FILE: a new EF accepts nothing else. */
  readonly activated: boolean;
  /** BER-TLV EFs: each DO as its raw tag-length-value bytes, in GidsApplet's storage order. */
  readonly dataObjects: readonly Uint8Array[];
  readonly key: KeyMaterial | undefined;
}

/** Everything a power cycle keeps. */
export interface PersistentState {
  lifeCycle: LifeCycle;
  capacityBytes: number;
  /** Takes extended-length APDUs (and says so in the FCI and EF.ATR); GidsApplet does not. */
  extendedLength: boolean;
  /** The user PIN (ASCII as sent), null until CHANGE REFERENCE DATA sets it. */
  pin: Uint8Array | null;
  pinTriesRemaining: number;
  files: EfRecord[];
}

export function snapshotOf(p: PersistentState): PersistentState {
  return { ...p, files: p.files.slice() };
}

export type AdminState = 'none' | 'external-challenge' | 'mutual-challenge' | 'external' | 'mutual';

export interface SecurityEnvironment {
  /** Algorithm reference from MSE (tag 80): RSA size id | usage nibble. */
  readonly alg: number;
  readonly keyFid: number;
}

/** A chained PUT DATA whose DO is not complete yet (the chain keeps INS and P1P2 fixed). */
export interface PutInProgress {
  readonly total: number;
  readonly parts: Uint8Array[];
  received: number;
}

/** Everything a power cycle (or re-selecting the application) forgets. */
export class VolatileState {
  appSelected = false;
  currentEf: number | null = null;
  pinValidated = false;
  admin: AdminState = 'none';
  hostChallenge: Uint8Array | null = null;
  cardChallenge: Uint8Array | null = null;
  /** Key EF chosen by MSE P1=81/C1 for GENERAL AUTHENTICATE. */
  authKeyFid: number | null = null;
  se: SecurityEnvironment | null = null;
  /** The command chain in progress (CLA bit 0x10), as GidsApplet tracks it. */
  chain: { ins: number; p1p2: number } | null = null;
  /** Data of a chained PSO, GENERATE or key import, collected until the last piece. */
  chainData: Uint8Array[] = [];
  chainBytes = 0;
  put: PutInProgress | null = null;
  /** Response bytes waiting for GET RESPONSE. */
  pending: Uint8Array | null = null;
}

/** A status word a command ends with; never escapes GidsCard.process. */
export class CardStatus extends CardlinkError {
  readonly sw: number;
  constructor(sw: number) {
    super('CARD_STATUS', `card status ${sw.toString(16).toUpperCase().padStart(4, '0')}`);
    this.sw = sw;
  }
}

const statuses = new Map<number, CardStatus>();

/**
 * Ends the command with `sw`. Status words are values, not faults: one instance per SW is reused,
 * which spares a stack capture on every refused command (the fuzzer sends millions).
 */
export function fail(sw: number): never {
  let status = statuses.get(sw);
  if (status === undefined) {
    status = new CardStatus(sw);
    statuses.set(sw, status);
  }
  throw status;
}

/** Saving the image failed; the command is undone and answered 6581. */
export class StorageFailure extends CardlinkError {
  constructor(cause: unknown) {
    super('CARD_STORAGE', 'the card image could not be saved', { cause });
  }
}

export function pinTriesStatus(tries: number): number {
  return CARD_SW.PIN_TRIES_LEFT | tries;
}

/** Parsed parts of an FCP that the card consults. */
export interface FcpInfo {
  /** The compact ACL (8C value) or undefined when the file has none (everything allowed). */
  readonly acl: Uint8Array | undefined;
  /** The control reference templates (A5 value) of a key EF. */
  readonly crt: Uint8Array | undefined;
}

/**
 * FID and kind of the file an FCP describes (`62|6F L { 82 <descriptor 39|18 …> 83 <FID> … }`,
 * a key EF also with its A5 templates of 11..127 bytes), or undefined if CREATE FILE must refuse it.
 */
export function parseFcp(fcp: Uint8Array): { fid: number; kind: EfKind } | undefined {
  const outer = parseSimpleTlvs(fcp);
  const template = outer?.length === 1 ? outer[0] : undefined;
  if (template === undefined || (template.tag !== 0x62 && template.tag !== 0x6f)) return undefined;
  if (parseSimpleTlvs(template.value) === undefined) return undefined;
  const fid = findSimpleTlv(template.value, 0x83)?.value;
  const descriptor = findSimpleTlv(template.value, 0x82)?.value;
  if (fid?.length !== 2 || descriptor === undefined || descriptor.length < 1 || descriptor.length > 6) return undefined;
  const id = (fid[0]! << 8) | fid[1]!;
  if (descriptor[0] === 0x39) return { fid: id, kind: 'bertlv' };
  if (descriptor[0] !== 0x18) return undefined;
  // A key EF needs its control reference templates: they say what MSE may select it for.
  const crt = findSimpleTlv(template.value, 0xa5)?.value;
  return crt !== undefined && crt.length >= 11 && crt.length <= 127 ? { fid: id, kind: 'key' } : undefined;
}

/** Is `raw` exactly one data object (tag, length, value) the card can store? */
export function isDataObject(raw: Uint8Array): boolean {
  const h = readDoHeader(raw);
  return h !== undefined && h.headerLength + h.valueLength === raw.length;
}

const fcpCache = new WeakMap<Uint8Array, FcpInfo>();

export function fcpInfo(fcp: Uint8Array): FcpInfo {
  let info = fcpCache.get(fcp);
  if (info === undefined) {
    const outer = findSimpleTlv(fcp, fcp[0] ?? 0);
    const inner = outer?.value ?? new Uint8Array(0);
    info = { acl: findSimpleTlv(inner, 0x8c)?.value, crt: findSimpleTlv(inner, 0xa5)?.value };
    fcpCache.set(fcp, info);
  }
  return info;
}

/** What a key costs in EEPROM: the CRT components of an RSA key are about 5 moduli. */
function keyCost(key: KeyMaterial | undefined): number {
  if (key === undefined) return 0;
  return key.kind === 'rsa' ? key.modulus.length * 5 + 8 : key.value.length + 8;
}

const FILE_OVERHEAD = 32;
const DO_OVERHEAD = 4;

export function fileCost(f: EfRecord): number {
  return FILE_OVERHEAD + f.fcp.length + f.dataObjects.reduce((n, d) => n + d.length + DO_OVERHEAD, 0) + keyCost(f.key);
}

/**
 * The card as command handlers see it: persistent state (changed only through the methods here,
 * which mark it for saving), volatile state, and the access checks.
 */
export class CardContext {
  v = new VolatileState();
  private dirty = false;
  private baseline: PersistentState;

  constructor(
    public p: PersistentState,
    private readonly persist: () => void,
  ) {
    this.baseline = snapshotOf(p);
  }

  get initMode(): boolean {
    return this.p.lifeCycle === 'creation';
  }

  get status(): SecurityStatus {
    const init = this.initMode;
    return {
      user: init || this.v.pinValidated,
      admin: init || this.v.admin === 'external' || this.v.admin === 'mutual',
    };
  }

  findEf(fid: number): EfRecord | undefined {
    return this.p.files.find((f) => f.fid === fid);
  }

  /** The key EF B0kk (GidsApplet's findKeyCRT): a BER-TLV EF with that FID does not count. */
  findKeyEf(keyRef: number): EfRecord | undefined {
    const f = this.findEf(0xb000 | keyRef);
    return f?.kind === 'key' ? f : undefined;
  }

  currentEf(): EfRecord | undefined {
    return this.v.currentEf === null ? undefined : this.findEf(this.v.currentEf);
  }

  /** Access check on the application DF (File.CheckPermission): creation mode allows everything. */
  checkApplication(op: number): void {
    if (this.p.lifeCycle === 'terminated') fail(SW.WARN_TERMINATED);
    if (this.initMode) return;
    const sc = conditionFor(fcpInfo(APPLICATION_FCP).acl ?? new Uint8Array(0), op);
    if (sc !== undefined && !conditionMet(sc, this.status)) fail(SW.SECURITY_STATUS_NOT_SATISFIED);
  }

  /** Access check on an EF: a new EF accepts only ACTIVATE (6985), then its 8C rule applies. */
  checkEf(f: EfRecord, op: number): void {
    if (!f.activated && op !== OP.EF_ACTIVATE) fail(SW.CONDITIONS_NOT_SATISFIED);
    const acl = fcpInfo(f.fcp).acl;
    if (acl === undefined) return;
    const sc = conditionFor(acl, op);
    if (sc !== undefined && !conditionMet(sc, this.status)) fail(SW.SECURITY_STATUS_NOT_SATISFIED);
  }

  /** Logs the user and the administrator out and forgets what was set up under their rights. */
  deauthenticateAll(): void {
    this.v.pinValidated = false;
    this.clearAdminChallenge();
    this.v.authKeyFid = null;
    this.v.se = null;
  }

  /** Ends any administrator authentication, finished or half-way. */
  clearAdminChallenge(): void {
    this.v.admin = 'none';
    this.v.hostChallenge = null;
    this.v.cardChallenge = null;
  }

  usedBytes(): number {
    return this.p.files.reduce((n, f) => n + fileCost(f), 0);
  }

  /** 6A84 unless replacing `before` (if any) by `after` fits in the chip's capacity. */
  ensureRoom(before: EfRecord | undefined, after: EfRecord): void {
    const used = this.usedBytes() - (before === undefined ? 0 : fileCost(before)) + fileCost(after);
    if (used > this.p.capacityBytes) fail(SW.NOT_ENOUGH_MEMORY);
  }

  /** Adds `f` or replaces the file with the same FID (keeping its place in the DF). */
  putFile(f: EfRecord): void {
    const i = this.p.files.findIndex((x) => x.fid === f.fid);
    if (i >= 0) this.p.files[i] = f;
    else {
      if (this.p.files.length >= MAX_FILES) fail(SW.NOT_ENOUGH_MEMORY);
      this.p.files.push(f);
    }
    this.dirty = true;
  }

  /** Removes a file the way GidsApplet does: the last child moves into the freed slot. */
  removeFile(fid: number): void {
    const i = this.p.files.findIndex((x) => x.fid === fid);
    if (i < 0) return;
    const last = this.p.files.pop()!;
    if (i < this.p.files.length) this.p.files[i] = last;
    this.dirty = true;
  }

  setLifeCycle(lc: LifeCycle): void {
    if (this.p.lifeCycle === lc) return;
    this.p.lifeCycle = lc;
    this.dirty = true;
  }

  setPin(pin: Uint8Array): void {
    this.p.pin = pin.slice();
    this.p.pinTriesRemaining = PIN_TRY_LIMIT;
    this.dirty = true;
  }

  setPinTries(tries: number): void {
    if (this.p.pinTriesRemaining === tries) return;
    this.p.pinTriesRemaining = tries;
    this.dirty = true;
  }

  /**
   * Saves the state if a command changed it. Called at the end of every command, and in the middle
   * of a PIN check so that the lowered try counter is stored before the comparison is made.
   */
  commit(): void {
    if (!this.dirty) return;
    this.dirty = false;
    try {
      this.persist();
    } catch (cause) {
      throw new StorageFailure(cause);
    }
    this.baseline = snapshotOf(this.p);
  }

  /** Undoes every change since the last successful commit. */
  rollback(): void {
    this.p = snapshotOf(this.baseline);
    this.dirty = false;
  }
}
