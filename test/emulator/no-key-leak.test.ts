/**
 * No command returns private key material. Keys are generated (RSA-1024 ×2, RSA-2048) and imported
 * (RSA-1024) on a card; then every INS 00..FF, with every P1/P2 family and several data shapes, in
 * CLA 00, 10 and 80, after several security set-ups (none, PIN, PIN + MSE sign, PIN + MSE
 * decipher, administrator + PIN), is sent on a fresh copy of that card for each key, and every
 * response (GET RESPONSE continuations included) is searched for d, p, q, dp, dq, qinv, the
 * administrator key and the PIN: whole, and any 16-byte window of them.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { fromHex } from '../../src/bytes.js';
import { GidsCard, type CardImageData } from '../../src/gids/emulator/index.js';
import { encodeTlv } from '../../src/gids/protocol/tlv.js';
import { SecretDetector } from '../helpers/secrets.js';
import { ADMIN_KEY, command, createKeyFile, expectSw, generateKey, initializedEmulator, mutualAuth, PIN, SELECT_GIDS, sendCommand, verifyApdu } from './helpers.js';

const GIDS_INS = new Set([0xa4, 0xcb, 0xdb, 0xe0, 0x44, 0xe4, 0xe6, 0x20, 0x24, 0x2c, 0x87, 0x22, 0x47, 0x2a, 0xc0]);

function p1p2Families(ref: number): number[][] {
  return [
    [0x00, 0x00], [0x3f, 0xff], [0xff, 0xff], [0x9e, 0x9a], [0x80, 0x86], [0x41, 0xb6], [0x41, 0xb8], [0xc1, 0xa4],
    [0x81, 0xa4], [0x00, 0x80], [0x00, 0x82], [0x01, 0x80], [0x02, 0x80], [0xb0, ref], [0xa0, 0x10], [0x00, 0x0c],
    [0x04, 0x00], [0x2f, 0x01], [0x00, 0x04], [0x00, 0x08], [0xf3, 0xb6], [0x5a, 0xa5],
  ];
}

function dataFamilies(ref: number, alg: number): Uint8Array[] {
  const block = new Uint8Array(128).map((_, i) => (i === 0 ? 0 : i));
  return [
    new Uint8Array(0),
    new Uint8Array([0xb0, ref]),
    fromHex('5C00'),
    fromHex('5C02DF20'),
    new Uint8Array([0x70, 0x08, 0x84, 0x01, ref, 0xa5, 0x03, 0x7f, 0x49, 0x80]),
    new Uint8Array([0x80, 0x01, alg | 0x50, 0x84, 0x01, ref]),
    new Uint8Array([0x80, 0x01, alg, 0x84, 0x01, ref]),
    new Uint8Array([0x83, 0x01, ref]),
    fromHex('7C028100'),
    concat(fromHex('7C128110'), new Uint8Array(16)),
    new Uint8Array(Buffer.from(PIN)),
    block,
    encodeTlv(0x70, encodeTlv(0x84, new Uint8Array([ref])), encodeTlv(0xa5, fromHex('830102840100'))),
  ];
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function apdu(cla: number, ins: number, p1: number, p2: number, data: Uint8Array): Uint8Array {
  const head = [cla, ins, p1, p2];
  return new Uint8Array(data.length === 0 ? [...head, 0x00] : [...head, data.length, ...data, 0x00]);
}

const TARGETS: ReadonlyArray<{ ref: number; alg: number }> = [
  { ref: 0x80, alg: 0x02 },
  { ref: 0x81, alg: 0x06 },
  { ref: 0x82, alg: 0x06 },
  { ref: 0x83, alg: 0x07 },
  { ref: 0x84, alg: 0x06 },
];

type Session = (card: GidsCard, ref: number, alg: number) => void;
const SESSIONS: Record<string, Session> = {
  none: () => undefined,
  pin: (card) => void expectSw(card, verifyApdu(PIN), 0x9000),
  'pin+mse-sign': (card, ref, alg) => {
    expectSw(card, verifyApdu(PIN), 0x9000);
    card.process(new Uint8Array([0x00, 0x22, 0x41, 0xb6, 0x06, 0x80, 0x01, alg | 0x50, 0x84, 0x01, ref]));
  },
  'pin+mse-decipher': (card, ref, alg) => {
    expectSw(card, verifyApdu(PIN), 0x9000);
    card.process(new Uint8Array([0x00, 0x22, 0x41, 0xb8, 0x06, 0x80, 0x01, alg, 0x84, 0x01, ref]));
  },
  'admin+pin': (card) => {
    assert.equal(mutualAuth(card), 0x9000);
    expectSw(card, verifyApdu(PIN), 0x9000);
  },
};

function preparedCard(): CardImageData {
  const card = initializedEmulator();
  expectSw(card, SELECT_GIDS, 0x9000);
  expectSw(card, verifyApdu(PIN), 0x9000);
  createKeyFile(card, 0x81, 0x06);
  createKeyFile(card, 0x82, 0x06, false);
  createKeyFile(card, 0x83, 0x07);
  createKeyFile(card, 0x84, 0x06);
  generateKey(card, 0x81, 0x06);
  generateKey(card, 0x82, 0x06);
  generateKey(card, 0x83, 0x07);
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const der = new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs1' }));
  const body = encodeTlv(0x70, encodeTlv(0x84, new Uint8Array([0x84])), encodeTlv(0xa5, fromHex('830102840100'), encodeTlv(0x87, der)));
  assert.equal(sendCommand(card, command(0x00, 0xdb, 0x3f, 0xff, body)).sw, 0x9000);
  return card.toImage();
}

test('no response to any command carries private key material', () => {
  const template = preparedCard();
  const detector = new SecretDetector();
  for (const f of template.files) {
    if (f.key?.kind === 'symmetric') detector.add(f.key.value);
    if (f.key?.kind === 'rsa') detector.addPrivateKey(f.key.privateKey);
  }
  detector.add(ADMIN_KEY);
  detector.add(new Uint8Array(Buffer.from(PIN)));
  const keys = template.files.filter((f) => f.key !== undefined).length;
  assert.equal(keys, 5, 'B080 admin key, three generated and one imported RSA key');

  // The detector itself must see a planted window, or this test would prove nothing.
  const planted = new Uint8Array(randomBytes(40));
  const rsa2048 = template.files.find((f) => f.fid === 0xb083)?.key;
  assert.equal(rsa2048?.kind, 'rsa');
  planted.set(Buffer.from(rsa2048.privateKey.export({ format: 'jwk' }).d!, 'base64url').subarray(100, 116), 7);
  assert.ok(detector.leaks(planted), 'a 16-byte window of d is detected');
  assert.ok(detector.leaks(new Uint8Array(Buffer.from(`xx${PIN}xx`))), 'the PIN is detected');

  let sent = 0;
  let responseBytes = 0;
  let leaks = 0;
  const firstLeaks: string[] = [];
  for (const { ref, alg } of TARGETS) {
    const families = p1p2Families(ref);
    const data = dataFamilies(ref, alg);
    for (const [session, setUp] of Object.entries(SESSIONS)) {
      for (const cla of [0x00, 0x10, 0x80]) {
        for (let ins = 0; ins <= 0xff; ins++) {
          const card = GidsCard.fromImage(template);
          expectSw(card, SELECT_GIDS, 0x9000);
          setUp(card, ref, alg);
          const shapes = GIDS_INS.has(ins) ? data : data.slice(0, 2);
          for (const [p1, p2] of families) {
            for (const body of shapes) {
              let r = card.process(apdu(cla, ins, p1!, p2!, body));
              sent++;
              for (let guard = 0; ; guard++) {
                responseBytes += r.length;
                if (detector.leaks(r)) {
                  leaks++;
                  if (firstLeaks.length < 5) firstLeaks.push(`${session} CLA ${cla} INS ${ins} P1P2 ${p1} ${p2}`);
                }
                if (r[r.length - 2] !== 0x61 || guard > 40) break;
                r = card.process(new Uint8Array([0x00, 0xc0, 0x00, 0x00, r[r.length - 1]!]));
                sent++;
              }
            }
          }
        }
      }
    }
  }
  assert.deepEqual(firstLeaks, []);
  assert.equal(leaks, 0);
  assert.ok(sent > 500_000, `${sent} APDUs sent`);
  assert.ok(responseBytes > sent * 2, 'responses were collected');
});
