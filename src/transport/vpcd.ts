import { connect, type Socket } from 'node:net';
import { CardlinkError } from '../errors.js';
import type { ApduProcessor } from './transport.js';

/**
 * The emulator as a card in a real reader: vsmartcard's vpcd driver (loaded inside pcscd) listens
 * on TCP, and the card connects to it. Both directions use frames of a big-endian u16 length and a
 * payload; a 1-byte payload is a control code, anything longer is a command APDU.
 */

export const VPCD_DEFAULT_HOST = '127.0.0.2';
export const VPCD_DEFAULT_PORT = 35963;
export const VPCD_MAX_FRAME = 0xffff;

export const VPCD_CONTROL = {
  POWER_OFF: 0x00,
  POWER_ON: 0x01,
  RESET: 0x02,
  GET_ATR: 0x04,
} as const;

export class VpcdError extends CardlinkError {
  constructor(code: 'VPCD_FRAME' | 'VPCD_ADDRESS' | 'VPCD_CLOSED', message: string) {
    super(code, message);
  }
}

export function encodeVpcdFrame(payload: Uint8Array): Uint8Array {
  if (payload.length > VPCD_MAX_FRAME) {
    throw new VpcdError('VPCD_FRAME', `vpcd frame of ${payload.length} bytes exceeds ${VPCD_MAX_FRAME}`);
  }
  const out = new Uint8Array(2 + payload.length);
  out[0] = payload.length >> 8;
  out[1] = payload.length & 0xff;
  out.set(payload, 2);
  return out;
}

/**
 * Reassembles frames from a TCP byte stream. vpcd 0.8 sends the length and the body with two
 * separate send() calls, so one `data` event may hold half a frame, or several frames.
 */
export class VpcdFrameDecoder {
  private buffer = new Uint8Array(0);

  /** Bytes received that do not yet form a whole frame. */
  get pending(): number {
    return this.buffer.length;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    const joined = new Uint8Array(this.buffer.length + chunk.length);
    joined.set(this.buffer, 0);
    joined.set(chunk, this.buffer.length);
    const frames: Uint8Array[] = [];
    let offset = 0;
    while (joined.length - offset >= 2) {
      const length = (joined[offset]! << 8) | joined[offset + 1]!;
      if (joined.length - offset - 2 < length) break;
      frames.push(joined.slice(offset + 2, offset + 2 + length));
      offset += 2 + length;
    }
    this.buffer = joined.slice(offset);
    return frames;
  }

  clear(): void {
    this.buffer = new Uint8Array(0);
  }
}

/** Parses `HOST:PORT`, `HOST` or `:PORT` (IPv6 hosts in brackets); missing parts take the defaults. */
export function parseVpcdAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*))(?::(\d+))?$/.exec(text.trim());
  const host = m?.[1] ?? m?.[2] ?? '';
  const port = m?.[3] === undefined ? VPCD_DEFAULT_PORT : Number(m[3]);
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new VpcdError('VPCD_ADDRESS', `not a vpcd address: '${text}' (expected HOST:PORT, e.g. ${VPCD_DEFAULT_HOST}:${VPCD_DEFAULT_PORT})`);
  }
  return { host: host === '' ? VPCD_DEFAULT_HOST : host, port };
}

export type VpcdEvent =
  | { type: 'connected' }
  | { type: 'disconnected'; reason: string }
  | { type: 'power'; state: 'on' | 'off' | 'reset' }
  | { type: 'apdu'; command: Uint8Array; response: Uint8Array; micros: number }
  | { type: 'removed' }
  | { type: 'inserted' };

export interface VpcdOptions {
  host?: string;
  port?: number;
  /** Aborting detaches the card for good (same as `close()`). */
  signal?: AbortSignal;
  /** Wait between connection attempts while vpcd is not there (pcscd down or restarting). */
  retryMs?: number;
  onEvent?: (event: VpcdEvent) => void;
}

export interface VpcdCounters {
  apdus: number;
  connects: number;
  powerOns: number;
  resets: number;
}

export interface VpcdAttachment {
  readonly host: string;
  readonly port: number;
  /** True while the socket to vpcd is open (the reader then shows the card present). */
  readonly connected: boolean;
  /** False between `remove()` and `insert()`. */
  readonly inserted: boolean;
  readonly counters: VpcdCounters;
  /** Resolves at the next (or current) connection to vpcd; rejects when closed first. */
  whenConnected(): Promise<void>;
  /** Takes the card out of the reader: the socket closes and no reconnection happens. */
  remove(): void;
  /** Puts the card back: connects again (the card keeps its persistent state, loses volatile state). */
  insert(): void;
  close(): void;
}

