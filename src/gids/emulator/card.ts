import { parseCommand, type CommandApdu } from '../../apdu/command.js';
import { encodeResponse } from '../../apdu/response.js';
import { SW } from '../../apdu/status.js';
import { concat } from '../../bytes.js';
import type { CardProcessor } from '../../apdu/processor.js';
import { GIDS_AID, INS, PIN_TRY_LIMIT } from '../protocol/constants.js';
import { CARD_SW, CHAIN_BUFFER_LIMIT, DEFAULT_ATR, DEFAULT_CAPACITY_BYTES, EXTENDED_MAX_COMMAND_APDU, EXTENDED_MAX_RESPONSE_APDU } from './constants.js';
import { activateFile, createFile, deleteFile, getData, putData, select, selectApplicationResponse, terminateDf } from './filesystem.js';
import { generateKeyPair, importKey, performSecurityOperation, readPublicKey, type ChainedInput } from './keys.js';
import { imageFromState, stateFromImage, type CardImageData } from './image-format.js';
import {
  changeReferenceData,
  generalAuthenticate,
  manageSecurityEnvironment,
  pinStatus,
  resetRetryCounter,
  verify,
} from './security.js';
import { CardContext, CardStatus, fail, StorageFailure, VolatileState, type PersistentState } from './state.js';

const EMPTY = new Uint8Array(0);
const CLA_CHAIN = 0x10;
/** Instructions GidsApplet accepts in a command chain. */
const CHAINABLE: readonly number[] = [INS.PSO, INS.GENERATE_ASYMMETRIC_KEY_PAIR, INS.PUT_DATA];

export interface GidsCardOptions {
  /** EEPROM available to files, DOs and keys; default 128 KiB. */
  capacityBytes?: number;
  /**
   * Take extended-length APDUs (up to 4 KiB of data each way) and announce them in the FCI and
   * EF.ATR. Off by default: GidsApplet, the card this emulates, has no extended lengths.
   */
  extendedLength?: boolean;
}

interface Reply {
  data: Uint8Array;
  sw: number;
}

/**
 * A GIDS card (GidsApplet behaviour) as an APDU processor. The card OS part is modelled too: after
 * a reset no application is selected; SELECT by AID (full or partial) selects GIDS, any other AID
 * gets 6A82, and other commands get 6986 until then.
 *
 * Persistent state changes only through complete commands: if saving fails (onPersistentChange
 * throws) the command is undone and answered 6581; an internal fault is undone and answered 6F00.
 *
 * Deliberate differences from GidsApplet, each where GidsApplet would fault, corrupt data or keep
 * rights longer than it should:
 * - a status word where GidsApplet hits a Java exception (6F00): PSO or GENERAL AUTHENTICATE
 *   without a usable key 6985, a raw RSA block of the wrong size 6700 (not below n: 6A80), a
 *   public key read of an empty key EF 6A88, SELECT by FID with Lc ∉ {0, 2} 6700;
 * - a chained PUT DATA stores its DO when the last byte arrives (GidsApplet stores a zero-filled
 *   DO at the first piece and keeps it if the chain breaks); one PUT DATA is exactly one DO;
 * - logout, a failed VERIFY and a PIN change also drop the MSE security environment;
 * - the PIN try counter is saved before the comparison (the anti-tearing order of a real chip);
 * - chained PSO, GENERATE and key import up to 8 KB (GidsApplet's 530/2372-byte buffers would
 *   refuse 4096-bit imports); imported keys must be consistent (n = pq and CRT values for RSA of
 *   1024-4096 bits, 24 bytes for 3DES);
 * - once terminated, every command to the application answers 6285 (SELECT included).
 */
export class GidsCard implements CardProcessor {
  readonly atr: Uint8Array = DEFAULT_ATR.slice();
  /** Called after each APDU that changed persistent state (openCardImage saves the image here). */
  onPersistentChange?: () => void;
  private readonly ctx: CardContext;

  private constructor(state: PersistentState) {
    this.ctx = new CardContext(state, () => this.onPersistentChange?.());
  }

