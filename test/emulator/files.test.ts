import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { concat, fromHex, hex } from '../../src/bytes.js';
import { GidsCard } from '../../src/gids/emulator/index.js';
import { GIDS_FCI } from '../../src/gids/protocol/constants.js';
import { encodeTlv } from '../../src/gids/protocol/tlv.js';
import { command, expectSw, initializedEmulator, PIN, SELECT_GIDS, send, sendCommand, swOf, verifyApdu } from './helpers.js';

function loggedIn(): GidsCard {
  const card = initializedEmulator();
  expectSw(card, SELECT_GIDS, 0x9000);
  expectSw(card, verifyApdu(PIN), 0x9000);
  return card;
}

describe('application selection', () => {
  test('after a reset only SELECT by AID works: other AIDs 6A82, other commands 6986', () => {
    const card = initializedEmulator();
    card.reset();
    expectSw(card, '00A4040007627601FF000000', 0x6a82);
    expectSw(card, '00CB3FFF045C027F7100', 0x6986);
    expectSw(card, '00200080', 0x6986);
    expectSw(card, '00C0000000', 0x6986);
    const fci = expectSw(card, SELECT_GIDS, 0x9000);
    assert.equal(hex(fci), hex(GIDS_FCI));
  });

  test('full and partial AIDs select GIDS; P2 picks FCI, FCP, FMD or nothing', () => {
    const card = initializedEmulator();
    assert.equal(hex(expectSw(card, '00A404000BA00000039742544659020100', 0x9000)), hex(GIDS_FCI));
    assert.equal(hex(expectSw(card, '00A4040405A00000039700', 0x9000)), '62088201388C03033030');
    assert.equal(hex(expectSw(card, '00A4040809A0000003974254465900', 0x9000)), '64095F2F01607F65028000');
    assert.equal(expectSw(card, '00A4040C09A00000039742544659', 0x9000).length, 0);
    expectSw(card, '00A4040109A0000003974254465900', 0x6a86, 'P2 asking for another occurrence');
    expectSw(card, '00A4040009A0000003974254465A00', 0x6a82, 'not a prefix of the AID');
  });

  test('with GIDS selected, an unknown AID is 6A82 and GIDS stays selected', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    expectSw(card, '00A4040006A0000000010100', 0x6a82);
    expectSw(card, '00CB3FFF045C027F7100', 0x9000);
    expectSw(card, '00CADF3005', 0x6d00, 'GET DATA with INS CA is not a GIDS command');
    expectSw(card, '00CB3FFF035C017E08', 0x6984);
  });

  test('SELECT by FID: EFs, 3FFF and 3F00 for the application, 6A82 for unknown, 6A86 for P1=08', () => {
    const card = initializedEmulator();
    expectSw(card, SELECT_GIDS, 0x9000);
    assert.equal(hex(expectSw(card, '00A4000402A01000', 0x9000)), '620C8201398302A0108C03033000');
    expectSw(card, '00A4000002A012', 0x6a86, 'an EF has no FCI');
    assert.equal(hex(expectSw(card, '00CB0000045C02DF2000', 0x9000)).slice(0, 6), 'DF2010', 'but it was selected');
    expectSw(card, '00A4000C02A099', 0x6a82);
    expectSw(card, '00A4000C023FFF', 0x9000);
    assert.equal(hex(expectSw(card, '00A40000023F0000', 0x9000)), hex(GIDS_FCI));
    expectSw(card, '00A40800022F0000', 0x6a86);
    expectSw(card, '00A4000C03A01000', 0x6700);
  });
});

