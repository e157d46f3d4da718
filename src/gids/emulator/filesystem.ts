/**
 * The application DF and its EFs: SELECT, CREATE FILE, DELETE FILE, ACTIVATE FILE, TERMINATE DF,
 * and GET DATA / PUT DATA on the data objects of BER-TLV EFs.
 */
import type { CommandApdu } from '../../apdu/command.js';
import { SW } from '../../apdu/status.js';
import { concat } from '../../bytes.js';
import { FID_APPLICATION, GIDS_AID, GIDS_FCI } from '../protocol/constants.js';
import { encodeExtendedLengthInfo } from '../protocol/extended-length.js';
import { encodeTlv } from '../protocol/tlv.js';
import { OP } from './acl.js';
import {
  APPLICATION_FCP,
  APPLICATION_FMD,
  EF_ATR_DATA,
  EXTENDED_MAX_COMMAND_APDU,
  EXTENDED_MAX_RESPONSE_APDU,
  FID_MASTER,
  MAX_DATA_OBJECTS,
} from './constants.js';
import { fail, parseFcp, type CardContext, type EfRecord } from './state.js';
import { findSimpleTlv, readBerTag, readDoHeader, sameBytes } from './tlv.js';

const EMPTY = new Uint8Array(0);

const EXTENDED_LENGTH_INFO = encodeExtendedLengthInfo({ maxCommandApdu: EXTENDED_MAX_COMMAND_APDU, maxResponseApdu: EXTENDED_MAX_RESPONSE_APDU });

/**
 * GidsApplet's FCI, or, on a card that takes extended lengths, the same with the extended length
 * information `7F66` added inside the `61` template (docs/sources.md#iso7816-4): OpenSC and Windows
 * read only `4F` and `73` from it, so the addition is invisible to them.
 */
const EXTENDED_FCI = encodeTlv(0x61, encodeTlv(0x4f, GIDS_AID), new Uint8Array([0x73, 0x03, 0x40, 0x01, 0xc0]), EXTENDED_LENGTH_INFO);

/**
 * EF.ATR of a card that takes extended lengths: card capabilities third byte C0 | 20 (command
 * chaining, extended Lc and Le, extended length information in EF.ATR) and that information.
 */
const EXTENDED_EF_ATR_DATA = (() => {
  const d = EF_ATR_DATA.slice();
  d[7] = 0x80 | 0x40 | 0x20;
  return new Uint8Array([...d, ...EXTENDED_LENGTH_INFO]);
})();

/** What SELECT returns for the selected file, by P2 bits 3-4: FCI, FCP, FMD or nothing. */
function selectResponse(file: EfRecord | undefined, p2: number, extendedLength: boolean): Uint8Array {
  switch (p2 & 0x0c) {
    case 0x00:
      if (file !== undefined) fail(SW.INCORRECT_P1P2);
      return (extendedLength ? EXTENDED_FCI : GIDS_FCI).slice();
    case 0x04:
      return (file?.fcp ?? APPLICATION_FCP).slice();
    case 0x08:
      if (file !== undefined) fail(SW.INCORRECT_P1P2);
      return APPLICATION_FMD.slice();
    default:
      return EMPTY;
  }
}

/** SELECT of the application by the card OS (a matching AID): the applet starts afresh. */
export function selectApplicationResponse(p2: number, extendedLength: boolean): Uint8Array {
  return selectResponse(undefined, p2, extendedLength);
}

/** Does `name` occur in the application's AID (GidsApplet accepts any part of it)? */
function isPartOfAid(name: Uint8Array, aid: Uint8Array): boolean {
  if (name.length > aid.length) return false;
  for (let i = 0; i + name.length <= aid.length; i++) {
    if (sameBytes(aid.subarray(i, i + name.length), name)) return true;
  }
  return false;
}

