/**
 * Random and mutated APDUs against an initialised card holding an RSA key: the emulator always
 * answers a status word (never throws, never 6F00), and afterwards its state is still valid.
 */
import assert from 'node:assert/strict';
import { constants, publicDecrypt, randomBytes, type KeyObject } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { fromHex, hex } from '../../src/bytes.js';
import { decodeCardImage, encodeCardImage, GidsCard, type CardImageData } from '../../src/gids/emulator/index.js';
import { readTrace } from '../helpers/traces.js';
import { ADMIN_KEY, createKeyFile, expectSw, generateKey, initializedEmulator, mutualAuth, PIN, SELECT_GIDS, verifyApdu } from './helpers.js';

const TRACES = ['initialize.txt', 'dump-empty.txt', 'keygen.txt', 'readpub.txt', 'certstore.txt', 'dump-full.txt', 'p11sign.txt'];
const DIGEST_INFO = fromHex('3031300D060960864801650304020105000420' + '11'.repeat(32));

/**
 * RSA key generation of 2048 bits or more takes 0.1 to several seconds: such APDUs are not sent
 * (key generation has its own tests). Smaller generations stay in.
 */
function isSlowKeygen(apdu: Uint8Array): boolean {
  if (apdu[1] !== 0x47) return false;
  for (let i = 5; i + 2 < apdu.length; i++) {
    if (apdu[i] === 0x80 && apdu[i + 1] === 0x01 && [0x07, 0x08, 0x09].includes(apdu[i + 2]!)) return true;
  }
  return false;
}

const CORPUS: Uint8Array[] = [
  ...TRACES.flatMap((t) => readTrace(t).map((x) => fromHex(x.command))),
  fromHex('002241B606800156840181'),
  fromHex('002241B806800146840181'),
  fromHex(`002A9E9A${DIGEST_INFO.length.toString(16)}${hex(DIGEST_INFO)}00`),
  fromHex('002A8086' + '80' + '00'.repeat(128) + '00'),
  fromHex('0022C1A403830180'),
  fromHex('00870000147C128110' + 'AA'.repeat(16) + '00'),
  fromHex('00870000047C02810000'),
  fromHex('00E40000'),
  fromHex('00E60000'),
  fromHex('002C028004' + '31323334'),
  fromHex('00C0000000'),
].filter((a, i, all) => !isSlowKeygen(a) && all.findIndex((b) => hex(b) === hex(a)) === i);

const GIDS_INS = [0xa4, 0xcb, 0xdb, 0xe0, 0x44, 0xe4, 0xe6, 0x20, 0x24, 0x2c, 0x87, 0x22, 0x47, 0x2a, 0xc0];

const byte = fc.integer({ min: 0, max: 255 });

const structured = fc
  .record({
    cla: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(0x00, 0x00, 0x10) }, fc.constantFrom(0x80, 0x0c, 0x01, 0x90), byte),
    ins: fc.oneof(fc.constantFrom(...GIDS_INS), byte),
    p1: fc.oneof(fc.constantFrom(0x00, 0x3f, 0xa0, 0xb0, 0x9e, 0x80, 0x41, 0xc1, 0x01, 0x02, 0x04), byte),
    p2: fc.oneof(fc.constantFrom(0x00, 0xff, 0x10, 0x81, 0x9a, 0x86, 0xb6, 0xb8, 0xa4, 0x80, 0x82, 0x0c), byte),
    data: fc.oneof(fc.uint8Array({ maxLength: 12 }), fc.uint8Array({ maxLength: 300 })),
    lc: fc.oneof({ weight: 6, arbitrary: fc.constant('exact') }, fc.constantFrom('wrong', 'none', 'extended')),
    le: fc.option(byte),
  })
  .map(({ cla, ins, p1, p2, data, lc, le }) => {
    const head = [cla, ins, p1, p2];
    const tail = le === null ? [] : [le];
    if (lc === 'none' || data.length === 0) return new Uint8Array([...head, ...tail]);
    if (lc === 'extended') return new Uint8Array([...head, 0x00, data.length >> 8, data.length & 0xff, ...data, ...tail]);
    const n = lc === 'exact' ? data.length & 0xff : (data.length + 1) & 0xff;
    return new Uint8Array([...head, n, ...data, ...tail]);
  });

