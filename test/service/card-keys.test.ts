/**
 * The card administrator key use cases over both storage backends (SQLite and the real
 * PostgreSQL): the cardid → key version record, re-key and confirm, the per-card hourly limit as
 * the clock moves, one-time unblock tickets, master key rotation.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { adminChallengeResponse } from '../../src/admin-challenge.js';
import { fromHex, hex } from '../../src/bytes.js';
import { AdminKeyVault, DEFAULT_TRANSPORT_KEY } from '../../src/service/admin-keys.js';
import type { Principal } from '../../src/service/auth.js';
import { CardAdminService } from '../../src/service/card-admin.js';
import { ManualClock } from '../../src/service/clock.js';
import { openDb } from '../../src/service/storage/open.js';
import { Storage } from '../../src/service/storage/storage.js';
import { BACKENDS, randomCardId, tempDir } from './helpers.js';

const T0 = new Date(Date.UTC(2026, 0, 1));
const operator: Principal = { kind: 'operator', username: 'helpdesk', role: 'admin', sessionHash: 'x' };
/** A token principal; a new token id each time unless one is given. */
const token = (user: string, usable = true, tokenId: string = randomUUID()): Principal => ({ kind: 'enrollment-token', tokenId, user, profile: 'p', requestId: null, usable });

