import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { concat, fromHex, hex } from '../../src/bytes.js';
import { GidsCard } from '../../src/gids/emulator/index.js';
import { ADMIN_KEY, expectSw, initializedEmulator, mutualAuth, SELECT_GIDS, tdes } from './helpers.js';

/** B080 can only be rewritten by the administrator: a probe for "is the admin authenticated". */
const ADMIN_ONLY_WRITE = '00DBA01205DF3102BEEF';

describe('administrator authentication', () => {
  test('mutual authentication with the right key opens admin-only commands', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    expectSw(card, ADMIN_ONLY_WRITE, 0x6982);
    assert.equal(mutualAuth(card), 0x9000);
    expectSw(card, ADMIN_ONLY_WRITE, 0x9000);
    expectSw(card, '00200082', 0x9000);
    expectSw(card, ADMIN_ONLY_WRITE, 0x6982, 'logout ends the admin session');
  });

  test('a wrong key is refused with 6982 and leaves the admin out', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    const wrong = ADMIN_KEY.slice();
    wrong[0]! ^= 0xff;
    assert.equal(mutualAuth(card, wrong), 0x6982);
    expectSw(card, ADMIN_ONLY_WRITE, 0x6982);
  });

  test('replaying the host cryptogram after success → 6985', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    expectSw(card, '0022C1A403830180', 0x9000);
    const r1 = fromHex('00112233445566778899AABBCCDDEEFF');
    const challenge = expectSw(card, `00870000147C128110${hex(r1)}00`, 0x9000);
    const r2 = challenge.subarray(4, 20);
    const cryptogram = tdes(ADMIN_KEY, concat(r2, r1, new Uint8Array(7), new Uint8Array([0x80])), true);
    const step2 = `008700002C7C2A8228${hex(cryptogram)}00`;
    expectSw(card, step2, 0x9000);
    expectSw(card, step2, 0x6985, 'the challenge was used up');
    expectSw(card, ADMIN_ONLY_WRITE, 0x9000, 'the refused replay does not undo the login');
  });

  test('the host must echo the card challenge and pad Z1 with 80', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    expectSw(card, '0022C1A403830180', 0x9000);
    const r1 = new Uint8Array(16).fill(7);
    const challenge = expectSw(card, `00870000147C128110${hex(r1)}00`, 0x9000);
    const r2 = challenge.subarray(4, 20);
    const noPadding = tdes(ADMIN_KEY, concat(r2, r1, new Uint8Array(8)), true);
    expectSw(card, `008700002C7C2A8228${hex(noPadding)}00`, 0x6982);
    expectSw(card, `008700002C7C2A8228${hex(noPadding)}00`, 0x6985, 'a failure also consumes the challenge');
  });

  test('a response without a challenge → 6985; GENERAL AUTHENTICATE in creation mode → 6986', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    expectSw(card, '0022C1A403830180', 0x9000);
    expectSw(card, `008700002C7C2A8228${'00'.repeat(40)}00`, 0x6985);
    expectSw(card, '00870100147C128110' + '00'.repeat(16), 0x6a86);
    expectSw(card, '00870000147D128110' + '00'.repeat(16), 0x6984, 'dynamic authentication template 7C required');
    const blank = GidsCard.blank();
    expectSw(blank, SELECT_GIDS, 0x9000);
    expectSw(blank, '00870000147C128110' + '00'.repeat(16), 0x6986);
  });

  test('external authentication: empty 81 → 8-byte challenge C, then 82 E(C)', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    expectSw(card, '0022C1A403830180', 0x9000);
    const r = expectSw(card, '00870000047C02810000', 0x9000);
    assert.equal(hex(r.subarray(0, 4)), '7C0A8108');
    const c = r.subarray(4, 12);
    expectSw(card, `008700000C7C0A8208${hex(tdes(ADMIN_KEY, c, true))}`, 0x9000);
    expectSw(card, ADMIN_ONLY_WRITE, 0x9000);
    expectSw(card, `008700000C7C0A8208${hex(tdes(ADMIN_KEY, c, true))}`, 0x6985, 'replay');
    const again = expectSw(card, '00870000047C02810000', 0x9000);
    expectSw(card, ADMIN_ONLY_WRITE, 0x6982, 'a new challenge request starts logged out');
    expectSw(card, `008700000C7C0A8208${hex(tdes(ADMIN_KEY, again.subarray(4, 12).map((b) => b ^ 1), true))}`, 0x6982);
  });

  test('the administrator key can be changed only by the administrator', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    const next = fromHex('0F0E0D0C0B0A09080706050403020100F0E0D0C0B0A09080');
    const put = `00DB3FFF267024840180A51F8718${hex(next)}8803B073DC`;
    expectSw(card, put, 0x6982);
    assert.equal(mutualAuth(card), 0x9000);
    expectSw(card, put, 0x9000);
    expectSw(card, '00200082', 0x9000);
    assert.equal(mutualAuth(card), 0x6982, 'the old key no longer works');
    assert.equal(mutualAuth(card, next), 0x9000);
    expectSw(card, '00CB3FFF0A7008840180A5037F498000', 0x6982, 'the admin key is never readable');
  });
});
