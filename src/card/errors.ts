import { CardlinkError } from '../errors.js';

/** A card-level operation could not be done; says what cardlink was doing and on which container. */
export class CardError extends CardlinkError {
  readonly container: string | undefined;
  constructor(code: string, message: string, options?: { container?: string; cause?: unknown }) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.container = options?.container;
  }
}