/** SELECT as the application handles it: by FID (P1=00) or by DF name (P1=04). */
export function select(ctx: CardContext, cmd: CommandApdu, aid: Uint8Array): Uint8Array {
  if ((cmd.p2 & 0xf3) !== 0) fail(SW.INCORRECT_P1P2);
  const data = cmd.data ?? EMPTY;
  let file: EfRecord | undefined;
  if (cmd.p1 === 0x00) {
    if (data.length === 2) {
      const fid = (data[0]! << 8) | data[1]!;
      if (fid !== FID_APPLICATION && fid !== FID_MASTER) {
        file = ctx.findEf(fid);
        if (file === undefined) fail(SW.FILE_NOT_FOUND);
      }
    } else if (data.length !== 0) {
      fail(SW.WRONG_LENGTH);
    }
  } else if (cmd.p1 === 0x04) {
    if (!isPartOfAid(data, aid)) fail(SW.FILE_NOT_FOUND);
  } else {
    fail(SW.INCORRECT_P1P2);
  }
  // The file is selected even when P2 then asks for something it does not have (GidsApplet order).
  ctx.v.currentEf = file?.fid ?? null;
  return selectResponse(file, cmd.p2, ctx.p.extendedLength);
}

export function createFile(ctx: CardContext, cmd: CommandApdu): Uint8Array {
  if (cmd.p1 !== 0x00 || cmd.p2 !== 0x00) fail(SW.INCORRECT_P1P2);
  const fcp = cmd.data ?? EMPTY;
  const parsed = parseFcp(fcp);
  if (parsed === undefined) fail(SW.REFERENCE_DATA_NOT_USABLE);
  const { fid, kind } = parsed;
  if (fid === FID_APPLICATION || fid === FID_MASTER || ctx.findEf(fid) !== undefined) fail(SW.REFERENCE_DATA_NOT_USABLE);
  ctx.checkApplication(OP.DF_CREATE_EF);
  const record: EfRecord = { fid, kind, fcp: fcp.slice(), activated: false, dataObjects: [], key: undefined };
  ctx.ensureRoom(undefined, record);
  ctx.putFile(record);
  ctx.v.currentEf = fid;
  return EMPTY;
}

export function deleteFile(ctx: CardContext, cmd: CommandApdu): Uint8Array {
  if (cmd.p1 !== 0x00 || cmd.p2 !== 0x00) fail(SW.INCORRECT_P1P2);
  if ((cmd.data?.length ?? 0) !== 0) fail(SW.WRONG_LENGTH);
  const file = ctx.currentEf();
  if (file === undefined) fail(SW.COMMAND_NOT_ALLOWED_NO_EF);
  ctx.checkEf(file, OP.EF_DELETE);
  ctx.v.currentEf = null;
  ctx.removeFile(file.fid);
  return EMPTY;
}

/** ACTIVATE on a new EF makes it usable; on the application it ends creation mode and logs everyone out. */
export function activateFile(ctx: CardContext, cmd: CommandApdu): Uint8Array {
  if (cmd.p1 !== 0x00 || cmd.p2 !== 0x00) fail(SW.INCORRECT_P1P2);
  const file = ctx.currentEf();
  if (file !== undefined) {
    ctx.checkEf(file, OP.EF_ACTIVATE);
    if (!file.activated) ctx.putFile({ ...file, activated: true });
    return EMPTY;
  }
  ctx.checkApplication(OP.EF_ACTIVATE);
  ctx.setLifeCycle('operational');
  ctx.deauthenticateAll();
  return EMPTY;
}

export function terminateDf(ctx: CardContext, cmd: CommandApdu): Uint8Array {
  if (cmd.p1 !== 0x00 || cmd.p2 !== 0x00) fail(SW.INCORRECT_P1P2);
  ctx.checkApplication(OP.DF_TERMINATE);
  ctx.setLifeCycle('terminated');
  ctx.deauthenticateAll();
  return EMPTY;
}

/** The BER-TLV EF a GET/PUT DATA names in P1P2 (0000 = the current EF), checked and selected. */
function dataObjectFile(ctx: CardContext, cmd: CommandApdu, op: number): EfRecord {
  const fid = (cmd.p1 << 8) | cmd.p2;
  if (fid === 0xffff) fail(SW.INCORRECT_P1P2);
  const file = fid === 0x0000 ? ctx.currentEf() : ctx.findEf(fid);
  if (fid !== 0x0000 && file === undefined) fail(SW.FILE_NOT_FOUND);
  if (file?.kind !== 'bertlv') fail(SW.INCOMPATIBLE_FILE_STRUCTURE);
  ctx.checkEf(file, op);
  ctx.v.currentEf = file.fid;
  return file;
}

function tagOf(raw: Uint8Array): Uint8Array {
  return readBerTag(raw) ?? EMPTY;
}

