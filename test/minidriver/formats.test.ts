import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deflateSync } from 'node:zlib';
import { concat, fromHex, hex } from '../../src/bytes.js';
import {
  CardFormatError,
  INITIAL_MASTER_FILE_TABLE,
  bumpCardCf,
  decodeCertificateFile,
  deletedKeyMapRecord,
  encodeCertificateFile,
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
  type CardCf,
  type ContainerRecord,
} from '../../src/minidriver/index.js';
import { assertFormatError, fixture } from './helpers.js';

const CMAP = 'mscp/cmapfile';
const TABLE = 'GIDS master file table (A000/DF1F)';
const KEYMAP = 'GIDS key map (A000/DF20)';

function utf16(name: string): Uint8Array {
  const out = new Uint8Array(2 * name.length);
  for (let i = 0; i < name.length; i++) {
    out[2 * i] = name.charCodeAt(i) & 0xff;
    out[2 * i + 1] = name.charCodeAt(i) >> 8;
  }
  return out;
}

/** An 86-byte cmapfile record from raw parts, so tests can put anything anywhere. */
function cmapRecord(nameUnits: Uint8Array, flags: number, reserved = 0, sig = 0, kx = 0): Uint8Array {
  const r = new Uint8Array(86);
  r.set(nameUnits.subarray(0, 80), 0);
  r[80] = flags;
  r[81] = reserved;
  r[82] = sig & 0xff;
  r[83] = sig >> 8;
  r[84] = kx & 0xff;
  r[85] = kx >> 8;
  return r;
}

describe('cardid', () => {
  it('is exactly 16 bytes, copied rather than aliased', () => {
    const raw = new Uint8Array(16).fill(7);
    const id = parseCardId(raw);
    raw[0] = 0;
    assert.equal(id[0], 7);
    assertFormatError(() => parseCardId(new Uint8Array(15)), { file: 'cardid', offset: 15, reason: /15 bytes, expected exactly 16/ });
    assertFormatError(() => parseCardId(new Uint8Array(17)), { file: 'cardid', offset: 16, reason: /17 bytes/ });
    assertFormatError(() => serializeCardId(new Uint8Array(0)), { file: 'cardid', offset: 0, reason: /0 bytes/ });
  });

  it('returns a plain Uint8Array copy even for a Buffer (whose slice() would alias)', () => {
    const buf = Buffer.alloc(16, 7);
    const id = parseCardId(buf);
    buf[0] = 0;
    assert.equal(Object.getPrototypeOf(id), Uint8Array.prototype);
    assert.equal(id[0], 7);
  });
});

describe('cardcf', () => {
  const base: CardCf = { version: 1, pinsFreshness: 2, containersFreshness: 0x0304, filesFreshness: 0x0506, appFreshness: [] };

  it('keeps trailing per-application DWORDs', () => {
    const raw = fromHex('01 02 04 03 06 05 78 56 34 12 FF FF FF FF');
    const cf = parseCardCf(raw);
    assert.deepEqual(cf, { ...base, appFreshness: [0x12345678, 0xffffffff] });
    assert.equal(hex(serializeCardCf(cf)), hex(raw));
  });

  it('rejects short files and partial DWORDs', () => {
    assertFormatError(() => parseCardCf(new Uint8Array(5)), { file: 'cardcf', offset: 5, reason: /5 bytes, expected at least 6/ });
    assertFormatError(() => parseCardCf(new Uint8Array(8)), { file: 'cardcf', offset: 6, reason: /2 trailing bytes/ });
    assertFormatError(() => parseCardCf(new Uint8Array(13)), { file: 'cardcf', offset: 10, reason: /3 trailing bytes/ });
  });

  it('refuses values that do not fit their fields', () => {
    assertFormatError(() => serializeCardCf({ ...base, version: 256 }), { file: 'cardcf', offset: 0, reason: /bVersion 256/ });
    assertFormatError(() => serializeCardCf({ ...base, pinsFreshness: -1 }), { file: 'cardcf', offset: 1, reason: /bPinsFreshness/ });
    assertFormatError(() => serializeCardCf({ ...base, containersFreshness: 0x10000 }), { file: 'cardcf', offset: 2, reason: /16 unsigned bits/ });
    assertFormatError(() => serializeCardCf({ ...base, filesFreshness: 1.5 }), { file: 'cardcf', offset: 4, reason: /wFilesFreshness/ });
    assertFormatError(() => serializeCardCf({ ...base, appFreshness: [0, 2 ** 32] }), { file: 'cardcf', offset: 10, reason: /application 1/ });
  });

  it('bumps wrap at 0xFFFF and leave everything else, including the input, alone', () => {
    const full: CardCf = { ...base, containersFreshness: 0xffff, filesFreshness: 0xffff, appFreshness: [9] };
    const both = bumpCardCf(full, { files: true, containers: true });
    assert.deepEqual(both, { ...full, containersFreshness: 0, filesFreshness: 0 });
    assert.equal(full.filesFreshness, 0xffff);
    both.appFreshness.push(1);
    assert.deepEqual(full.appFreshness, [9]);
    assert.deepEqual(bumpCardCf(base, { files: true }), { ...base, filesFreshness: 0x0507 });
    assert.deepEqual(bumpCardCf(base, { containers: true }), { ...base, containersFreshness: 0x0305 });
    assert.deepEqual(bumpCardCf(base, {}), base);
  });
});