for (const backend of BACKENDS) {
  describe(`card administrator keys on ${backend.name}`, () => {
    const closers: (() => Promise<void>)[] = [];
    after(async () => {
      for (const c of closers) await c();
    });
    async function setup(): Promise<{ cards: CardAdminService; clock: ManualClock; vault: AdminKeyVault }> {
      const { dbUrl, cleanup } = await backend.open();
      const storage = await Storage.open(openDb(dbUrl, tempDir()), T0.getTime());
      closers.push(async () => (await storage.close(), await cleanup()));
      const clock = new ManualClock(T0);
      const vault = AdminKeyVault.inMemory();
      return { cards: new CardAdminService({ storage, vault, clock, unblockLimitPerHour: 2 }), clock, vault };
    }

    test('a new card: transport key as current, its own key as new; confirmed it is active and up to date', async () => {
      const { cards, vault } = await setup();
      const cardId = randomCardId();
      const aliceToken = token('alice@example.com');
      const first = await cards.cardAdminKey(aliceToken, cardId);
      assert.equal(first.upToDate, false);
      assert.deepEqual(first.currentKeys, [{ version: 0, key: hex(DEFAULT_TRANSPORT_KEY) }]);
      assert.equal(first.newKey, hex(vault.cardKey(cardId, 1)));
      await assert.rejects(cards.unblockResponse(operator, cardId, '0011223344556677'), { code: 'CONFLICT' }); // not active yet
      await assert.rejects(cards.confirmCardAdminKey(token('alice@example.com'), cardId, 2), { code: 'CONFLICT' });
      await cards.confirmCardAdminKey(token('alice@example.com'), cardId, 1);
      assert.deepEqual(await cards.cardAdminKey(token('alice@example.com'), cardId), { cardId, keyVersion: 1, upToDate: true, newKey: null, currentKeys: [] });
      await assert.rejects(cards.cardAdminKey(token('bob@example.com'), cardId), { code: 'FORBIDDEN' });
      await assert.rejects(cards.cardAdminKey(token('alice@example.com', false), cardId), { code: 'FORBIDDEN' });
      await assert.rejects(cards.cardAdminKey(operator, cardId), { code: 'FORBIDDEN' });
      // One token, one card: the same token cannot collect the key of another card id.
      await assert.rejects(cards.cardAdminKey(aliceToken, randomCardId()), { code: 'FORBIDDEN', message: /one token, one card/ });
    });

    test('the transport key is configurable: a new card is offered that one as its current key', async () => {
      const { dbUrl, cleanup } = await backend.open();
      const storage = await Storage.open(openDb(dbUrl, tempDir()), T0.getTime());
      closers.push(async () => (await storage.close(), await cleanup()));
      const transport = Buffer.alloc(24, 0x77);
      const cards = new CardAdminService({ storage, vault: AdminKeyVault.inMemory(transport), clock: new ManualClock(T0) });
      const answer = await cards.cardAdminKey(token('erin@example.com'), randomCardId());
      assert.deepEqual(answer.currentKeys, [{ version: 0, key: hex(transport) }]);
    });

    test('responses: each challenge once, at most 2 per card per hour, and again after the hour', async () => {
      const { cards, clock, vault } = await setup();
      const cardId = randomCardId();
      await cards.cardAdminKey(token('alice@example.com'), cardId);
      await cards.confirmCardAdminKey(token('alice@example.com'), cardId, 1);
      const r = await cards.unblockResponse(operator, cardId, '00112233 44556677');
      assert.equal(r.response, hex(adminChallengeResponse(vault.cardKey(cardId, 1), fromHex('0011223344556677'))));
      await assert.rejects(cards.unblockResponse(operator, cardId, '0011223344556677'), { code: 'CONFLICT' });
      await cards.unblockResponse(operator, cardId, '1011223344556677');
      await assert.rejects(cards.unblockResponse(operator, cardId, '2011223344556677'), { code: 'RATE_LIMITED' });
      clock.advance(3_600_001);
      await cards.unblockResponse(operator, cardId, '2011223344556677');
      await assert.rejects(cards.unblockResponse(token('alice@example.com'), cardId, '3011223344556677'), { code: 'FORBIDDEN' });
      await assert.rejects(cards.unblockResponse(operator, cardId, '30112233'), { code: 'BAD_REQUEST' });
    });

    test('tickets: one use, this card only, until they expire', async () => {
      const { cards, clock } = await setup();
      const a = randomCardId();
      const b = randomCardId();
      for (const c of [a, b]) {
        await cards.cardAdminKey(token('alice@example.com'), c);
        await cards.confirmCardAdminKey(token('alice@example.com'), c, 1);
      }
      const t1 = await cards.createUnblockTicket(operator, a);
      await assert.rejects(cards.unblockResponseWithTicket(b, '0011223344556677', t1.ticket), { code: 'UNAUTHENTICATED' });
      await cards.unblockResponseWithTicket(a, '0011223344556677', t1.ticket);
      await assert.rejects(cards.unblockResponseWithTicket(a, '1011223344556677', t1.ticket), { code: 'UNAUTHENTICATED' });
      const t2 = await cards.createUnblockTicket(operator, a, 120);
      clock.advance(121_000);
      await assert.rejects(cards.unblockResponseWithTicket(a, '2011223344556677', t2.ticket), { code: 'UNAUTHENTICATED' });
      await assert.rejects(cards.createUnblockTicket(token('alice@example.com'), a), { code: 'FORBIDDEN' });
    });

    test('rotation: the recorded version stays until the card confirms the new one; a half-done re-key offers both', async () => {
      const { cards, vault } = await setup();
      const cardId = randomCardId();
      await cards.cardAdminKey(token('alice@example.com'), cardId);
      await cards.confirmCardAdminKey(token('alice@example.com'), cardId, 1);
      assert.deepEqual(await cards.rotateMasterKey(operator), { keyVersion: 2 });
      const next = await cards.cardAdminKey(token('alice@example.com'), cardId);
      assert.deepEqual([next.keyVersion, next.newKey, next.currentKeys], [2, hex(vault.cardKey(cardId, 2)), [{ version: 1, key: hex(vault.cardKey(cardId, 1)) }]]);
      // Until confirmed, the help desk answers with version 1.
      assert.equal((await cards.unblockResponse(operator, cardId, '0011223344556677')).keyVersion, 1);
      await cards.confirmCardAdminKey(token('alice@example.com'), cardId, 2);
      assert.equal((await cards.unblockResponse(operator, cardId, '1011223344556677')).keyVersion, 2);
      await assert.rejects(cards.rotateMasterKey(token('alice@example.com')), { code: 'FORBIDDEN' });
    });
  });
}
