// Byte vectors observed on the wire between OpenSC 0.23.0 and GidsApplet
// (test/fixtures/opensc-gidsapplet/*.txt), and values from OpenSC's card-gids.c and GidsApplet's
// tests (docs/sources.md#opensc-gids, docs/sources.md#gidsapplet).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fromHex, hex } from '../../src/bytes.js';
import {
  CONTAINER_DEFAULT,
  CONTAINER_VALID,
  INITIAL_MASTER_FILE_TABLE,
  bumpCardCf,
  certificateFileName,
  decodeCertificateFile,
  emptyContainerRecord,
  encodeCertificateFile,
  isDefaultContainer,
  isValidContainer,
  parseCardApps,
  parseCardCf,
  parseCardId,
  parseCmapfile,
  parseKeyMap,
  parseMasterFileTable,
  serializeCardApps,
  serializeCardCf,
  serializeCardId,
  serializeCmapfile,
  serializeKeyMap,
  serializeMasterFileTable,
} from '../../src/minidriver/index.js';
import { readTrace } from '../helpers/traces.js';
import { fixture } from './helpers.js';

// initialize.txt, `00 DB A0 00 91 DF 1F 81 8D <table>`: the initial table gids-tool writes.
const INITIAL_TABLE_HEX =
  '01' +
  '6D7363700000000000 000000000000000000 0000 00000000 00A00000' +
  '000000000000000000 636172646964000000 0000 20DF0000 12A00000' +
  '000000000000000000 636172646170707300 0000 21DF0000 10A00000' +
  '000000000000000000 636172646366000000 0000 22DF0000 10A00000' +
  '6D7363700000000000 636D617066696C6500 0000 23DF0000 10A00000';

// certstore.txt, `00 DB A0 00 AD DF 1F 81 A9 <table>`: the same table plus mscp/ksc00 in A010/DF24.
const TABLE_WITH_KSC00_HEX =
  INITIAL_TABLE_HEX + '6D7363700000000000 6B7363303000000000 0000 24DF0000 10A00000';

// keygen.txt, second `00 DB A0 10 59 DF 23 56 <record>`: container 0 "GIDS test key",
// valid + default, RSA-2048 signature key.
const GIDS_TEST_KEY_RECORD_HEX =
  '47 00 49 00 44 00 53 00 20 00 74 00 65 00 73 00 74 00 20 00 6B 00 65 00 79 00' +
  ' 00'.repeat(80 - 26) +
  ' 03 00 00 08 00 00';

