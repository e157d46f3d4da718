import { TransportError, type Transport } from './transport.js';

export interface ExchangeRecord {
  command: Uint8Array;
  response: Uint8Array;
  micros: number;
}

/**
 * Wraps a transport to count and trace APDUs (tests, benchmarks) and to inject a pulled card:
 * after `failAfter(k)`, the (k+1)-th transmit and every later one fail with CARD_REMOVED, and the
 * card never sees them, as when the card leaves the reader between two APDUs.
 */
export class RecordingTransport implements Transport {
  readonly records: ExchangeRecord[] = [];
  private budget = Infinity;

  constructor(private readonly inner: Transport) {}

  get name(): string {
    return this.inner.name;
  }

  get count(): number {
    return this.records.length;
  }

  get bytesSent(): number {
    return this.records.reduce((n, r) => n + r.command.length, 0);
  }

  get bytesReceived(): number {
    return this.records.reduce((n, r) => n + r.response.length, 0);
  }

  /** Lets k more APDUs through, then behaves as a removed card. */
  failAfter(k: number): void {
    this.budget = k;
  }

  /** Puts the card back: APDUs flow again. */
  reinsert(): void {
    this.budget = Infinity;
  }

  clear(): void {
    this.records.length = 0;
  }

  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    if (this.budget <= 0) throw new TransportError('CARD_REMOVED', `${this.name}: card removed`);
    this.budget -= 1;
    const start = process.hrtime.bigint();
    const response = await this.inner.transmit(apdu);
    const micros = Number(process.hrtime.bigint() - start) / 1000;
    this.records.push({ command: apdu.slice(), response: response.slice(), micros });
    return response;
  }

  async reset(): Promise<void> {
    await this.inner.reset?.();
  }

  async close(): Promise<void> {
    await this.inner.close();
  }
}
