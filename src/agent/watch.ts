import type { MinidriverCard } from '../card/index.js';
import { PinError } from '../card/index.js';
import type { CollectReport } from './collect.js';

/** What to do after the card refused the PIN: go on with a new PIN the user gave, or stop. */
export type AfterWrongPin = 'retry' | 'stop';

export interface WatchOptions {
  /** The card in the reader, or undefined when there is none (opening must not wait for one). */
  open(): Promise<{ card: MinidriverCard; close(): Promise<void> } | undefined>;
  /**
   * One pass on the card. It may end with what is left to do once the card is released (linking
   * through Windows' providers, which open their own connection): the watch closes the card, then
   * runs it.
   */
  pass(card: MinidriverCard): Promise<CollectReport | (() => Promise<CollectReport>)>;
  signal: AbortSignal;
  /**
   * The card refused the PIN (or it is blocked). Called with the card closed. Answer 'retry' only
   * once the user has typed a new PIN: the watch never tries the same PIN twice on its own, since
   * each wrong try brings the card one step closer to blocked.
   */
  onWrongPin(err: PinError): Promise<AfterWrongPin>;
  /** How often to look for an insertion; default 1 s. */
  pollMs?: number;
  /** Waits after a failed pass, doubling from `firstMs` to at most `maxMs`; default 1 s to 60 s. */
  backoff?: { firstMs: number; maxMs: number };
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  now?: () => number;
  /** In [0, 1); the jitter source (tests pass a fixed one). */
  random?: () => number;
  onReport(report: CollectReport): void;
  /** A failed pass and how long the watch now waits before the next one (unless the card is re-inserted). */
  onError(err: unknown, retryInMs: number | undefined): void;
}

/** Why the watch ended. */
export type WatchEnd = { reason: 'stopped' } | { reason: 'pin'; error: PinError };

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * The wait before the n-th consecutive retry (n from 1): exponential, bounded, with "equal
 * jitter" (half fixed, half random) so agents that lost the service together do not come back
 * in step (docs/sources.md#backoff-jitter).
 */
export function backoffDelay(failures: number, o: { firstMs: number; maxMs: number }, random: () => number): number {
  const ceiling = Math.min(o.maxMs, o.firstMs * 2 ** Math.min(failures - 1, 30));
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}

/**
 * `collect --watch`: collects on every insertion, and while a card stays in with something still
 * waiting, again when the service's Retry-After has passed. A failed pass (service down, card
 * pulled half-way) is tried again after a growing, jittered wait, or at once when the card is
 * re-inserted. A refused PIN is never retried by the watch itself: it asks `onWrongPin`.
 * Runs until the signal aborts or `onWrongPin` says stop.
 */
export async function watch(o: WatchOptions): Promise<WatchEnd> {
  const sleep = o.sleep ?? abortableSleep;
  const now = o.now ?? Date.now;
  const random = o.random ?? Math.random;
  const backoff = o.backoff ?? { firstMs: 1000, maxMs: 60_000 };
  const pollMs = o.pollMs ?? 1000;
  let present = false;
  let nextPass = 0;
  let failures = 0;
  while (!o.signal.aborted) {
    let opened: Awaited<ReturnType<WatchOptions['open']>>;
    try {
      opened = await o.open();
    } catch (err) {
      o.onError(err, undefined);
      opened = undefined;
    }
    let wrongPin: PinError | undefined;
    if (!opened) present = false;
    else {
      const inserted = !present;
      present = true;
      let closed = false;
      const close = async (): Promise<void> => {
        if (closed) return;
        closed = true;
        await opened.close();
      };
      try {
        if (inserted || now() >= nextPass) {
          const result = await o.pass(opened.card);
          let report: CollectReport;
          if (typeof result === 'function') {
            await close();
            report = await result();
          } else report = result;
          failures = 0;
          o.onReport(report);
          nextPass = report.retryAfter === null ? Infinity : now() + report.retryAfter * 1000;
        }
      } catch (err) {
        if (err instanceof PinError) wrongPin = err;
        else {
          failures++;
          const wait = backoffDelay(failures, backoff, random);
          nextPass = now() + wait;
          o.onError(err, wait);
        }
      } finally {
        await close();
      }
    }
    if (wrongPin) {
      if ((await o.onWrongPin(wrongPin)) === 'stop') return { reason: 'pin', error: wrongPin };
      // A new PIN from the user: use it on the card that is in now.
      nextPass = 0;
      continue;
    }
    await sleep(pollMs, o.signal);
  }
  return { reason: 'stopped' };
}

