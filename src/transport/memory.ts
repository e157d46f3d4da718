import type { CardProcessor } from '../apdu/processor.js';
import { TransportError, type Transport } from './transport.js';

/**
 * Connections to in-process cards that asked for a share mode, by card name (the image path): the
 * PC/SC rule for one card [SCON] — an exclusive connection needs the card to itself, and no other
 * connection is possible while one holds it.
 */
const holders = new Map<string, { exclusive: boolean; count: number }>();

/** The emulator in the same process: for unit tests and the in-process `--image` mode. */
export class MemoryTransport implements Transport {
  readonly name: string;
  private closed = false;
  /**
   * `share` (optional) makes this connection take part in PC/SC-style sharing with the other
   * connections to the card of the same name; without it the connection is not arbitrated.
   */
  constructor(
    private readonly card: CardProcessor,
    name = 'memory',
    private readonly share?: 'exclusive' | 'shared',
  ) {
    this.name = name;
    if (share) {
      const h = holders.get(name);
      if (h && (h.exclusive || share === 'exclusive')) {
        throw new TransportError('SHARING_VIOLATION', `${name}: another connection holds the card${h.exclusive ? ' exclusively' : ''}`);
      }
      holders.set(name, { exclusive: share === 'exclusive', count: (h?.count ?? 0) + 1 });
    }
  }

  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw new TransportError('CLOSED', `${this.name}: transport is closed`);
    return this.card.process(apdu);
  }

  async reset(): Promise<void> {
    this.card.reset();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.share) return;
    const h = holders.get(this.name);
    if (!h || h.count <= 1) holders.delete(this.name);
    else holders.set(this.name, { exclusive: false, count: h.count - 1 });
  }
}