describe('cardapps', () => {
  it('reads full 8-character names and several entries', () => {
    const raw = concat(new TextEncoder().encode('abcdefgh'), fromHex('6D 73 63 70 00 00 00 00'));
    assert.deepEqual(parseCardApps(raw), ['abcdefgh', 'mscp']);
    assert.equal(hex(serializeCardApps(['abcdefgh', 'mscp'])), hex(raw));
    assert.deepEqual(parseCardApps(new Uint8Array(0)), []);
  });

  it('rejects partial entries, empty entries, bytes after the NUL and bad names', () => {
    assertFormatError(() => parseCardApps(new Uint8Array(7)), { file: 'cardapps', offset: 0, reason: /7 bytes, not a multiple of 8/ });
    assertFormatError(() => parseCardApps(fromHex('6D73637000000000 6D')), { file: 'cardapps', offset: 8, reason: /9 bytes/ });
    assertFormatError(() => parseCardApps(fromHex('6D73637000000000 0000000000000000')), { file: 'cardapps', offset: 8, reason: /entry 1 is empty/ });
    assertFormatError(() => parseCardApps(fromHex('6D73006300000000')), { file: 'cardapps', offset: 3, reason: /entry 0 has byte 0x63 after its NUL terminator/ });
    assertFormatError(() => parseCardApps(fromHex('6D73858000000000')), { file: 'cardapps', offset: 0, reason: /entry 0 "ms\\x85\\x80" contains character 0x85/ });
    assertFormatError(() => parseCardApps(fromHex('6D733A7000000000')), { file: 'cardapps', offset: 0, reason: /contains ':'/ });
    assertFormatError(() => parseCardApps(fromHex('6D73207000000000')), { file: 'cardapps', offset: 0, reason: /character 0x20/ });
  });

  it('refuses names it could not write back', () => {
    assertFormatError(() => serializeCardApps(['mscp', '']), { file: 'cardapps', offset: 8, reason: /entry 1 is empty/ });
    assertFormatError(() => serializeCardApps(['abcdefghi']), { file: 'cardapps', offset: 0, reason: /9 characters long/ });
    assertFormatError(() => serializeCardApps(['é']), { file: 'cardapps', offset: 0, reason: /character 0xe9/ });
  });
});

