import assert from 'node:assert/strict';
import {
  constants,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  privateEncrypt,
  publicDecrypt,
  publicEncrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { describe, test } from 'node:test';
import { concat, fromHex, hex } from '../../src/bytes.js';
import type { GidsCard } from '../../src/gids/emulator/index.js';
import { encodeTlv, parseTlvs } from '../../src/gids/protocol/tlv.js';
import {
  command,
  createKeyFile,
  expectSw,
  generateKey,
  initializedEmulator,
  PIN,
  readPublicKey,
  SELECT_GIDS,
  send,
  sendCommand,
  verifyApdu,
} from './helpers.js';

const ALG = { 1024: 0x06, 2048: 0x07, 3072: 0x08, 4096: 0x09 } as const;
const DIGEST_INFO_SHA256 = fromHex('3031300D060960864801650304020105000420' + 'AB'.repeat(32));

function publicKeyObject(tlv: Uint8Array): KeyObject {
  const [outer] = parseTlvs(tlv);
  assert.equal(outer?.tag, 0x7f49);
  const [n, e] = parseTlvs(outer.value);
  assert.equal(n?.tag, 0x81);
  assert.equal(e?.tag, 0x82);
  assert.equal(e.value.length, 3, 'the exponent always on 3 bytes');
  return createPublicKey({
    key: { kty: 'RSA', n: Buffer.from(n.value).toString('base64url'), e: Buffer.from(e.value).toString('base64url') },
    format: 'jwk',
  });
}

function loggedIn(): GidsCard {
  const card = initializedEmulator();
  expectSw(card, SELECT_GIDS, 0x9000);
  expectSw(card, verifyApdu(PIN), 0x9000);
  return card;
}

function mse(card: GidsCard, template: 'B6' | 'B8', alg: number, ref: number, sw = 0x9000): void {
  expectSw(card, `002241${template}068001${alg.toString(16).padStart(2, '0')}8401${ref.toString(16)}`, sw);
}

function signPkcs1(card: GidsCard, input: Uint8Array): { data: Uint8Array; sw: number } {
  return sendCommand(card, command(0x00, 0x2a, 0x9e, 0x9a, input, 0));
}

function decipher(card: GidsCard, cryptogram: Uint8Array): { data: Uint8Array; sw: number } {
  return sendCommand(card, command(0x00, 0x2a, 0x80, 0x86, cryptogram, 0));
}

function rsaPrivateKeyDer(key: KeyObject): Uint8Array {
  return new Uint8Array(key.export({ format: 'der', type: 'pkcs1' }));
}

function importApdus(ref: number, der: Uint8Array): Uint8Array[] {
  const body = encodeTlv(0x70, encodeTlv(0x84, new Uint8Array([ref])), encodeTlv(0xa5, fromHex('830102'), fromHex('840100'), encodeTlv(0x87, der)));
  return command(0x00, 0xdb, 0x3f, 0xff, body);
}

describe('key generation and public keys', () => {
  test('RSA-1024 and RSA-2048: 7F49 {81 n}{82 03 010001}, the same on every read; 2048 comes via 61xx', () => {
    const card = loggedIn();
    createKeyFile(card, 0x81, ALG[1024]);
    createKeyFile(card, 0x82, ALG[2048]);
    const g1 = generateKey(card, 0x81, ALG[1024]);
    assert.equal(hex(g1.subarray(0, 6)), '7F4981888181', 'one-byte 81 lengths below 2048 bits');
    assert.equal(g1.length, 4 + 136);
    const first = send(card, '0047000008AC06800107830182');
    assert.equal(first.sw, 0x6100, 'without Le GENERATE answers 61 00 and no data, as GidsApplet');
    assert.equal(first.data.length, 0);
    const g2 = readPublicKey(card, 0x82);
    assert.equal(hex(g2.subarray(0, 9)), '7F4982010981820100');
    assert.equal(hex(readPublicKey(card, 0x81)), hex(g1));
    const k2 = publicKeyObject(g2);
    assert.equal(k2.asymmetricKeyDetails?.modulusLength, 2048);
    expectSw(card, '0047000008AC06800105830181', 0x6a81, 'algorithm 05 is not RSA');
    expectSw(card, '0047000008AC06800106830199', 0x6984, 'no key EF B099');
    expectSw(card, '0047000007AC068001068301', 0x6984, 'template cut short');
    expectSw(card, '00CB3FFF0A7008840183A5037F498000', 0x6984, 'no key EF B083');
  });

  test('GENERATE and MSE need the PIN (ACL 10); reading the public key does not', () => {
    const card = loggedIn();
    createKeyFile(card, 0x81, ALG[1024]);
    generateKey(card, 0x81, ALG[1024]);
    expectSw(card, '00200082', 0x9000);
    expectSw(card, '0047000008AC06800106830181', 0x6982);
    mse(card, 'B6', 0x56, 0x81, 0x6982);
    readPublicKey(card, 0x81);
  });
});

describe('signatures', () => {
  test('card-padded PKCS#1 v1.5 (alg|50) and host-padded raw (alg|10) verify with the public key', () => {
    const card = loggedIn();
    createKeyFile(card, 0x81, ALG[2048], false);
    const pub = publicKeyObject(generateKey(card, 0x81, ALG[2048]));
    mse(card, 'B6', 0x57, 0x81);
    const sig = signPkcs1(card, DIGEST_INFO_SHA256);
    assert.equal(sig.sw, 0x9000);
    assert.equal(sig.data.length, 256);
    assert.equal(hex(publicDecrypt({ key: pub, padding: constants.RSA_PKCS1_PADDING }, sig.data)), hex(DIGEST_INFO_SHA256));
    mse(card, 'B6', 0x17, 0x81);
    const block = concat(fromHex('0001'), new Uint8Array(256 - 3 - DIGEST_INFO_SHA256.length).fill(0xff), fromHex('00'), DIGEST_INFO_SHA256);
    const raw = signPkcs1(card, block);
    assert.equal(raw.sw, 0x9000, 'a 256-byte block is sent as a chain');
    assert.equal(hex(raw.data), hex(sig.data), 'raw over the same padded block = the same signature');
    assert.equal(signPkcs1(card, block.subarray(1)).sw, 0x6700, 'raw input must be a whole block');
    assert.equal(signPkcs1(card, new Uint8Array(256).fill(0xff)).sw, 0x6a80, 'not below the modulus');
  });

  test('MSE checks the key EF CRT; PSO without a matching environment is 6985; logout forgets it', () => {
    const card = loggedIn();
    createKeyFile(card, 0x81, ALG[1024], false);
    generateKey(card, 0x81, ALG[1024]);
    expectSw(card, `002A9E9A${DIGEST_INFO_SHA256.length.toString(16)}${hex(DIGEST_INFO_SHA256)}00`, 0x6985, 'no MSE yet');
    mse(card, 'B8', 0x46, 0x81, 0x6984);
    mse(card, 'B6', 0x57, 0x81, 0x6984);
    mse(card, 'B6', 0x56, 0x85, 0x6984);
    expectSw(card, '00224EB606800156840181', 0x6a81, 'MSE mode 4E');
    expectSw(card, '0022F3B6', 0x6984, 'RESTORE leaves no key');
    mse(card, 'B6', 0x56, 0x81);
    assert.equal(signPkcs1(card, DIGEST_INFO_SHA256).sw, 0x9000);
    assert.equal(signPkcs1(card, new Uint8Array(248)).sw, 0x6700, 'more than 247 bytes');
    assert.equal(sendCommand(card, command(0x00, 0x2a, 0x80, 0x86, new Uint8Array(128), 0)).sw, 0x6a81, 'a signing environment cannot decipher');
    const piece = `2A9E9A${DIGEST_INFO_SHA256.length.toString(16)}${hex(DIGEST_INFO_SHA256)}`;
    expectSw(card, `10${piece}`, 0x6700, 'card padding takes no chain…');
    expectSw(card, `00${piece}`, 0x6700, '…not even its last piece');
    assert.equal(signPkcs1(card, DIGEST_INFO_SHA256).sw, 0x9000, 'the chain is over');
    expectSw(card, '00200082', 0x9000);
    assert.equal(signPkcs1(card, DIGEST_INFO_SHA256).sw, 0x6985, 'the environment went with the login');
    expectSw(card, '002A9E9B0101', 0x6a86);
  });
});

describe('decipher', () => {
  test('PKCS#1 v1.5, OAEP and raw with a 2048-bit key (chained cryptogram, no padding indicator)', () => {
    const card = loggedIn();
    createKeyFile(card, 0x81, ALG[2048]);
    const pub = publicKeyObject(generateKey(card, 0x81, ALG[2048]));
    const secret = new Uint8Array(randomBytes(32));
    mse(card, 'B8', 0x47, 0x81);
    const c1 = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_PADDING }, secret);
    const p1 = decipher(card, c1);
    assert.equal(p1.sw, 0x9000);
    assert.equal(hex(p1.data), hex(secret));
    mse(card, 'B8', 0x87, 0x81);
    const p2 = decipher(card, publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING }, secret));
    assert.equal(hex(p2.data), hex(secret));
    mse(card, 'B8', 0x07, 0x81);
    const block = concat(new Uint8Array(256 - 32), secret);
    const p3 = decipher(card, publicEncrypt({ key: pub, padding: constants.RSA_NO_PADDING }, block));
    assert.equal(hex(p3.data), hex(block), 'raw returns the whole block (256 bytes: 9000 without 61xx)');
    mse(card, 'B8', 0x47, 0x81);
    assert.equal(decipher(card, c1.subarray(1)).sw, 0x6700, 'cryptogram shorter than the modulus');
    assert.equal(decipher(card, concat(new Uint8Array([0]), c1)).sw, 0x6700, 'a padding indicator byte is not accepted');
    const notType2 = publicEncrypt({ key: pub, padding: constants.RSA_NO_PADDING }, concat(fromHex('0001'), new Uint8Array(254).fill(1)));
    assert.equal(decipher(card, notType2).sw, 0x6a80);
    const noSeparator = publicEncrypt({ key: pub, padding: constants.RSA_NO_PADDING }, concat(fromHex('0002'), new Uint8Array(254).fill(1)));
    assert.equal(decipher(card, noSeparator).sw, 0x6a80);
    const shortPs = publicEncrypt({ key: pub, padding: constants.RSA_NO_PADDING }, concat(fromHex('0002'), new Uint8Array(7).fill(1), new Uint8Array(247)));
    assert.equal(decipher(card, shortPs).sw, 0x6a80, 'padding string under 8 bytes');
    mse(card, 'B8', 0x87, 0x81);
    assert.equal(decipher(card, c1).sw, 0x6a80, 'PKCS#1 cryptogram under OAEP');
  });
});