/** GET DATA `5C <tag>`: that DO as stored (tag, length, value); `5C 00` (or `5C 01 5C`): all of them. */
export function getData(ctx: CardContext, cmd: CommandApdu): Uint8Array {
  if (cmd.p1 === 0x2f && cmd.p2 === 0x01) {
    const d = cmd.data ?? EMPTY;
    if (d.length !== 2 || d[0] !== 0x5c || d[1] !== 0x00) fail(SW.REFERENCE_DATA_NOT_USABLE);
    return (ctx.p.extendedLength ? EXTENDED_EF_ATR_DATA : EF_ATR_DATA).slice();
  }
  const file = dataObjectFile(ctx, cmd, OP.DO_GET);
  const selector = findSimpleTlv(cmd.data ?? EMPTY, 0x5c)?.value;
  if (selector === undefined) fail(SW.REFERENCE_DATA_NOT_USABLE);
  if (selector.length === 0 || (selector.length === 1 && selector[0] === 0x5c)) return concat(...file.dataObjects);
  const tag = readBerTag(selector);
  const found = tag === undefined ? undefined : file.dataObjects.find((d) => sameBytes(tagOf(d), tag));
  if (found === undefined) fail(SW.REFERENCED_DATA_NOT_FOUND);
  return found.slice();
}

/**
 * The EF after storing `raw` (one complete DO), by GidsApplet's rules: same tag and length →
 * replaced in place; same tag, other length → removed and appended; an empty DO stored over an
 * empty DO deletes it; a new tag is appended (at most 30 DOs).
 */
function withDataObject(file: EfRecord, raw: Uint8Array): EfRecord {
  const tag = tagOf(raw);
  const newLength = readDoHeader(raw)?.valueLength ?? 0;
  const dos = file.dataObjects.slice();
  const i = dos.findIndex((d) => sameBytes(tagOf(d), tag));
  if (i < 0) {
    if (dos.length >= MAX_DATA_OBJECTS) fail(SW.NOT_ENOUGH_MEMORY);
    dos.push(raw);
  } else {
    const oldLength = readDoHeader(dos[i]!)?.valueLength ?? 0;
    if (oldLength === newLength && !(oldLength === 0 && newLength === 0)) {
      dos[i] = raw;
    } else {
      // Removal moves the last DO into the hole, as GidsApplet's array does.
      const last = dos.pop()!;
      if (i < dos.length) dos[i] = last;
      if (oldLength !== 0 || newLength !== 0) dos.push(raw);
    }
  }
  return { ...file, dataObjects: dos };
}

function storeDataObject(ctx: CardContext, file: EfRecord, raw: Uint8Array): void {
  const next = withDataObject(file, raw);
  ctx.ensureRoom(file, next);
  ctx.putFile(next);
}

/**
 * PUT DATA of one DO. A chained PUT DATA carries the DO's tag and full length in its first piece
 * and the rest of the value in the following ones; the DO is stored when the last byte arrives.
 */
export function putData(ctx: CardContext, cmd: CommandApdu, chained: boolean): Uint8Array {
  const file = dataObjectFile(ctx, cmd, OP.DO_PUT);
  const data = cmd.data ?? EMPTY;
  const put = ctx.v.put;
  if (put !== null) {
    if (put.received + data.length > put.total) {
      ctx.v.put = null;
      fail(SW.REFERENCE_DATA_NOT_USABLE);
    }
    put.parts.push(data.slice());
    put.received += data.length;
    if (put.received === put.total) {
      ctx.v.put = null;
      storeDataObject(ctx, file, concat(...put.parts));
    } else if (!chained) {
      // The chain ended before the DO was complete.
      ctx.v.put = null;
      fail(SW.REFERENCE_DATA_NOT_USABLE);
    }
    return EMPTY;
  }
  const header = readDoHeader(data);
  if (header === undefined) fail(SW.REFERENCE_DATA_NOT_USABLE);
  const total = header.headerLength + header.valueLength;
  if (data.length > total) fail(SW.REFERENCE_DATA_NOT_USABLE);
  if (data.length === total) {
    storeDataObject(ctx, file, data.slice());
    return EMPTY;
  }
  if (!chained) fail(SW.REFERENCE_DATA_NOT_USABLE);
  // Refuse a DO that cannot be stored now rather than after the host sent all of it.
  const placeholder = new Uint8Array(total);
  placeholder.set(data.subarray(0, header.headerLength));
  ctx.ensureRoom(file, withDataObject(file, placeholder));
  ctx.v.put = { total, parts: [data.slice()], received: data.length };
  return EMPTY;
}
