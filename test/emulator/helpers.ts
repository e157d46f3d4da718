/** Shared steps for the emulator tests: APDU exchange, card set-up, admin authentication. */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { concat, fromHex, hex } from '../../src/bytes.js';
import { GidsCard } from '../../src/gids/emulator/index.js';

export const PIN = '123456';
export const ADMIN_KEY = fromHex('010203040506070801020304050607080102030405060708');
export const CARD_ID = fromHex('1BFE3A811C3C44604487D3F484EFF2D5');

export interface Reply {
  data: Uint8Array;
  sw: number;
}

export function send(card: GidsCard, apdu: string | Uint8Array): Reply {
  const r = card.process(typeof apdu === 'string' ? fromHex(apdu) : apdu);
  assert.ok(r.length >= 2, 'a response carries at least SW1 SW2');
  return { data: r.subarray(0, r.length - 2), sw: (r[r.length - 2]! << 8) | r[r.length - 1]! };
}

/** Sends and follows 61xx with GET RESPONSE, returning all the data and the final SW. */
export function sendAll(card: GidsCard, apdu: string | Uint8Array): Reply {
  let r = send(card, apdu);
  const parts = [r.data];
  for (let guard = 0; r.sw >> 8 === 0x61 && guard < 300; guard++) {
    r = send(card, `00C00000${(r.sw & 0xff).toString(16).padStart(2, '0')}`);
    parts.push(r.data);
  }
  return { data: concat(...parts), sw: r.sw };
}

export function swOf(card: GidsCard, apdu: string | Uint8Array): string {
  return send(card, apdu).sw.toString(16).toUpperCase().padStart(4, '0');
}

export function expectSw(card: GidsCard, apdu: string | Uint8Array, sw: number, why?: string): Uint8Array {
  const r = sendAll(card, apdu);
  assert.equal(r.sw.toString(16).toUpperCase(), sw.toString(16).toUpperCase(), why ?? (typeof apdu === 'string' ? apdu : hex(apdu)));
  return r.data;
}

/** A short APDU with Lc/data, optionally Le; chained (CLA 10) pieces of 255 bytes when longer. */
export function command(cla: number, ins: number, p1: number, p2: number, data: Uint8Array = new Uint8Array(0), le?: number): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  for (let off = 0; off < data.length || pieces.length === 0; off += 255) {
    const chunk = data.subarray(off, off + 255);
    const last = off + 255 >= data.length;
    const head = [last ? cla : cla | 0x10, ins, p1, p2];
    const body = chunk.length > 0 ? [chunk.length, ...chunk] : [];
    pieces.push(new Uint8Array([...head, ...body, ...(last && le !== undefined ? [le & 0xff] : [])]));
    if (last) break;
  }
  return pieces;
}

/** Sends a (possibly chained) command; every piece but the last must answer 9000. */
export function sendCommand(card: GidsCard, pieces: Uint8Array[]): Reply {
  for (const p of pieces.slice(0, -1)) assert.equal(send(card, p).sw, 0x9000, `chain piece ${hex(p)}`);
  return sendAll(card, pieces[pieces.length - 1]!);
}

export function tdes(key: Uint8Array, data: Uint8Array, encrypt: boolean): Uint8Array {
  const c = encrypt ? createCipheriv('des-ede3-cbc', key, Buffer.alloc(8)) : createDecipheriv('des-ede3-cbc', key, Buffer.alloc(8));
  c.setAutoPadding(false);
  return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
}

const ascii = (s: string): string => Buffer.from(s, 'latin1').toString('hex');
const lc = (bytes: number): string => bytes.toString(16).padStart(2, '0');

export function verifyApdu(pin: string): string {
  return `00200080${lc(pin.length)}${ascii(pin)}`;
}

export const SELECT_GIDS = '00A4040009A0000003974254465900';

/** gids-tool --initialize (docs/sources.md#gids-tool): six BER-TLV EFs, B080, file table, cardid. */
export function initialize(card: GidsCard, options: { pin?: string; adminKey?: Uint8Array } = {}): void {
  const pin = options.pin ?? PIN;
  const admin = options.adminKey ?? ADMIN_KEY;
  expectSw(card, SELECT_GIDS, 0x9000);
  expectSw(card, '00CBA000045C02DF1F00', 0x6a82, 'a blank card has no file table');
  expectSw(card, `00240180${lc(pin.length)}${ascii(pin)}`, 0x9000);
  for (const [ef, put, get] of [['A000', '30', '00'], ['A010', '30', '00'], ['A011', '30', 'FF'], ['A012', '20', '00'], ['A013', '30', '30'], ['A014', '20', '20']]) {
    expectSw(card, `00E000000E620C8201398302${ef}8C0303${put}${get}`, 0x9000);
    expectSw(card, '00440000', 0x9000);
  }
  expectSw(card, '00E000001C621A8201188302B0808C04870020FFA50BA4098001028301809501C0', 0x9000);
  expectSw(card, '00440000', 0x9000);
  expectSw(card, `00DB3FFF267024840180A51F8718${hex(admin)}8803B073DC`, 0x9000);
  expectSw(card, `00DBA00091DF1F818D${FILE_TABLE}`, 0x9000);
  expectSw(card, '00DBA0100BDF21086D73637000000000', 0x9000);
  expectSw(card, '00DBA01009DF2206000000000000', 0x9000);
  expectSw(card, '00DBA01003DF2300', 0x9000);
  expectSw(card, `00DBA01213DF2010${hex(CARD_ID)}`, 0x9000);
  expectSw(card, '00A4000C023FFF', 0x9000);
  expectSw(card, '00440000', 0x9000);
}

