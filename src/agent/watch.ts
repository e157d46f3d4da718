import type { MinidriverCard } from '../card/index.js';
import type { CollectReport } from './collect.js';

export interface WatchOptions {
  /** The card in the reader, or undefined when there is none (opening must not wait for one). */
  open(): Promise<{ card: MinidriverCard; close(): Promise<void> } | undefined>;
  pass(card: MinidriverCard): Promise<CollectReport>;
  signal: AbortSignal;
  /** How often to look for an insertion; default 1 s. */
  pollMs?: number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  onReport(report: CollectReport): void;
  onError(err: unknown): void;
}

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
 * `collect --watch`: collects on every insertion, and while a card stays in with something still
 * waiting, again when the service's Retry-After has passed. Runs until the signal aborts.
 */
export async function watch(o: WatchOptions): Promise<void> {
  const sleep = o.sleep ?? abortableSleep;
  const pollMs = o.pollMs ?? 1000;
  let present = false;
  let nextPass = 0;
  while (!o.signal.aborted) {
    let opened: Awaited<ReturnType<WatchOptions['open']>>;
    try {
      opened = await o.open();
    } catch (err) {
      o.onError(err);
      opened = undefined;
    }
    if (!opened) present = false;
    else {
      const inserted = !present;
      present = true;
      try {
        if (inserted || Date.now() >= nextPass) {
          const report = await o.pass(opened.card);
          o.onReport(report);
          nextPass = report.retryAfter === null ? Infinity : Date.now() + report.retryAfter * 1000;
        }
      } catch (err) {
        o.onError(err);
        // A failed pass (card pulled, service down) is tried again on the next poll.
        present = false;
      } finally {
        await opened.close();
      }
    }
    await sleep(pollMs, o.signal);
  }
}