describe('minidriver vectors from the OpenSC/GidsApplet transcripts', () => {
  it('initialize.txt: the 141-byte initial master file table', () => {
    const raw = fromHex(INITIAL_TABLE_HEX);
    assert.equal(raw.length, 141);
    assert.deepEqual(parseMasterFileTable(raw), INITIAL_MASTER_FILE_TABLE);
    assert.equal(hex(serializeMasterFileTable(INITIAL_MASTER_FILE_TABLE)), hex(raw));
  });

  it('certstore.txt: the 169-byte table after storing ksc00', () => {
    const raw = fromHex(TABLE_WITH_KSC00_HEX);
    assert.equal(raw.length, 169);
    const table = parseMasterFileTable(raw);
    assert.deepEqual(table.at(-1), { directory: 'mscp', filename: 'ksc00', doTag: 0xdf24, efid: 0xa010 });
    assert.deepEqual(table.slice(0, 5), INITIAL_MASTER_FILE_TABLE);
    assert.equal(hex(serializeMasterFileTable(table)), hex(raw));
  });

  it('initialize.txt: cardapps "mscp", six-zero cardcf, empty cmapfile, cardid', () => {
    const apps = fromHex('6D 73 63 70 00 00 00 00');
    assert.deepEqual(parseCardApps(apps), ['mscp']);
    assert.equal(hex(serializeCardApps(['mscp'])), hex(apps));

    const cf = fromHex('00 00 00 00 00 00');
    assert.deepEqual(parseCardCf(cf), {
      version: 0,
      pinsFreshness: 0,
      containersFreshness: 0,
      filesFreshness: 0,
      appFreshness: [],
    });
    assert.equal(hex(serializeCardCf(parseCardCf(cf))), hex(cf));

    assert.deepEqual(parseCmapfile(new Uint8Array(0)), []);
    assert.equal(serializeCmapfile([]).length, 0);

    const id = fromHex('1B FE 3A 81 1C 3C 44 60 44 87 D3 F4 84 EF F2 D5');
    assert.equal(hex(parseCardId(id)), hex(id));
    assert.equal(hex(serializeCardId(id)), hex(id));
  });

  it('keygen.txt + certstore.txt: cardcf moves exactly as OpenSC bumped it', () => {
    // Written in this order: files (cmapfile grows), containers (key created), files (cmapfile
    // final) in keygen.txt; files (table), files (certificate) in certstore.txt.
    const written = ['000000000100', '000001000100', '000001000200', '000001000300', '000001000400'];
    const steps: { files?: boolean; containers?: boolean }[] = [
      { containers: true },
      { files: true },
      { files: true },
      { files: true },
    ];
    let cf = parseCardCf(fromHex('000000000000'));
    cf = bumpCardCf(cf, { files: true });
    assert.equal(hex(serializeCardCf(cf)), written[0]);
    steps.forEach((step, i) => {
      cf = bumpCardCf(cf, step);
      assert.equal(hex(serializeCardCf(cf)), written[i + 1]);
    });
  });

  it('keygen.txt: the zeroed slot, then the "GIDS test key" record', () => {
    const zeroed = new Uint8Array(86);
    assert.deepEqual(parseCmapfile(zeroed), [emptyContainerRecord()]);
    assert.equal(hex(serializeCmapfile([emptyContainerRecord()])), hex(zeroed));

    const raw = fromHex(GIDS_TEST_KEY_RECORD_HEX);
    assert.equal(raw.length, 86);
    const [record, ...rest] = parseCmapfile(raw);
    assert.equal(rest.length, 0);
    assert.deepEqual(record, {
      name: 'GIDS test key',
      flags: CONTAINER_VALID | CONTAINER_DEFAULT,
      sigKeyBits: 2048,
      kxKeyBits: 0,
    });
    assert.ok(isValidContainer(record!) && isDefaultContainer(record!));
    assert.equal(hex(serializeCmapfile([record!])), hex(raw));
  });

  it('keygen.txt: key map `01 01 00 00 00 07 9C 81 B0 FF FF 00 00` (signature key B081)', () => {
    const raw = fromHex('01 01 00 00 00 07 9C 81 B0 FF FF 00 00');
    const map = parseKeyMap(raw);
    assert.deepEqual(map, [{ state: 1, algId: 0x07, keyType: 0x9c, keyFid: 0xb081 }]);
    assert.equal(hex(serializeKeyMap(map)), hex(raw));
  });

  it('GidsApplet MinidriverTest (docs/sources.md#gidsapplet): key map with a key-exchange key', () => {
    const raw = fromHex('01 01 00 00 00 07 9A 81 B0 FF FF 00 00');
    assert.deepEqual(parseKeyMap(raw), [{ state: 1, algId: 0x07, keyType: 0x9a, keyFid: 0xb081 }]);
    assert.equal(hex(serializeKeyMap(parseKeyMap(raw))), hex(raw));
  });

  it('certstore.txt/dump-full.txt: ksc00 inflates to stored-certificate.der and re-encodes byte for byte', () => {
    const file = fixture('ksc00.bin');
    const der = fixture('stored-certificate.der');
    assert.equal(hex(file.subarray(0, 6)), '0100BF02789C');
    const decoded = decodeCertificateFile(file, 'mscp/ksc00');
    assert.equal(decoded.compressed, true);
    assert.equal(hex(decoded.der), hex(der));
    assert.equal(hex(encodeCertificateFile(der)), hex(file));
    assert.equal(certificateFileName(0, 'sig'), 'ksc00');
  });

  it('certstore.txt: ksc00.bin is the DF24 value of the chained PUT DATA OpenSC sent', () => {
    const blocks = readTrace('certstore.txt').filter((e) => /^[01]0DBA010/.test(e.command));
    const chain = blocks.slice(blocks.findIndex((e) => e.command.slice(10).startsWith('DF248202BE')));
    assert.deepEqual(chain.map((e) => e.command.slice(0, 2)), ['10', '10', '00']);
    assert.ok(chain.every((e) => e.response === '9000'));
    const data = chain.map((e) => e.command.slice(10)).join('');
    assert.equal(data.slice(0, 10), 'DF248202BE');
    assert.equal(data.slice(10), hex(fixture('ksc00.bin')));
  });
});
