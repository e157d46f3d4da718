import assert from 'node:assert/strict';
import { createCipheriv, verify } from 'node:crypto';
import { test } from 'node:test';
import { adminChallengeResponse, groupedHex, parseChallengeHex } from '../../src/admin-challenge.js';
import type { AdminAuthError } from '../../src/card/index.js';
import { GidsSession } from '../../src/gids/host/session.js';
import type { Transport } from '../../src/transport/transport.js';
import { TEST_ADMIN_KEY, TEST_PIN, initialisedCard } from '../helpers/card.js';

async function blockPin(card: { verifyPin(pin: string): Promise<void> }): Promise<void> {
  for (let i = 0; i < 3; i++) await assert.rejects(card.verifyPin('999999'));
  await assert.rejects(card.verifyPin(TEST_PIN), { code: 'PIN_BLOCKED' });
}

test('the response is 3DES-EDE3 of the 8-byte challenge (one block, as ECB): an independent encipherment agrees', () => {
  const challenge = Buffer.from('0011223344556677', 'hex');
  const ecb = createCipheriv('des-ede3-ecb', TEST_ADMIN_KEY, null).setAutoPadding(false);
  const expected = Buffer.concat([ecb.update(challenge), ecb.final()]);
  assert.equal(Buffer.from(adminChallengeResponse(TEST_ADMIN_KEY, challenge)).toString('hex'), expected.toString('hex'));
  assert.equal(groupedHex(challenge), '0011 2233 4455 6677');
  assert.deepEqual(parseChallengeHex('0011 2233-4455 6677', 'challenge'), new Uint8Array(challenge));
  assert.throws(() => parseChallengeHex('0011 2233', 'response'), { code: 'BAD_ADMIN_CHALLENGE' });
});

test('blocked PIN → card challenge → response from the admin key → new PIN works, retry counter full, the key still signs', async () => {
  const t = await initialisedCard();
  await t.card.verifyPin(TEST_PIN);
  const created = await t.card.createContainer('c1', { bits: 1024 });
  await blockPin(t.card);
  const challenge = await t.card.adminChallenge();
  assert.equal(challenge.length, 8);
  const second = await t.card.adminChallenge();
  assert.notDeepEqual(second, challenge, 'each challenge is fresh');
  await t.card.unblockPinWithResponse(adminChallengeResponse(TEST_ADMIN_KEY, second), '24680');
  assert.deepEqual(await t.card.pinStatus(), { triesLeft: 3, tryLimit: 3 });
  await assert.rejects(t.card.verifyPin(TEST_PIN), { code: 'PIN_INCORRECT' });
  await t.card.verifyPin('24680');
  const data = Buffer.from('still my key');
  const signature = await t.card.sign('c1', data);
  assert.ok(verify('sha256', data, created.publicKey, signature));
});

test('a response for another challenge, another card, or used twice is refused; the card says so and keeps its containers and blocked PIN', async () => {
  const t = await initialisedCard();
  await t.card.verifyPin(TEST_PIN);
  await t.card.createContainer('keep', { bits: 1024 });
  await blockPin(t.card);
  const refused = (code: string) => (e: AdminAuthError) => {
    assert.equal(e.code, code);
    if (code === 'ADMIN_RESPONSE_REFUSED') assert.match(e.message, /does not count failed administrator attempts/);
    assert.equal(e.triesLeft, null);
    return true;
  };

  // Another challenge: the response to an old one.
  const old = await t.card.adminChallenge();
  await t.card.adminChallenge();
  await assert.rejects(t.card.unblockPinWithResponse(adminChallengeResponse(TEST_ADMIN_KEY, old), '111111'), refused('ADMIN_RESPONSE_REFUSED'));

  // Another card's key.
  const c = await t.card.adminChallenge();
  await assert.rejects(t.card.unblockPinWithResponse(adminChallengeResponse(Buffer.alloc(24, 0x5a), c), '111111'), refused('ADMIN_RESPONSE_REFUSED'));
  // ...and the right response to that challenge afterwards: the challenge was spent by the wrong answer.
  await assert.rejects(t.card.unblockPinWithResponse(adminChallengeResponse(TEST_ADMIN_KEY, c), '111111'), refused('ADMIN_CHALLENGE_USED'));

  // Used twice: the second time there is no challenge waiting.
  const once = await t.card.adminChallenge();
  const response = adminChallengeResponse(TEST_ADMIN_KEY, once);
  await t.card.unblockPinWithResponse(response, '333333');
  await blockPin({ verifyPin: (p) => t.card.verifyPin(p === TEST_PIN ? '333334' : p) });
  await assert.rejects(t.card.unblockPinWithResponse(response, '444444'), refused('ADMIN_CHALLENGE_USED'));
  await assert.rejects(t.card.verifyPin('444444'), { code: 'PIN_BLOCKED' });
  assert.deepEqual((await t.card.containers()).map((x) => x.name), ['keep']);
});

test('changeAdminKey: the old key stops working, the new one works; adminKeyWorks tells them apart', async () => {
  const t = await initialisedCard();
  const next = Buffer.alloc(24, 0x42);
  assert.equal(await t.card.adminKeyWorks(next), false);
  await t.card.changeAdminKey(TEST_ADMIN_KEY, next);
  assert.equal(await t.card.adminKeyWorks(TEST_ADMIN_KEY), false);
  assert.equal(await t.card.adminKeyWorks(next), true);
  await assert.rejects(t.card.changeAdminKey(TEST_ADMIN_KEY, Buffer.alloc(24, 1)), { code: 'ADMIN_AUTH_FAILED' });
});

/** A card that answers every APDU with one status word: for the answers our emulator never gives. */
function answering(sw: number): Transport {
  return { name: 'stub', transmit: async () => new Uint8Array([sw >> 8, sw & 0xff]), close: async () => undefined };
}

test('a card that counts failed administrator attempts: 63Cx is reported as tries left, 6983 as blocked', async () => {
  const response = new Uint8Array(8);
  await assert.rejects(new GidsSession(answering(0x63c2)).answerAdminChallenge(response), (e: AdminAuthError) => {
    assert.equal(e.code, 'ADMIN_RESPONSE_REFUSED');
    assert.equal(e.triesLeft, 2);
    assert.match(e.message, /2 administrator tries left/);
    return true;
  });
  await assert.rejects(new GidsSession(answering(0x63c1)).answerAdminChallenge(response), /1 administrator try left/);
  await assert.rejects(new GidsSession(answering(0x6983)).answerAdminChallenge(response), (e: AdminAuthError) => e.code === 'ADMIN_BLOCKED' && e.triesLeft === 0);
  await assert.rejects(new GidsSession(answering(0x9000)).answerAdminChallenge(new Uint8Array(7)), { code: 'BAD_ADMIN_RESPONSE' });
});
