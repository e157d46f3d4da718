// The APDU channel: short APDUs with chaining by default, extended lengths once the card said it
// takes them, and back to chaining when its first extended APDU is refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApduChannel } from '../../src/apdu/channel.js';
import { LE_ALL, encodeCommand, parseCommand } from '../../src/apdu/command.js';
import { encodeResponse } from '../../src/apdu/response.js';
import { hex } from '../../src/bytes.js';
import type { Transport } from '../../src/transport/transport.js';

test('extended encodings (cases 2E, 3E, 4E) parse back to the same command; short stays short and refuses long data', () => {
  const data = new Uint8Array(700).map((_, i) => i & 0xff);
  const cases = [
    { cla: 0, ins: 0xcb, p1: 0x3f, p2: 0xff, le: LE_ALL },
    { cla: 0, ins: 0xdb, p1: 0xa0, p2: 0x10, data },
    { cla: 0, ins: 0xcb, p1: 0xa0, p2: 0x10, data: new Uint8Array([0x5c, 0x02, 0xdf, 0x24]), le: 4096 },
  ];
  for (const c of cases) assert.deepEqual(parseCommand(encodeCommand(c, true)), c);
  assert.equal(hex(encodeCommand(cases[0]!, true)), '00CB3FFF000000');
  assert.equal(hex(encodeCommand({ ...cases[2]!, le: 256 })), '00CBA010045C02DF2400');
  assert.throws(() => encodeCommand(cases[1]!), { code: 'APDU_FORMAT' });
});

/** A card that takes PUT DATA (short or extended, chained or not) and answers GET DATA with `answer`. */
class FakeCard implements Transport {
  readonly name = 'fake';
  readonly sent: Uint8Array[] = [];
  received = new Uint8Array(0);
  pending = new Uint8Array(0);
  constructor(
    private readonly acceptsExtended: boolean,
    private readonly answer = new Uint8Array(0),
  ) {}
  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    this.sent.push(apdu);
    const extended = apdu.length > 5 && apdu[4] === 0x00;
    if (extended && !this.acceptsExtended) return encodeResponse(new Uint8Array(0), 0x6700);
    const cmd = parseCommand(apdu);
    if (cmd.ins === 0xdb) {
      const all = new Uint8Array(this.received.length + cmd.data!.length);
      all.set(this.received);
      all.set(cmd.data!, this.received.length);
      this.received = all;
      return encodeResponse(new Uint8Array(0), 0x9000);
    }
    const source = cmd.ins === 0xc0 ? this.pending : this.answer;
    const n = Math.min(cmd.le ?? 256, source.length);
    this.pending = source.slice(n);
    return encodeResponse(source.subarray(0, n), this.pending.length > 0 ? 0x6100 | (Math.min(this.pending.length, 256) & 0xff) : 0x9000);
  }
  async close(): Promise<void> {}
}

const put = (data: Uint8Array) => ({ cla: 0, ins: 0xdb, p1: 0xa0, p2: 0x10, data });
const get = { cla: 0, ins: 0xcb, p1: 0x3f, p2: 0xff, data: new Uint8Array([0x70, 0x00]), le: LE_ALL };

test('800 bytes: four chained short APDUs by default, one extended APDU once the card announced extended lengths', async () => {
  const data = new Uint8Array(800).fill(7);
  const short = new FakeCard(true);
  await new ApduChannel(short).sendOk(put(data), 'PUT');
  assert.deepEqual(short.sent.map((a) => a[0]), [0x10, 0x10, 0x10, 0x00]);
  assert.equal(hex(short.received), hex(data));

  const ext = new FakeCard(true);
  const channel = new ApduChannel(ext);
  channel.useExtendedLength({ maxCommandData: 4096, maxResponseData: 4096 });
  await channel.sendOk(put(data), 'PUT');
  assert.equal(ext.sent.length, 1);
  assert.equal(ext.sent[0]!.length, 4 + 3 + 800);
  assert.equal(hex(ext.received), hex(data));

  // Longer than the card's limit: extended pieces of at most that size, chained.
  const big = new FakeCard(true);
  const limited = new ApduChannel(big);
  limited.useExtendedLength({ maxCommandData: 300, maxResponseData: 4096 });
  await limited.sendOk(put(new Uint8Array(700).fill(1)), 'PUT');
  // (the last piece fits a short APDU, so it goes as one)
  assert.deepEqual(big.sent.map((a) => [a[0], parseCommand(a).data!.length, a[4] === 0]), [[0x10, 300, true], [0x10, 300, true], [0x00, 100, false]]);
  assert.equal(hex(big.received), hex(new Uint8Array(700).fill(1)));
});

test('a long answer: 61xx and GET RESPONSE with short APDUs, one answer with extended Le', async () => {
  const answer = new Uint8Array(600).map((_, i) => i & 0xff);
  const short = new FakeCard(true, answer);
  assert.equal(hex(await new ApduChannel(short).sendOk(get, 'GET')), hex(answer));
  assert.deepEqual(short.sent.map((a) => a[1]), [0xcb, 0xc0, 0xc0]);

  const ext = new FakeCard(true, answer);
  const channel = new ApduChannel(ext);
  channel.useExtendedLength({ maxCommandData: 4096, maxResponseData: 4096 });
  assert.equal(hex(await channel.sendOk(get, 'GET')), hex(answer));
  assert.equal(ext.sent.length, 1);
});

test('a card (or reader) that refuses its first extended APDU with 6700 gets the same command chained, and short APDUs from then on', async () => {
  const data = new Uint8Array(600).fill(3);
  const card = new FakeCard(false);
  const channel = new ApduChannel(card);
  channel.useExtendedLength({ maxCommandData: 4096, maxResponseData: 4096 });
  await channel.sendOk(put(data), 'PUT');
  assert.equal(hex(card.received), hex(data), 'written once, completely');
  assert.deepEqual(card.sent.map((a) => a.length > 5 && a[4] === 0), [true, false, false, false]);
  assert.equal(channel.extendedLength, undefined);
  card.sent.length = 0;
  await channel.sendOk(put(data), 'PUT');
  assert.equal(card.sent.length, 3, 'no second try of an extended APDU');
});

test('limits that are no better than short APDUs are ignored', () => {
  const channel = new ApduChannel(new FakeCard(true));
  channel.useExtendedLength({ maxCommandData: 255, maxResponseData: 4096 });
  assert.equal(channel.extendedLength, undefined);
});
