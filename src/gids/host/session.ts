import { createCipheriv, createDecipheriv, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { ApduChannel, type ExtendedLength } from '../../apdu/channel.js';
import { LE_ALL, type CommandApdu } from '../../apdu/command.js';
import { ApduError, SW } from '../../apdu/status.js';
import { concat, equalBytes } from '../../bytes.js';
import {
  INITIAL_MASTER_FILE_TABLE,
  parseKeyMap,
  parseMasterFileTable,
  serializeCardApps,
  serializeKeyMap,
  serializeMasterFileTable,
  type KeyMapRecord,
  type MasterFileRecord,
} from '../../minidriver/index.js';
import type { Transport } from '../../transport/transport.js';
import {
  ADMIN_KEY_FID,
  ADMIN_KEY_REF,
  DO,
  EF,
  EF_ACL,
  FID_APPLICATION,
  FIRST_FILE_DO,
  GIDS_AID,
  GIDS_AID_PARTIAL,
  INS,
  PIN_MAX_LENGTH,
  PIN_MIN_LENGTH,
  PIN_REF_DEAUTH_ALL,
  PIN_REF_USER,
  USAGE,
  keyFid,
} from '../protocol/constants.js';
import { extendedLengthFromFci } from '../protocol/extended-length.js';
import { encodeTlv, findTlv, parseTlvs, readTlv } from '../protocol/tlv.js';
import { AdminAuthError, GidsError, PinError } from './errors.js';

export type GidsVersion = 'v1' | 'v2' | 'generic';
export type KeyUsage = 'exchange' | 'signature';

export interface PinStatus {
  triesLeft: number;
  tryLimit: number;
}

export interface InitializeOptions {
  pin: string;
  /** 24-byte 3DES administrator key. */
  adminKey: Uint8Array;
  /** 16-byte cardid; all zero or absent means random, as gids-tool does. */
  serial?: Uint8Array;
}

/** Where a logical file lives on a GIDS card. */
export interface FileLocation {
  efid: number;
  doTag: number;
}

/**
 * One session with a GIDS card over a transport: the host driver. It speaks GIDS (data objects,
 * key files, PIN and admin authentication) and knows the master file table that maps minidriver
 * file names to data objects. It does not decide policy: which counters to move, and when, is the
 * card layer's business.
 */
export class GidsSession {
  readonly channel: ApduChannel;
  private table: MasterFileRecord[] | undefined;
  /** The table in use came from a cache (adoptMasterTable), not from this card in this transaction. */
  private tableFromCache = false;
  private depth = 0;

  /**
   * `extendedLength`: what an earlier SELECT on the same card learned (a second session on one
   * connection need not select again to use it).
   */
  constructor(
    readonly transport: Transport,
    options: { extendedLength?: ExtendedLength | undefined } = {},
  ) {
    this.channel = new ApduChannel(transport);
    this.channel.useExtendedLength(options.extendedLength);
  }

  /**
   * Selects the GIDS application by its partial AID, as OpenSC does; returns the profile version.
   * A card whose FCI announces extended lengths (7F66, gids/protocol/extended-length.ts) gets
   * extended-length APDUs from then on; any other card short APDUs and command chaining.
   */
  async select(): Promise<GidsVersion> {
    const r = await this.channel.send({ cla: 0, ins: INS.SELECT, p1: 0x04, p2: 0x00, data: GIDS_AID_PARTIAL, le: 256 });
    if (r.sw !== SW.OK) throw new GidsError('NOT_GIDS', `${this.transport.name}: no GIDS application (SELECT answered ${r.sw.toString(16)})`);
    this.table = undefined;
    this.channel.useExtendedLength(extendedLengthFromFci(r.data));
    try {
      const fci = findTlv(parseTlvs(r.data), 0x61);
      const aid = fci ? findTlv(parseTlvs(fci.value), 0x4f)?.value : undefined;
      if (aid && aid.length >= 10 && equalBytes(aid.subarray(0, 9), GIDS_AID.subarray(0, 9))) {
        if (aid[9] === 0x01) return 'v1';
        if (aid[9] === 0x02) return 'v2';
      }
    } catch {
      // A card that answers 9000 with no parseable FCI is still a GIDS card for OpenSC: "generic".
    }
    return 'generic';
  }

  // ---- data objects -------------------------------------------------------------------------

  /**
   * GET DATA of one DO; undefined when the card says it does not exist. `le`: the most bytes
   * expected (a short Le for small DOs keeps their APDU short on an extended-length card).
   */
  async getData(efid: number, doTag: number, le = LE_ALL): Promise<Uint8Array | undefined> {
    const r = await this.channel.send({ ...getDataCommand(efid, doTag), le });
    if (r.sw === SW.REFERENCED_DATA_NOT_FOUND || r.sw === SW.FILE_NOT_FOUND) return undefined;
    if (r.sw !== SW.OK) throw new ApduError(r.sw, `GET DATA ${hex4(efid)}/${hex4(doTag)}`);
    if (r.data.length === 0) return undefined;
    const { tlv, next } = readTlv(r.data, 0);
    if (tlv.tag !== doTag || next !== r.data.length) {
      throw new GidsError('BAD_RESPONSE', `GET DATA ${hex4(efid)}/${hex4(doTag)}: card returned tag ${hex4(tlv.tag)}`);
    }
    return tlv.value.slice();
  }

  /** PUT DATA of one DO (chained when it does not fit one short APDU). */
  async putData(efid: number, doTag: number, value: Uint8Array): Promise<void> {
    await this.channel.sendOk(
      { cla: 0, ins: INS.PUT_DATA, p1: efid >> 8, p2: efid & 0xff, data: encodeTlv(doTag, value) },
      `PUT DATA ${hex4(efid)}/${hex4(doTag)}`,
    );
  }

  // ---- logical files through the master file table -------------------------------------------

  /**
   * Runs `fn` as one card transaction: the master file table is read from the card at most once
   * inside it and kept in step with our own writes. Outside a transaction every lookup reads the
   * table afresh, as OpenSC does before every change: a table remembered from an earlier
   * operation may miss a file someone else created since, and writing it back would lose that file.
   */
  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    if (this.depth++ === 0) this.invalidate();
    try {
      return await fn();
    } finally {
      if (--this.depth === 0) this.invalidate();
    }
  }

  /** The master file table: fresh from the card, or as already read in this transaction. */
  async masterTable(refresh = false): Promise<MasterFileRecord[]> {
    if (this.table && !refresh && this.depth > 0) return this.table;
    const raw = await this.getData(EF.UserCreateDeleteDirAc, DO.MASTER_FILE_TABLE);
    if (!raw) throw new GidsError('NO_MASTER_TABLE', `${this.transport.name}: the card has no master file table (not initialised)`);
    this.table = parseMasterFileTable(raw);
    this.tableFromCache = false;
    return this.table;
  }

  /**
   * Uses, for the current transaction, a table the caller knows to be current (from a
   * cardcf-validated cache) to find files. Before the table is written back (a file created or
   * deleted) it is read from the card all the same: a writer that does not move cardcf (the seed's
   * loader) may have added a file since, and writing a remembered table would lose it.
   */
  adoptMasterTable(table: MasterFileRecord[]): void {
    this.table = table;
    this.tableFromCache = true;
  }

  /** True while the table in use is one adopted from a cache rather than read from the card. */
  get tableIsFromCache(): boolean {
    return this.table !== undefined && this.tableFromCache;
  }

  /** Forgets the cached master file table (another writer may have changed it). */
  invalidate(): void {
    this.table = undefined;
    this.tableFromCache = false;
  }

  /** The table to write back from: read from the card unless this transaction already did. */
  private tableToChange(): Promise<MasterFileRecord[]> {
    return this.masterTable(this.tableFromCache);
  }

  async locate(directory: string, filename: string): Promise<FileLocation | undefined> {
    const rec = findRecord(await this.masterTable(), directory, filename);
    return rec ? { efid: rec.efid, doTag: rec.doTag } : undefined;
  }

  async readFile(directory: string, filename: string): Promise<Uint8Array | undefined> {
    const loc = await this.locate(directory, filename);
    if (!loc) return undefined;
    return this.getData(loc.efid, loc.doTag);
  }

  async writeFile(directory: string, filename: string, data: Uint8Array): Promise<void> {
    const loc = await this.locate(directory, filename);
    if (!loc) throw new GidsError('FILE_NOT_IN_TABLE', `${pathOf(directory, filename)}: no such file on the card`);
    await this.putData(loc.efid, loc.doTag, data);
  }

  /**
   * Creates a file: the first free DO from DF21 in EF A010, a new table record, then the content.
   * The table is written before the content so that an interruption leaves at worst an empty file
   * that the table names, never content no table points to.
   */
  async createFile(directory: string, filename: string, data: Uint8Array): Promise<FileLocation> {
    const table = await this.tableToChange();
    if (findRecord(table, directory, filename)) {
      throw new GidsError('FILE_EXISTS', `${pathOf(directory, filename)}: already exists`);
    }
    if (directory !== '' && !findRecord(table, directory, '')) {
      throw new GidsError('DIR_NOT_FOUND', `${directory}: no such directory on the card`);
    }
    const used = new Set(table.filter((r) => r.efid === EF.EveryoneReadUserWriteAc).map((r) => r.doTag));
    let doTag = FIRST_FILE_DO;
    while (used.has(doTag)) doTag++;
    if (doTag > 0xdfff) throw new GidsError('NO_FREE_DATA_OBJECT', 'no free data object for a new file');
    const next = [...table, { directory, filename, doTag, efid: EF.EveryoneReadUserWriteAc }];
    await this.putData(EF.UserCreateDeleteDirAc, DO.MASTER_FILE_TABLE, serializeMasterFileTable(next));
    this.table = next;
    await this.putData(EF.EveryoneReadUserWriteAc, doTag, data);
    return { efid: EF.EveryoneReadUserWriteAc, doTag };
  }

  /**
   * Deletes a file: empties its DO (twice: GIDS cards keep an empty DO after the first empty PUT),
   * then removes the table record.
   */
  async deleteFile(directory: string, filename: string): Promise<void> {
    const table = await this.tableToChange();
    const rec = findRecord(table, directory, filename);
    if (!rec) throw new GidsError('FILE_NOT_IN_TABLE', `${pathOf(directory, filename)}: no such file on the card`);
    await this.putData(rec.efid, rec.doTag, new Uint8Array(0));
    const next = table.filter((r) => r !== rec);
    await this.putData(EF.UserCreateDeleteDirAc, DO.MASTER_FILE_TABLE, serializeMasterFileTable(next));
    this.table = next;
    const r = await this.channel.send({ cla: 0, ins: INS.PUT_DATA, p1: rec.efid >> 8, p2: rec.efid & 0xff, data: encodeTlv(rec.doTag, new Uint8Array(0)) });
    if (r.sw !== SW.OK && r.sw !== SW.REFERENCED_DATA_NOT_FOUND) throw new ApduError(r.sw, `PUT DATA ${hex4(rec.efid)}/${hex4(rec.doTag)}`);
  }

  // ---- key map -------------------------------------------------------------------------------

  async keyMap(): Promise<KeyMapRecord[]> {
    const raw = await this.getData(EF.UserCreateDeleteDirAc, DO.KEY_MAP);
    return raw ? parseKeyMap(raw) : [];
  }

  async putKeyMap(records: KeyMapRecord[]): Promise<void> {
    await this.putData(EF.UserCreateDeleteDirAc, DO.KEY_MAP, serializeKeyMap(records));
  }

  // ---- PIN -----------------------------------------------------------------------------------

  async pinStatus(): Promise<PinStatus> {
    const value = await this.getData(FID_APPLICATION, DO.PIN_STATUS);
    if (!value) throw new GidsError('BAD_RESPONSE', 'the card has no PIN status object');
    const tlvs = parseTlvs(value);
    const tries = findTlv(tlvs, 0x97) ?? findTlv(tlvs, 0x9f17);
    const limit = findTlv(tlvs, 0x93);
    if (!tries || tries.value.length !== 1) throw new GidsError('BAD_RESPONSE', 'PIN status without a tries-left counter');
    return { triesLeft: tries.value[0]!, tryLimit: limit?.value[0] ?? tries.value[0]! };
  }

  async verifyPin(pin: string): Promise<void> {
    const data = pinBytes(pin);
    const r = await this.channel.send({ cla: 0, ins: INS.VERIFY, p1: 0, p2: PIN_REF_USER, data });
    data.fill(0);
    throwPinStatus(r.sw, 'VERIFY');
  }

  /** Changes the PIN (the card splits old‖new at the current PIN's length). */
  async changePin(oldPin: string, newPin: string): Promise<void> {
    const data = concat(pinBytes(oldPin), pinBytes(newPin));
    const r = await this.channel.send({ cla: 0, ins: INS.CHANGE_REFERENCE_DATA, p1: 0, p2: PIN_REF_USER, data });
    data.fill(0);
    throwPinStatus(r.sw, 'CHANGE REFERENCE DATA');
  }

  /** Sets a new PIN and clears the retry counter; needs a prior authenticateAdmin(). */
  async unblockPin(newPin: string): Promise<void> {
    const data = pinBytes(newPin);
    const r = await this.channel.send({ cla: 0, ins: INS.RESET_RETRY_COUNTER, p1: 0x02, p2: PIN_REF_USER, data });
    data.fill(0);
    if (r.sw !== SW.OK) throw new ApduError(r.sw, 'RESET RETRY COUNTER');
  }

  /** Drops PIN and administrator authentication. */
  async logout(): Promise<void> {
    await this.channel.sendOk({ cla: 0, ins: INS.VERIFY, p1: 0, p2: PIN_REF_DEAUTH_ALL }, 'VERIFY (logout)');
  }

  // ---- administrator -------------------------------------------------------------------------

  /** GIDS mutual authentication with the 3DES administrator key (CBC, zero IV, as OpenSC and GidsApplet). */
  async authenticateAdmin(adminKey: Uint8Array): Promise<void> {
    if (adminKey.length !== 24) throw new GidsError('BAD_ADMIN_KEY', 'the administrator key must be 24 bytes (48 hex digits)');
    await this.channel.sendOk({ cla: 0, ins: INS.MSE, p1: 0xc1, p2: 0xa4, data: new Uint8Array([0x83, 0x01, ADMIN_KEY_REF]) }, 'MSE (admin)');
    const r1 = randomBytes(16);
    const step1 = await this.channel.sendOk(
      { cla: 0, ins: INS.GENERAL_AUTHENTICATE, p1: 0, p2: 0, data: encodeTlv(0x7c, encodeTlv(0x81, r1)), le: 256 },
      'GENERAL AUTHENTICATE (challenge)',
    );
    const r2 = dynamicAuthItem(step1, 0x81, 16);
    const z1 = concat(randomBytes(7), new Uint8Array([0x80]));
    const cryptogram = tdesCbc(adminKey, concat(r2, r1, z1), true);
    const r = await this.channel.send({
      cla: 0,
      ins: INS.GENERAL_AUTHENTICATE,
      p1: 0,
      p2: 0,
      data: encodeTlv(0x7c, encodeTlv(0x82, cryptogram)),
      le: 256,
    });
    if (r.sw === SW.SECURITY_STATUS_NOT_SATISFIED) throw new GidsError('ADMIN_AUTH_FAILED', 'the card refused the administrator key');
    if (r.sw !== SW.OK) throw new ApduError(r.sw, 'GENERAL AUTHENTICATE (response)');
    const plain = tdesCbc(adminKey, dynamicAuthItem(r.data, 0x82, 40), false);
    if (!equalBytes(plain.subarray(0, 16), r1) || !equalBytes(plain.subarray(16, 32), r2) || plain[39] !== 0x80) {
      throw new GidsError('CARD_AUTH_FAILED', 'the card did not prove knowledge of the administrator key');
    }
  }

  /**
   * Asks the card for an administrator challenge (GIDS external authentication): MSE SET with
   * P1 81 (ISO 7816-4: external authentication) on the admin key, then GENERAL AUTHENTICATE with
   * an empty `81`; the card answers `7C 0A 81 08 <8 random bytes>` and keeps them for one answer.
   * What Windows' CardGetChallenge returns.
   */
  async adminChallenge(): Promise<Uint8Array> {
    await this.channel.sendOk({ cla: 0, ins: INS.MSE, p1: 0x81, p2: 0xa4, data: new Uint8Array([0x83, 0x01, ADMIN_KEY_REF]) }, 'MSE (admin, external)');
    const r = await this.channel.sendOk(
      { cla: 0, ins: INS.GENERAL_AUTHENTICATE, p1: 0, p2: 0, data: encodeTlv(0x7c, encodeTlv(0x81, new Uint8Array(0))), le: 256 },
      'GENERAL AUTHENTICATE (get challenge)',
    );
    return dynamicAuthItem(r, 0x81, 8).slice();
  }

  /**
   * Answers the outstanding administrator challenge with `7C 0A 82 08 <response>` (what Windows'
   * CardAuthenticateChallenge sends). The card forgets the challenge after one answer, right or
   * wrong: a refused or replayed response needs a new challenge.
   */
  async answerAdminChallenge(response: Uint8Array): Promise<void> {
    if (response.length !== 8) throw new GidsError('BAD_ADMIN_RESPONSE', 'an administrator response has 8 bytes (16 hex digits)');
    const r = await this.channel.send({ cla: 0, ins: INS.GENERAL_AUTHENTICATE, p1: 0, p2: 0, data: encodeTlv(0x7c, encodeTlv(0x82, response)) });
    if (r.sw === SW.OK) return;
    if ((r.sw & 0xfff0) === 0x63c0) {
      const left = r.sw & 0x0f;
      throw new AdminAuthError('ADMIN_RESPONSE_REFUSED', `the card refused the response; ${left} administrator ${left === 1 ? 'try' : 'tries'} left`, left);
    }
    if (r.sw === SW.AUTH_METHOD_BLOCKED) throw new AdminAuthError('ADMIN_BLOCKED', 'the administrator key of this card is blocked', 0);
    if (r.sw === SW.SECURITY_STATUS_NOT_SATISFIED) {
      throw new AdminAuthError('ADMIN_RESPONSE_REFUSED', 'the card refused the response (wrong response, or one made for another challenge or card); this card does not count failed administrator attempts', null);
    }
    if (r.sw === SW.CONDITIONS_NOT_SATISFIED) {
      throw new AdminAuthError('ADMIN_CHALLENGE_USED', 'the card has no challenge waiting for this response (a challenge is answered once): ask for a new challenge', null);
    }
    throw new ApduError(r.sw, 'GENERAL AUTHENTICATE (response)');
  }

  // ---- initialisation ------------------------------------------------------------------------

  /** Turns a factory-fresh card into an operational one, with the APDUs `gids-tool --initialize` sends. */
  async initialize(options: InitializeOptions): Promise<Uint8Array> {
    if (options.adminKey.length !== 24) throw new GidsError('BAD_ADMIN_KEY', 'the administrator key must be 24 bytes');
    await this.channel.sendOk({ cla: 0, ins: INS.SELECT, p1: 0x04, p2: 0x0c, data: GIDS_AID_PARTIAL }, 'SELECT GIDS');
    const probe = await this.channel.send(getDataCommand(EF.UserCreateDeleteDirAc, DO.MASTER_FILE_TABLE));
    if (probe.sw === SW.OK) throw new GidsError('ALREADY_INITIALIZED', `${this.transport.name}: the card is already initialised`);
    const pin = pinBytes(options.pin);
    await this.channel.sendOk({ cla: 0, ins: INS.CHANGE_REFERENCE_DATA, p1: 0x01, p2: PIN_REF_USER, data: pin }, 'set PIN');
    pin.fill(0);
    for (const { efid, put, get } of EF_ACL) {
      const fcp = encodeTlv(0x62, new Uint8Array([0x82, 0x01, 0x39]), encodeTlv(0x83, new Uint8Array([efid >> 8, efid & 0xff])), new Uint8Array([0x8c, 0x03, 0x03, put, get]));
      await this.channel.sendOk({ cla: 0, ins: INS.CREATE_FILE, p1: 0, p2: 0, data: fcp }, `CREATE FILE ${hex4(efid)}`);
      await this.activate();
    }
    await this.channel.sendOk({ cla: 0, ins: INS.CREATE_FILE, p1: 0, p2: 0, data: ADMIN_KEY_FCP }, 'CREATE FILE B080');
    await this.activate();
    await this.putAdminKey(options.adminKey);
    await this.putData(EF.UserCreateDeleteDirAc, DO.MASTER_FILE_TABLE, serializeMasterFileTable(INITIAL_MASTER_FILE_TABLE));
    await this.putData(EF.EveryoneReadUserWriteAc, DO.CARDAPPS, serializeCardApps(['mscp']));
    await this.putData(EF.EveryoneReadUserWriteAc, DO.CARDCF, new Uint8Array(6));
    await this.putData(EF.EveryoneReadUserWriteAc, DO.CMAPFILE, new Uint8Array(0));
    const serial = options.serial && options.serial.some((b) => b !== 0) ? options.serial : randomBytes(16);
    if (serial.length !== 16) throw new GidsError('BAD_SERIAL', 'the serial (cardid) must be 16 bytes');
    await this.putData(EF.EveryoneReadAdminWriteAc, DO.CARDID, serial);
    await this.channel.sendOk({ cla: 0, ins: INS.SELECT, p1: 0x00, p2: 0x0c, data: new Uint8Array([0x3f, 0xff]) }, 'SELECT 3FFF');
    await this.activate();
    this.table = [...INITIAL_MASTER_FILE_TABLE];
    return new Uint8Array(serial);
  }

  /** Replaces the administrator key (needs admin authentication on an operational card). */
  async putAdminKey(adminKey: Uint8Array): Promise<void> {
    const data = encodeTlv(0x70, new Uint8Array([0x84, 0x01, ADMIN_KEY_REF]), encodeTlv(0xa5, encodeTlv(0x87, adminKey), new Uint8Array([0x88, 0x03, 0xb0, 0x73, 0xdc])));
    await this.channel.sendOk({ cla: 0, ins: INS.PUT_DATA, p1: 0x3f, p2: 0xff, data }, 'PUT DATA (admin key)');
    data.fill(0);
  }

  // ---- keys ----------------------------------------------------------------------------------

  /**
   * Creates and activates the key EF for `keyRef` with the CRT templates OpenSC writes: a key
   * exchange key may sign and decipher, a signature key only sign.
   */
  async createKeyFile(keyRef: number, algId: number, usage: KeyUsage): Promise<void> {
    const fid = keyFid(keyRef);
    const crt = (tag: number, alg: number, ref: number): Uint8Array =>
      encodeTlv(tag, new Uint8Array([0x80, 0x01, alg, 0x83, 0x01, ref, 0x95, 0x01, 0x40]));
    // OpenSC writes 83 01 83 in signature-only templates whatever the key; we write the real reference.
    const templates =
      usage === 'exchange'
        ? [
            crt(0xb8, algId | USAGE.DECIPHER_RAW, keyRef),
            crt(0xb8, algId | USAGE.DECIPHER_OAEP, keyRef),
            crt(0xb8, algId | USAGE.DECIPHER_PKCS1, keyRef),
            crt(0xb6, algId | USAGE.SIGN_RAW, keyRef),
            crt(0xb6, algId | USAGE.SIGN_PKCS1, keyRef),
          ]
        : [crt(0xb6, algId | USAGE.SIGN_RAW, keyRef), crt(0xb6, algId | USAGE.SIGN_PKCS1, keyRef)];
    const fcp = encodeTlv(
      0x62,
      new Uint8Array([0x82, 0x01, 0x18]),
      encodeTlv(0x83, new Uint8Array([fid >> 8, fid & 0xff])),
      new Uint8Array([0x8c, 0x05, 0x8f, 0x10, 0x10, 0x10, 0x00]),
      encodeTlv(0xa5, ...templates),
    );
    await this.channel.sendOk({ cla: 0, ins: INS.CREATE_FILE, p1: 0, p2: 0, data: fcp }, `CREATE FILE ${hex4(fid)}`);
    await this.activate();
  }

  /** Deletes a key EF (the key is gone for good). */
  async deleteKeyFile(keyRef: number): Promise<void> {
    const fid = keyFid(keyRef);
    await this.channel.sendOk({ cla: 0, ins: INS.SELECT, p1: 0, p2: 0x0c, data: new Uint8Array([fid >> 8, fid & 0xff]) }, `SELECT ${hex4(fid)}`);
    const r = await this.channel.send({ cla: 0, ins: INS.DELETE_FILE, p1: 0, p2: 0 });
    if (r.sw === SW.OK) return;
    // A key EF created but never activated (an interrupted creation) accepts only ACTIVATE.
    if (r.sw !== SW.CONDITIONS_NOT_SATISFIED) throw new ApduError(r.sw, `DELETE FILE ${hex4(fid)}`);
    await this.activate();
    await this.channel.sendOk({ cla: 0, ins: INS.DELETE_FILE, p1: 0, p2: 0 }, `DELETE FILE ${hex4(fid)}`);
  }

  /** Generates an RSA key pair in the key EF; returns its public key. */
  async generateKey(keyRef: number, algId: number): Promise<KeyObject> {
    const crt = encodeTlv(0xac, new Uint8Array([0x80, 0x01, algId, 0x83, 0x01, keyRef]));
    const r = await this.channel.send({ cla: 0, ins: INS.GENERATE_ASYMMETRIC_KEY_PAIR, p1: 0, p2: 0, data: crt });
    if (r.sw !== SW.OK) throw new ApduError(r.sw, `GENERATE ASYMMETRIC KEY PAIR ${hex2(keyRef)}`);
    if (r.data.length > 0 && r.data[0] === 0x7f && r.data[1] === 0x49) return rsaPublicKeyFromTemplate(r.data);
    return this.publicKey(keyRef);
  }

  async publicKey(keyRef: number): Promise<KeyObject> {
    const data = await this.channel.sendOk(
      { cla: 0, ins: INS.GET_DATA, p1: 0x3f, p2: 0xff, data: new Uint8Array([0x70, 0x08, 0x84, 0x01, keyRef, 0xa5, 0x03, 0x7f, 0x49, 0x80]), le: LE_ALL },
      `read public key ${hex2(keyRef)}`,
    );
    return rsaPublicKeyFromTemplate(data);
  }

  /**
   * Signs with the card doing PKCS#1 v1.5 type-1 padding (`input` is a DigestInfo), or raw when
   * `raw` (input is the full padded block).
   */
  async sign(keyRef: number, algId: number, input: Uint8Array, raw = false): Promise<Uint8Array> {
    const alg = algId | (raw ? USAGE.SIGN_RAW : USAGE.SIGN_PKCS1);
    await this.mse(0xb6, alg, keyRef);
    return this.channel.sendOk({ cla: 0, ins: INS.PSO, p1: 0x9e, p2: 0x9a, data: input, le: LE_ALL }, `PSO COMPUTE DIGITAL SIGNATURE ${hex2(keyRef)}`);
  }

  /** Deciphers a PKCS#1 v1.5 (default) or OAEP cryptogram; the card strips the padding. */
  async decipher(keyRef: number, algId: number, cryptogram: Uint8Array, padding: 'pkcs1' | 'oaep' | 'raw' = 'pkcs1'): Promise<Uint8Array> {
    const usage = padding === 'pkcs1' ? USAGE.DECIPHER_PKCS1 : padding === 'oaep' ? USAGE.DECIPHER_OAEP : USAGE.DECIPHER_RAW;
    await this.mse(0xb8, algId | usage, keyRef);
    // No padding-indicator byte: Microsoft's cards and GidsApplet reject it.
    return this.channel.sendOk({ cla: 0, ins: INS.PSO, p1: 0x80, p2: 0x86, data: cryptogram, le: LE_ALL }, `PSO DECIPHER ${hex2(keyRef)}`);
  }

  private async mse(template: number, alg: number, keyRef: number): Promise<void> {
    await this.channel.sendOk(
      { cla: 0, ins: INS.MSE, p1: 0x41, p2: template, data: new Uint8Array([0x80, 0x01, alg, 0x84, 0x01, keyRef]) },
      `MSE SET ${hex2(template)} key ${hex2(keyRef)}`,
    );
  }

  private async activate(): Promise<void> {
    await this.channel.sendOk({ cla: 0, ins: INS.ACTIVATE_FILE, p1: 0, p2: 0 }, 'ACTIVATE FILE');
  }
}

