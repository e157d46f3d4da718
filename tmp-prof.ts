import { GidsCard, encodeCardImage, decodeCardImage } from './src/gids/card/index.js';
import { initializedCard, SELECT_GIDS, expectSw, verifyApdu, PIN, createKeyFile, generateKey } from './test/emulator/helpers.js';
import { randomBytes } from 'node:crypto';
const card = initializedCard();
expectSw(card, SELECT_GIDS, 0x9000); expectSw(card, verifyApdu(PIN), 0x9000);
createKeyFile(card, 0x81, 6); generateKey(card, 0x81, 6);
const img = card.toImage();
const k = new Uint8Array(randomBytes(32));
let t = performance.now();
for (let i = 0; i < 200; i++) GidsCard.fromImage(decodeCardImage(encodeCardImage(img, k), k)).toImage();
console.log('sealed rt ms', (performance.now() - t) / 200);
t = performance.now();
for (let i = 0; i < 2000; i++) { const c = GidsCard.fromImage(img); c.process(Buffer.from(SELECT_GIDS,'hex')); c.process(Buffer.from(verifyApdu(PIN),'hex')); c.process(Buffer.from('002241B606800156840181','hex')); c.process(Buffer.from('002A9E9A333031300D060960864801650304020105000420' + '11'.repeat(32) + '00','hex')); }
console.log('sign check ms', (performance.now() - t) / 2000);
t = performance.now();
for (let i = 0; i < 2000; i++) { GidsCard.fromImage(card.toImage()).toImage(); }
console.log('rt ms', (performance.now() - t) / 2000);
