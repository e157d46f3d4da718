// Property tests: every format round-trips, and no input makes a parser fail with anything but a
// CardFormatError; whatever a parser accepts, its serializer gives back byte for byte.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { hex } from '../../src/bytes.js';
import {
  CONTAINER_DEFAULT,
  CONTAINER_VALID,
  CardFormatError,
  bumpCardCf,
  decodeCertificateFile,
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
  type KeyMapRecord,
  type MasterFileRecord,
} from '../../src/minidriver/index.js';

/** Cases per garbage property and per parser; round trips use fewer where each case is costly. */
const RUNS = 5000;

// ---- arbitraries for valid values ----------------------------------------------------------

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });

const NAME_CHARS = [...Array.from({ length: 0x7e - 0x20 }, (_, i) => String.fromCharCode(0x21 + i))].filter(
  (c) => !'\\/:*?"<>|'.includes(c),
);
const fileName = fc.string({ unit: fc.constantFrom(...NAME_CHARS), minLength: 1, maxLength: 8 });

const cardCf: fc.Arbitrary<CardCf> = fc.record({
  version: u8,
  pinsFreshness: u8,
  containersFreshness: u16,
  filesFreshness: u16,
  appFreshness: fc.array(u32, { maxLength: 4 }),
}, { noNullPrototype: true });

const containerName = fc
  .array(
    fc.oneof(
      fc.integer({ min: 0x20, max: 0x7e }),
      fc.integer({ min: 1, max: 0xd7ff }),
      fc.integer({ min: 0xe000, max: 0x10ffff }),
    ),
    { maxLength: 39 },
  )
  .map((points) => String.fromCodePoint(...points.filter((p) => p !== 0x5c)))
  .filter((name) => name.length <= 39);

const containerRecord: fc.Arbitrary<ContainerRecord> = fc.record({
  name: containerName,
  flags: fc.constantFrom(0, CONTAINER_VALID, CONTAINER_VALID | CONTAINER_DEFAULT),
  sigKeyBits: u16,
  kxKeyBits: u16,
}, { noNullPrototype: true });

const masterRecord: fc.Arbitrary<MasterFileRecord> = fc
  .record({
    directory: fc.oneof(fc.constant(''), fileName),
    filename: fc.oneof(fc.constant(''), fileName),
    doTag: u32,
    efid: u32,
  }, { noNullPrototype: true })
  .filter((r) => r.directory !== '' || r.filename !== '');

const keyMapRecord: fc.Arbitrary<KeyMapRecord> = fc
  .record({
    state: fc.constantFrom(0, 1),
    algId: u8,
    keyType: u8,
    keyFid: u16,
    reserved8: fc.option(u16.filter((v) => v !== 0xffff), { nil: undefined }),
    reserved10: fc.option(u16.filter((v) => v !== 0), { nil: undefined }),
  })
  .map(({ reserved8, reserved10, ...rest }) => ({
    ...rest,
    ...(reserved8 === undefined ? {} : { reserved8 }),
    ...(reserved10 === undefined ? {} : { reserved10 }),
  }));

/** A DER SEQUENCE around random or highly compressible content, at most 65535 bytes in all. */
const derSequence = fc
  .oneof(
    fc.uint8Array({ maxLength: 3000 }),
    fc.tuple(u8, fc.integer({ min: 0, max: 65531 })).map(([b, n]) => new Uint8Array(n).fill(b)),
  )
  .map((content) => {
    const n = content.length;
    const header = n < 0x80 ? [0x30, n] : n <= 0xff ? [0x30, 0x81, n] : [0x30, 0x82, n >> 8, n & 0xff];
    const der = new Uint8Array(header.length + n);
    der.set(header, 0);
    der.set(content, header.length);
    return der;
  });

// ---- garbage -------------------------------------------------------------------------------

type Mutation =
  | { kind: 'set'; at: number; value: number }
  | { kind: 'cut'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; count: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: u8 }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 30 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 30 }) }),
);