const ADMIN_KEY_FCP = new Uint8Array([
  0x62, 0x1a, 0x82, 0x01, 0x18, 0x83, 0x02, ADMIN_KEY_FID >> 8, ADMIN_KEY_FID & 0xff, 0x8c, 0x04, 0x87, 0x00, 0x20, 0xff,
  0xa5, 0x0b, 0xa4, 0x09, 0x80, 0x01, 0x02, 0x83, 0x01, 0x80, 0x95, 0x01, 0xc0,
]);

function getDataCommand(efid: number, doTag: number): CommandApdu {
  return { cla: 0, ins: INS.GET_DATA, p1: efid >> 8, p2: efid & 0xff, data: new Uint8Array([0x5c, 0x02, doTag >> 8, doTag & 0xff]), le: LE_ALL };
}

function pinBytes(pin: string): Uint8Array {
  const b = new Uint8Array(Buffer.from(pin, 'utf8'));
  if (b.length < PIN_MIN_LENGTH || b.length > PIN_MAX_LENGTH) {
    b.fill(0);
    throw new PinError('PIN_FORMAT', `a PIN has ${PIN_MIN_LENGTH} to ${PIN_MAX_LENGTH} characters`, -1);
  }
  return b;
}

function throwPinStatus(sw: number, what: string): void {
  if (sw === SW.OK) return;
  if ((sw & 0xfff0) === 0x63c0) {
    const left = sw & 0x0f;
    if (left === 0) throw new PinError('PIN_BLOCKED', 'wrong PIN; the PIN is now blocked (unblock it with the administrator key)', 0);
    throw new PinError('PIN_INCORRECT', `wrong PIN, ${left} ${left === 1 ? 'try' : 'tries'} left`, left);
  }
  if (sw === SW.AUTH_METHOD_BLOCKED) throw new PinError('PIN_BLOCKED', 'the PIN is blocked (unblock it with the administrator key)', 0);
  throw new ApduError(sw, what);
}

