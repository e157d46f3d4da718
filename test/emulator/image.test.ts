import assert from 'node:assert/strict';
import { constants, createPublicKey, publicDecrypt, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { containsBytes, fromHex, hex } from '../../src/bytes.js';
import { CardImageError, loadSealKey, openCardImage, SEAL_KEY_FILE, type GidsCard } from '../../src/gids/emulator/index.js';
import { parseTlvs } from '../../src/gids/protocol/tlv.js';
import { ADMIN_KEY, CARD_ID, createKeyFile, expectSw, generateKey, initialize, PIN, SELECT_GIDS, send, verifyApdu } from './helpers.js';

const home = mkdtempSync(join(tmpdir(), 'cardlink-emulator-home-'));
process.env.CARDLINK_HOME = home;

function imagePath(name: string): string {
  return join(mkdtempSync(join(tmpdir(), 'cardlink-emulator-image-')), name);
}

const DIGEST_INFO = fromHex('3031300D060960864801650304020105000420' + '5A'.repeat(32));

function publicKeyOf(tlv: Uint8Array): KeyObject {
  const [outer] = parseTlvs(tlv);
  const [n, e] = parseTlvs(outer!.value);
  return createPublicKey({
    key: { kty: 'RSA', n: Buffer.from(n!.value).toString('base64url'), e: Buffer.from(e!.value).toString('base64url') },
    format: 'jwk',
  });
}

function sign(card: GidsCard): Uint8Array {
  expectSw(card, SELECT_GIDS, 0x9000);
  expectSw(card, verifyApdu(PIN), 0x9000);
  expectSw(card, '002241B606800156840181', 0x9000);
  return expectSw(card, `002A9E9A${DIGEST_INFO.length.toString(16)}${hex(DIGEST_INFO)}00`, 0x9000);
}

describe('card image', () => {
  test('a reopened image is the same card: cardid, key, PIN counter', () => {
    const path = imagePath('card.json');
    const card = openCardImage(path, { create: true });
    assert.ok(existsSync(path), 'a new image is written at once');
    initialize(card);
    expectSw(card, verifyApdu(PIN), 0x9000);
    createKeyFile(card, 0x81, 0x06);
    const pubTlv = generateKey(card, 0x81, 0x06);
    expectSw(card, verifyApdu('000000'), 0x63c2);

    const again = openCardImage(path);
    expectSw(again, SELECT_GIDS, 0x9000);
    assert.equal(hex(expectSw(again, '00CBA012045C02DF2000', 0x9000)), 'DF2010' + hex(CARD_ID));
    assert.equal(expectSw(again, '00CB3FFF045C027F7100', 0x9000)[5], 2, 'the try counter survived');
    const sig = sign(again);
    const recovered = publicDecrypt({ key: publicKeyOf(pubTlv), padding: constants.RSA_PKCS1_PADDING }, sig);
    assert.equal(hex(recovered), hex(DIGEST_INFO), 'the reloaded key signs for the public key read before');
    assert.equal(expectSw(again, '00CB3FFF045C027F7100', 0x9000)[5], 3);
  });

  test('the file holds neither the PIN, nor the admin key, nor any private key bytes in the clear', () => {
    const path = imagePath('secret.json');
    const card = openCardImage(path, { create: true });
    initialize(card);
    expectSw(card, verifyApdu(PIN), 0x9000);
    createKeyFile(card, 0x81, 0x06);
    generateKey(card, 0x81, 0x06);
    const file = readFileSync(path);
    const text = file.toString('utf8');
    const rsa = card.toImage().files.find((f) => f.key?.kind === 'rsa')!.key!;
    assert.equal(rsa.kind, 'rsa');
    const jwk = rsa.privateKey.export({ format: 'jwk' });
    const secrets: Uint8Array[] = [Buffer.from(PIN), ADMIN_KEY, ...['d', 'p', 'q', 'dp', 'dq', 'qi'].map((k) => Buffer.from(jwk[k as 'd']!, 'base64url'))];
    for (const s of secrets) {
      const forms = [s, Buffer.from(hex(s)), Buffer.from(hex(s).toLowerCase()), Buffer.from(Buffer.from(s).toString('base64'))];
      for (const f of forms) assert.ok(!containsBytes(file, f), `secret ${hex(s).slice(0, 16)}… absent`);
      for (let i = 0; i + 16 <= s.length; i += 8) assert.ok(!text.includes(hex(s.subarray(i, i + 16))), 'no 16-byte window of it');
    }
    const json = JSON.parse(text) as Record<string, unknown>;
    assert.equal(json.lifeCycle, 'operational', 'public state is readable JSON');
    assert.equal((statSync(path).mode & 0o777).toString(8), '600');
  });

  test('a truncated or garbled image gives CardImageError, never a blank card', () => {
    const path = imagePath('broken.json');
    const card = openCardImage(path, { create: true });
    initialize(card);
    const good = readFileSync(path);
    const attempts: Array<[string, Buffer, string]> = [
      ['truncated', good.subarray(0, good.length >> 1), 'IMAGE_CORRUPT'],
      ['empty', Buffer.alloc(0), 'IMAGE_CORRUPT'],
      ['not an image', Buffer.from('{"hello":1}'), 'IMAGE_CORRUPT'],
      ['try counter edited', Buffer.from(good.toString().replace('"pinTriesRemaining": 3', '"pinTriesRemaining": 2')), 'IMAGE_SEAL'],
      ['DO edited', Buffer.from(good.toString().replace(hex(CARD_ID), '00'.repeat(16))), 'IMAGE_SEAL'],
    ];
    for (const [what, bytes, code] of attempts) {
      writeFileSync(path, bytes);
      assert.throws(() => openCardImage(path), (e: unknown) => e instanceof CardImageError && e.code === code && e.message.includes(path), what);
    }
    assert.throws(() => openCardImage(imagePath('none.json')), (e: unknown) => e instanceof CardImageError && e.code === 'IMAGE_NOT_FOUND');
  });

  test("another machine's secure element key does not open the image", () => {
    const path = imagePath('moved.json');
    initialize(openCardImage(path, { create: true }));
    const otherHome = mkdtempSync(join(tmpdir(), 'cardlink-other-home-'));
    process.env.CARDLINK_HOME = otherHome;
    try {
      assert.throws(() => openCardImage(path), (e: unknown) => e instanceof CardImageError && e.code === 'IMAGE_SEAL');
    } finally {
      process.env.CARDLINK_HOME = home;
    }
  });

  test('the secure element key is created once, 32 bytes, mode 0600; a readable one is refused', () => {
    const h = mkdtempSync(join(tmpdir(), 'cardlink-seal-'));
    const k1 = loadSealKey(h);
    const k2 = loadSealKey(h);
    assert.equal(k1.length, 32);
    assert.equal(hex(k1), hex(k2));
    const keyFile = join(h, SEAL_KEY_FILE);
    assert.equal((statSync(keyFile).mode & 0o777).toString(8), '600');
    assert.deepEqual(readdirSync(h), [SEAL_KEY_FILE], 'no temp file left behind');
    chmodSync(keyFile, 0o644);
    assert.throws(() => loadSealKey(h), (e: unknown) => e instanceof CardImageError && e.code === 'IMAGE_SEAL' && /chmod 600/.test(e.message));
  });

  test('saves replace the file by rename after each state change, and only then', () => {
    const path = imagePath('atomic.json');
    const card = openCardImage(path, { create: true });
    let saves = 0;
    const save = card.onPersistentChange!;
    card.onPersistentChange = () => {
      saves++;
      save();
    };
    initialize(card);
    assert.ok(saves > 10, 'every state-changing APDU saved');
    expectSw(card, verifyApdu(PIN), 0x9000);
    saves = 0;
    const inode = statSync(path).ino;
    expectSw(card, '00DBA01004DF3001AA', 0x9000);
    assert.equal(saves, 1);
    assert.notEqual(statSync(path).ino, inode, 'the file was replaced (rename), not rewritten in place');
    saves = 0;
    expectSw(card, SELECT_GIDS, 0x9000);
    expectSw(card, '00CBA010045C02DF2100', 0x9000);
    expectSw(card, '00CB3FFF045C027F7100', 0x9000);
    assert.equal(saves, 0, 'reads do not write');
    assert.deepEqual(readdirSync(join(path, '..')), ['atomic.json'], 'no temp files');
  });

  test('a failed save answers 6581, undoes the command and leaves the previous image intact', () => {
    const path = imagePath('fail.json');
    const card = openCardImage(path, { create: true });
    initialize(card);
    expectSw(card, verifyApdu(PIN), 0x9000);
    const dir = join(path, '..');
    const before = readFileSync(path);
    renameSync(dir, dir + '.away');
    try {
      assert.equal(send(card, '00DBA01005DF3002ABCD').sw, 0x6581);
      assert.throws(() => card.onPersistentChange!(), (e: unknown) => e instanceof CardImageError && e.code === 'IMAGE_IO' && e.path === path);
    } finally {
      renameSync(dir + '.away', dir);
    }
    assert.equal(hex(readFileSync(path)), hex(before), 'the image on disk is unchanged');
    expectSw(card, '00CBA013045C02DF3000', 0x6982, 'undone, and the user was logged out');
    expectSw(card, verifyApdu(PIN), 0x9000);
    expectSw(card, '00CBA010045C02DF3000', 0x6a88, 'the DO was not stored');
    expectSw(card, '00DBA01005DF3002ABCD', 0x9000);
    expectSw(card, '00CBA010045C02DF3000', 0x9000);
    assert.equal(hex(openCardImage(path).toImage().files.find((f) => f.fid === 0xa010)!.dataObjects.at(-1)!), 'DF3002ABCD');
  });
});