describe('cmapfile', () => {
  const valid = cmapRecord(utf16('c0'), 0x01, 0, 0, 2048);

  it('names the record and offset of an unterminated name', () => {
    const raw = concat(valid, valid, cmapRecord(new Uint8Array(80).fill(0x41), 0x01));
    assert.throws(() => parseCmapfile(raw), (err: unknown) => {
      assert.ok(err instanceof CardFormatError);
      assert.equal(err.message, 'mscp/cmapfile: offset 172: record 2 name is not NUL-terminated');
      return true;
    });
  });

  it('rejects a length that is not a multiple of 86', () => {
    assertFormatError(() => parseCmapfile(new Uint8Array(85)), { file: CMAP, offset: 0, reason: /85 bytes, not a multiple of the 86-byte record/ });
    assertFormatError(() => parseCmapfile(concat(valid, new Uint8Array(3))), { file: CMAP, offset: 86, reason: /89 bytes/ });
  });

  it('rejects what is after the terminator, bad UTF-16, backslashes', () => {
    const trailing = utf16('ab\0c');
    assertFormatError(() => parseCmapfile(cmapRecord(trailing, 1)), { file: CMAP, offset: 6, reason: /record 0 name has non-zero data after its NUL terminator/ });
    assertFormatError(() => parseCmapfile(concat(valid, cmapRecord(utf16('a\ud800b'), 1))), { file: CMAP, offset: 86, reason: /record 1 name is not valid UTF-16/ });
    assertFormatError(() => parseCmapfile(cmapRecord(utf16('\udc00'), 1)), { file: CMAP, offset: 0, reason: /unpaired surrogate/ });
    assertFormatError(() => parseCmapfile(cmapRecord(utf16('a\\b'), 1)), { file: CMAP, offset: 0, reason: /backslash/ });
  });

  it('rejects reserved flag bits, default without valid, and a non-zero bReserved', () => {
    assertFormatError(() => parseCmapfile(cmapRecord(utf16('x'), 0x05)), { file: CMAP, offset: 80, reason: /bFlags 0x05 has reserved bits set/ });
    assertFormatError(() => parseCmapfile(concat(valid, cmapRecord(utf16('x'), 0x02))), { file: CMAP, offset: 166, reason: /record 1 is marked default but not valid/ });
    assertFormatError(() => parseCmapfile(cmapRecord(utf16('x'), 0x01, 0x10)), { file: CMAP, offset: 81, reason: /bReserved is 0x10/ });
  });

  it('keeps the name and sizes of an invalid record, and non-BMP names', () => {
    const records: ContainerRecord[] = [
      { name: 'left over', flags: 0, sigKeyBits: 1024, kxKeyBits: 0 },
      { name: 'x'.repeat(39), flags: 3, sigKeyBits: 0, kxKeyBits: 4096 },
      { name: 'clé 🔑', flags: 1, sigKeyBits: 0xffff, kxKeyBits: 0xffff },
    ];
    const raw = serializeCmapfile(records);
    assert.equal(raw.length, 3 * 86);
    assert.deepEqual(parseCmapfile(raw), records);
  });

  it('refuses records it could not write back', () => {
    const r: ContainerRecord = { name: 'ok', flags: 1, sigKeyBits: 0, kxKeyBits: 0 };
    assertFormatError(() => serializeCmapfile([r, { ...r, name: 'x'.repeat(40) }]), { file: CMAP, offset: 86, reason: /40 UTF-16 units long \(at most 39\)/ });
    assertFormatError(() => serializeCmapfile([{ ...r, name: 'a\0b' }]), { file: CMAP, offset: 0, reason: /NUL/ });
    assertFormatError(() => serializeCmapfile([{ ...r, name: '\ud800' }]), { file: CMAP, offset: 0, reason: /UTF-16/ });
    assertFormatError(() => serializeCmapfile([{ ...r, flags: 2 }]), { file: CMAP, offset: 80, reason: /default but not valid/ });
    assertFormatError(() => serializeCmapfile([{ ...r, flags: 0x81 }]), { file: CMAP, offset: 80, reason: /reserved bits/ });
    assertFormatError(() => serializeCmapfile([{ ...r, flags: 256 }]), { file: CMAP, offset: 80, reason: /8 unsigned bits/ });
    assertFormatError(() => serializeCmapfile([{ ...r, sigKeyBits: 65536 }]), { file: CMAP, offset: 82, reason: /wSigKeySizeBits/ });
    assertFormatError(() => serializeCmapfile([{ ...r, kxKeyBits: -1 }]), { file: CMAP, offset: 84, reason: /wKeyExchangeKeySizeBits/ });
  });
});

