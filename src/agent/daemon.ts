/**
 * The workstation agent as an always-on service (`cardlink agent run`). It waits on reader-state
 * events (SCardGetStatusChange) and touches a card only when one was inserted or when something it
 * owes the service is due: a Retry-After, a retry after a failure, or the periodic check. It never
 * holds a connection between passes; a pass holds one exclusive connection for as short as it can
 * and backs off while another application has the card. A card seen before with the same `cardid`
 * and `cardcf` costs two file reads (the warm path).
 */
import { hostname } from 'node:os';
import { hex } from '../bytes.js';
import type { MinidriverCard } from '../card/index.js';
import { PinError } from '../card/index.js';
import { CardlinkError } from '../errors.js';
import { serializeCardCf } from '../minidriver/index.js';
import { ServiceClientError, type ServiceClient } from '../service/client.js';
import { TransportError } from '../transport/transport.js';
import { readCardFresh, type CardView } from '../windows/card-view.js';
import type { PcscReaderEvent } from '../transport/pcsc.js';
import type { CertificateDays, CollectReport, CollectTimings } from './collect.js';
import { finishRenewPass, renewOnCard, type RenewOptions, type RenewPassOptions } from './renew.js';
import { backoffDelay } from './watch.js';

/** One card, opened for one pass; `close` releases the connection (and resets the card). */
export interface OpenedCard {
  card: MinidriverCard;
  close(): Promise<void>;
}

export interface ExpectedLink {
  container: string;
  thumbprint: string;
}

export interface AgentLinker {
  /**
   * Links every certificate of the card as read (and proves the links), as `cardlink link` does.
   * Called with the card released: the providers reach the card in `reader` on their own.
   */
  link(view: CardView, reader: string): Promise<{ linked: ExpectedLink[] }>;
  /** Removes the store entries of these certificates (replaced by a renewal); returns those removed. */
  unlink?(thumbprints: string[]): Promise<string[]>;
  /** Whether the store holds exactly these links for the card, checked without the card. */
  holds(cardId: string, expected: ExpectedLink[]): Promise<boolean>;
}

export type PassKind = 'cold' | 'due' | 'warm' | 'relinked';

export interface PassRecord {
  at: string;
  reader: string;
  cardId: string | null;
  /** Why the pass ran: a card went in, or a wait the agent set itself ran out. */
  trigger: 'inserted' | 'due';
  kind: PassKind | null;
  ok: boolean;
  error?: { code: string; message: string };
  report?: CollectReport;
  /** Milliseconds: from the event to the end, and its parts. */
  timings: { totalMs: number; openMs: number; cardMs: number; serviceMs: number; installMs: number; linkMs: number };
  /** When the agent next looks at this card by itself (epoch ms), or null. */
  nextAt: number | null;
}

export type AgentLogEvent =
  | { event: 'started'; version: string; host: string }
  | { event: 'service-up' }
  | { event: 'service-down'; error: string }
  | { event: 'reader-attached' | 'reader-removed'; reader: string }
  | { event: 'card-inserted' | 'card-removed'; reader: string }
  | { event: 'card-busy'; reader: string; retryInMs: number }
  | { event: 'pass'; pass: PassRecord }
  | { event: 'pin-refused'; reader: string; cardId: string | null; error: string }
  | { event: 'stopped' };

export type AgentLogEntry = AgentLogEvent & { at: string; level: 'info' | 'warn' | 'error' };

export interface AgentOptions {
  /** watchPcscReaders, or a stand-in in tests. */
  watchReaders(o: { signal: AbortSignal; onEvent(e: PcscReaderEvent): void }): Promise<void>;
  /** Opens the card in the named reader for one pass: exclusive, without waiting while it is busy. */
  openCard(reader: string): Promise<OpenedCard>;
  client: ServiceClient;
  pin: string;
  linker?: AgentLinker;
  /** Reader names (or parts of names) to watch; all readers when empty or absent. */
  readers?: string[];
  /** The service is asked again after this long even when nothing waits (ms; default 24 h). */
  recheckMs?: number;
  /** After a failed pass (service unreachable, bad answer): default 1 s doubling to 5 min. */
  backoff?: { firstMs: number; maxMs: number };
  /** While another application holds the card: default 100 ms doubling to 2 s. */
  busyBackoff?: { firstMs: number; maxMs: number };
  random?: () => number;
  now?: () => number;
  host?: string;
  version?: string;
  log(entry: AgentLogEntry): void;
  /**
   * Renewal in every pass that talks to the service (renew.ts): certificates in their last
   * `windowDays` (default 30) get a successor; false turns it off.
   */
  renew?: RenewOptions | false;
  /** Called after every pass and state change with a snapshot (the status file). */
  onStatus?(status: AgentStatus): void;
}

