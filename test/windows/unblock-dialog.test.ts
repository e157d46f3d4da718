import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adminChallengeResponse } from '../../src/admin-challenge.js';
import { fromHex, hex } from '../../src/bytes.js';
import { openUnblockDialog } from '../../src/windows/model/unblock-dialog.js';
import { TEST_ADMIN_KEY, TEST_PIN, initialisedCard } from '../helpers/card.js';

test("the logon screen's unblock dialog: card id and challenge out, the help desk's response and a new PIN in; a wrong response leaves the PIN blocked", async () => {
  const t = await initialisedCard();
  const port = t.card.minidriver();
  for (let i = 0; i < 3; i++) await assert.rejects(port.verifyPin('999999'));
  assert.equal((await port.pinStatus()).triesLeft, 0);

  const wrong = await openUnblockDialog(port);
  await assert.rejects(wrong.submit(hex(adminChallengeResponse(Buffer.alloc(24, 9), fromHex(wrong.challenge))), '864200'), { code: 'ADMIN_RESPONSE_REFUSED' });
  assert.equal((await port.pinStatus()).triesLeft, 0);

  const dialog = await openUnblockDialog(port);
  assert.equal(dialog.cardId, hex(await t.card.cardId()));
  assert.match(dialog.challenge, /^[0-9A-F]{4}( [0-9A-F]{4}){3}$/);
  const help = adminChallengeResponse(TEST_ADMIN_KEY, fromHex(dialog.challenge));
  assert.deepEqual(await dialog.submit(hex(help).replace(/(.{4})/g, '$1 '), '864200'), { triesLeft: 3, tryLimit: 3 });
  await assert.rejects(port.verifyPin(TEST_PIN), { code: 'PIN_INCORRECT' });
  await port.verifyPin('864200');
});
