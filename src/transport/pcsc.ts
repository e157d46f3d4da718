import { TransportError, type Transport, type TransportErrorCode } from './transport.js';

/*
 * A card in a real reader, through the PC/SC service (pcscd on Linux), with the `smartcard` N-API
 * binding. The binding is an optional dependency: it needs libpcsclite and a compiler to install,
 * and the in-process emulator must work without it, so it is loaded on first use and only the
 * shapes used here are declared (importing its types would make the build need it too).
 */

interface BindingCard {
  readonly atr: Buffer | null;
  readonly protocol: number;
  transmit(command: Buffer, options?: { maxRecvLength?: number }): Promise<Buffer>;
  reconnect(shareMode?: number, protocol?: number, initialization?: number): Promise<number>;
  disconnect(disposition?: number): void;
}

interface BindingReader {
  readonly name: string;
  readonly state: number;
  readonly atr: Buffer | null;
  connect(shareMode?: number, protocol?: number): Promise<BindingCard>;
}

interface BindingReaderState {
  name: string;
  state: number;
  atr: Buffer | null;
}

interface BindingContext {
  listReaders(): BindingReader[];
  waitForChange(readers: { name: string; state: number }[], timeoutMs: number): Promise<BindingReaderState[] | null>;
  cancel(): void;
  close(): void;
}

interface Binding {
  Context: new () => BindingContext;
  SCARD_SHARE_SHARED: number;
  SCARD_SHARE_EXCLUSIVE: number;
  SCARD_PROTOCOL_T0: number;
  SCARD_PROTOCOL_T1: number;
  SCARD_LEAVE_CARD: number;
  SCARD_RESET_CARD: number;
  SCARD_STATE_PRESENT: number;
  SCARD_STATE_MUTE: number;
  SCARD_STATE_INUSE: number;
  SCARD_STATE_EXCLUSIVE: number;
}

let binding: Promise<Binding> | undefined;

/** Loads the `smartcard` binding once; NO_SERVICE with install advice when it is not installed. */
function loadPcscBinding(): Promise<Binding> {
  binding ??= (async () => {
    const specifier = 'smartcard';
    try {
      const mod = (await import(specifier)) as Binding & { default?: Binding };
      return mod.default ?? mod;
    } catch (err) {
      binding = undefined;
      throw new TransportError(
        'NO_SERVICE',
        'PC/SC support is not installed: the optional package "smartcard" is missing or failed to build ' +
          '(install libpcsclite-dev, g++ and make, then run `npm install`); --image works without it',
        { cause: err },
      );
    }
  })();
  return binding;
}

/**
 * The binding's errors are plain Errors whose only information is the message (the PC/SC return
 * code's text), so the mapping to our codes goes by message.
 */
const MESSAGE_CODES: ReadonlyArray<[RegExp, TransportErrorCode]> = [
  [/service not running|service stopped|context is not valid|no service/i, 'NO_SERVICE'],
  [/sharing violation/i, 'SHARING_VIOLATION'],
  [/card was removed/i, 'CARD_REMOVED'],
  [/no smart card present|card is unpowered|card is unresponsive|card is not supported/i, 'NO_CARD'],
  [/unknown reader|reader unavailable|no readers available/i, 'NO_READER'],
  [/timed out/i, 'TIMEOUT'],
];

export function pcscErrorCode(message: string): TransportErrorCode {
  for (const [pattern, code] of MESSAGE_CODES) if (pattern.test(message)) return code;
  return 'IO';
}

function advice(code: TransportErrorCode, reader: string | undefined): string {
  const where = reader === undefined ? '' : ` '${reader}'`;
  switch (code) {
    case 'NO_SERVICE':
      return 'the PC/SC service (pcscd) is not running: start it (for example `pcscd` or `systemctl start pcscd.socket`)';
    case 'SHARING_VIOLATION':
      return `the card in reader${where} is held exclusively by another application: close it, or retry`;
    case 'CARD_REMOVED':
      return `the card was removed from reader${where} during the operation: put it back and run the command again`;
    case 'NO_CARD':
      return `no usable card in reader${where}: insert a card`;
    case 'NO_READER':
      return `reader${where} is not connected`;
    case 'TIMEOUT':
      return `reader${where} did not answer in time`;
    default:
      return `reader${where} failed`;
  }
}

