/**
 * No command returns the PIV card's secrets. A card holds keys in every algorithm (RSA-2048 in 9A,
 * P-256 in 9C, P-384 in 9D, RSA-1024 in 9E, P-256 in retired 82), an AES-256 management key and a
 * non-factory PIN and PUK; then every INS 00..FF, with P1/P2 families (every algorithm and key
 * reference) and data shapes (tag lists, dynamic authentication templates, PIN blocks, key
 * generation templates), in CLA 00, 10 and 80, after each security set-up (none, PIN, management
 * key, both), is sent to a fresh copy of that card, and every response (GET RESPONSE continuations
 * included) is searched for the private keys, the management key, the PIN and the PUK: whole, and
 * any 16-byte window of them. Keys the sweep itself generates are searched for too.
 */
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { encodeTlv } from '../../src/ber-tlv.js';
import { concat } from '../../src/bytes.js';
import { PivCard, type PivState } from '../../src/piv/emulator/index.js';
import { PivSession } from '../../src/piv/host/session.js';
import { ALG } from '../../src/piv/protocol/constants.js';
import { pinBlock } from '../../src/piv/protocol/objects.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { SecretDetector } from '../helpers/secrets.js';
import { MGMT_KEY, PIN, PUK } from './helpers.js';

const NEW_PIN = '97531864';
const NEW_PUK = '24681357';
const AES_KEY = new Uint8Array(randomBytes(32));

async function preparedCard(): Promise<PivState> {
  const card = PivCard.blank();
  const s = new PivSession(new MemoryTransport(card));
  await s.select();
  await s.authenticate(MGMT_KEY);
  await s.generateKey(0x9a, ALG.RSA_2048);
  await s.generateKey(0x9c, ALG.ECC_P256);
  await s.generateKey(0x9d, ALG.ECC_P384);
  await s.generateKey(0x9e, ALG.RSA_1024);
  await s.generateKey(0x82, ALG.ECC_P256);
  await s.changePin(PIN, NEW_PIN);
  await s.changePuk(PUK, NEW_PUK);
  return { ...card.snapshot(), managementKey: { alg: ALG.AES_256, value: AES_KEY } };
}

function send(card: PivCard, bytes: number[] | Uint8Array): Uint8Array {
  return card.process(new Uint8Array(bytes));
}

function mgmtAuth(card: PivCard): void {
  const r1 = send(card, [0x00, 0x87, ALG.AES_256, 0x9b, 0x04, 0x7c, 0x02, 0x81, 0x00]);
  assert.equal(r1[r1.length - 2], 0x90);
  const challenge = r1.subarray(4, 20);
  const c = createCipheriv('aes-256-ecb', AES_KEY, null);
  c.setAutoPadding(false);
  const answer = Buffer.concat([c.update(challenge), c.final()]);
  const r2 = send(card, [0x00, 0x87, ALG.AES_256, 0x9b, 0x14, 0x7c, 0x12, 0x82, 0x10, ...answer]);
  assert.deepEqual([...r2], [0x90, 0x00]);
}

function verifyPin(card: PivCard): void {
  assert.deepEqual([...send(card, [0x00, 0x20, 0x00, 0x80, 0x08, ...pinBlock(NEW_PIN)!])], [0x90, 0x00]);
}

const SETUPS: Record<string, (card: PivCard) => void> = {
  none: () => undefined,
  pin: verifyPin,
  management: mgmtAuth,
  'management+pin': (card) => {
    mgmtAuth(card);
    verifyPin(card);
  },
};

const P1P2: number[][] = [
  [0x00, 0x00], [0x3f, 0xff], [0x00, 0x80], [0x00, 0x81], [0xff, 0x80], [0x00, 0x9a], [0x00, 0x9c], [0x00, 0x9e],
  [ALG.RSA_2048, 0x9a], [ALG.ECC_P256, 0x9c], [ALG.ECC_P384, 0x9d], [ALG.RSA_1024, 0x9e], [ALG.ECC_P256, 0x82],
  [ALG.AES_256, 0x9b], [ALG.TDES, 0x9b], [0x04, 0x00],
];

