/**
 * The logon screen's "unblock this smart card" dialog, as Windows drives a minidriver for it
 * (docs/sources.md#admin-challenge): the card's id and a challenge are shown (CardGetChallenge),
 * the user types the response the help desk reads back and a new PIN, then
 * CardAuthenticateChallenge and CardUnblockPin run on the same connection. The model takes the
 * card only through the minidriver port, as Windows does.
 */
import { groupedHex, parseChallengeHex } from '../../admin-challenge.js';
import { hex } from '../../bytes.js';
import type { MinidriverPort, PinInfo } from '../../card/index.js';
import { WinError } from '../errors.js';

export interface UnblockDialog {
  /** What the dialog shows: the card id (32 hex digits) and the challenge, in groups of four digits. */
  cardId: string;
  challenge: string;
  /** The user presses OK: response (16 hex digits, spaces allowed) and new PIN. */
  submit(response: string, newPin: string): Promise<PinInfo>;
}

export async function openUnblockDialog(port: MinidriverPort): Promise<UnblockDialog> {
  if (!port.getChallenge || !port.unblockPinWithResponse) throw WinError.of('NTE_NOT_SUPPORTED', 'CardGetChallenge', `${port.name}: this card has no challenge/response unblock`);
  const { cardId } = await port.begin();
  const challenge = await port.getChallenge();
  const unblock = port.unblockPinWithResponse.bind(port);
  return {
    cardId: hex(cardId),
    challenge: groupedHex(challenge),
    async submit(response, newPin) {
      await unblock(parseChallengeHex(response, 'response'), newPin);
      return port.pinStatus();
    },
  };
}