function mutate(bytes: Uint8Array, mutations: Mutation[]): Uint8Array {
  let b = bytes;
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : m.at % (b.length + (m.kind === 'insert' ? 1 : 0));
    if (m.kind === 'set' && b.length > 0) {
      b = b.slice();
      b[at] = m.value;
    } else if (m.kind === 'cut') {
      b = b.slice(0, at);
    } else if (m.kind === 'insert') {
      b = Uint8Array.from([...b.subarray(0, at), ...m.bytes, ...b.subarray(at)]);
    } else if (m.kind === 'delete') {
      b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + m.count)]);
    }
  }
  return b;
}

/** Valid bytes from `valid`, then one to four random edits. */
function mutated(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.tuple(valid, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([b, ms]) => mutate(b, ms));
}

/** Random bytes whose length a fixed-record format would accept, after an optional prefix. */
function recordShaped(prefix: number[], recordSize: number, maxRecords: number): fc.Arbitrary<Uint8Array> {
  return fc
    .integer({ min: 0, max: maxRecords })
    .chain((n) => fc.uint8Array({ minLength: n * recordSize, maxLength: n * recordSize }))
    .map((body) => Uint8Array.from([...prefix, ...body]));
}

/** Parses `b`; a CardFormatError is fine, anything else fails, and an accepted input must round-trip. */
function parsesStrictly<T>(parse: (b: Uint8Array) => T, serialize: (v: T) => Uint8Array): (b: Uint8Array) => void {
  return (b) => {
    let value: T;
    try {
      value = parse(b);
    } catch (err) {
      if (err instanceof CardFormatError) return;
      throw err;
    }
    assert.equal(hex(serialize(value)), hex(b));
  };
}

interface Format<T> {
  name: string;
  parse: (b: Uint8Array) => T;
  serialize: (v: T) => Uint8Array;
  valid: fc.Arbitrary<T>;
  /** Random bytes already shaped like the format, so field checks are reached, not only length checks. */
  shaped: fc.Arbitrary<Uint8Array>;
  roundTripRuns: number;
}

function describeFormat<T>(f: Format<T>): void {
  describe(f.name, () => {
    it('round-trips every valid value', () => {
      fc.assert(
        fc.property(f.valid, (v) => {
          const bytes = f.serialize(v);
          assert.deepEqual(f.parse(bytes), v);
          assert.equal(hex(f.serialize(f.parse(bytes))), hex(bytes));
        }),
        { numRuns: f.roundTripRuns },
      );
    });

    it('meets random bytes with a CardFormatError or an exact round trip', () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), parsesStrictly(f.parse, f.serialize)), { numRuns: RUNS });
    });

    it('meets random bytes of an acceptable length the same way', () => {
      fc.assert(fc.property(f.shaped, parsesStrictly(f.parse, f.serialize)), { numRuns: RUNS });
    });

    it('meets mutated valid files the same way', () => {
      fc.assert(fc.property(mutated(f.valid.map(f.serialize)), parsesStrictly(f.parse, f.serialize)), { numRuns: RUNS });
    });
  });
}

