import { CardlinkError } from '../errors.js';

/**
 * Raw APDU exchange with one card. Implementations: memory (the emulator in process), pcsc
 * (a reader through pcscd), and the recorder that wraps any of them.
 */
export interface Transport {
  /** A short human name: the reader name or the image path. */
  readonly name: string;
  /** Sends one command APDU and returns the full response (data + SW1 SW2). */
  transmit(apdu: Uint8Array): Promise<Uint8Array>;
  /** Warm-resets the card: volatile state (selection, PIN status) is lost. */
  reset?(): Promise<void>;
  close(): Promise<void>;
}

export type TransportErrorCode =
  | 'NO_SERVICE'
  | 'NO_READER'
  | 'NO_CARD'
  | 'CARD_REMOVED'
  | 'SHARING_VIOLATION'
  | 'AMBIGUOUS_READER'
  | 'TIMEOUT'
  | 'CLOSED'
  | 'IO';

export class TransportError extends CardlinkError {
  declare readonly code: TransportErrorCode;
  constructor(code: TransportErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