type Mutation =
  | { kind: 'set'; at: number; value: number }
  | { kind: 'setData'; at: number; value: number }
  | { kind: 'cut'; at: number }
  | { kind: 'append'; bytes: Uint8Array }
  | { kind: 'chain' };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(300), value: byte }),
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('setData' as const), at: fc.nat(300), value: byte }) },
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat(300) }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.constant({ kind: 'chain' as const }),
);

function mutate(base: Uint8Array, ms: Mutation[]): Uint8Array {
  let a = base.slice();
  for (const m of ms) {
    if (m.kind === 'set' && a.length > 0) a[m.at % a.length] = m.value;
    else if (m.kind === 'setData' && a.length > 5) a[5 + (m.at % (a.length - 5))] = m.value;
    else if (m.kind === 'cut') a = a.subarray(0, m.at % (a.length + 1));
    else if (m.kind === 'append') a = new Uint8Array([...a, ...m.bytes]);
    else if (m.kind === 'chain' && a.length > 0) a[0]! ^= 0x10;
  }
  return a;
}

const mutated = fc.tuple(fc.constantFrom(...CORPUS), fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([b, ms]) => mutate(b, ms));

const apduArb = fc.oneof(
  { weight: 3, arbitrary: mutated },
  { weight: 3, arbitrary: structured },
  { weight: 2, arbitrary: fc.constantFrom(...CORPUS) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 270 }) },
);

type Prefix = 'none' | 'select' | 'pin' | 'pin+mse' | 'admin';
const PREFIXES: Prefix[] = ['none', 'select', 'pin', 'pin', 'pin+mse', 'pin+mse', 'admin'];

interface Template {
  image: CardImageData;
  key: KeyObject;
  modulus: string;
  table: string;
}

function buildTemplate(): Template {
  const card = initializedEmulator();
  expectSw(card, SELECT_GIDS, 0x9000);
  expectSw(card, verifyApdu(PIN), 0x9000);
  createKeyFile(card, 0x81, 0x06);
  const pub = generateKey(card, 0x81, 0x06);
  card.reset();
  const image = card.toImage();
  const rsa = image.files.find((f) => f.fid === 0xb081)!.key!;
  assert.equal(rsa.kind, 'rsa');
  const table = image.files.find((f) => f.fid === 0xa000)!.dataObjects.find((d) => d[0] === 0xdf && d[1] === 0x1f)!;
  return { image, key: rsa.privateKey, modulus: hex(pub.subarray(6, 6 + 128)), table: hex(table) };
}

function applyPrefix(card: GidsCard, prefix: Prefix): void {
  if (prefix === 'none') return;
  expectSw(card, SELECT_GIDS, 0x9000);
  if (prefix === 'pin' || prefix === 'pin+mse') expectSw(card, verifyApdu(PIN), 0x9000);
  if (prefix === 'pin+mse') expectSw(card, '002241B606800156840181', 0x9000);
  if (prefix === 'admin') assert.equal(mutualAuth(card, ADMIN_KEY), 0x9000);
}

const ALLOWED_SW1 = new Set([0x61, 0x62, 0x63, 0x67, 0x68, 0x69, 0x6a, 0x6d, 0x6e, 0x90]);

/** A card that answers like this one, with the PIN reset so that the key can be exercised. */
function keyStillSigns(t: Template, image: CardImageData): boolean {
  const probe = GidsCard.fromImage({ ...image, lifeCycle: 'operational', pin: new Uint8Array(Buffer.from(PIN)), pinTriesRemaining: 3 });
  expectSw(probe, SELECT_GIDS, 0x9000);
  expectSw(probe, verifyApdu(PIN), 0x9000);
  expectSw(probe, '002241B606800156840181', 0x9000);
  const sig = expectSw(probe, `002A9E9A${DIGEST_INFO.length.toString(16)}${hex(DIGEST_INFO)}00`, 0x9000);
  const pub = { key: t.key, padding: constants.RSA_PKCS1_PADDING };
  return hex(publicDecrypt(pub, sig)) === hex(DIGEST_INFO);
}