/** A card the reader can talk to: APDUs, power cycle, and the ATR it answers with. */
export type VpcdCard = ApduProcessor & { readonly atr: Uint8Array };

const SW_UNKNOWN_ERROR = new Uint8Array([0x6f, 0x00]);

export function attachToVpcd(card: VpcdCard, options: VpcdOptions = {}): VpcdAttachment {
  const host = options.host ?? VPCD_DEFAULT_HOST;
  const port = options.port ?? VPCD_DEFAULT_PORT;
  const retryMs = options.retryMs ?? 200;
  const emit = options.onEvent ?? (() => {});
  const counters: VpcdCounters = { apdus: 0, connects: 0, powerOns: 0, resets: 0 };

  let socket: Socket | undefined;
  let connected = false;
  let inserted = true;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  let waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  const answer = (sock: Socket, frame: Uint8Array): void => {
    if (frame.length === 1) {
      const code = frame[0]!;
      if (code === VPCD_CONTROL.GET_ATR) {
        sock.write(encodeVpcdFrame(card.atr));
      } else if (code === VPCD_CONTROL.POWER_ON || code === VPCD_CONTROL.RESET) {
        // A fresh power-up or warm reset loses the selected application and PIN status.
        card.reset();
        if (code === VPCD_CONTROL.POWER_ON) counters.powerOns++;
        else counters.resets++;
        emit({ type: 'power', state: code === VPCD_CONTROL.POWER_ON ? 'on' : 'reset' });
      } else if (code === VPCD_CONTROL.POWER_OFF) {
        emit({ type: 'power', state: 'off' });
      }
      // vpcd expects no reply to power codes; an unknown code gets none either.
      return;
    }
    const start = process.hrtime.bigint();
    let response: Uint8Array;
    try {
      response = card.process(frame);
    } catch {
      response = SW_UNKNOWN_ERROR;
    }
    // vpcd waits forever for a reply and blocks the reader meanwhile: always answer something.
    if (response.length > VPCD_MAX_FRAME) response = SW_UNKNOWN_ERROR;
    counters.apdus++;
    sock.write(encodeVpcdFrame(response));
    emit({ type: 'apdu', command: frame, response, micros: Number(process.hrtime.bigint() - start) / 1000 });
  };

  const scheduleRetry = (): void => {
    if (closed || !inserted || retry) return;
    retry = setTimeout(() => {
      retry = undefined;
      open();
    }, retryMs);
  };

  const open = (): void => {
    if (closed || !inserted || socket) return;
    const decoder = new VpcdFrameDecoder();
    const sock = connect({ host, port });
    socket = sock;
    sock.setNoDelay(true);
    sock.on('connect', () => {
      connected = true;
      counters.connects++;
      emit({ type: 'connected' });
      const ready = waiters;
      waiters = [];
      for (const w of ready) w.resolve();
    });
    sock.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) answer(sock, frame);
    });
    sock.on('error', () => {
      // 'close' follows every error and decides about reconnecting.
    });
    sock.on('close', () => {
      const wasConnected = connected;
      if (socket === sock) socket = undefined;
      connected = false;
      if (wasConnected) emit({ type: 'disconnected', reason: closed ? 'detached' : inserted ? 'vpcd closed the connection' : 'card removed' });
      scheduleRetry();
    });
  };

  const drop = (): void => {
    if (retry) clearTimeout(retry);
    retry = undefined;
    socket?.destroy();
  };

  const close = (): void => {
    if (closed) return;
    closed = true;
    drop();
    const pending = waiters;
    waiters = [];
    for (const w of pending) w.reject(new VpcdError('VPCD_CLOSED', `the card was detached from vpcd at ${host}:${port}`));
  };

  if (options.signal?.aborted) closed = true;
  options.signal?.addEventListener('abort', close, { once: true });
  open();

  return {
    host,
    port,
    counters,
    get connected() {
      return connected;
    },
    get inserted() {
      return inserted;
    },
    whenConnected() {
      if (connected) return Promise.resolve();
      if (closed) return Promise.reject(new VpcdError('VPCD_CLOSED', `the card was detached from vpcd at ${host}:${port}`));
      return new Promise<void>((resolve, reject) => waiters.push({ resolve, reject }));
    },
    remove() {
      if (!inserted) return;
      inserted = false;
      drop();
      emit({ type: 'removed' });
    },
    insert() {
      if (inserted || closed) return;
      inserted = true;
      emit({ type: 'inserted' });
      open();
    },
    close,
  };
}
