import { CardlinkError } from '../../errors.js';

export { PinError } from '../../pin-error.js';

/** The card is not a GIDS card, or answered in a way the GIDS profile does not allow. */
export class GidsError extends CardlinkError {}

/**
 * The card refused an administrator challenge response. `triesLeft` is what the card reported
 * (`63Cx`), or null for a card that does not count failed administrator attempts (GidsApplet,
 * the emulator): such a card is never blocked or wiped by a wrong response.
 */
export class AdminAuthError extends CardlinkError {
  readonly triesLeft: number | null;
  constructor(code: 'ADMIN_RESPONSE_REFUSED' | 'ADMIN_CHALLENGE_USED' | 'ADMIN_BLOCKED', message: string, triesLeft: number | null) {
    super(code, message);
    this.triesLeft = triesLeft;
  }
}