describe('minidriver formats: properties', () => {
  describeFormat({
    name: 'cardid',
    parse: parseCardId,
    serialize: serializeCardId,
    valid: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    shaped: fc.uint8Array({ minLength: 14, maxLength: 18 }),
    roundTripRuns: 1000,
  });
  describeFormat({
    name: 'cardcf',
    parse: parseCardCf,
    serialize: serializeCardCf,
    valid: cardCf,
    shaped: recordShaped([0, 0], 4, 5),
    roundTripRuns: 2000,
  });
  describeFormat({
    name: 'cardapps',
    parse: parseCardApps,
    serialize: serializeCardApps,
    valid: fc.array(fileName, { maxLength: 6 }),
    shaped: recordShaped([], 8, 4),
    roundTripRuns: 2000,
  });
  describeFormat({
    name: 'cmapfile',
    parse: parseCmapfile,
    serialize: serializeCmapfile,
    valid: fc.array(containerRecord, { maxLength: 5 }),
    shaped: recordShaped([], 86, 3),
    roundTripRuns: 2000,
  });
  describeFormat({
    name: 'master file table',
    parse: parseMasterFileTable,
    serialize: serializeMasterFileTable,
    valid: fc.array(masterRecord, { maxLength: 8 }),
    shaped: recordShaped([1], 28, 4),
    roundTripRuns: 2000,
  });
  describeFormat({
    name: 'key map',
    parse: parseKeyMap,
    serialize: serializeKeyMap,
    valid: fc.array(keyMapRecord, { maxLength: 8 }),
    shaped: recordShaped([1], 12, 6),
    roundTripRuns: 2000,
  });

  describe('cardcf bumps', () => {
    it('move only the announced LE16 counter, by one modulo 65536', () => {
      fc.assert(
        fc.property(cardCf, fc.boolean(), fc.boolean(), (cf, files, containers) => {
          const before = serializeCardCf(cf);
          const after = serializeCardCf(bumpCardCf(cf, { files, containers }));
          const le16 = (b: Uint8Array, at: number): number => b[at]! | (b[at + 1]! << 8);
          assert.equal(le16(after, 2), (le16(before, 2) + (containers ? 1 : 0)) % 0x10000);
          assert.equal(le16(after, 4), (le16(before, 4) + (files ? 1 : 0)) % 0x10000);
          assert.equal(hex(after.subarray(0, 2)), hex(before.subarray(0, 2)));
          assert.equal(hex(after.subarray(6)), hex(before.subarray(6)));
        }),
        { numRuns: 2000 },
      );
    });
  });

  describe('certificate files', () => {
    /** Accepted input must carry exactly one DER SEQUENCE: the file itself, or `declared` inflated bytes. */
    const decodesStrictly = (b: Uint8Array): void => {
      let decoded;
      try {
        decoded = decodeCertificateFile(b);
      } catch (err) {
        if (err instanceof CardFormatError) return;
        throw err;
      }
      if (decoded.compressed) assert.equal(decoded.der.length, b[2]! | (b[3]! << 8));
      else assert.equal(hex(decoded.der), hex(b));
      assert.equal(decoded.der[0], 0x30);
    };

    it('round-trip through compression, and re-encode what they decode byte for byte', () => {
      fc.assert(
        fc.property(derSequence, (der) => {
          const file = encodeCertificateFile(der);
          assert.deepEqual(decodeCertificateFile(file), { der, compressed: true });
          assert.equal(hex(encodeCertificateFile(decodeCertificateFile(file).der)), hex(file));
          assert.deepEqual(decodeCertificateFile(der), { der, compressed: false });
        }),
        { numRuns: 300 },
      );
    });

    it('meet random bytes with a CardFormatError or one DER SEQUENCE', () => {
      const shaped = fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 300 }).map((b) => Uint8Array.from([0x01, 0x00, ...b])),
        fc.uint8Array({ maxLength: 300 }).map((b) => Uint8Array.from([0x01, 0x00, b[0] ?? 0, b[1] ?? 0, 0x78, 0x9c, ...b])),
        fc.uint8Array({ maxLength: 300 }).map((b) => Uint8Array.from([0x30, ...b])),
      );
      fc.assert(fc.property(shaped, decodesStrictly), { numRuns: RUNS });
    });

    it('meet mutated valid files the same way', () => {
      const small = derSequence.filter((d) => d.length < 4000);
      fc.assert(fc.property(mutated(small.map((d) => encodeCertificateFile(d))), decodesStrictly), { numRuns: RUNS });
      fc.assert(fc.property(mutated(small), decodesStrictly), { numRuns: RUNS });
    });
  });
});
