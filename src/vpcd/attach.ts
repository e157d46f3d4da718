import { Worker } from 'node:worker_threads';
import { CardlinkError } from '../errors.js';
import type { CardProcessor } from '../apdu/processor.js';

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
  constructor(code: 'VPCD_FRAME' | 'VPCD_ADDRESS' | 'VPCD_CLOSED', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
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
export type VpcdCard = CardProcessor & { readonly atr: Uint8Array };

/** What the relay thread is started with. */
export interface VpcdRelayConfig {
  host: string;
  port: number;
  retryMs: number;
  atr: Uint8Array;
}

/** Relay thread → card thread. */
export type RelayMessage =
  | { t: 'connected' }
  | { t: 'disconnected'; reason: string }
  | { t: 'power'; code: number }
  | { t: 'apdu'; id: number; apdu: Uint8Array };

/** Card thread → relay thread. */
export type CardMessage = { t: 'response'; id: number; response: Uint8Array } | { t: 'remove' } | { t: 'insert' };

const SW_UNKNOWN_ERROR = new Uint8Array([0x6f, 0x00]);

/**
 * The socket lives in a worker thread that answers GET ATR by itself. pcscd polls presence with
 * GET ATR while holding the reader's lock, and a synchronous PC/SC call made on this thread (the
 * binding's disconnect, for one) can wait for that lock: were the socket on this thread, an
 * emulator and a PC/SC client in the same process would deadlock. APDUs and power changes still
 * reach the card here, in order.
 */
function startRelay(config: VpcdRelayConfig): Worker {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    // Run from TypeScript sources (tests, benchmarks): Node 20 gives a worker none of tsx's
    // loader, so the relay is loaded through tsx's API.
    const relay = new URL('./relay.ts', here).href;
    const tsx = import.meta.resolve('tsx/esm/api');
    const boot = `import(${JSON.stringify(tsx)}).then((api) => { api.register(); return import(${JSON.stringify(relay)}); })`;
    return new Worker(boot, { eval: true, workerData: config });
  }
  return new Worker(new URL('./relay.js', here), { workerData: config });
}

export function attachToVpcd(card: VpcdCard, options: VpcdOptions = {}): VpcdAttachment {
  const host = options.host ?? VPCD_DEFAULT_HOST;
  const port = options.port ?? VPCD_DEFAULT_PORT;
  const emit = options.onEvent ?? (() => {});
  const counters: VpcdCounters = { apdus: 0, connects: 0, powerOns: 0, resets: 0 };
  const detached = (cause?: unknown): VpcdError =>
    new VpcdError('VPCD_CLOSED', `the card was detached from vpcd at ${host}:${port}`, cause === undefined ? undefined : { cause });

  let connected = false;
  let inserted = true;
  let closed = false;
  let waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const relay = startRelay({ host, port, retryMs: options.retryMs ?? 200, atr: card.atr.slice() });
  const send = (m: CardMessage): void => relay.postMessage(m);

  const answer = (apdu: Uint8Array): Uint8Array => {
    const start = process.hrtime.bigint();
    let response: Uint8Array;
    try {
      response = card.process(apdu);
    } catch {
      response = SW_UNKNOWN_ERROR;
    }
    // vpcd waits forever for a reply and blocks the reader meanwhile: always answer something.
    if (response.length > VPCD_MAX_FRAME) response = SW_UNKNOWN_ERROR;
    counters.apdus++;
    emit({ type: 'apdu', command: apdu, response, micros: Number(process.hrtime.bigint() - start) / 1000 });
    return response;
  };

  const close = (cause?: unknown): void => {
    if (closed) return;
    closed = true;
    void relay.terminate();
    if (connected) emit({ type: 'disconnected', reason: 'detached' });
    connected = false;
    const pending = waiters;
    waiters = [];
    for (const w of pending) w.reject(detached(cause));
  };

  relay.on('message', (m: RelayMessage) => {
    if (closed) return;
    switch (m.t) {
      case 'apdu':
        send({ t: 'response', id: m.id, response: answer(m.apdu) });
        break;
      case 'power':
        if (m.code === VPCD_CONTROL.POWER_OFF) {
          emit({ type: 'power', state: 'off' });
          break;
        }
        // A fresh power-up or warm reset loses the selected application and PIN status.
        card.reset();
        if (m.code === VPCD_CONTROL.POWER_ON) counters.powerOns++;
        else counters.resets++;
        emit({ type: 'power', state: m.code === VPCD_CONTROL.POWER_ON ? 'on' : 'reset' });
        break;
      case 'connected': {
        connected = true;
        counters.connects++;
        emit({ type: 'connected' });
        const ready = waiters;
        waiters = [];
        for (const w of ready) w.resolve();
        break;
      }
      case 'disconnected':
        connected = false;
        emit({ type: 'disconnected', reason: inserted ? m.reason : 'card removed' });
        break;
    }
  });
  relay.on('error', (err) => close(err));

  if (options.signal?.aborted) close();
  options.signal?.addEventListener('abort', () => close(), { once: true });

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
      if (closed) return Promise.reject(detached());
      return new Promise<void>((resolve, reject) => waiters.push({ resolve, reject }));
    },
    remove() {
      if (!inserted || closed) return;
      inserted = false;
      send({ t: 'remove' });
      emit({ type: 'removed' });
    },
    insert() {
      if (inserted || closed) return;
      inserted = true;
      send({ t: 'insert' });
      emit({ type: 'inserted' });
    },
    close: () => close(),
  };
}