interface CardMemory {
  cardcf: string;
  /** Epoch ms of the last successful check with the service. */
  checkedAt: number;
  /** A Retry-After to honour (epoch ms), or null. */
  dueAt: number | null;
  links: ExpectedLink[];
  pinRefused: boolean;
  /** The card's certificates and their days left, as the last pass that asked the service saw them. */
  certificates?: CertificateDays[];
}

interface ReaderSlot {
  name: string;
  present: boolean;
  inUse: boolean;
  running: boolean;
  /** A pass is wanted once the current one ends (an event came during it). */
  again: 'inserted' | 'due' | undefined;
  timer: NodeJS.Timeout | undefined;
  nextAt: number | null;
  /** Waiting for the other application to release the card. */
  busyTries: number;
  failures: number;
  cardId: string | null;
}

export interface AgentStatus {
  version: string;
  host: string;
  pid: number;
  startedAt: string;
  service: 'up' | 'down' | 'unknown';
  readers: { name: string; card: boolean; cardId: string | null; nextAt: string | null; failures: number }[];
  cards: { cardId: string; checkedAt: string; dueAt: string | null; links: number; pinRefused: boolean; certificates: CertificateDays[] }[];
  /** The most recent passes, newest last. */
  passes: PassRecord[];
}

const KEEP_PASSES = 20;

function errorInfo(err: unknown): { code: string; message: string } {
  if (err instanceof CardlinkError) return { code: err.code, message: err.message };
  return { code: 'ERROR', message: err instanceof Error ? err.message : String(err) };
}

/** Service trouble worth a retry with backoff; everything else waits for the next insertion. */
function retryable(err: unknown): boolean {
  if (err instanceof ServiceClientError) return err.code !== 'SERVICE_REFUSED' || (err.status !== undefined && (err.status >= 500 || err.status === 429));
  return err instanceof TransportError && (err.code === 'TIMEOUT' || err.code === 'IO');
}

