import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hex } from '../../src/bytes.js';
import { GidsCard } from '../../src/gids/emulator/index.js';
import { expectSw, initializedEmulator, mutualAuth, PIN, SELECT_GIDS, send, verifyApdu } from './helpers.js';

const PIN_STATUS = '00CB3FFF045C027F7100';

function tries(card: GidsCard): number {
  const status = expectSw(card, PIN_STATUS, 0x9000);
  assert.equal(hex(status.subarray(0, 5)), '7F71069701');
  assert.equal(hex(status.subarray(6)), '930103', 'try limit 3');
  return status[5]!;
}

/** PUT DATA into A010 needs the PIN (ACL 30): a probe for "is the user logged in". */
const PROTECTED_WRITE = '00DBA01005DF3002CAFE';

describe('user PIN', () => {
  test('wrong PINs count down (63C2, 63C1, 63C0), then the PIN is blocked (6983)', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    assert.equal(tries(card), 3);
    expectSw(card, verifyApdu('000000'), 0x63c2);
    assert.equal(tries(card), 2);
    expectSw(card, verifyApdu('000000'), 0x63c1);
    expectSw(card, verifyApdu('000000'), 0x63c0);
    assert.equal(tries(card), 0);
    expectSw(card, verifyApdu(PIN), 0x6983, 'even the right PIN is refused once blocked');
    expectSw(card, '0020008000', 0x6983);
    expectSw(card, PROTECTED_WRITE, 0x6982);
  });

  test('the right PIN restores the counter and opens PIN-protected commands', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    expectSw(card, PROTECTED_WRITE, 0x6982, 'before VERIFY');
    expectSw(card, '00CBA013045C02DF3000', 0x6982, 'A013 is read-protected too');
    expectSw(card, verifyApdu('999999'), 0x63c2);
    expectSw(card, verifyApdu(PIN), 0x9000);
    assert.equal(tries(card), 3);
    expectSw(card, PROTECTED_WRITE, 0x9000);
    expectSw(card, '00CBA010045C02DF3000', 0x9000);
  });

  test('VERIFY without data asks whether a login is needed, without spending a try', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    expectSw(card, '00200080', 0x63c3);
    expectSw(card, verifyApdu('111111'), 0x63c2);
    expectSw(card, '00200080', 0x63c2);
    assert.equal(tries(card), 2);
    const blank = GidsCard.blank();
    expectSw(blank, SELECT_GIDS, 0x9000);
    expectSw(blank, '00200080', 0x9000, 'creation mode needs no login');
  });

  test('a PIN shorter than 4 or longer than 16 bytes is refused without a decrement', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    expectSw(card, verifyApdu('123'), 0x63c3);
    expectSw(card, verifyApdu('12345678901234567'), 0x63c3);
    assert.equal(tries(card), 3);
  });

  test('logout (VERIFY P2=82) closes PIN-protected commands again; a reset does too', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    expectSw(card, verifyApdu(PIN), 0x9000);
    expectSw(card, PROTECTED_WRITE, 0x9000);
    expectSw(card, '00200082', 0x9000);
    expectSw(card, PROTECTED_WRITE, 0x6982);
    expectSw(card, verifyApdu(PIN), 0x9000);
    card.reset();
    expectSw(card, SELECT_GIDS, 0x9000);
    expectSw(card, PROTECTED_WRITE, 0x6982);
    expectSw(card, verifyApdu(PIN), 0x9000);
    expectSw(card, SELECT_GIDS, 0x9000, 're-selecting the application');
    expectSw(card, PROTECTED_WRITE, 0x6982, 'logs out as well');
  });

  test('VERIFY parameters: P1 ≠ 00 → 6A86, unknown reference → 6A88, no PUK status', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    expectSw(card, '00200180' + verifyApdu(PIN).slice(8), 0x6a86);
    expectSw(card, '00200081' + verifyApdu(PIN).slice(8), 0x6a88);
    expectSw(card, '00CB3FFF045C027F7300', 0x6a88);
    assert.equal(tries(card), 3);
  });

  test('RESET RETRY COUNTER unblocks with a new PIN after admin mutual authentication', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    for (const sw of [0x63c2, 0x63c1, 0x63c0]) expectSw(card, verifyApdu('000000'), sw);
    expectSw(card, '002C028004' + '31313131', 0x6982, 'unblock needs the administrator');
    assert.equal(mutualAuth(card), 0x9000);
    expectSw(card, '002C028104' + '31313131', 0x6a88, 'only the user PIN (80)');
    expectSw(card, '002C018004' + '31313131', 0x6a86);
    expectSw(card, '002C028003' + '313131', 0x6700, 'new PIN too short');
    expectSw(card, '002C028004' + '31313131', 0x9000);
    assert.equal(tries(card), 3);
    expectSw(card, '002C028004' + '32323232', 0x6982, 'the unblock logged the administrator out');
    expectSw(card, verifyApdu(PIN), 0x63c2, 'the old PIN is gone');
    expectSw(card, verifyApdu('1111'), 0x9000);
  });

  test('RESET RETRY COUNTER in creation mode → 6986', () => {
    const card = GidsCard.blank();
    expectSw(card, SELECT_GIDS, 0x9000);
    expectSw(card, '002C028004' + '31313131', 0x6986);
  });

  test('CHANGE REFERENCE DATA: old‖new checks the old PIN (costing a try when wrong) and logs in', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    const old = Buffer.from(PIN).toString('hex');
    const next = Buffer.from('87654321').toString('hex');
    expectSw(card, `0024008006${old}`, 0x63c3, 'old‖new shorter than 8 bytes');
    expectSw(card, `002400800E${Buffer.from('654321').toString('hex')}${next}`, 0x63c2);
    expectSw(card, `002400800E${old}${next}`, 0x9000);
    assert.equal(tries(card), 3);
    expectSw(card, PROTECTED_WRITE, 0x9000, 'the change leaves the user logged in');
    expectSw(card, '00200082', 0x9000);
    expectSw(card, verifyApdu(PIN), 0x63c2);
    expectSw(card, verifyApdu('87654321'), 0x9000);
    expectSw(card, `0024008009${Buffer.from('87654321').toString('hex')}31`, 0x6700, 'a new PIN of 1 byte');
  });

  test('CHANGE REFERENCE DATA P1=01 sets the PIN: freely in creation mode, only when logged in afterwards', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    expectSw(card, '0024018004' + '35353535', 0x6982);
    expectSw(card, verifyApdu(PIN), 0x9000);
    expectSw(card, '0024018003' + '353535', 0x6700);
    expectSw(card, '0024018004' + '35353535', 0x9000);
    expectSw(card, PROTECTED_WRITE, 0x6982, 'setting the PIN logs out, as OwnerPIN.update does');
    expectSw(card, verifyApdu('5555'), 0x9000);
  });

  test('a counter decrement is saved before the PIN is compared', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    const seen: number[] = [];
    card.onPersistentChange = () => seen.push(card.toImage().pinTriesRemaining);
    expectSw(card, verifyApdu(PIN), 0x9000);
    assert.deepEqual(seen, [2, 3], 'stored 2 before comparing, then 3 after the match');
    seen.length = 0;
    expectSw(card, verifyApdu('000000'), 0x63c2);
    assert.deepEqual(seen, [2]);
    seen.length = 0;
    card.onPersistentChange = () => {
      throw new Error('disk full');
    };
    assert.equal(send(card, verifyApdu(PIN)).sw, 0x6581, 'no save, no comparison');
    card.onPersistentChange = undefined;
    assert.equal(tries(card), 2, 'the state is the last one saved');
  });
});