describe('data objects', () => {
  test('replace, empty value, second empty PUT deletes, then 6A88', () => {
    const card = loggedIn();
    expectSw(card, '00CBA010045C02DF2400', 0x6a88);
    expectSw(card, '00DBA01003DF2400', 0x9000);
    assert.equal(hex(expectSw(card, '00CBA010045C02DF2400', 0x9000)), 'DF2400', 'an empty DO exists');
    expectSw(card, '00DBA01005DF2402ABCD', 0x9000);
    assert.equal(hex(expectSw(card, '00CBA010045C02DF24', 0x9000)), 'DF2402ABCD', 'Le may be absent');
    expectSw(card, '00DBA01005DF24021234', 0x9000);
    assert.equal(hex(expectSw(card, '00CBA010045C02DF2400', 0x9000)), 'DF24021234', 'replaced');
    expectSw(card, '00DBA01003DF2400', 0x9000);
    assert.equal(hex(expectSw(card, '00CBA010045C02DF2400', 0x9000)), 'DF2400', 'first empty PUT empties');
    expectSw(card, '00DBA01003DF2400', 0x9000);
    expectSw(card, '00CBA010045C02DF2400', 0x6a88, 'second empty PUT deletes');
  });

  test('a DO does not share memory with the Buffer its PUT DATA came in', () => {
    const card = loggedIn();
    const put = Buffer.from('00DBA01005DF2502ABCD', 'hex');
    assert.equal(send(card, put).sw, 0x9000);
    put.fill(0xee);
    assert.equal(hex(expectSw(card, '00CBA010045C02DF2500', 0x9000)), 'DF2502ABCD');
  });

  test('5C 00 returns every DO in storage order (a length change moves a DO to the end)', () => {
    const card = loggedIn();
    const all = (): string => hex(expectSw(card, '00CBA010025C0000', 0x9000));
    assert.equal(all(), 'DF21086D73637000000000DF2206000000000000DF2300');
    expectSw(card, '00DBA01004DF210101', 0x9000);
    assert.equal(all(), 'DF2300DF2206000000000000DF210101', 'removal moved the last DO into the hole');
    expectSw(card, '00DBA01009DF2206010203040506', 0x9000);
    assert.equal(all(), 'DF2300DF2206010203040506DF210101', 'same length: replaced in place');
    assert.equal(hex(expectSw(card, '00CBA010035C015C00', 0x9000)), all(), '5C 01 5C also means all');
  });

  test('GET/PUT DATA errors: 6A82 unknown EF, 6981 not a BER-TLV EF, 6984 bad selector, 6A86 FFFF', () => {
    const card = loggedIn();
    expectSw(card, '00CBA099045C02DF2000', 0x6a82);
    expectSw(card, '00CBB080045C02DF2000', 0x6981);
    expectSw(card, '00DBB08003DF2000', 0x6981);
    expectSw(card, '00CBA010045D02DF2000', 0x6984);
    expectSw(card, '00CBFFFF045C02DF2000', 0x6a86);
    expectSw(card, '00DBA01004DF2402AB', 0x6984, 'DO value shorter than its length');
    expectSw(card, '00DBA01005DF2401ABCD', 0x6984, 'bytes after the DO');
    expectSw(card, '00CBA012045C02DF2100', 0x6a88);
    expectSw(card, '00A4000C023FFF', 0x9000);
    expectSw(card, '00CB0000025C0000', 0x6981, 'P1P2 0000 with no EF selected');
  });

  test('ACLs: A011 is never readable; A012 and A014 need the administrator; A013 needs the PIN to read', () => {
    const card = loggedIn();
    expectSw(card, '00DBA01104DF2501AA', 0x9000);
    expectSw(card, '00CBA011045C02DF2500', 0x6982);
    expectSw(card, '00DBA01204DF2501AA', 0x6982);
    expectSw(card, '00CBA014045C02DF2500', 0x6982);
    expectSw(card, '00DBA01304DF2501AA', 0x9000);
    expectSw(card, '00CBA013045C02DF2500', 0x9000);
  });

  test('at most 30 DOs per EF; values up to 0x7FFF bytes', () => {
    const card = loggedIn();
    for (let i = 0; i < 30; i++) expectSw(card, `00DBA01304DF${(0x40 + i).toString(16)}01AA`, 0x9000);
    expectSw(card, '00DBA01304DF7001AA', 0x6a84, 'a 31st DO');
    expectSw(card, '00DBA01304DF4001BB', 0x9000, 'replacing one is fine');
    expectSw(card, '10DBA01306DF7182800001', 0x6984, 'a value of 0x8000 bytes');
  });

  test('an 8 KB certificate file goes in by chained PUT DATA and comes back in ≤256-byte pieces', () => {
    const card = loggedIn();
    const cert = new Uint8Array(randomBytes(8000));
    const doBytes = encodeTlv(0xdf24, concat(fromHex('0100'), new Uint8Array([8000 & 0xff, 8000 >> 8]), cert));
    const r = sendCommand(card, command(0x00, 0xdb, 0xa0, 0x10, doBytes));
    assert.equal(r.sw, 0x9000);
    let reply = send(card, '00CBA010045C02DF2400');
    const pieces = [reply.data];
    const announced: number[] = [reply.sw];
    while (reply.sw >> 8 === 0x61) {
      assert.equal(reply.data.length, 256);
      reply = send(card, `00C00000${(reply.sw & 0xff).toString(16).padStart(2, '0')}`);
      pieces.push(reply.data);
      announced.push(reply.sw);
    }
    assert.equal(reply.sw, 0x9000);
    assert.equal(hex(concat(...pieces)), hex(doBytes));
    assert.ok(announced.slice(0, -2).every((sw) => sw === 0x6100), '61 00 while 256 or more remain');
    const rest = doBytes.length % 256;
    assert.equal(announced[announced.length - 2], 0x6100 | rest, `the last 61xx announces the ${rest} remaining bytes`);
  });

  test('GET RESPONSE honours a short Le; any other command drops the pending data', () => {
    const card = loggedIn();
    const pieces = command(0x00, 0xdb, 0xa0, 0x10, encodeTlv(0xdf24, new Uint8Array(300).fill(0x11)));
    assert.equal(sendCommand(card, pieces).sw, 0x9000);
    const first = send(card, '00CBA010045C02DF2400');
    assert.equal(first.sw, 0x6131, '305 bytes: 256 now, 0x31 = 49 to come');
    const part = send(card, '00C0000010');
    assert.equal(part.data.length, 16);
    assert.equal(part.sw, 0x6121);
    assert.equal(swOf(card, '00CB3FFF045C027F7100'), '9000');
    const none = send(card, '00C0000000');
    assert.equal(none.data.length, 0, 'nothing pending any more');
    assert.equal(none.sw, 0x9000);
  });
});