describe('key import', () => {
  test('a chained RSA-2048 RSAPrivateKey signs; the card keeps only what it needs', () => {
    const card = loggedIn();
    createKeyFile(card, 0x83, ALG[2048], false);
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const r = sendCommand(card, importApdus(0x83, rsaPrivateKeyDer(privateKey)));
    assert.equal(r.sw, 0x9000);
    const read = publicKeyObject(readPublicKey(card, 0x83));
    assert.equal(read.export({ format: 'jwk' }).n, publicKey.export({ format: 'jwk' }).n);
    mse(card, 'B6', 0x57, 0x83);
    const sig = signPkcs1(card, DIGEST_INFO_SHA256);
    const expected = privateEncrypt({ key: privateKey, padding: constants.RSA_PKCS1_PADDING }, DIGEST_INFO_SHA256);
    assert.equal(hex(sig.data), hex(expected));
  });

  test('refused: inconsistent CRT values, missing key EF, wrapped key, no PIN', () => {
    const card = loggedIn();
    createKeyFile(card, 0x83, ALG[1024], false);
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const jwk = privateKey.export({ format: 'jwk' });
    const broken = createPrivateKey({ key: { ...jwk, dp: jwk.dq! }, format: 'jwk' });
    assert.equal(sendCommand(card, importApdus(0x83, rsaPrivateKeyDer(broken))).sw, 0x6984);
    assert.equal(sendCommand(card, importApdus(0x84, rsaPrivateKeyDer(privateKey))).sw, 0x6984);
    const wrapped = encodeTlv(0x70, fromHex('840183'), encodeTlv(0xa5, fromHex('830102'), fromHex('840101'), encodeTlv(0x87, new Uint8Array(8))));
    assert.equal(sendCommand(card, command(0, 0xdb, 0x3f, 0xff, wrapped)).sw, 0x6a81);
    expectSw(card, '00200082', 0x9000);
    assert.equal(sendCommand(card, importApdus(0x83, rsaPrivateKeyDer(privateKey))).sw, 0x6982);
  });
});