  /** A factory-fresh card: creation mode, no files, no PIN, no keys. */
  static blank(options: GidsCardOptions = {}): GidsCard {
    const capacityBytes = options.capacityBytes ?? DEFAULT_CAPACITY_BYTES;
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes <= 0) {
      throw new RangeError(`card capacity must be a positive number of bytes, not ${capacityBytes}`);
    }
    return new GidsCard({ lifeCycle: 'creation', capacityBytes, extendedLength: options.extendedLength === true, pin: null, pinTriesRemaining: PIN_TRY_LIMIT, files: [] });
  }

  /** The card whose persistent state `data` describes (CardImageError IMAGE_CORRUPT if inconsistent). */
  static fromImage(data: CardImageData): GidsCard {
    return new GidsCard(stateFromImage(data));
  }

  /** A copy of the persistent state (private keys as KeyObjects: seal them before they go anywhere). */
  toImage(): CardImageData {
    return imageFromState(this.ctx.p);
  }

  reset(): void {
    this.ctx.v = new VolatileState();
  }

  process(apdu: Uint8Array): Uint8Array {
    try {
      // Our own copy: parts of a caller's Buffer would be views the caller may reuse.
      const reply = this.handle(new Uint8Array(apdu));
      this.ctx.commit();
      return encodeResponse(reply.data, reply.sw);
    } catch (e) {
      // Nothing of a failed command may stick: back to the last saved state, transfers dropped.
      this.ctx.rollback();
      const v = this.ctx.v;
      v.chain = null;
      v.chainData = [];
      v.chainBytes = 0;
      v.put = null;
      v.pending = null;
      if (e instanceof StorageFailure) {
        this.ctx.deauthenticateAll();
        return encodeResponse(EMPTY, CARD_SW.MEMORY_FAILURE);
      }
      return encodeResponse(EMPTY, SW.UNKNOWN);
    }
  }

  private handle(apdu: Uint8Array): Reply {
    // Short APDUs only unless the card was made with extended lengths (GidsApplet has none):
    // extended lengths on a short-only card, too long ones and malformed length fields are 6700.
    if (apdu.length > 5 && apdu[4] === 0x00 && !this.ctx.p.extendedLength) return { data: EMPTY, sw: SW.WRONG_LENGTH };
    if (apdu.length > EXTENDED_MAX_COMMAND_APDU) return { data: EMPTY, sw: SW.WRONG_LENGTH };
    let cmd: CommandApdu;
    try {
      cmd = parseCommand(apdu);
    } catch {
      return { data: EMPTY, sw: SW.WRONG_LENGTH };
    }
    try {
      return this.transmit(cmd, this.dispatch(cmd));
    } catch (e) {
      if (!(e instanceof CardStatus)) throw e;
      this.ctx.v.chainData = [];
      this.ctx.v.chainBytes = 0;
      return { data: EMPTY, sw: e.sw };
    }
  }

  /**
   * Sends at most Le bytes (256 when absent, none for GENERATE without Le as GidsApplet does) and
   * keeps the rest for GET RESPONSE, announced as 61xx (6100 for 256 or more).
   */
  private transmit(cmd: CommandApdu, data: Uint8Array): Reply {
    const le = Math.min(cmd.le ?? (cmd.ins === INS.GENERATE_ASYMMETRIC_KEY_PAIR ? 0 : 256), EXTENDED_MAX_RESPONSE_APDU - 2);
    const n = Math.min(le, data.length);
    const rest = data.subarray(n);
    this.ctx.v.pending = rest.length > 0 ? rest : null;
    const sw = rest.length > 0 ? CARD_SW.BYTES_REMAINING | (Math.min(rest.length, 256) & 0xff) : SW.OK;
    return { data: data.subarray(0, n), sw };
  }

  /** Does the card OS take this as a SELECT of the GIDS application (full or partial AID)? */
  private selectsApplication(cmd: CommandApdu): boolean {
    const name = cmd.data ?? EMPTY;
    return (
      cmd.cla === 0x00 &&
      cmd.ins === INS.SELECT &&
      cmd.p1 === 0x04 &&
      (cmd.p2 & 0xf3) === 0 &&
      name.length >= 5 &&
      name.every((b, i) => b === GIDS_AID[i])
    );
  }

  private dispatch(cmd: CommandApdu): Uint8Array {
    const ctx = this.ctx;
    if (this.selectsApplication(cmd)) {
      // Re-selection deselects first: every volatile state, logins included, starts over.
      ctx.v = new VolatileState();
      ctx.v.appSelected = true;
      if (ctx.p.lifeCycle === 'terminated') fail(SW.WARN_TERMINATED);
      return selectApplicationResponse(cmd.p2, ctx.p.extendedLength);
    }
    if ((cmd.cla & 0x03) !== 0) fail(SW.LOGICAL_CHANNEL_NOT_SUPPORTED);
    const v = ctx.v;
    if (!v.appSelected) {
      if (cmd.cla === 0x00 && cmd.ins === INS.SELECT && cmd.p1 === 0x04) fail(SW.FILE_NOT_FOUND);
      fail(SW.COMMAND_NOT_ALLOWED_NO_EF);
    }
    if (ctx.p.lifeCycle === 'terminated') fail(SW.WARN_TERMINATED);
    if ((cmd.cla & 0x0c) !== 0) fail(SW.SECURE_MESSAGING_NOT_SUPPORTED);

    const chainBit = (cmd.cla & CLA_CHAIN) !== 0;
    const p1p2 = (cmd.p1 << 8) | cmd.p2;
    let continuing = false;
    if (v.chain !== null || chainBit) {
      if (!CHAINABLE.includes(cmd.ins)) fail(SW.CHAINING_NOT_SUPPORTED);
      if (v.chain === null) {
        v.chain = { ins: cmd.ins, p1p2 };
      } else if (v.chain.ins !== cmd.ins || v.chain.p1p2 !== p1p2) {
        // Another command in the middle of a chain: refused, and the chain still waits.
        fail(SW.COMMAND_NOT_ALLOWED);
      } else {
        continuing = true;
        if (!chainBit) v.chain = null;
      }
    }
    if (!continuing) {
      v.chainData = [];
      v.chainBytes = 0;
    }
    if (cmd.ins !== INS.GET_RESPONSE) v.pending = null;
    if (cmd.ins !== INS.PUT_DATA) v.put = null;
    if ((cmd.cla & 0xe0) !== 0) fail(SW.CLA_NOT_SUPPORTED);

    const input: ChainedInput = { partOfChain: chainBit || continuing, collect: () => this.collect(cmd, chainBit) };
    switch (cmd.ins) {
      case INS.SELECT:
        return select(ctx, cmd, GIDS_AID);
      case INS.GET_DATA:
        return p1p2 === 0x3fff ? this.getApplicationData(cmd) : getData(ctx, cmd);
      case INS.PUT_DATA:
        return p1p2 === 0x3fff ? importKey(ctx, input) : putData(ctx, cmd, chainBit);
      case INS.CREATE_FILE:
        return createFile(ctx, cmd);
      case INS.ACTIVATE_FILE:
        return activateFile(ctx, cmd);
      case INS.DELETE_FILE:
        return deleteFile(ctx, cmd);
      case INS.TERMINATE_DF:
        return terminateDf(ctx, cmd);
      case INS.VERIFY:
        return verify(ctx, cmd);
      case INS.CHANGE_REFERENCE_DATA:
        return changeReferenceData(ctx, cmd);
      case INS.RESET_RETRY_COUNTER:
        return resetRetryCounter(ctx, cmd);
      case INS.GENERAL_AUTHENTICATE:
        return generalAuthenticate(ctx, cmd);
      case INS.MSE:
        return manageSecurityEnvironment(ctx, cmd);
      case INS.GENERATE_ASYMMETRIC_KEY_PAIR:
        return generateKeyPair(ctx, cmd, input);
      case INS.PSO:
        return performSecurityOperation(ctx, cmd, input);
      case INS.GET_RESPONSE:
        return v.pending ?? EMPTY;
      default:
        fail(SW.INS_NOT_SUPPORTED);
    }
  }

  /** GET DATA with P1P2 3FFF: a public key (`70 08 84 01 kk A5 03 7F 49 80`) or the PIN status (`5C 02 7F 71`). */
  private getApplicationData(cmd: CommandApdu): Uint8Array {
    const d = cmd.data ?? EMPTY;
    if (d.length === 10 && d[0] === 0x70) return readPublicKey(this.ctx, d[4]!);
    if (d.length === 4 && d[0] === 0x5c && d[1] === 0x02) {
      const id = (d[2]! << 8) | d[3]!;
      if (id === 0x7f71 || id === 0x7f72 || id === 0x7f73) return pinStatus(this.ctx, id);
    }
    fail(SW.REFERENCE_DATA_NOT_USABLE);
  }

  private collect(cmd: CommandApdu, chainBit: boolean): Uint8Array | undefined {
    const v = this.ctx.v;
    const piece = cmd.data ?? EMPTY;
    if (v.chainBytes + piece.length > CHAIN_BUFFER_LIMIT) fail(SW.NOT_ENOUGH_MEMORY);
    v.chainData.push(piece.slice());
    v.chainBytes += piece.length;
    if (chainBit) return undefined;
    const all = concat(...v.chainData);
    v.chainData = [];
    v.chainBytes = 0;
    return all;
  }
}