describe('command chaining', () => {
  test('CLA 10 is only for PSO, GENERATE and PUT DATA (else 6884)', () => {
    const card = loggedIn();
    expectSw(card, '10CBA010045C02DF2000', 0x6884);
    expectSw(card, '10A4000C023FFF', 0x6884);
  });

  test('inside a chain: other instructions 6884, other chainable ones 6900; the chain can still be finished', () => {
    const card = loggedIn();
    const doBytes = encodeTlv(0xdf26, new Uint8Array(400).fill(0x5a));
    const [first, last] = command(0x00, 0xdb, 0xa0, 0x10, doBytes);
    expectSw(card, first!, 0x9000);
    expectSw(card, '00CBA010045C02DF2600', 0x6884);
    expectSw(card, '00DBA01103DF2600', 0x6900, 'same INS, other P1P2');
    expectSw(card, '002A9E9A03010203', 0x6900);
    expectSw(card, last!, 0x9000);
    assert.equal(hex(expectSw(card, '00CBA010045C02DF2600', 0x9000)), hex(doBytes));
  });

  test('a chained DO that ends short, or runs long, is refused (6984) and not stored', () => {
    const card = loggedIn();
    const doBytes = encodeTlv(0xdf27, new Uint8Array(300).fill(1));
    const [first] = command(0x00, 0xdb, 0xa0, 0x10, doBytes);
    expectSw(card, first!, 0x9000);
    expectSw(card, '00DBA01002ABCD', 0x6984, 'the chain ended 43 bytes early');
    expectSw(card, '00CBA010045C02DF2700', 0x6a88);
    expectSw(card, first!, 0x9000);
    expectSw(card, concat(fromHex('00DBA01064'), new Uint8Array(100)), 0x6984, 'too many bytes');
    expectSw(card, '00CBA010045C02DF2700', 0x6a88);
  });
});