function dynamicAuthItem(data: Uint8Array, tag: number, length: number): Uint8Array {
  const outer = findTlv(parseTlvs(data), 0x7c);
  const item = outer ? findTlv(parseTlvs(outer.value), tag) : undefined;
  if (!item || item.value.length !== length) throw new GidsError('BAD_RESPONSE', `GENERAL AUTHENTICATE: no ${length}-byte item ${hex2(tag)} in the answer`);
  return item.value;
}

function tdesCbc(key: Uint8Array, data: Uint8Array, encrypt: boolean): Uint8Array {
  const iv = Buffer.alloc(8);
  const c = encrypt ? createCipheriv('des-ede3-cbc', key, iv) : createDecipheriv('des-ede3-cbc', key, iv);
  c.setAutoPadding(false);
  return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
}

/** `7F49 { 81 modulus, 82 exponent }` → a node:crypto public key. */
export function rsaPublicKeyFromTemplate(data: Uint8Array): KeyObject {
  const { tlv, next } = readTlv(data, 0);
  if (tlv.tag !== 0x7f49 || next !== data.length) throw new GidsError('BAD_RESPONSE', 'public key answer is not a 7F49 template');
  const inner = parseTlvs(tlv.value);
  const n = findTlv(inner, 0x81)?.value;
  const e = findTlv(inner, 0x82)?.value;
  if (!n || !e || n.length < 64) throw new GidsError('BAD_RESPONSE', 'public key template without modulus or exponent');
  return createPublicKey({ key: { kty: 'RSA', n: b64url(n), e: b64url(e) }, format: 'jwk' });
}

function b64url(b: Uint8Array): string {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return Buffer.from(b.subarray(i)).toString('base64url');
}

function hex2(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, '0');
}
function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}
/** Minidriver names are case-insensitive (OpenSC writes kxc0A, the spec says fold to lower case). */
function findRecord(table: MasterFileRecord[], directory: string, filename: string): MasterFileRecord | undefined {
  const d = directory.toLowerCase();
  const f = filename.toLowerCase();
  return table.find((r) => r.directory.toLowerCase() === d && r.filename.toLowerCase() === f);
}

function pathOf(directory: string, filename: string): string {
  return directory ? `${directory}/${filename}` : filename;
}