function toTransportError(err: unknown, doing: string, reader?: string): TransportError {
  if (err instanceof TransportError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const code = pcscErrorCode(message);
  return new TransportError(code, `${advice(code, reader)} (${doing}: ${message})`, { cause: err });
}

function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => TransportError): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expiry = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([work, expiry]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export type PcscCardState = 'present' | 'empty' | 'mute';

export interface PcscReaderInfo {
  name: string;
  card: PcscCardState;
  /** Some application holds a connection to the card (exclusive: nobody else may connect). */
  inUse: boolean;
  exclusive: boolean;
  atr: Uint8Array | undefined;
}

function describeReader(b: Binding, name: string, state: number, atr: Buffer | null): PcscReaderInfo {
  const card: PcscCardState =
    (state & b.SCARD_STATE_PRESENT) === 0 ? 'empty' : (state & b.SCARD_STATE_MUTE) !== 0 ? 'mute' : 'present';
  return {
    name,
    card,
    inUse: (state & b.SCARD_STATE_INUSE) !== 0,
    exclusive: (state & b.SCARD_STATE_EXCLUSIVE) !== 0,
    atr: atr && atr.length > 0 ? new Uint8Array(atr) : undefined,
  };
}

function openContext(b: Binding): BindingContext {
  try {
    return new b.Context();
  } catch (err) {
    throw toTransportError(err, 'opening a PC/SC context');
  }
}

function listWith(b: Binding, ctx: BindingContext): BindingReader[] {
  try {
    return ctx.listReaders();
  } catch (err) {
    throw toTransportError(err, 'listing readers');
  }
}

export async function listPcscReaders(): Promise<PcscReaderInfo[]> {
  const b = await loadPcscBinding();
  const ctx = openContext(b);
  try {
    return listWith(b, ctx).map((r) => describeReader(b, r.name, r.state, r.atr));
  } finally {
    ctx.close();
  }
}

export interface WaitOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * Waits until the reader shows a card (`present`) or shows none (`empty`); TIMEOUT when it does
 * not happen in time. Waits in short slices so an abort or a vanished pcscd is noticed promptly.
 */
export async function waitForPcscCard(reader: string, want: 'present' | 'empty', options: WaitOptions): Promise<PcscReaderInfo> {
  const b = await loadPcscBinding();
  const ctx = openContext(b);
  const onAbort = (): void => ctx.cancel();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const deadline = Date.now() + options.timeoutMs;
    const found = listWith(b, ctx).find((r) => r.name === reader);
    if (!found) throw new TransportError('NO_READER', `${advice('NO_READER', reader)}; readers seen: ${seenList(b, ctx)}`);
    let state = found.state;
    let info = describeReader(b, reader, found.state, found.atr);
    for (;;) {
      if (info.card === want || (want === 'present' && info.card === 'mute')) return info;
      const left = deadline - Date.now();
      if (left <= 0) throw new TransportError('TIMEOUT', `reader '${reader}' did not become ${want} within ${options.timeoutMs} ms`);
      if (options.signal?.aborted) throw new TransportError('CLOSED', `waiting for reader '${reader}' was cancelled`);
      let changes: BindingReaderState[] | null;
      try {
        changes = await ctx.waitForChange([{ name: reader, state }], Math.min(left, 1000));
      } catch (err) {
        throw toTransportError(err, 'waiting for a card change', reader);
      }
      if (changes === null) throw new TransportError('CLOSED', `waiting for reader '${reader}' was cancelled`);
      const change = changes.find((c) => c.name === reader);
      if (change) {
        state = change.state;
        info = describeReader(b, reader, change.state, change.atr);
      }
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    ctx.close();
  }
}

function seenList(b: Binding, ctx: BindingContext): string {
  const readers = listWith(b, ctx);
  if (readers.length === 0) return 'none';
  return readers.map((r) => `'${r.name}' (${describeReader(b, r.name, r.state, r.atr).card === 'empty' ? 'no card' : 'card'})`).join(', ');
}

/**
 * SELECT of the GIDS application by its 9-byte partial AID, the way OpenSC's gids driver finds a
 * card. Kept here rather than taken from gids/protocol because transport sits below it.
 */
const GIDS_PROBE = Buffer.from('00A4040009A0000003974254465900', 'hex');

/**
 * SELECT of the PIV application by its AID without the version (A0 00 00 03 08 00 00 10 00), as
 * OpenSC's card-piv.c selects it; the card matches by prefix (SP 800-73-4 Part 2 §3.1.1). Tried
 * after the GIDS one, in the order the card API detects the application (docs/piv.md).
 */
const PIV_PROBE = Buffer.from('00A4040009A0000003080000100000', 'hex');

/** The card applications the transport looks for on a reader's card, in this order. */
const PROBES: readonly { app: 'GIDS' | 'PIV'; apdu: Buffer }[] = [
  { app: 'GIDS', apdu: GIDS_PROBE },
  { app: 'PIV', apdu: PIV_PROBE },
];

/** Responses can be long (a 4096-bit public key, a whole DO); the binding's default is 258 bytes. */
const PCSC_MAX_RECV = 65538;

export interface PcscOpenOptions {
  /** Exact reader name, or a part of it that only one reader's name contains. */
  reader?: string;
  /**
   * `exclusive` (default): nobody else can talk to the card while this transport is open, which
   * stands in for PC/SC transactions the binding does not offer. `shared`: other applications may
   * interleave their APDUs between ours.
   */
  share?: 'shared' | 'exclusive';
  /** How long to keep retrying while another application holds the card exclusively. */
  busyTimeoutMs?: number;
  /** Bound on connecting (power-up and ATR). */
  connectTimeoutMs?: number;
  /** Bound on one APDU; generous because on-card RSA key generation takes seconds. */
  transmitTimeoutMs?: number;
}

interface Resolved {
  busyTimeoutMs: number;
  connectTimeoutMs: number;
  transmitTimeoutMs: number;
  shareMode: number;
}

async function connectOnce(b: Binding, reader: BindingReader, opts: Resolved): Promise<BindingCard> {
  const deadline = Date.now() + opts.busyTimeoutMs;
  for (;;) {
    try {
      return await withTimeout(
        reader.connect(opts.shareMode, b.SCARD_PROTOCOL_T0 | b.SCARD_PROTOCOL_T1),
        opts.connectTimeoutMs,
        () => new TransportError('TIMEOUT', `the card in reader '${reader.name}' did not power up within ${opts.connectTimeoutMs} ms`),
      );
    } catch (err) {
      const e = toTransportError(err, 'connecting', reader.name);
      if (e.code !== 'SHARING_VIOLATION' || Date.now() >= deadline) throw e;
      await sleep(100);
    }
  }
}

async function answersSelect(card: BindingCard, reader: string, probe: (typeof PROBES)[number], opts: Resolved): Promise<boolean> {
  const response = await withTimeout(
    card.transmit(probe.apdu, { maxRecvLength: PCSC_MAX_RECV }),
    opts.transmitTimeoutMs,
    () => new TransportError('TIMEOUT', `the card in reader '${reader}' did not answer the ${probe.app} SELECT`),
  );
  const sw1 = response[response.length - 2];
  const sw2 = response[response.length - 1];
  return (sw1 === 0x90 && sw2 === 0x00) || sw1 === 0x61;
}

/** The first application of PROBES the card answers, or undefined (a card that fails a probe counts as not answering it). */
async function cardApplication(card: BindingCard, reader: string, opts: Resolved): Promise<'GIDS' | 'PIV' | undefined> {
  for (const probe of PROBES) {
    try {
      if (await answersSelect(card, reader, probe, opts)) return probe.app;
    } catch {
      // not this application; the next probe may still answer
    }
  }
  return undefined;
}

function pickNamed(readers: BindingReader[], wanted: string): BindingReader | undefined {
  const exact = readers.find((r) => r.name === wanted);
  if (exact) return exact;
  const partial = readers.filter((r) => r.name.toLowerCase().includes(wanted.toLowerCase()));
  if (partial.length > 1) {
    throw new TransportError(
      'AMBIGUOUS_READER',
      `'${wanted}' matches several readers: ${partial.map((r) => `'${r.name}'`).join(', ')}; give the full name`,
    );
  }
  return partial[0];
}

/** Opens the named reader, or the only reader whose card answers the GIDS or the PIV SELECT. */
export async function openPcscTransport(options: PcscOpenOptions = {}): Promise<PcscTransport> {
  const b = await loadPcscBinding();
  const opts: Resolved = {
    busyTimeoutMs: options.busyTimeoutMs ?? 5000,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    transmitTimeoutMs: options.transmitTimeoutMs ?? 60_000,
    shareMode: options.share === 'shared' ? b.SCARD_SHARE_SHARED : b.SCARD_SHARE_EXCLUSIVE,
  };
  const ctx = openContext(b);
  try {
    const readers = listWith(b, ctx);
    if (readers.length === 0) {
      throw new TransportError('NO_READER', 'no smart card reader is connected (pcscd sees none)');
    }
    if (options.reader !== undefined) {
      const reader = pickNamed(readers, options.reader);
      if (!reader) {
        throw new TransportError('NO_READER', `${advice('NO_READER', options.reader)}; readers seen: ${seenList(b, ctx)}`);
      }
      const card = await connectOnce(b, reader, opts);
      return new PcscTransport(b, ctx, card, reader.name, options.share ?? 'exclusive', eventCount(ctx, reader.name), opts.transmitTimeoutMs);
    }
    const found: { reader: BindingReader; card: BindingCard; app: 'GIDS' | 'PIV' }[] = [];
    const notes: string[] = [];
    for (const reader of readers) {
      const info = describeReader(b, reader.name, reader.state, reader.atr);
      if (info.card !== 'present') {
        notes.push(`'${reader.name}' (${info.card === 'empty' ? 'no card' : 'card not responding'})`);
        continue;
      }
      let card: BindingCard;
      try {
        card = await connectOnce(b, reader, opts);
      } catch (err) {
        notes.push(`'${reader.name}' (${err instanceof TransportError ? err.code.toLowerCase().replace(/_/g, ' ') : 'error'})`);
        continue;
      }
      const app = await cardApplication(card, reader.name, opts);
      if (app) found.push({ reader, card, app });
      else {
        card.disconnect(b.SCARD_LEAVE_CARD);
        notes.push(`'${reader.name}' (card is neither GIDS nor PIV)`);
      }
    }
    if (found.length === 1) {
      const { reader, card } = found[0]!;
      return new PcscTransport(b, ctx, card, reader.name, options.share ?? 'exclusive', eventCount(ctx, reader.name), opts.transmitTimeoutMs);
    }
    for (const f of found) f.card.disconnect(b.SCARD_LEAVE_CARD);
    if (found.length > 1) {
      throw new TransportError(
        'AMBIGUOUS_READER',
        `several readers hold a GIDS or PIV card: ${found.map((f) => `'${f.reader.name}' (${f.app})`).join(', ')}; choose one with --reader`,
      );
    }
    throw new TransportError('NO_CARD', `no reader holds a GIDS or PIV card; readers seen: ${notes.join(', ')}`);
  } catch (err) {
    ctx.close();
    throw err;
  }
}

/** pcscd counts card insertions and removals in the upper 16 bits of the reader state. */
function eventCount(ctx: BindingContext, reader: string): number | undefined {
  try {
    const r = ctx.listReaders().find((x) => x.name === reader);
    return r === undefined ? undefined : r.state >>> 16;
  } catch {
    return undefined;
  }
}

/**
 * One connection to one card, held until `close()`. APDUs from this process go one at a time, in
 * order; with the default exclusive share mode no other process can slip APDUs in between (see
 * the README's PC/SC section).
 */
export class PcscTransport implements Transport {
  readonly atr: Uint8Array;
  private queue: Promise<unknown> = Promise.resolve();
  /** Set when a native call may still be running (timed out): the handle must not be touched. */
  private wedged: TransportError | undefined;
  private closed = false;

  constructor(
    private readonly b: Binding,
    private readonly ctx: BindingContext,
    private readonly card: BindingCard,
    readonly name: string,
    readonly share: 'shared' | 'exclusive',
    private readonly events: number | undefined,
    private readonly transmitTimeoutMs: number,
  ) {
    this.atr = new Uint8Array(card.atr ?? []);
  }

  transmit(apdu: Uint8Array): Promise<Uint8Array> {
    return this.serialize(async () => {
      const response = await withTimeout(
        this.card.transmit(Buffer.from(apdu), { maxRecvLength: PCSC_MAX_RECV }),
        this.transmitTimeoutMs,
        () => new TransportError('TIMEOUT', `the card in reader '${this.name}' did not answer within ${this.transmitTimeoutMs} ms`),
      );
      // vpcd reports a card that vanished mid-command as a successful empty answer.
      if (response.length < 2) throw new Error(`response of ${response.length} bytes, no status word`);
      return new Uint8Array(response);
    }, 'sending an APDU');
  }

  /** Warm reset through the reader: the card loses its selected application and PIN state. */
  reset(): Promise<void> {
    return this.serialize(async () => {
      await withTimeout(
        this.card.reconnect(this.shareMode(), this.b.SCARD_PROTOCOL_T0 | this.b.SCARD_PROTOCOL_T1, this.b.SCARD_RESET_CARD),
        this.transmitTimeoutMs,
        () => new TransportError('TIMEOUT', `the card in reader '${this.name}' did not come back from reset`),
      );
    }, 'resetting the card');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.catch(() => undefined);
    // A timed-out native call still holds pcsc-lite's per-context lock: disconnecting now would
    // block the event loop until it returns.
    if (this.wedged) return;
    try {
      // Reset, so a verified PIN or admin authentication does not outlive the command for
      // whichever application connects next. Through the asynchronous reconnect: the binding's
      // disconnect blocks the event loop, and the reset needs the card to answer, which an
      // emulator running in this same process could then never do.
      await withTimeout(
        this.card.reconnect(this.shareMode(), this.b.SCARD_PROTOCOL_T0 | this.b.SCARD_PROTOCOL_T1, this.b.SCARD_RESET_CARD),
        this.transmitTimeoutMs,
        () => new TransportError('TIMEOUT', `reader '${this.name}' did not reset the card`),
      );
    } catch {
      // Gone with the card or the service, or not answering: the disconnect below still releases it.
    }
    try {
      this.card.disconnect(this.b.SCARD_LEAVE_CARD);
    } catch {
      // Already gone with the card or the service: nothing left to release.
    }
    this.ctx.close();
  }

  private shareMode(): number {
    return this.share === 'shared' ? this.b.SCARD_SHARE_SHARED : this.b.SCARD_SHARE_EXCLUSIVE;
  }

  private serialize<T>(work: () => Promise<T>, doing: string): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.closed) throw new TransportError('CLOSED', `${this.name}: transport is closed`);
      if (this.wedged) throw this.wedged;
      try {
        return await work();
      } catch (err) {
        const e = await this.diagnose(err, doing);
        if (e.code === 'TIMEOUT') this.wedged = e;
        throw e;
      }
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /**
   * A card pulled mid-session surfaces as a generic "Transaction failed" or "Communication error";
   * pcscd notices the empty slot a few hundred milliseconds later. Watch the reader briefly to
   * tell a removal from a genuine I/O failure.
   */
  private async diagnose(err: unknown, doing: string): Promise<TransportError> {
    const e = toTransportError(err, doing, this.name);
    if (e.code !== 'IO') return e;
    const deadline = Date.now() + 1500;
    while (Date.now() < deadline) {
      let reader: BindingReader | undefined;
      try {
        reader = this.ctx.listReaders().find((r) => r.name === this.name);
      } catch {
        return e;
      }
      if (!reader) return new TransportError('NO_READER', `reader '${this.name}' disappeared (${doing})`, { cause: err });
      const gone = (reader.state & this.b.SCARD_STATE_PRESENT) === 0;
      const swapped = this.events !== undefined && reader.state >>> 16 !== this.events;
      if (gone || swapped) return new TransportError('CARD_REMOVED', `${advice('CARD_REMOVED', this.name)} (${doing})`, { cause: err });
      await sleep(50);
    }
    return e;
  }
}