describe('certificate files', () => {
  const der = fixture('stored-certificate.der');
  const file = fixture('ksc00.bin');
  const F = 'mscp/ksc00';
  const withHeader = (declared: number, stream: Uint8Array): Uint8Array =>
    concat(new Uint8Array([1, 0, declared & 0xff, declared >> 8]), stream);

  it('reads plain DER as found and says it was not compressed', () => {
    const decoded = decodeCertificateFile(der, F);
    assert.deepEqual(decoded, { der, compressed: false });
    assert.notEqual(decoded.der.buffer, der.buffer);
    const fromBuffer = decodeCertificateFile(Buffer.from(der), F);
    assert.equal(Object.getPrototypeOf(fromBuffer.der), Uint8Array.prototype);
    assert.equal(Object.getPrototypeOf(decodeCertificateFile(Buffer.from(file), F).der), Uint8Array.prototype);
  });

  it('reads streams from other zlib levels (GidsApplet uses 78 DA) but re-encodes at the default level', () => {
    const level9 = withHeader(der.length, deflateSync(der, { level: 9 }));
    assert.equal(hex(level9.subarray(4, 6)), '78DA');
    assert.equal(hex(decodeCertificateFile(level9, F).der), hex(der));
    assert.equal(hex(encodeCertificateFile(der).subarray(4, 6)), '789C');
  });

  it('rejects files that are neither form', () => {
    assertFormatError(() => decodeCertificateFile(new Uint8Array(0), F), { file: F, offset: 0, reason: /empty/ });
    assertFormatError(() => decodeCertificateFile(fromHex('02 00 BF 02'), F), { file: F, offset: 0, reason: /starts with 0x02: neither/ });
    assertFormatError(() => decodeCertificateFile(fromHex('01 01 BF 02 78 9C'), F), { file: F, offset: 1, reason: /compression version is 0x01 0x01/ });
    assertFormatError(() => decodeCertificateFile(fromHex('01 00 BF'), F), { file: F, offset: 3, reason: /header is truncated/ });
  });

  it('uses the default file name when none is given', () => {
    assertFormatError(() => decodeCertificateFile(fromHex('FF')), { file: 'mscp/kxc00', offset: 0, reason: /0xFF/ });
  });

  it('rejects plain DER whose SEQUENCE length does not cover the file', () => {
    assertFormatError(() => decodeCertificateFile(der.subarray(0, 700), F), { file: F, offset: 0, reason: /plain certificate declares 703 bytes but has 700/ });
    assertFormatError(() => decodeCertificateFile(concat(der, new Uint8Array(1)), F), { file: F, offset: 0, reason: /declares 703 bytes but has 704/ });
    assertFormatError(() => decodeCertificateFile(fromHex('30 80 00 00'), F), { file: F, offset: 0, reason: /indefinite length/ });
    assertFormatError(() => decodeCertificateFile(fromHex('30 84 00 00 00 00'), F), { file: F, offset: 0, reason: /4-byte length field/ });
    assertFormatError(() => decodeCertificateFile(fromHex('30 82 01'), F), { file: F, offset: 0, reason: /ends inside its length field/ });
    assertFormatError(() => decodeCertificateFile(fromHex('30'), F), { file: F, offset: 0, reason: /1 bytes, too short/ });
  });

  it('rejects corrupt, truncated and over-long zlib streams', () => {
    const corrupt = file.slice();
    corrupt[4] = 0x79;
    assertFormatError(() => decodeCertificateFile(corrupt, F), { file: F, offset: 4, reason: /zlib stream is corrupt/ });
    assertFormatError(() => decodeCertificateFile(file.subarray(0, 300), F), { file: F, offset: 4, reason: /zlib stream is corrupt \(unexpected end of file\)/ });
    assertFormatError(() => decodeCertificateFile(fromHex('01 00 00 00'), F), { file: F, offset: 4, reason: /zlib stream is corrupt/ });
    assertFormatError(() => decodeCertificateFile(concat(file, fromHex('00 00 00')), F), { file: F, offset: file.length, reason: /3 bytes follow the end of the zlib stream/ });
  });

  it('rejects an inflated size other than the length field', () => {
    const stream = file.subarray(4);
    assertFormatError(() => decodeCertificateFile(withHeader(704, stream), F), { file: F, offset: 2, reason: /inflates to 703 bytes but the length field declares 704/ });
    assertFormatError(() => decodeCertificateFile(withHeader(702, stream), F), { file: F, offset: 2, reason: /more than the 702 bytes/ });
    assertFormatError(() => decodeCertificateFile(withHeader(0, stream), F), { file: F, offset: 2, reason: /more than the 0 bytes/ });
  });

  it('stops a zip bomb at the length field instead of inflating it', () => {
    const bomb = withHeader(0xffff, deflateSync(new Uint8Array(16 << 20)));
    assert.ok(bomb.length < 20_000);
    assertFormatError(() => decodeCertificateFile(bomb, F), { file: F, offset: 2, reason: /more than the 65535 bytes/ });
  });

  it('rejects compressed content that is not one DER SEQUENCE', () => {
    const text = new TextEncoder().encode('not a certificate');
    assertFormatError(() => decodeCertificateFile(withHeader(text.length, deflateSync(text)), F), { file: F, offset: 4, reason: /decompressed certificate starts with 0x6E/ });
    const padded = concat(der, new Uint8Array(1));
    assertFormatError(() => decodeCertificateFile(withHeader(padded.length, deflateSync(padded)), F), { file: F, offset: 4, reason: /declares 703 bytes but has 704/ });
  });

  it('refuses to encode what the header cannot describe', () => {
    const big = new Uint8Array(0x10000);
    big.set([0x30, 0x83, 0x00, 0xff, 0xfb]);
    assertFormatError(() => encodeCertificateFile(big, F), { file: F, offset: 2, reason: /65536 bytes; the length field holds at most 65535/ });
    assertFormatError(() => encodeCertificateFile(der.subarray(1)), { file: 'mscp/kxc00', offset: 4, reason: /certificate to store starts with 0x82/ });
    const largest = new Uint8Array(0xffff);
    largest.set([0x30, 0x82, 0xff, 0xfb]);
    const encoded = encodeCertificateFile(largest);
    assert.equal(hex(encoded.subarray(0, 4)), '0100FFFF');
    assert.equal(hex(decodeCertificateFile(encoded).der), hex(largest));
  });
});