const SEAL_KEY = new Uint8Array(randomBytes(32));

/** An image as comparable values (private keys by their PKCS#8 encoding). */
function canonical(image: CardImageData): unknown {
  return {
    ...image,
    files: image.files.map((f) => ({
      ...f,
      key: f.key === undefined ? null : f.key.kind === 'rsa' ? f.key.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('hex') : hex(f.key.value),
    })),
  };
}

function checkState(t: Template, card: GidsCard, wroteTable: boolean, deep: boolean, sealed: boolean): void {
  const image = card.toImage();
  const again = GidsCard.fromImage(image).toImage();
  assert.deepEqual(again, image, 'the state round-trips through an image');
  if (sealed) {
    const reread = GidsCard.fromImage(decodeCardImage(encodeCardImage(image, SEAL_KEY), SEAL_KEY)).toImage();
    assert.deepEqual(canonical(reread), canonical(image), 'and through the sealed image file format');
  }
  const a000 = image.files.find((f) => f.fid === 0xa000);
  if (!wroteTable) {
    const table = a000?.dataObjects.find((d) => d[0] === 0xdf && d[1] === 0x1f);
    assert.ok(table !== undefined, 'the master file table is still there');
    assert.equal(hex(table), t.table);
    const value = table.subarray(4);
    assert.equal(value[0], 0x01, 'version 01');
    assert.equal((value.length - 1) % 28, 0, '28-byte records');
  }
  const b081 = image.files.find((f) => f.fid === 0xb081);
  if (deep && b081?.key?.kind === 'rsa' && b081.key.privateKey === t.key && b081.activated) {
    assert.ok(keyStillSigns(t, image), 'the key still signs for its public key');
  }
}

test('random, truncated, oversized, chained and mutated APDUs never break the card', () => {
  const t = buildTemplate();
  let apdus = 0;
  let runs = 0;
  const seen = new Map<number, number>();
  const property = fc.property(
    fc.constantFrom(...PREFIXES),
    fc.array(apduArb, { minLength: 1, maxLength: 12 }),
    fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, fc.nat(11)),
    (prefix, list, resetAt) => {
      const card = GidsCard.fromImage(t.image);
      let changed = false;
      card.onPersistentChange = () => {
        changed = true;
      };
      applyPrefix(card, prefix);
      changed = false;
      let wroteTable = false;
      list.forEach((apdu, i) => {
        if (i === resetAt) card.reset();
        if (isSlowKeygen(apdu)) return;
        const r = card.process(apdu);
        apdus++;
        assert.ok(r.length >= 2 && r.length <= 258, 'a status word, and at most 256 bytes of data');
        const sw = (r[r.length - 2]! << 8) | r[r.length - 1]!;
        seen.set(sw, (seen.get(sw) ?? 0) + 1);
        assert.ok(ALLOWED_SW1.has(sw >> 8), `SW ${sw.toString(16)} for ${hex(apdu)}`);
        assert.notEqual(sw, 0x6f00, `internal failure on ${hex(apdu)}`);
        if (sw !== 0x9000 && sw >> 8 !== 0x61) return;
        // Anything that may have rewritten or removed the master table (or killed the card).
        if ([0xdb, 0xe4, 0xe6].includes(apdu[1]!)) wroteTable = true;
      });
      runs++;
      checkState(t, card, wroteTable, changed || runs % 16 === 0, runs % 64 === 0);
    },
  );
  fc.assert(property, { numRuns: 16_000 });
  assert.ok(apdus >= 100_000, `${apdus} APDUs in ${runs} runs`);
  assert.ok((seen.get(0x9000) ?? 0) > 5_000, 'many commands succeeded, so the fuzzer reached deep states');
  assert.ok(seen.size > 25, `${seen.size} distinct status words`);
});