// ---- reader-state events -------------------------------------------------------------------------

/**
 * The pseudo reader through which SCardGetStatusChange reports readers being attached or removed
 * (docs/sources.md#pcsc-getstatuschange): its event state carries the reader count in the upper
 * 16 bits in pcsc-lite, and Windows flags a change the same way.
 */
const PNP_NOTIFICATION = '\\\\?PnP?\\Notification';

export type PcscReaderEvent =
  /** Connected to the PC/SC service (at start, and again after it came back). */
  | { type: 'service-up' }
  /** The PC/SC service is gone (stopped, restarted, not installed); the watch keeps trying. */
  | { type: 'service-down'; error: TransportError }
  | { type: 'reader-attached'; reader: PcscReaderInfo }
  | { type: 'reader-removed'; name: string }
  /** A card went in, or was already in when the watch (re)connected to the service. */
  | { type: 'card-inserted'; reader: PcscReaderInfo }
  | { type: 'card-removed'; name: string }
  /** Another application took or released the card (the `inUse` flag changed, no insertion). */
  | { type: 'card-use'; reader: PcscReaderInfo };

export interface PcscWatchOptions {
  signal: AbortSignal;
  onEvent(event: PcscReaderEvent): void;
  /** Longest single SCardGetStatusChange; a vanished service is noticed at the latest after this. */
  sliceMs?: number;
  /** Wait between attempts to reach the service while it is down. */
  reconnectMs?: number;
}