/**
 * A blank emulator initialised APDU by APDU as gids-tool does (the raw card, no driver); the
 * card-layer counterpart is `initialisedCard` in test/helpers/card.ts.
 */
export function initializedEmulator(options: { pin?: string; adminKey?: Uint8Array; capacityBytes?: number } = {}): GidsCard {
  const card = GidsCard.blank(options.capacityBytes === undefined ? {} : { capacityBytes: options.capacityBytes });
  initialize(card, options);
  return card;
}

/** The initial 141-byte master file table (version 01 + five 28-byte records). */
export const FILE_TABLE =
  '016D7363700000000000000000000000000000000000000000A000000000000000000000000063617264696400000000' +
  '0020DF000012A00000000000000000000000636172646170707300000021DF000010A000000000000000000000006361' +
  '7264636600000000000022DF000010A000006D7363700000000000636D617066696C6500000023DF000010A00000';

/**
 * OpenSC's key EF FCP for key reference `ref`: a key-exchange key (decipher raw/OAEP/PKCS#1, sign
 * raw/PKCS#1) or a signature-only key, for RSA algorithm id `alg` (06..09).
 */
export function keyFileFcp(ref: number, alg: number, exchange = true): string {
  const a = (usage: number): string => lc(alg | usage);
  const templates = exchange
    ? [`B8098001${a(0x00)}830183950140`, `B8098001${a(0x80)}830183950140`, `B8098001${a(0x40)}830183950140`, `B6098001${a(0x10)}830183950140`, `B6098001${a(0x50)}830183950140`]
    : [`B6098001${a(0x10)}830183950140`, `B6098001${a(0x50)}830183950140`];
  const crt = templates.join('');
  const inner = `8201188302B0${lc(ref)}8C058F10101000A5${lc(crt.length / 2)}${crt}`;
  return `62${lc(inner.length / 2)}${inner}`;
}

/** CREATE + ACTIVATE of key EF B0kk (the PIN must be verified on an operational card). */
export function createKeyFile(card: GidsCard, ref: number, alg: number, exchange = true): void {
  const fcp = keyFileFcp(ref, alg, exchange);
  expectSw(card, `00E00000${lc(fcp.length / 2)}${fcp}`, 0x9000);
  expectSw(card, '00440000', 0x9000);
}

/** GENERATE ASYMMETRIC KEY PAIR in B0kk; returns the public key TLV (7F49 …). */
export function generateKey(card: GidsCard, ref: number, alg: number): Uint8Array {
  return expectSw(card, `0047000008AC068001${lc(alg)}8301${lc(ref)}00`, 0x9000);
}

export function readPublicKey(card: GidsCard, ref: number): Uint8Array {
  return expectSw(card, `00CB3FFF0A70088401${lc(ref)}A5037F498000`, 0x9000);
}

/** Mutual authentication with `key`; returns the final SW (9000 when the card accepted the key). */
export function mutualAuth(card: GidsCard, key: Uint8Array = ADMIN_KEY): number {
  expectSw(card, '0022C1A403830180', 0x9000);
  const r1 = new Uint8Array(randomBytes(16));
  const challenge = expectSw(card, `00870000147C128110${hex(r1)}00`, 0x9000);
  assert.equal(hex(challenge.subarray(0, 4)), '7C128110');
  const r2 = challenge.subarray(4, 20);
  const block = concat(r2, r1, new Uint8Array(randomBytes(7)), new Uint8Array([0x80]));
  const r = sendAll(card, `008700002C7C2A8228${hex(tdes(key, block, true))}00`);
  if (r.sw !== 0x9000) return r.sw;
  assert.equal(hex(r.data.subarray(0, 4)), '7C2A8228');
  const plain = tdes(key, r.data.subarray(4), false);
  assert.equal(hex(plain.subarray(0, 16)), hex(r1), 'the card proves it knows R1');
  assert.equal(hex(plain.subarray(16, 32)), hex(r2));
  assert.equal(plain[39], 0x80);
  return r.sw;
}
