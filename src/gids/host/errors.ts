import { CardlinkError } from '../../errors.js';

/** The user PIN was refused or is blocked; `triesLeft` is what the card reported. */
export class PinError extends CardlinkError {
  readonly triesLeft: number;
  constructor(code: 'PIN_INCORRECT' | 'PIN_BLOCKED' | 'PIN_FORMAT', message: string, triesLeft: number) {
    super(code, message);
    this.triesLeft = triesLeft;
  }
}

/** The card is not a GIDS card, or answered in a way the GIDS profile does not allow. */
export class GidsError extends CardlinkError {}
