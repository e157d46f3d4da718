import { CardlinkError } from '../errors.js';

/**
 * A minidriver or GIDS file whose bytes do not follow the format, or a value that cannot be written
 * in it. `file` names the logical file (`mscp/cmapfile`, `cardcf`, ...), `offset` is the byte
 * offset in that file where the problem starts (a character offset when `file` is a path being
 * validated), and `reason` says what is wrong there.
 */
export class CardFormatError extends CardlinkError {
  readonly file: string;
  readonly offset: number;
  readonly reason: string;
  constructor(file: string, offset: number, reason: string, options?: { cause?: unknown }) {
    super('CARD_FORMAT', `${file}: offset ${offset}: ${reason}`, options);
    this.file = file;
    this.offset = offset;
    this.reason = reason;
  }
}
