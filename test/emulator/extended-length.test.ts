// An emulated card made with extended lengths announces them (FCI 7F66, EF.ATR card capabilities)
// and takes them; one made without (GidsApplet's way, the default) neither announces nor takes them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fromHex, hex } from '../../src/bytes.js';
import { GidsCard, openCardImage } from '../../src/gids/emulator/index.js';
import { EXTENDED_LENGTH_INFO_TAG, extendedLengthFromFci } from '../../src/gids/protocol/extended-length.js';
import { findTlv, parseTlvs } from '../../src/gids/protocol/tlv.js';
import { tempDir } from '../helpers/card.js';
import { PIN, SELECT_GIDS, initialize, send, verifyApdu } from './helpers.js';

const GIDSAPPLET_FCI = '61124F0BA000000397425446590201730340 01C0'.replace(/ /g, '');

test('the FCI announces extended lengths only on a card made with them; OpenSC/Windows fields stay as GidsApplet has them', () => {
  const plain = GidsCard.blank();
  const r = send(plain, SELECT_GIDS);
  assert.equal(hex(r.data), GIDSAPPLET_FCI, 'default: byte for byte GidsApplet');
  assert.equal(extendedLengthFromFci(r.data), undefined);

  const ext = GidsCard.blank({ extendedLength: true });
  const fci = send(ext, SELECT_GIDS).data;
  const template = parseTlvs(findTlv(parseTlvs(fci), 0x61)!.value);
  assert.equal(hex(findTlv(template, 0x4f)!.value), 'A0000003974254465902 01'.replace(/ /g, ''));
  assert.equal(hex(findTlv(template, 0x73)!.value), '4001C0');
  assert.ok(findTlv(template, EXTENDED_LENGTH_INFO_TAG));
  assert.deepEqual(extendedLengthFromFci(fci), { maxCommandData: 4096, maxResponseData: 4096 });

  // EF.ATR card capabilities, third byte: chaining (80) alone, or with extended Lc/Le (40) and the information (20).
  const caps = (card: GidsCard): number => findTlv(parseTlvs(send(card, '00CB2F01025C00').data), 0x47)!.value[2]!;
  assert.equal(caps(plain), 0x80);
  assert.equal(caps(ext), 0xe0);
});

test('extended APDUs: 6700 on a short-only card; taken, and answered in one piece, on a card made with them', () => {
  for (const extendedLength of [false, true]) {
    const card = GidsCard.blank({ extendedLength });
    initialize(card);
    send(card, SELECT_GIDS);
    assert.equal(send(card, verifyApdu(PIN)).sw, 0x9000);
    const value = new Uint8Array(1500).map((_, i) => (i * 7) & 0xff);
    const tlv = [0xdf, 0x30, 0x82, value.length >> 8, value.length & 0xff, ...value];
    const put = new Uint8Array([0x00, 0xdb, 0xa0, 0x10, 0x00, tlv.length >> 8, tlv.length & 0xff, ...tlv]);
    const get = fromHex('00CBA010' + '000004' + '5C02DF30' + '0000'); // case 4E, Le 0000: all of it
    const putSw = send(card, put).sw;
    if (!extendedLength) {
      assert.equal(putSw, 0x6700);
      assert.equal(send(card, get).sw, 0x6700);
      continue;
    }
    assert.equal(putSw, 0x9000);
    const back = send(card, get);
    assert.equal(back.sw, 0x9000, 'all of it in one answer');
    assert.equal(hex(back.data), hex(new Uint8Array(tlv)));
    // Beyond what the card announced: refused.
    const tooBig = new Uint8Array(4 + 3 + 5000);
    tooBig.set([0x00, 0xdb, 0xa0, 0x10, 0x00, 5000 >> 8, 5000 & 0xff]);
    assert.equal(send(card, tooBig).sw, 0x6700);
  }
});

test('the card image keeps the extended-length property; images without it stay short-only', () => {
  const dir = tempDir();
  const home = join(dir, 'home');
  const extPath = join(dir, 'ext.json');
  const plainPath = join(dir, 'plain.json');
  openCardImage(extPath, { create: true, home, extendedLength: true });
  openCardImage(plainPath, { create: true, home });
  assert.ok(extendedLengthFromFci(send(openCardImage(extPath, { home }), SELECT_GIDS).data));
  assert.equal(extendedLengthFromFci(send(openCardImage(plainPath, { home }), SELECT_GIDS).data), undefined);
  assert.equal(JSON.parse(readFileSync(extPath, 'utf8')).extendedLength, true);
  assert.equal('extendedLength' in JSON.parse(readFileSync(plainPath, 'utf8')), false, 'older images are written as before');
});
