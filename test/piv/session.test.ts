/**
 * PivSession against the PIV emulator in process: every command of the session, the PIN and PUK
 * counters, blocking and unblocking, the management key (refused, not counted), keys of every
 * supported algorithm in use, certificate objects (plain and gzip-compressed), chaining and 61xx.
 */
import assert from 'node:assert/strict';
import { constants, createECDH, createHash, createPublicKey, generateKeyPairSync, publicEncrypt, randomBytes, verify, X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { encodeTlv } from '../../src/ber-tlv.js';
import { concat, equalBytes } from '../../src/bytes.js';
import { digestInfo } from '../../src/card/digest-info.js';
import { GidsCard } from '../../src/gids/emulator/index.js';
import { PinError } from '../../src/pin-error.js';
import { PivCard } from '../../src/piv/emulator/index.js';
import { PivError } from '../../src/piv/host/errors.js';
import { pkcs1SignatureBlock, PivSession } from '../../src/piv/host/session.js';
import { ALG, certificateObjectOf, KEY_REF, OBJECT, PIV_PIX } from '../../src/piv/protocol/constants.js';
import {
  encodeChuid,
  encodeKeyHistory,
  newCardCapabilityContainer,
  newChuid,
  parseCertificateObject,
  parseChuid,
  parseDiscovery,
  parseKeyHistory,
} from '../../src/piv/protocol/objects.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { issueOurs } from '../helpers/certs.js';
import { blankPivCard, MGMT_KEY, PIN, PUK, raw } from './helpers.js';

const code = (c: string) => (e: unknown) => e instanceof Error && (e as { code?: string }).code === c;

describe('PivSession ⇄ PIV emulator: selection and data objects', () => {
  it('SELECT returns the application property template; a GIDS card is NOT_PIV', async () => {
    const { session } = await blankPivCard();
    const app = await session.select();
    assert.ok(equalBytes(app.pix, PIV_PIX));
    assert.ok(app.algorithms.includes(ALG.ECC_P384) && app.algorithms.includes(ALG.TDES));
    await assert.rejects(new PivSession(new MemoryTransport(GidsCard.blank())).select(), code('NOT_PIV'));
  });

  it('before SELECT the card answers nothing but SELECT; unknown AIDs are 6A82', () => {
    const card = PivCard.blank();
    assert.equal(raw(card, '00CB3FFF035C017E').sw, 0x6986);
    assert.equal(raw(card, '00A4040007A0000003970000').sw, 0x6a82);
    assert.equal(raw(card, '00A4040005A000000308').sw, 0x9000, 'the RID alone selects, as yubico-piv-tool sends it');
    assert.equal(raw(card, '00CB3FFF035C017E').sw, 0x9000);
  });

  it('objects: discovery present from the factory, CHUID, CCC, key history round-trip; PUT needs the management key', async () => {
    const { session } = await blankPivCard();
    const discovery = parseDiscovery((await session.getObject(OBJECT.DISCOVERY))!);
    assert.equal(discovery.pinPolicy[0], 0x40);
    assert.equal(await session.getObject(OBJECT.CHUID), undefined);
    const chuid = newChuid();
    await assert.rejects(session.putObject(OBJECT.CHUID, chuid), code('SW_6982'));
    await session.authenticate(MGMT_KEY);
    await session.putObject(OBJECT.CHUID, chuid);
    assert.ok(equalBytes((await session.getObject(OBJECT.CHUID))!, chuid));
    assert.equal(parseChuid(chuid).guid.length, 16);
    const ccc = newCardCapabilityContainer();
    await session.putObject(OBJECT.CARD_CAPABILITY_CONTAINER, ccc);
    assert.ok(equalBytes((await session.getObject(OBJECT.CARD_CAPABILITY_CONTAINER))!, ccc));
    await session.putObject(OBJECT.KEY_HISTORY, encodeKeyHistory({ onCard: 2, offCard: 0 }));
    assert.deepEqual(parseKeyHistory((await session.getObject(OBJECT.KEY_HISTORY))!), { onCard: 2, offCard: 0 });
    await session.putObject(OBJECT.CHUID, new Uint8Array(0));
    assert.equal(await session.getObject(OBJECT.CHUID), undefined, 'an empty PUT DATA deletes the object');
    await assert.rejects(session.putObject(0x5fc1ff, new Uint8Array([1])), code('SW_6A80'), 'not a PIV object');
  });

  it('printed information needs the PIN to read', async () => {
    const { session } = await blankPivCard();
    await session.authenticate(MGMT_KEY);
    await session.putObject(OBJECT.PRINTED_INFORMATION, encodeTlv(0x01, new Uint8Array(Buffer.from('Jane Doe'))));
    await session.select();
    await assert.rejects(session.getObject(OBJECT.PRINTED_INFORMATION), code('SW_6982'));
    await session.verifyPin(PIN);
    assert.ok(await session.getObject(OBJECT.PRINTED_INFORMATION));
  });

  it('certificates in every slot, plain and gzip-compressed (CertInfo), byte-identical back; long objects chain and answer 61xx', async () => {
    const { session, card } = await blankPivCard();
    await session.authenticate(MGMT_KEY);
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const der = await issueOurs(publicKey, 20);
    assert.ok(der.length > 600, 'a certificate longer than two short APDUs');
    const slots = [0x9a, 0x9c, 0x9d, 0x9e, 0x82, 0x95];
    for (const [i, slot] of slots.entries()) await session.writeCertificate(slot, der, { compress: i % 2 === 1 });
    for (const [i, slot] of slots.entries()) {
      const back = await session.readCertificate(slot);
      assert.ok(back && equalBytes(back.der, der), `slot ${slot.toString(16)}`);
      assert.equal(back.compressed, i % 2 === 1);
    }
    const stored = card.snapshot().objects.get(certificateObjectOf(0x9c))!;
    assert.ok(stored.length < der.length, 'the compressed object is smaller than the certificate');
    assert.equal(parseCertificateObject(stored).compressed, true);
    // The same object by hand: first answer carries 256 bytes and 61xx, GET RESPONSE the rest.
    raw(card, '00A4040009A00000030800001000');
    const first = raw(card, '00CB3FFF055C035FC10500');
    assert.equal(first.sw >> 8, 0x61);
    assert.equal(first.data.length, 256);
    const rest = raw(card, `00C00000${(first.sw & 0xff).toString(16).padStart(2, '0')}`);
    assert.ok(rest.sw === 0x9000 || rest.sw >> 8 === 0x61);
    await session.deleteCertificate(0x9a);
    assert.equal(await session.readCertificate(0x9a), undefined);
    await assert.rejects(session.readCertificate(0x9b), code('PIV_BAD_SLOT'));
    assert.equal(new X509Certificate(Buffer.from(der)).publicKey.asymmetricKeyType, 'ec');
  });

  it('a different command in the middle of a chain drops the chain; its pieces are never stored', async () => {
    const { card, session } = await blankPivCard();
    await session.authenticate(MGMT_KEY);
    const value = encodeTlv(0x53, new Uint8Array(300).fill(0x41));
    const data = concat(new Uint8Array([0x5c, 0x03, 0x5f, 0xc1, 0x02]), value);
    const piece = Buffer.from(data.subarray(0, 200)).toString('hex');
    assert.equal(raw(card, `10DB3FFFC8${piece}`).sw, 0x9000);
    assert.equal(raw(card, '00CB3FFF035C017E').sw, 0x9000);
    const tail = Buffer.from(data.subarray(200)).toString('hex');
    const lc = (data.length - 200).toString(16).padStart(2, '0');
    assert.equal(raw(card, `00DB3FFF${lc}${tail}`).sw, 0x6a80, 'the tail alone is not an object');
    assert.equal(card.snapshot().objects.has(OBJECT.CHUID), false);
  });
});

describe('PivSession ⇄ PIV emulator: PIN and PUK', () => {
  it('PIN counter: wrong PINs count down, blocking at 0, a right PIN resets it', async () => {
    const { session } = await blankPivCard();
    assert.deepEqual(await session.pinStatus(), { verified: false, triesLeft: 3 });
    await assert.rejects(session.verifyPin('000000'), (e: unknown) => e instanceof PinError && e.code === 'PIN_INCORRECT' && e.triesLeft === 2);
    assert.deepEqual(await session.pinStatus(), { verified: false, triesLeft: 2 });
    await session.verifyPin(PIN);
    assert.deepEqual(await session.pinStatus(), { verified: true, triesLeft: undefined });
    await session.logout();
    assert.deepEqual(await session.pinStatus(), { verified: false, triesLeft: 3 }, 'the right PIN restored the tries; logout dropped the status');
    await assert.rejects(session.verifyPin('000000'), code('PIN_INCORRECT'));
    await assert.rejects(session.verifyPin('000000'), code('PIN_INCORRECT'));
    await assert.rejects(session.verifyPin('000000'), (e: unknown) => e instanceof PinError && e.code === 'PIN_BLOCKED' && e.triesLeft === 0);
    await assert.rejects(session.verifyPin(PIN), code('PIN_BLOCKED'), 'blocked: even the right PIN is refused');
    assert.deepEqual(await session.pinStatus(), { verified: false, triesLeft: 0 });
    await assert.rejects(session.verifyPin('12345'), code('PIN_FORMAT'));
  });

  it('the PUK unblocks the PIN; a wrong PUK counts, and a blocked PUK cannot unblock', async () => {
    const { session } = await blankPivCard();
    for (let i = 0; i < 3; i++) await assert.rejects(session.verifyPin('999999'));
    await assert.rejects(session.unblockPin('00000000', '654321'), (e: unknown) => e instanceof PinError && e.code === 'PUK_INCORRECT' && e.triesLeft === 2);
    await session.unblockPin(PUK, '654321');
    assert.deepEqual(await session.pinStatus(), { verified: false, triesLeft: 3 });
    await assert.rejects(session.verifyPin(PIN), code('PIN_INCORRECT'), 'the old PIN is gone');
    await session.verifyPin('654321');
    // The PUK's tries were restored by the right PUK: three more wrong ones block it.
    await assert.rejects(session.unblockPin('00000000', '111111'), (e: unknown) => e instanceof PinError && e.triesLeft === 2);
    await assert.rejects(session.unblockPin('00000000', '111111'), (e: unknown) => e instanceof PinError && e.triesLeft === 1);
    await assert.rejects(session.unblockPin('00000000', '111111'), (e: unknown) => e instanceof PinError && e.code === 'PUK_BLOCKED');
    await assert.rejects(session.unblockPin(PUK, '111111'), code('PUK_BLOCKED'));
    await session.verifyPin('654321');
  });

  it('CHANGE REFERENCE DATA changes the PIN and the PUK, counting wrong old values', async () => {
    const { session } = await blankPivCard();
    await assert.rejects(session.changePin('000000', '24682468'), (e: unknown) => e instanceof PinError && e.triesLeft === 2);
    await session.changePin(PIN, '24682468');
    await session.verifyPin('24682468');
    await assert.rejects(session.changePuk('00000000', '87654321'), (e: unknown) => e instanceof PinError && e.code === 'PUK_INCORRECT');
    await session.changePuk(PUK, '87654321');
    for (let i = 0; i < 3; i++) await assert.rejects(session.verifyPin('000000'));
    await assert.rejects(session.unblockPin(PUK, '123123'), code('PUK_INCORRECT'));
    await session.unblockPin('87654321', '123123');
    await session.verifyPin('123123');
  });
});

describe('PivSession ⇄ PIV emulator: the card management key', () => {
  it('a wrong key is refused every time and not counted: the right key still works after many', async () => {
    const { session, card } = await blankPivCard();
    const wrong = new Uint8Array(24).fill(0x11);
    for (let i = 0; i < 6; i++) await assert.rejects(session.authenticate(wrong), code('MGMT_KEY_REFUSED'));
    await assert.rejects(session.putObject(OBJECT.CHUID, newChuid()), code('SW_6982'), 'refusal leaves no rights');
    await session.authenticate(MGMT_KEY);
    await session.putObject(OBJECT.CHUID, newChuid());
    await assert.rejects(session.authenticate(new Uint8Array(16), ALG.AES_128), code('MGMT_KEY_REFUSED'), 'wrong algorithm');
    await assert.rejects(session.authenticate(new Uint8Array(10)), code('MGMT_KEY_FORMAT'));
    // A failed attempt also drops an earlier authentication.
    await assert.rejects(session.putObject(OBJECT.CHUID, newChuid()), code('SW_6982'));
    assert.ok(card.snapshot().objects.has(OBJECT.CHUID));
  });

  for (const [alg, bytes, name] of [
    [ALG.TDES, 24, '3DES'],
    [ALG.AES_128, 16, 'AES-128'],
    [ALG.AES_192, 24, 'AES-192'],
    [ALG.AES_256, 32, 'AES-256'],
  ] as const) {
    it(`mutual authentication with a ${name} management key`, async () => {
      const key = new Uint8Array(randomBytes(bytes));
      const state = { ...PivCard.blank().snapshot(), managementKey: { alg, value: key } };
      const { session } = await blankPivCard(PivCard.fromState(state));
      await session.authenticate(key, alg);
      await session.putObject(OBJECT.CHUID, newChuid());
      const other = new Uint8Array(key);
      other[0]! ^= 0x02; // not bit 0: DES ignores its parity bits
      await assert.rejects(session.authenticate(other, alg), code('MGMT_KEY_REFUSED'));
    });
  }

  it('external (one-way) authentication: challenge out, encrypted challenge back', async () => {
    const { card } = await blankPivCard();
    const r1 = raw(card, '0087039B047C028100');
    assert.equal(r1.sw, 0x9000);
    const challenge = r1.data.subarray(4, 12);
    const { createCipheriv } = await import('node:crypto');
    const c = createCipheriv('des-ede3', MGMT_KEY, null);
    c.setAutoPadding(false);
    const answer = Buffer.concat([c.update(challenge), c.final()]).toString('hex');
    assert.equal(raw(card, `0087039B0C7C0A8208${answer}`).sw, 0x9000);
    assert.equal(raw(card, `00DB3FFF095C035FC10253037E0100`).sw, 0x6a80, 'authenticated: now only the data is wrong (not 6982)');
    assert.equal(raw(card, '0087039B0C7C0A82080000000000000000').sw, 0x6985, 'no challenge outstanding');
  });
});

describe('PivSession ⇄ PIV emulator: keys', () => {
  it('GENERATE needs the management key; RSA-2048 signs PKCS#1 blocks and deciphers', async () => {
    const { session } = await blankPivCard();
    await assert.rejects(session.generateKey(0x9a, ALG.RSA_2048), code('SW_6982'));
    await session.authenticate(MGMT_KEY);
    const pub = await session.generateKey(0x9a, ALG.RSA_2048);
    assert.equal(pub.asymmetricKeyDetails?.modulusLength, 2048);
    const message = Buffer.from('challenge from the model');
    const block = pkcs1SignatureBlock(digestInfo('sha256', createHash('sha256').update(message).digest()), 256);
    await assert.rejects(session.sign(0x9a, ALG.RSA_2048, block), code('SW_6982'), '9A needs the PIN');
    await session.verifyPin(PIN);
    const sig = await session.sign(0x9a, ALG.RSA_2048, block);
    assert.ok(verify('sha256', message, pub, sig));
    await assert.rejects(session.sign(0x9a, ALG.ECC_P256, block), code('SW_6A86'), 'algorithm of another key');
    const secret = randomBytes(32);
    const cryptogram = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_PADDING }, secret);
    const plain = await session.decipher(0x9a, ALG.RSA_2048, cryptogram);
    assert.equal(plain.length, 256);
    assert.equal(plain[1], 0x02, 'the raw block keeps its PKCS#1 type-2 padding');
    assert.ok(equalBytes(plain.subarray(256 - 32), secret));
    await assert.rejects(session.sign(0x9d, ALG.RSA_2048, block), code('PIV_NO_KEY'));
  });

  for (const [alg, curve, hash] of [
    [ALG.ECC_P256, 'prime256v1', 'sha256'],
    [ALG.ECC_P384, 'secp384r1', 'sha384'],
  ] as const) {
    it(`${curve}: GENERATE, ECDSA of a hash, ECDH`, async () => {
      const { session } = await blankPivCard();
      await session.authenticate(MGMT_KEY);
      const pub = await session.generateKey(0x9d, alg);
      assert.equal(pub.asymmetricKeyDetails?.namedCurve, curve);
      await session.verifyPin(PIN);
      const message = Buffer.from('ecdsa test');
      const sig = await session.sign(0x9d, alg, createHash(hash).update(message).digest());
      assert.ok(verify(hash, message, pub, sig));
      const peer = createECDH(curve);
      const peerPoint = peer.generateKeys();
      const jwk = pub.export({ format: 'jwk' });
      const cardPoint = concat(new Uint8Array([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url'));
      const shared = await session.ecdh(0x9d, alg, peerPoint);
      assert.ok(equalBytes(shared, peer.computeSecret(cardPoint)));
      await assert.rejects(session.ecdh(0x9d, alg, concat(new Uint8Array([4]), new Uint8Array(peerPoint.length - 1).fill(7))), code('SW_6A80'), 'not a point');
    });
  }

  it('PIN policies: 9E needs no PIN, 9C needs it right before each use', async () => {
    const { session } = await blankPivCard();
    await session.authenticate(MGMT_KEY);
    const pub9e = await session.generateKey(0x9e, ALG.ECC_P256);
    const pub9c = await session.generateKey(0x9c, ALG.ECC_P256);
    const h = createHash('sha256').update('x').digest();
    assert.ok(verify('sha256', Buffer.from('x'), pub9e, await session.sign(0x9e, ALG.ECC_P256, h)));
    await assert.rejects(session.sign(0x9c, ALG.ECC_P256, h), code('SW_6982'));
    await session.verifyPin(PIN);
    assert.ok(verify('sha256', Buffer.from('x'), pub9c, await session.sign(0x9c, ALG.ECC_P256, h)));
    await assert.rejects(session.sign(0x9c, ALG.ECC_P256, h), code('SW_6982'), 'one use per VERIFY');
  });

  it('a generated key replaces the old one; retired slots hold keys too', async () => {
    const { session } = await blankPivCard();
    await session.authenticate(MGMT_KEY);
    const first = await session.generateKey(0x82, ALG.ECC_P256);
    const second = await session.generateKey(0x82, ALG.ECC_P256);
    assert.notDeepEqual(first.export({ format: 'jwk' }), second.export({ format: 'jwk' }));
    await session.verifyPin(PIN);
    const h = createHash('sha256').update('y').digest();
    const sig = await session.sign(0x82, ALG.ECC_P256, h);
    assert.ok(verify('sha256', Buffer.from('y'), second, sig));
    assert.ok(!verify('sha256', Buffer.from('y'), first, sig));
    await assert.rejects(session.generateKey(0x9b, ALG.ECC_P256), code('PIV_BAD_SLOT'));
  });

  it('Yubico extensions: version and serial', async () => {
    const { session } = await blankPivCard();
    assert.equal(await session.yubicoVersion(), '5.2.7');
    assert.equal(await session.yubicoSerial(), 12345678);
    assert.equal(await new PivSession(new MemoryTransport(GidsCard.blank())).yubicoVersion(), undefined);
  });

  it('the CHUID encoder refuses what PIV does not allow', () => {
    assert.throws(() => encodeChuid({ guid: new Uint8Array(15), expires: '20300101' }), code('PIV_FORMAT'));
    assert.throws(() => encodeChuid({ guid: new Uint8Array(16), expires: '2030-01-01' }), code('PIV_FORMAT'));
    assert.throws(() => parseCertificateObject(concat(encodeTlv(0x70, new Uint8Array([1, 2, 3])), encodeTlv(0x71, new Uint8Array([1])))), code('PIV_FORMAT'));
    assert.ok(parseCertificateObject(concat(encodeTlv(0x70, gzipSync(Buffer.from('abc'))), encodeTlv(0x71, new Uint8Array([1])))).compressed);
    assert.ok(createPublicKey);
    assert.ok(PivError);
    assert.equal(KEY_REF.MANAGEMENT, 0x9b);
  });
});
