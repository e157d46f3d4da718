import type { CardProcessor } from '../apdu/processor.js';
import { TransportError, type Transport } from './transport.js';

/** The emulator in the same process: for unit tests and the in-process `--image` mode. */
export class MemoryTransport implements Transport {
  readonly name: string;
  private closed = false;
  constructor(
    private readonly card: CardProcessor,
    name = 'memory',
  ) {
    this.name = name;
  }

  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw new TransportError('CLOSED', `${this.name}: transport is closed`);
    return this.card.process(apdu);
  }

  async reset(): Promise<void> {
    this.card.reset();
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
