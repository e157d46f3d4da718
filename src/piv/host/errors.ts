import { CardlinkError } from '../../errors.js';

export { PinError } from '../../pin-error.js';

export type PivErrorCode =
  /** The card has no PIV application (SELECT refused). */
  | 'NOT_PIV'
  /** The card answered in a way NIST SP 800-73-4 does not allow. */
  | 'PIV_BAD_RESPONSE'
  /** The card refused the management key (wrong key, or wrong algorithm for it). */
  | 'MGMT_KEY_REFUSED'
  /** A management key of the wrong length for its algorithm. */
  | 'MGMT_KEY_FORMAT'
  /** The card did not prove it knows the management key (mutual authentication). */
  | 'PIV_CARD_AUTH_FAILED'
  /** Not a PIV key slot, or an algorithm the slot or cardlink does not support. */
  | 'PIV_BAD_SLOT'
  | 'PIV_BAD_ALGORITHM'
  /** The slot holds no key. */
  | 'PIV_NO_KEY';

/** The card is not a PIV card, or refused or mangled a PIV operation. */
export class PivError extends CardlinkError {
  declare readonly code: PivErrorCode;
  constructor(code: PivErrorCode, message: string) {
    super(code, message);
  }
}
