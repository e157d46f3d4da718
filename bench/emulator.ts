// `npm run bench emulator`: what one APDU costs the GIDS emulator, in memory and with its image
// file (atomic save with fsync), plus key generation and the size of a card image.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromHex } from '../src/bytes.js';
import { decodeCardImage, encodeCardImage, GidsCard, loadSealKey, openCardImage } from '../src/gids/emulator/index.js';
import { encodeTlv } from '../src/gids/protocol/tlv.js';
import { createKeyFile, expectSw, generateKey, initialize, PIN, SELECT_GIDS, sendCommand, command, verifyApdu } from '../test/emulator/helpers.js';

const home = mkdtempSync(join(tmpdir(), 'cardlink-bench-home-'));
process.env.CARDLINK_HOME = home;

interface Row {
  operation: string;
  runs: number;
  medianUs: number;
  p95Us: number;
}

function measure(operation: string, runs: number, fn: (i: number) => void): Row {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    fn(i);
    times.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  times.sort((a, b) => a - b);
  const at = (q: number): number => Math.round(times[Math.min(times.length - 1, Math.floor(q * times.length))]!);
  return { operation, runs, medianUs: at(0.5), p95Us: at(0.95) };
}

function personalised(card: GidsCard): void {
  initialize(card);
  expectSw(card, verifyApdu(PIN), 0x9000);
  createKeyFile(card, 0x81, 0x07);
  generateKey(card, 0x81, 0x07);
  createKeyFile(card, 0x82, 0x06, false);
  generateKey(card, 0x82, 0x06);
  const cert = encodeTlv(0xdf24, new Uint8Array(8000).map((_, i) => i * 7));
  if (sendCommand(card, command(0x00, 0xdb, 0xa0, 0x10, cert)).sw !== 0x9000) throw new Error('certificate not stored');
}

function main(): void {
  const rows: Row[] = [];
  const mem = GidsCard.blank();
  personalised(mem);
  const getTable = fromHex('00CBA000045C02DF1F00');
  const getStatus = fromHex('00CB3FFF045C027F7100');
  const putSmall = (i: number): Uint8Array => fromHex(`00DBA01004DF3001${(i & 0xff).toString(16).padStart(2, '0')}`);
  const verify = fromHex(verifyApdu(PIN));
  const mseSign = fromHex('002241B606800157840181');
  const sign = fromHex('002A9E9A333031300D060960864801650304020105000420' + 'AB'.repeat(32) + '00');
  const readCert = (card: GidsCard): void => {
    let r = card.process(fromHex('00CBA010045C02DF2400'));
    while (r[r.length - 2] === 0x61) r = card.process(fromHex(`00C00000${r[r.length - 1]!.toString(16).padStart(2, '0')}`));
  };

  rows.push(measure('SELECT GIDS (memory)', 20000, () => mem.process(fromHex(SELECT_GIDS))));
  rows.push(measure('GET DATA PIN status', 20000, () => mem.process(getStatus)));
  rows.push(measure('GET DATA file table (145 B)', 20000, () => mem.process(getTable)));
  rows.push(measure('read 8 KB certificate (33 APDUs)', 2000, () => readCert(mem)));
  rows.push(measure('VERIFY (memory)', 20000, () => mem.process(verify)));
  rows.push(measure('PUT DATA 4-byte DO (memory)', 20000, (i) => mem.process(putSmall(i))));
  mem.process(mseSign);
  rows.push(measure('PSO sign RSA-2048', 300, () => mem.process(sign)));
  rows.push(measure('refused APDU (6D00)', 20000, () => mem.process(fromHex('00B0000000'))));
  rows.push(measure('GENERATE RSA-1024', 20, () => expectSw(mem, '0047000008AC06800106830182', 0x9000)));
  rows.push(measure('GENERATE RSA-2048', 5, () => expectSw(mem, '0047000008AC06800107830181', 0x9000)));

  const image = mem.toImage();
  rows.push(measure('toImage + fromImage', 2000, () => GidsCard.fromImage(mem.toImage())));
  const sealKey = loadSealKey(home);
  const encoded = encodeCardImage(image, sealKey);
  rows.push(measure('encode + seal image', 500, () => encodeCardImage(image, sealKey)));
  rows.push(measure('unseal + decode image', 500, () => decodeCardImage(encoded, sealKey)));

  const dir = mkdtempSync(join(tmpdir(), 'cardlink-bench-image-'));
  const path = join(dir, 'card.json');
  const disk = openCardImage(path, { create: true });
  personalised(disk);
  rows.push(measure('PUT DATA 4-byte DO (image save)', 200, (i) => disk.process(putSmall(i))));
  rows.push(measure('VERIFY (image: 2 saves)', 200, () => disk.process(verify)));
  rows.push(measure('GET DATA file table (image, no save)', 2000, () => disk.process(getTable)));
  const size = statSync(path).size;
  rmSync(dir, { recursive: true });
  rmSync(home, { recursive: true });

  console.log('operation                               runs   median µs   p95 µs');
  for (const r of rows) {
    console.log(`${r.operation.padEnd(38)} ${String(r.runs).padStart(5)} ${String(r.medianUs).padStart(11)} ${String(r.p95Us).padStart(8)}`);
  }
  console.log(`\nimage of an initialised card with RSA-2048 + RSA-1024 keys and an 8 KB certificate: ${size} bytes`);
}

main();