describe('GIDS master file table', () => {
  const initial = serializeMasterFileTable(INITIAL_MASTER_FILE_TABLE);
  const record = (dir: string, file: string, tail = '0000 24DF0000 10A00000'): Uint8Array => {
    const r = fromHex('00'.repeat(18) + tail);
    r.set(new TextEncoder().encode(dir), 0);
    r.set(new TextEncoder().encode(file), 9);
    return r;
  };

  it('rejects a missing or wrong version byte and partial records', () => {
    assertFormatError(() => parseMasterFileTable(new Uint8Array(0)), { file: TABLE, offset: 0, reason: /no version byte/ });
    assertFormatError(() => parseMasterFileTable(fromHex('02')), { file: TABLE, offset: 0, reason: /version byte is 0x02, expected 0x01/ });
    assertFormatError(() => parseMasterFileTable(initial.subarray(0, 140)), { file: TABLE, offset: 113, reason: /27 trailing bytes/ });
    assert.deepEqual(parseMasterFileTable(fromHex('01')), []);
  });

  it('rejects bad name fields and non-zero padding', () => {
    const at = initial.length;
    const withRecord = (r: Uint8Array): Uint8Array => concat(initial, r);
    assertFormatError(() => parseMasterFileTable(withRecord(record('', ''))), { file: TABLE, offset: at, reason: /record 5 has neither a directory nor a file name/ });
    const afterNul = record('mscp', 'ksc00');
    afterNul[9 + 7] = 0x41;
    assertFormatError(() => parseMasterFileTable(withRecord(afterNul)), { file: TABLE, offset: at + 16, reason: /record 5 file name has byte 0x41 after its NUL terminator/ });
    assertFormatError(() => parseMasterFileTable(withRecord(record('mscp', 'abcdefghi'))), { file: TABLE, offset: at + 9, reason: /"abcdefghi" is 9 characters long/ });
    assertFormatError(() => parseMasterFileTable(withRecord(record('ms*p', 'x'))), { file: TABLE, offset: at, reason: /record 5 directory "ms\*p" contains '\*'/ });
    assertFormatError(() => parseMasterFileTable(withRecord(record('mscp', 'x', '0001 24DF0000 10A00000'))), { file: TABLE, offset: at + 19, reason: /padding byte is 0x01/ });
  });

  it('keeps DO tags and EFIDs as the full LE32 values', () => {
    const raw = concat(initial, record('mscp', 'kxc0A', '0000 20DF3412 10A0FFFF'));
    const table = parseMasterFileTable(raw);
    assert.deepEqual(table[5], { directory: 'mscp', filename: 'kxc0A', doTag: 0x1234df20, efid: 0xffffa010 });
    assert.equal(hex(serializeMasterFileTable(table)), hex(raw));
  });

  it('refuses records it could not write back', () => {
    assertFormatError(() => serializeMasterFileTable([{ directory: '', filename: '', doTag: 0, efid: 0 }]), { file: TABLE, offset: 1, reason: /neither/ });
    assertFormatError(() => serializeMasterFileTable([{ directory: 'mscp/x', filename: 'a', doTag: 0, efid: 0 }]), { file: TABLE, offset: 1, reason: /contains '\/'/ });
    assertFormatError(() => serializeMasterFileTable([{ directory: '', filename: 'cardid12x', doTag: 0, efid: 0 }]), { file: TABLE, offset: 10, reason: /9 characters/ });
    assertFormatError(() => serializeMasterFileTable([{ directory: '', filename: 'a', doTag: -1, efid: 0 }]), { file: TABLE, offset: 21, reason: /DO tag -1/ });
    assertFormatError(() => serializeMasterFileTable([{ directory: '', filename: 'a', doTag: 0, efid: 2 ** 32 }]), { file: TABLE, offset: 25, reason: /EFID/ });
  });

  it('exposes a frozen initial table', () => {
    assert.ok(Object.isFrozen(INITIAL_MASTER_FILE_TABLE) && Object.isFrozen(INITIAL_MASTER_FILE_TABLE[0]));
  });
});