describe('life cycle', () => {
  test('creation mode: every ACL is open, GENERAL AUTHENTICATE and RESET RETRY COUNTER are 6986', () => {
    const card = GidsCard.blank();
    expectSw(card, SELECT_GIDS, 0x9000);
    expectSw(card, '00E000000E620C8201398302A0148C03032020', 0x9000);
    expectSw(card, '00DBA01404DF2501AA', 0x6985, 'a new EF accepts only ACTIVATE');
    expectSw(card, '00CBA014045C02DF2500', 0x6985);
    expectSw(card, '00E40000', 0x6985);
    expectSw(card, '00440000', 0x9000);
    expectSw(card, '00DBA01404DF2501AA', 0x9000, 'admin-only PUT without any authentication');
    expectSw(card, '00CBA014045C02DF2500', 0x9000);
    expectSw(card, '00870000047C02810000', 0x6986);
    expectSw(card, '002C028004' + '31313131', 0x6986);
  });

  test('ACTIVATE on the application makes the card operational and logs everyone out', () => {
    const card = GidsCard.blank();
    expectSw(card, SELECT_GIDS, 0x9000);
    expectSw(card, '0024018004' + '31323334', 0x9000);
    expectSw(card, '00E000000E620C8201398302A0108C03033000', 0x9000);
    expectSw(card, '00440000', 0x9000);
    expectSw(card, '00A4000C023FFF', 0x9000);
    expectSw(card, '00440000', 0x9000);
    assert.equal(card.toImage().lifeCycle, 'operational');
    expectSw(card, '00DBA01004DF2501AA', 0x6982, 'now the ACLs apply');
    expectSw(card, verifyApdu('1234'), 0x9000);
    expectSw(card, '00DBA01004DF2501AA', 0x9000);
  });

  test('CREATE FILE: duplicate FID 6984, bad FCP 6984, 30 files at most 6A84; DELETE FILE', () => {
    const card = loggedIn();
    expectSw(card, '00E000000E620C8201398302A0108C03033000', 0x6984, 'A010 exists');
    expectSw(card, '00E000000E630C8201398302A0208C03033000', 0x6984, 'not an FCP');
    expectSw(card, '00E000000E620C8201018302A0208C03033000', 0x6984, 'transparent EFs are not supported');
    expectSw(card, '00E000000A62088201188302B0818C00', 0x6984, 'a key EF without CRT');
    for (let i = 7; i < 30; i++) {
      const fid = (0xa100 + i).toString(16);
      expectSw(card, `00E000000E620C8201398302${fid}8C03033000`, 0x9000);
      expectSw(card, '00440000', 0x9000);
    }
    expectSw(card, '00E000000E620C8201398302A2008C03033000', 0x6a84, 'the 31st file');
    expectSw(card, '00A4000C02A107', 0x9000);
    expectSw(card, '00E40000', 0x9000);
    expectSw(card, '00A4000C02A107', 0x6a82);
    expectSw(card, '00E000000E620C8201398302A2008C03033000', 0x9000, 'room again');
    expectSw(card, '00A4000C023FFF', 0x9000);
    expectSw(card, '00E40000', 0x6986, 'the application cannot be deleted');
    expectSw(card, '00E4000002A000', 0x6700);
  });

  test('memory full: 6A84 from the configured capacity, and nothing changes', () => {
    const card = initializedEmulator({ capacityBytes: 2048 });
    expectSw(card, SELECT_GIDS, 0x9000);
    expectSw(card, verifyApdu(PIN), 0x9000);
    const before = card.toImage();
    const big = command(0x00, 0xdb, 0xa0, 0x10, encodeTlv(0xdf28, new Uint8Array(3000)));
    assert.equal(send(card, big[0]!).sw, 0x6a84, 'refused at the first piece');
    assert.deepEqual(card.toImage().files.map((f) => f.dataObjects.length), before.files.map((f) => f.dataObjects.length));
    expectSw(card, '00DBA01064DF2861' + '00'.repeat(97), 0x9000, 'a small DO still fits');
  });

  test('TERMINATE DF: from then on every command answers 6285, across resets', () => {
    const card = loggedIn();
    expectSw(card, '00E60100', 0x6a86);
    expectSw(card, '00E60000', 0x9000);
    for (const apdu of ['00CB3FFF045C027F7100', verifyApdu(PIN), '00A4000C023FFF', '00C0000000', '00CBA010045C02DF2100']) {
      expectSw(card, apdu, 0x6285);
    }
    card.reset();
    expectSw(card, '00A4040006A0000000010100', 0x6a82, 'other applications are the card OS business');
    expectSw(card, SELECT_GIDS, 0x6285);
    assert.equal(card.toImage().lifeCycle, 'terminated');
  });
});

describe('class and instruction bytes', () => {
  test('SM → 6882, logical channel → 6881, proprietary class → 6E00, unknown INS → 6D00, extended → 6700', () => {
    const card = loggedIn();
    expectSw(card, '0CCB3FFF045C027F7100', 0x6882);
    expectSw(card, '01CB3FFF045C027F7100', 0x6881);
    expectSw(card, '80CB3FFF045C027F7100', 0x6e00);
    expectSw(card, '00B0000000', 0x6d00);
    expectSw(card, '00CB3FFF0000045C027F710000', 0x6700);
    expectSw(card, '00CB3FFF055C027F71', 0x6700, 'Lc larger than the data');
    expectSw(card, '00CB', 0x6700);
  });
});