export class Agent {
  private readonly slots = new Map<string, ReaderSlot>();
  private readonly memory = new Map<string, CardMemory>();
  private readonly passes: PassRecord[] = [];
  private service: AgentStatus['service'] = 'unknown';
  private readonly startedAt: string;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly host: string;
  private readonly version: string;
  private stopped = false;
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly o: AgentOptions) {
    this.now = o.now ?? Date.now;
    this.random = o.random ?? Math.random;
    this.host = o.host ?? hostname();
    this.version = o.version ?? 'unknown';
    this.startedAt = new Date(this.now()).toISOString();
  }

  /** Runs until the signal aborts; waits for a pass in progress to end. */
  async run(signal: AbortSignal): Promise<void> {
    this.log('info', { event: 'started', version: this.version, host: this.host });
    this.publish();
    try {
      await this.o.watchReaders({ signal, onEvent: (e) => this.onReaderEvent(e) });
    } finally {
      this.stopped = true;
      for (const s of this.slots.values()) clearTimeout(s.timer);
      await Promise.allSettled([...this.running]);
      this.log('info', { event: 'stopped' });
    }
  }

  status(): AgentStatus {
    const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
    return {
      version: this.version,
      host: this.host,
      pid: process.pid,
      startedAt: this.startedAt,
      service: this.service,
      readers: [...this.slots.values()].map((s) => ({ name: s.name, card: s.present, cardId: s.cardId, nextAt: iso(s.nextAt), failures: s.failures })),
      cards: [...this.memory].map(([cardId, m]) => ({ cardId, checkedAt: iso(m.checkedAt)!, dueAt: iso(m.dueAt), links: m.links.length, pinRefused: m.pinRefused, certificates: m.certificates ?? [] })),
      passes: [...this.passes],
    };
  }

  private log(level: AgentLogEntry['level'], e: AgentLogEvent): void {
    this.o.log({ at: new Date(this.now()).toISOString(), level, ...e } as AgentLogEntry);
  }

  private publish(): void {
    this.o.onStatus?.(this.status());
  }

  private watched(name: string): boolean {
    const want = this.o.readers ?? [];
    return want.length === 0 || want.some((w) => name === w || name.toLowerCase().includes(w.toLowerCase()));
  }

  private slot(name: string): ReaderSlot {
    let s = this.slots.get(name);
    if (!s) {
      s = { name, present: false, inUse: false, running: false, again: undefined, timer: undefined, nextAt: null, busyTries: 0, failures: 0, cardId: null };
      this.slots.set(name, s);
    }
    return s;
  }

  private onReaderEvent(e: PcscReaderEvent): void {
    switch (e.type) {
      case 'service-up':
        this.service = 'up';
        this.log('info', { event: 'service-up' });
        break;
      case 'service-down':
        this.service = 'down';
        this.log('warn', { event: 'service-down', error: e.error.message });
        break;
      case 'reader-attached':
        if (!this.watched(e.reader.name)) return;
        this.slot(e.reader.name);
        this.log('info', { event: 'reader-attached', reader: e.reader.name });
        break;
      case 'reader-removed': {
        const s = this.slots.get(e.name);
        if (!s) return;
        clearTimeout(s.timer);
        this.slots.delete(e.name);
        this.log('info', { event: 'reader-removed', reader: e.name });
        break;
      }
      case 'card-inserted': {
        if (!this.watched(e.reader.name)) return;
        const s = this.slot(e.reader.name);
        s.present = true;
        s.inUse = e.reader.inUse;
        s.failures = 0;
        s.busyTries = 0;
        s.cardId = null;
        this.log('info', { event: 'card-inserted', reader: s.name });
        this.start(s, 'inserted');
        break;
      }
      case 'card-removed': {
        const s = this.slots.get(e.name);
        if (!s) return;
        s.present = false;
        s.again = undefined;
        s.nextAt = null;
        clearTimeout(s.timer);
        this.log('info', { event: 'card-removed', reader: s.name });
        break;
      }
      case 'card-use': {
        const s = this.slots.get(e.reader.name);
        if (!s) return;
        s.inUse = e.reader.inUse;
        // Released by the other application while we wait for it: go now rather than at the timer.
        if (!s.inUse && s.busyTries > 0 && !s.running) {
          clearTimeout(s.timer);
          this.start(s, 'due');
        }
        return;
      }
    }
    this.publish();
  }

  private schedule(s: ReaderSlot, inMs: number, reason: 'due'): void {
    clearTimeout(s.timer);
    s.nextAt = this.now() + inMs;
    s.timer = setTimeout(() => {
      s.timer = undefined;
      if (s.present && !this.stopped) this.start(s, reason);
    }, inMs);
  }

  private start(s: ReaderSlot, trigger: 'inserted' | 'due'): void {
    if (this.stopped) return;
    if (s.running) {
      s.again = s.again === 'inserted' ? 'inserted' : trigger;
      return;
    }
    clearTimeout(s.timer);
    s.timer = undefined;
    s.nextAt = null;
    s.running = true;
    const p = this.pass(s, trigger)
      .catch(() => undefined)
      .finally(() => {
        s.running = false;
        this.running.delete(p);
        const again = s.again;
        s.again = undefined;
        if (again && s.present) this.start(s, again);
      });
    this.running.add(p);
  }

  private async pass(s: ReaderSlot, trigger: 'inserted' | 'due'): Promise<void> {
    const t0 = performance.now();
    const timings: PassRecord['timings'] = { totalMs: 0, openMs: 0, cardMs: 0, serviceMs: 0, installMs: 0, linkMs: 0 };
    const record: PassRecord = { at: new Date(this.now()).toISOString(), reader: s.name, cardId: null, trigger, kind: null, ok: false, timings, nextAt: null };
    let opened: OpenedCard | undefined;
    try {
      try {
        opened = await this.o.openCard(s.name);
      } catch (err) {
        if (err instanceof TransportError && err.code === 'SHARING_VIOLATION') {
          // Another application holds the card: wait for it, never fight it (no error, no record).
          s.busyTries++;
          const wait = backoffDelay(s.busyTries, this.o.busyBackoff ?? { firstMs: 100, maxMs: 2000 }, this.random);
          this.log('info', { event: 'card-busy', reader: s.name, retryInMs: wait });
          this.schedule(s, wait, 'due');
          this.publish();
          return;
        }
        throw err;
      }
      s.busyTries = 0;
      timings.openMs = performance.now() - t0;
      const { card } = opened;
      const tCard = performance.now();
      const { cardId: idBytes, cardcf } = await card.refresh();
      const cardId = hex(idBytes).toLowerCase();
      const cf = hex(serializeCardCf(cardcf));
      record.cardId = s.cardId = cardId;
      const m = this.memory.get(cardId);
      const now = this.now();
      if (m?.pinRefused) {
        // The PIN this agent has was refused on this card: trying it again would bring the card
        // closer to blocked. Only a restart with another PIN looks at this card again.
        record.kind = 'warm';
        record.ok = false;
        record.error = { code: 'PIN_REFUSED', message: 'this card refused the PIN the agent was given; restart the agent with the right PIN' };
        return;
      }
      const known = m !== undefined && m.cardcf === cf;
      const due = !known || (m.dueAt !== null && now >= m.dueAt) || now - m.checkedAt >= (this.o.recheckMs ?? 24 * 3600_000);
      if (!due) {
        // Warm: the card is as we left it. Release it before looking at the store.
        timings.cardMs = performance.now() - tCard;
        await opened.close();
        opened = undefined;
        record.kind = 'warm';
        if (this.o.linker && m.links.length > 0) {
          const tLink = performance.now();
          if (!(await this.o.linker.holds(cardId, m.links))) {
            // Read the card, release it, then link: the providers open their own connection.
            opened = await this.o.openCard(s.name);
            const view = await readCardFresh(opened.card.minidriver());
            const relinkedCf = hex(serializeCardCf(await opened.card.cardcf()));
            await opened.close();
            opened = undefined;
            const report = await this.o.linker.link(view, s.name);
            m.links = report.linked.map((l) => ({ container: l.container, thumbprint: l.thumbprint.toUpperCase() }));
            m.cardcf = relinkedCf;
            record.kind = 'relinked';
          }
          timings.linkMs = performance.now() - tLink;
        }
        record.ok = true;
        s.failures = 0;
        this.scheduleNext(s, m, record);
        return;
      }
      record.kind = known ? 'due' : 'cold';
      const t: CollectTimings = { serviceMs: 0, installMs: 0, linkMs: 0 };
      const linker = this.o.linker;
      const options: RenewPassOptions = {
        pin: this.o.pin,
        host: this.host,
        agentVersion: this.version,
        timings: t,
        ...(this.o.renew !== false ? { renew: this.o.renew ?? {} } : {}),
        ...(linker ? { link: (view: CardView) => linker.link(view, s.name) } : {}),
        ...(linker?.unlink ? { unlink: (thumbprints: string[]) => linker.unlink!(thumbprints) } : {}),
      };
      const onCard = await renewOnCard(card, this.o.client, options);
      const after = hex(serializeCardCf(await card.cardcf()));
      timings.cardMs = performance.now() - tCard - t.serviceMs - t.installMs;
      // The card is released before the store is linked: Windows' providers open their own
      // connection to it, which fails (SCARD_E_SHARING_VIOLATION) while the agent holds it.
      await opened.close();
      opened = undefined;
      const report = await finishRenewPass(onCard, this.o.client, options);
      Object.assign(timings, t);
      record.report = report;
      record.ok = true;
      s.failures = 0;
      const links = report.items.filter((i) => i.linked && i.thumbprint !== null).map((i) => ({ container: i.container, thumbprint: i.thumbprint! }));
      const mem: CardMemory = {
        cardcf: after,
        checkedAt: this.now(),
        dueAt: report.retryAfter === null ? null : this.now() + report.retryAfter * 1000,
        links: links.length > 0 || !m ? links : m.links,
        pinRefused: false,
        ...(report.certificates ? { certificates: report.certificates } : {}),
      };
      this.memory.set(cardId, mem);
      this.scheduleNext(s, mem, record);
    } catch (err) {
      record.error = errorInfo(err);
      if (err instanceof PinError) {
        const m = record.cardId ? this.memory.get(record.cardId) : undefined;
        if (record.cardId) this.memory.set(record.cardId, { cardcf: m?.cardcf ?? '', checkedAt: m?.checkedAt ?? 0, dueAt: null, links: m?.links ?? [], pinRefused: true });
        this.log('error', { event: 'pin-refused', reader: s.name, cardId: record.cardId, error: err.message });
      } else if (retryable(err) && s.present) {
        s.failures++;
        const wait = backoffDelay(s.failures, this.o.backoff ?? { firstMs: 1000, maxMs: 300_000 }, this.random);
        this.schedule(s, wait, 'due');
        record.nextAt = s.nextAt;
      }
      // Otherwise (card pulled, a card that is not ours, the service refusing): the next insertion.
    } finally {
      if (opened) await opened.close().catch(() => undefined);
      timings.totalMs = performance.now() - t0;
      if (record.kind !== null || record.error) {
        this.passes.push(record);
        if (this.passes.length > KEEP_PASSES) this.passes.shift();
        this.log(record.ok ? 'info' : record.error?.code === 'SERVICE_BAD_ANSWER' ? 'error' : 'warn', { event: 'pass', pass: record });
      }
      this.publish();
    }
  }

  private scheduleNext(s: ReaderSlot, m: CardMemory, record: PassRecord): void {
    if (m.dueAt !== null && s.present) {
      this.schedule(s, Math.max(0, m.dueAt - this.now()), 'due');
      record.nextAt = s.nextAt;
    }
  }
}
