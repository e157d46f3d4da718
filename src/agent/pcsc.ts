import type { CardCache } from '../card/index.js';
import { MinidriverCard } from '../card/index.js';
import { openPcscTransport } from '../transport/pcsc.js';
import type { OpenedCard } from './daemon.js';

/**
 * Opens the card in `reader` for one agent pass: exclusive for the pass (the binding has no
 * transactions), and without waiting when another application holds the card — the agent then
 * gets SHARING_VIOLATION at once and backs off by itself instead of blocking in a retry loop.
 */
export async function openCardForPass(reader: string, cache: CardCache): Promise<OpenedCard> {
  const transport = await openPcscTransport({ reader, share: 'exclusive', busyTimeoutMs: 0, connectTimeoutMs: 5000, transmitTimeoutMs: 30_000 });
  try {
    const card = await MinidriverCard.open(transport, { cache });
    return { card, close: () => transport.close() };
  } catch (err) {
    // Never left to the garbage collector: an open handle locks the reader for everyone else.
    await transport.close();
    throw err;
  }
}