test('RSA-3072 and RSA-4096: generation, public key via GET RESPONSE, signature and decipher; 4096-bit import', () => {
  const card = loggedIn();
  createKeyFile(card, 0x83, ALG[4096], false);
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 4096 });
  const apdus = importApdus(0x83, rsaPrivateKeyDer(privateKey));
  assert.ok(apdus.length >= 10, `a ${apdus.length}-piece chain, beyond GidsApplet's 2372-byte import buffer`);
  assert.equal(sendCommand(card, apdus).sw, 0x9000);
  assert.equal(publicKeyObject(readPublicKey(card, 0x83)).export({ format: 'jwk' }).n, publicKey.export({ format: 'jwk' }).n);
  for (const bits of [3072, 4096] as const) {
    const ref = bits === 3072 ? 0x81 : 0x82;
    createKeyFile(card, ref, ALG[bits]);
    const pub = publicKeyObject(generateKey(card, ref, ALG[bits]));
    assert.equal(pub.asymmetricKeyDetails?.modulusLength, bits);
    mse(card, 'B6', ALG[bits] | 0x50, ref);
    const sig = signPkcs1(card, DIGEST_INFO_SHA256);
    assert.equal(sig.data.length, bits / 8);
    assert.equal(hex(publicDecrypt({ key: pub, padding: constants.RSA_PKCS1_PADDING }, sig.data)), hex(DIGEST_INFO_SHA256));
    mse(card, 'B8', ALG[bits] | 0x40, ref);
    const secret = new Uint8Array(randomBytes(48));
    const p = decipher(card, publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_PADDING }, secret));
    assert.equal(hex(p.data), hex(secret));
  }
});
