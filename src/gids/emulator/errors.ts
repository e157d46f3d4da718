import { CardlinkError } from '../../errors.js';

export type CardImageErrorCode =
  /** No image file at the path, and the caller did not ask to create one. */
  | 'IMAGE_NOT_FOUND'
  /** The file is not a card image this version understands (truncated, edited, wrong format). */
  | 'IMAGE_CORRUPT'
  /** The sealed secrets do not open with this machine's secure element key, or the image was altered. */
  | 'IMAGE_SEAL'
  /** Reading or writing the image or its secure element key failed at the file system level. */
  | 'IMAGE_IO'
  /** Another process (emulate, another command) has the image open: two writers would lose changes. */
  | 'IMAGE_IN_USE';

/** A card image could not be loaded or saved; the message names the file and what to do. */
export class CardImageError extends CardlinkError {
  declare readonly code: CardImageErrorCode;
  readonly path: string | undefined;
  constructor(code: CardImageErrorCode, message: string, options?: { path?: string; cause?: unknown }) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.path = options?.path;
  }
}