interface Seen {
  state: number;
  info: PcscReaderInfo;
}

/**
 * Watches every reader through SCardGetStatusChange and reports what changed, without ever
 * connecting to a card: nothing here holds a card handle, so other applications see the card as
 * free. Survives the service going away (pcscd restarted, socket-activated pcscd exiting): it
 * reports `service-down`, tries again every `reconnectMs`, and on return reports every card that is
 * in as inserted (the service powered it up afresh). Runs until the signal aborts.
 */
export async function watchPcscReaders(o: PcscWatchOptions): Promise<void> {
  const b = await loadPcscBinding();
  const sliceMs = o.sliceMs ?? 5000;
  const reconnectMs = o.reconnectMs ?? 250;
  let down = false;
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        o.signal.removeEventListener('abort', done);
        resolve();
      }
      o.signal.addEventListener('abort', done, { once: true });
    });
  while (!o.signal.aborted) {
    let ctx: BindingContext;
    try {
      ctx = openContext(b);
    } catch (err) {
      if (!down) o.onEvent({ type: 'service-down', error: toTransportError(err, 'connecting to the PC/SC service') });
      down = true;
      await pause(reconnectMs);
      continue;
    }
    const onAbort = (): void => ctx.cancel();
    o.signal.addEventListener('abort', onAbort, { once: true });
    const seen = new Map<string, Seen>();
    try {
      const current = (): BindingReader[] => {
        try {
          return ctx.listReaders();
        } catch (err) {
          const e = toTransportError(err, 'listing readers');
          if (e.code === 'NO_READER') return [];
          throw e;
        }
      };
      // The first listing doubles as the check that the service is really there.
      let readers = current();
      down = false;
      o.onEvent({ type: 'service-up' });
      let pnpState = 0;
      for (;;) {
        const names = new Set(readers.map((r) => r.name));
        for (const [name, s] of seen) {
          if (names.has(name)) continue;
          seen.delete(name);
          if (s.info.card !== 'empty') o.onEvent({ type: 'card-removed', name });
          o.onEvent({ type: 'reader-removed', name });
        }
        for (const r of readers) {
          const info = describeReader(b, r.name, r.state, r.atr);
          const before = seen.get(r.name);
          seen.set(r.name, { state: r.state, info });
          if (!before) {
            o.onEvent({ type: 'reader-attached', reader: info });
            if (info.card !== 'empty') o.onEvent({ type: 'card-inserted', reader: info });
            continue;
          }
          const wasIn = before.info.card !== 'empty';
          const isIn = info.card !== 'empty';
          // pcscd counts insertions and removals in the upper 16 bits: a card swapped between two
          // looks is a removal and an insertion even though both looks saw a card.
          const swapped = wasIn && isIn && before.state >>> 16 !== r.state >>> 16;
          if (wasIn && (!isIn || swapped)) o.onEvent({ type: 'card-removed', name: r.name });
          if (isIn && (!wasIn || swapped)) o.onEvent({ type: 'card-inserted', reader: info });
          else if (isIn && before.info.inUse !== info.inUse) o.onEvent({ type: 'card-use', reader: info });
        }
        if (o.signal.aborted) return;
        const watched = [...seen].map(([name, s]) => ({ name, state: s.state }));
        watched.push({ name: PNP_NOTIFICATION, state: pnpState });
        let changes: BindingReaderState[] | null;
        try {
          changes = await ctx.waitForChange(watched, sliceMs);
        } catch (err) {
          throw toTransportError(err, 'waiting for reader changes');
        }
        if (changes === null) return; // cancelled: the signal aborted
        const pnp = changes.find((c) => c.name === PNP_NOTIFICATION);
        // Fed back as the current state, so the next wait blocks until the reader count moves.
        if (pnp) pnpState = pnp.state & ~CHANGED_BIT;
        // A fresh listing rather than the per-reader answers: it also names attached readers.
        readers = current();
        if (changes.length === 0) checkAlive(ctx);
      }
    } catch (err) {
      if (o.signal.aborted) return;
      const e = err instanceof TransportError ? err : toTransportError(err, 'watching readers');
      for (const [name, s] of seen) {
        if (s.info.card !== 'empty') o.onEvent({ type: 'card-removed', name });
        o.onEvent({ type: 'reader-removed', name });
      }
      if (!down) o.onEvent({ type: 'service-down', error: e });
      down = true;
      await pause(reconnectMs);
    } finally {
      o.signal.removeEventListener('abort', onAbort);
      try {
        ctx.close();
      } catch {
        // The service is gone: nothing left to release.
      }
    }
  }
}

/** SCARD_STATE_CHANGED (winscard.h): set in an event state, never meant as a current state. */
const CHANGED_BIT = 0x0002;

/** After a quiet slice: a listing fails when the service went away while we waited. */
function checkAlive(ctx: BindingContext): void {
  try {
    ctx.listReaders();
  } catch (err) {
    const e = toTransportError(err, 'listing readers');
    if (e.code !== 'NO_READER') throw e;
  }
}