describe('GIDS key map', () => {
  it('writes a deleted slot the way OpenSC does', () => {
    assert.equal(hex(serializeKeyMap([deletedKeyMapRecord()])), '01000000000000FFFFFFFF0000');
    assert.deepEqual(parseKeyMap(fromHex('01 00000000 00 00 FFFF FFFF 0000')), [deletedKeyMapRecord()]);
  });

  it('keeps unusual values in the two fields of unknown meaning', () => {
    const raw = fromHex('01 01000000 07 9C 81B0 0000 3412');
    const map = parseKeyMap(raw);
    assert.deepEqual(map, [{ state: 1, algId: 7, keyType: 0x9c, keyFid: 0xb081, reserved8: 0, reserved10: 0x1234 }]);
    assert.equal(hex(serializeKeyMap(map)), hex(raw));
  });

  it('rejects a missing or wrong version byte, partial records and unknown states', () => {
    assertFormatError(() => parseKeyMap(new Uint8Array(0)), { file: KEYMAP, offset: 0, reason: /no version byte/ });
    assertFormatError(() => parseKeyMap(fromHex('00 01000000 07 9C 81B0 FFFF 0000')), { file: KEYMAP, offset: 0, reason: /version byte is 0x00/ });
    assertFormatError(() => parseKeyMap(fromHex('01 01000000 07 9C 81B0 FFFF 00')), { file: KEYMAP, offset: 1, reason: /11 trailing bytes/ });
    assertFormatError(
      () => parseKeyMap(fromHex('01 01000000 07 9C 81B0 FFFF 0000 02000000 07 9C 82B0 FFFF 0000')),
      { file: KEYMAP, offset: 13, reason: /record 1 state is 2, expected 0 \(deleted\) or 1 \(used\)/ },
    );
    assert.deepEqual(parseKeyMap(fromHex('01')), []);
  });

  it('refuses records it could not write back', () => {
    const ok = { state: 1, algId: 7, keyType: 0x9c, keyFid: 0xb081 };
    assertFormatError(() => serializeKeyMap([{ ...ok, state: 5 }]), { file: KEYMAP, offset: 1, reason: /state is 5/ });
    assertFormatError(() => serializeKeyMap([ok, { ...ok, algId: 256 }]), { file: KEYMAP, offset: 17, reason: /record 1 algid/ });
    assertFormatError(() => serializeKeyMap([{ ...ok, keyType: -1 }]), { file: KEYMAP, offset: 6, reason: /keytype/ });
    assertFormatError(() => serializeKeyMap([{ ...ok, keyFid: 0x10000 }]), { file: KEYMAP, offset: 7, reason: /key FID/ });
    assertFormatError(() => serializeKeyMap([{ ...ok, reserved8: 0x10000 }]), { file: KEYMAP, offset: 9, reason: /offset 8/ });
    assertFormatError(() => serializeKeyMap([{ ...ok, reserved10: 0.5 }]), { file: KEYMAP, offset: 11, reason: /offset 10/ });
  });
});