const DATA: Uint8Array[] = [
  new Uint8Array(0),
  new Uint8Array([0x5c, 0x01, 0x7e]),
  new Uint8Array([0x5c, 0x03, 0x5f, 0xc1, 0x05]),
  new Uint8Array([0x5c, 0x03, 0x5f, 0xc1, 0x09]),
  encodeTlv(0x7c, encodeTlv(0x80, new Uint8Array(0))),
  encodeTlv(0x7c, encodeTlv(0x81, new Uint8Array(0))),
  encodeTlv(0x7c, encodeTlv(0x82, new Uint8Array(0)), encodeTlv(0x81, new Uint8Array(32).fill(0x5a))),
  encodeTlv(0x7c, encodeTlv(0x82, new Uint8Array(0)), encodeTlv(0x81, concat(new Uint8Array([0x00, 0x01]), new Uint8Array(254).fill(0x33)))),
  encodeTlv(0x7c, encodeTlv(0x82, new Uint8Array(0)), encodeTlv(0x81, concat(new Uint8Array([0x00, 0x01]), new Uint8Array(126).fill(0x33)))),
  encodeTlv(0x7c, encodeTlv(0x82, new Uint8Array(0)), encodeTlv(0x85, new Uint8Array(65).fill(4))),
  encodeTlv(0xac, encodeTlv(0x80, new Uint8Array([ALG.ECC_P256]))),
  concat(pinBlock(NEW_PIN)!, pinBlock('11111111')!),
  concat(pinBlock(NEW_PUK)!, pinBlock(NEW_PIN)!),
  new Uint8Array([0xa0, 0x00, 0x00, 0x03, 0x08]),
];
const PIV_INS = new Set([0xa4, 0xcb, 0xdb, 0x20, 0x24, 0x2c, 0x87, 0x47, 0xc0, 0xfd, 0xf8]);

function apdu(cla: number, ins: number, p1: number, p2: number, data: Uint8Array): Uint8Array {
  const head = [cla, ins, p1, p2];
  return new Uint8Array(data.length === 0 ? [...head, 0x00] : [...head, data.length, ...data, 0x00]);
}

test('no response to any command carries a private key, the management key, the PIN or the PUK', async () => {
  const template = await preparedCard();
  const detector = new SecretDetector();
  for (const k of template.keys.values()) detector.addPrivateKey(k.privateKey);
  detector.add(AES_KEY);
  for (const secret of [pinBlock(NEW_PIN)!, pinBlock(NEW_PUK)!, new Uint8Array(Buffer.from(NEW_PIN)), new Uint8Array(Buffer.from(NEW_PUK))]) detector.add(secret);
  assert.equal(template.keys.size, 5);

  // The detector itself must see a planted window, or this test would prove nothing.
  const planted = new Uint8Array(randomBytes(40));
  const d = Buffer.from(template.keys.get(0x9d)!.privateKey.export({ format: 'jwk' }).d!, 'base64url');
  planted.set(d.subarray(20, 36), 7);
  assert.ok(detector.leaks(planted), 'a 16-byte window of a P-384 d is detected');
  assert.ok(detector.leaks(new Uint8Array(Buffer.from(`xx${NEW_PIN}xx`))), 'the PIN is detected');

  let sent = 0;
  let responseBytes = 0;
  let generatedKeys = 0;
  const leaks: string[] = [];
  for (const [setup, setUp] of Object.entries(SETUPS)) {
    for (const cla of [0x00, 0x10, 0x80]) {
      for (let ins = 0; ins <= 0xff; ins++) {
        const card = PivCard.fromState(template);
        assert.equal(send(card, [0x00, 0xa4, 0x04, 0x00, 0x05, 0xa0, 0x00, 0x00, 0x03, 0x08]).at(-2), 0x90);
        setUp(card);
        const shapes = PIV_INS.has(ins) ? DATA : DATA.slice(0, 2);
        const responses: Uint8Array[] = [];
        for (const [p1, p2] of P1P2) {
          for (const body of shapes) {
            let r = send(card, apdu(cla, ins, p1!, p2!, body));
            sent++;
            for (let guard = 0; ; guard++) {
              responseBytes += r.length;
              responses.push(r);
              if (detector.leaks(r) && leaks.length < 5) leaks.push(`${setup} CLA ${cla} INS ${ins} P1P2 ${p1} ${p2}`);
              if (r[r.length - 2] !== 0x61 || guard > 40) break;
              r = send(card, [0x00, 0xc0, 0x00, 0x00, r[r.length - 1]!]);
              sent++;
            }
          }
        }
        // Keys this run generated are secrets too: none of its responses may carry them.
        const fresh = new SecretDetector();
        let generated = 0;
        for (const [slot, k] of card.snapshot().keys) {
          if (template.keys.get(slot) === k) continue;
          fresh.addPrivateKey(k.privateKey);
          generated++;
        }
        generatedKeys += generated;
        if (generated > 0) for (const r of responses) if (fresh.leaks(r) && leaks.length < 5) leaks.push(`generated key: ${setup} CLA ${cla} INS ${ins}`);
      }
    }
  }
  assert.deepEqual(leaks, []);
  assert.ok(generatedKeys > 0, 'the sweep generated keys (management key set-ups), and searched for them');
  assert.ok(sent > 100_000, `${sent} APDUs sent`);
  assert.ok(responseBytes > sent * 2, 'responses were collected');
});
