import type { Transport } from '../transport/transport.js';
import { CLA_CHAIN, encodeCommand, type CommandApdu } from './command.js';
import { parseResponse, type ResponseApdu } from './response.js';
import { ApduError, SW } from './status.js';

export interface ChannelOptions {
  /** Largest command data field per short APDU (default 255). */
  maxCommandData?: number;
}

/**
 * What a card said it accepts beyond short APDUs: the largest command data field and the largest
 * response data field of one extended-length APDU (ISO 7816-4 extended length information,
 * docs/sources.md#iso7816-4).
 */
export interface ExtendedLength {
  maxCommandData: number;
  maxResponseData: number;
}

export interface SendOptions {
  /** Send as a chain (CLA bit 0x10 on every piece but the last) even when it would fit in one APDU. */
  forceChain?: boolean;
}

/**
 * The one place that turns a logical command into APDUs: short APDUs with command chaining on
 * the way out and 61xx / GET RESPONSE, 6Cxx on the way back; extended-length APDUs instead where
 * the card said it takes them (`useExtendedLength`), so that a certificate goes in one PUT DATA and
 * a 2048-bit public key comes back in one answer. A command's `le` is what the caller wants at
 * most (LE_ALL: everything); the channel asks for what the APDU form allows and collects the rest.
 */
export class ApduChannel {
  private readonly maxData: number;
  private extended: ExtendedLength | undefined;

  constructor(
    readonly transport: Transport,
    options: ChannelOptions = {},
  ) {
    this.maxData = options.maxCommandData ?? 255;
  }

  /** Extended-length APDUs from now on, within `limits`; undefined: short APDUs only (the default). */
  useExtendedLength(limits: ExtendedLength | undefined): void {
    this.extended = limits && limits.maxCommandData > 255 && limits.maxResponseData > 256 ? { ...limits } : undefined;
  }

  /** The extended-length limits in use, undefined when the channel sends short APDUs only. */
  get extendedLength(): ExtendedLength | undefined {
    return this.extended && { ...this.extended };
  }

  /** Sends a command and returns the final response (data reassembled across 61xx). */
  async send(cmd: CommandApdu, options: SendOptions = {}): Promise<ResponseApdu> {
    const ext = this.extended;
    const data = cmd.data ?? new Uint8Array(0);
    const pieceSize = ext ? ext.maxCommandData : this.maxData;
    const chunks: Uint8Array[] = [];
    for (let off = 0; off < data.length; off += pieceSize) chunks.push(data.subarray(off, off + pieceSize));
    if (chunks.length === 0) chunks.push(data);
    const chained = chunks.length > 1 || options.forceChain === true;
    let last: ResponseApdu = { data: new Uint8Array(0), sw: SW.OK };
    for (let i = 0; i < chunks.length; i++) {
      const isLast = i === chunks.length - 1;
      const cla = chained && !isLast ? cmd.cla | CLA_CHAIN : cmd.cla & ~CLA_CHAIN;
      const piece: CommandApdu = { cla, ins: cmd.ins, p1: cmd.p1, p2: cmd.p2, data: chunks[i]! };
      if (isLast && cmd.le !== undefined) piece.le = Math.min(cmd.le, ext ? ext.maxResponseData : 256);
      const extended = ext !== undefined && (piece.data!.length > 255 || (piece.le ?? 0) > 256);
      last = await this.exchange(piece, extended);
      if (extended && i === 0 && last.sw === SW.WRONG_LENGTH) {
        // The card (or the reader between) refused its first extended APDU: nothing of this command
        // was taken, so send it again the short way, and keep to short APDUs from now on.
        this.extended = undefined;
        return this.send(cmd, options);
      }
      if (!isLast && last.sw !== SW.OK) return last;
    }
    return last;
  }

  /** Like send, but throws ApduError unless the card answered 9000. */
  async sendOk(cmd: CommandApdu, what: string, options: SendOptions = {}): Promise<Uint8Array> {
    const r = await this.send(cmd, options);
    if (r.sw !== SW.OK) throw new ApduError(r.sw, what);
    return r.data;
  }

  private async exchange(cmd: CommandApdu, extended: boolean): Promise<ResponseApdu> {
    let r = parseResponse(await this.transport.transmit(encodeCommand(cmd, extended)));
    if (r.sw >> 8 === 0x6c) {
      r = parseResponse(await this.transport.transmit(encodeCommand({ ...cmd, le: r.sw & 0xff || 256 }, extended)));
    }
    if (r.sw >> 8 !== 0x61) return r;
    const parts: Uint8Array[] = [r.data];
    let total = r.data.length;
    // Bounded: a card that keeps answering 61xx forever must not hang us (64 KiB at most).
    for (let guard = 0; r.sw >> 8 === 0x61 && total <= 65536; guard++) {
      // 61xx with xx > 0 names what is left; 6100 means 256 or more: all of it in one extended answer if we may.
      const left = r.sw & 0xff;
      const ext = this.extended;
      const getResponse: CommandApdu = { cla: 0x00, ins: 0xc0, p1: 0, p2: 0, le: left || (ext ? ext.maxResponseData : 256) };
      r = parseResponse(await this.transport.transmit(encodeCommand(getResponse, left === 0 && ext !== undefined)));
      parts.push(r.data);
      total += r.data.length;
      if (guard > 300) break;
    }
    const data = new Uint8Array(total);
    let off = 0;
    for (const p of parts) {
      data.set(p, off);
      off += p.length;
    }
    return { data, sw: r.sw };
  }
}
