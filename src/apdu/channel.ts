import type { Transport } from '../transport/transport.js';
import { CLA_CHAIN, encodeCommand, type CommandApdu } from './command.js';
import { parseResponse, type ResponseApdu } from './response.js';
import { ApduError, SW } from './status.js';

export interface ChannelOptions {
  /** Largest command data field per APDU (short APDUs: 255). */
  maxCommandData?: number;
}

export interface SendOptions {
  /** Send as a chain (CLA bit 0x10 on every piece but the last) even when it would fit in one APDU. */
  forceChain?: boolean;
  /** Expected response length to announce; default 256 (Le = 00) when `expectData`. */
  expectData?: boolean;
}

/**
 * The one place that turns a logical command into short APDUs: command chaining on the way
 * out, 61xx / GET RESPONSE and 6Cxx on the way back.
 */
export class ApduChannel {
  private readonly maxData: number;
  constructor(
    readonly transport: Transport,
    options: ChannelOptions = {},
  ) {
    this.maxData = options.maxCommandData ?? 255;
  }

  /** Sends a command and returns the final response (data reassembled across 61xx). */
  async send(cmd: CommandApdu, options: SendOptions = {}): Promise<ResponseApdu> {
    const data = cmd.data ?? new Uint8Array(0);
    const chunks: Uint8Array[] = [];
    for (let off = 0; off < data.length; off += this.maxData) chunks.push(data.subarray(off, off + this.maxData));
    if (chunks.length === 0) chunks.push(data);
    const chained = chunks.length > 1 || options.forceChain === true;
    let last: ResponseApdu = { data: new Uint8Array(0), sw: SW.OK };
    for (let i = 0; i < chunks.length; i++) {
      const isLast = i === chunks.length - 1;
      const cla = chained && !isLast ? cmd.cla | CLA_CHAIN : cmd.cla & ~CLA_CHAIN;
      const piece: CommandApdu = { cla, ins: cmd.ins, p1: cmd.p1, p2: cmd.p2, data: chunks[i]! };
      if (isLast && cmd.le !== undefined) piece.le = cmd.le;
      last = await this.exchange(piece);
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

  private async exchange(cmd: CommandApdu): Promise<ResponseApdu> {
    let r = parseResponse(await this.transport.transmit(encodeCommand(cmd)));
    if (r.sw >> 8 === 0x6c) {
      r = parseResponse(await this.transport.transmit(encodeCommand({ ...cmd, le: r.sw & 0xff || 256 })));
    }
    if (r.sw >> 8 !== 0x61) return r;
    const parts: Uint8Array[] = [r.data];
    let total = r.data.length;
    // Bounded: a card that keeps answering 61xx forever must not hang us (64 KiB at most).
    for (let guard = 0; r.sw >> 8 === 0x61 && total <= 65536; guard++) {
      const le = r.sw & 0xff || 256;
      r = parseResponse(await this.transport.transmit(encodeCommand({ cla: 0x00, ins: 0xc0, p1: 0, p2: 0, le })));
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
