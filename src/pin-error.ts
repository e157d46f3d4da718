import { CardlinkError } from './errors.js';

/**
 * A PIN (or a PIV PUK) was refused or is blocked; `triesLeft` is what the card reported. One type
 * for every card application (GIDS, PIV), so that callers above the card never ask which one.
 */
export class PinError extends CardlinkError {
  readonly triesLeft: number;
  constructor(code: 'PIN_INCORRECT' | 'PIN_BLOCKED' | 'PIN_FORMAT' | 'PUK_INCORRECT' | 'PUK_BLOCKED', message: string, triesLeft: number) {
    super(code, message);
    this.triesLeft = triesLeft;
  }
}
