import { CardlinkError } from '../../errors.js';

export { PinError } from '../../pin-error.js';

/** The card is not a GIDS card, or answered in a way the GIDS profile does not allow. */
export class GidsError extends CardlinkError {}
