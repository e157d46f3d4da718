import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { PROP } from '../../src/windows/constants.js';
import { parseElement, parseKeyProvInfo, SerializedElementError, serializeElement, serializeKeyProvInfo } from '../../src/windows/serialize.js';
import type { KeyProvInfo } from '../../src/windows/store.js';

const info: KeyProvInfo = { containerName: 'ab', providerName: 'P', providerType: 1, flags: 0, params: [], keySpec: 2 };

describe('serialized KEY_PROV_INFO and store element', () => {
  it('KEY_PROV_INFO: 7 DWORDs with 32-bit offsets, then the UTF-16 strings', () => {
    const bytes = serializeKeyProvInfo(info);
    const v = new DataView(bytes.buffer);
    assert.deepEqual([0, 4, 8, 12, 16, 20, 24].map((o) => v.getUint32(o, true)), [28, 34, 1, 0, 0, 0, 2]);
    assert.equal(Buffer.from(bytes.subarray(28)).toString('utf16le'), 'ab\0P\0');
    assert.deepEqual(parseKeyProvInfo(bytes), info);
  });

  it('round-trips any KEY_PROV_INFO, parameters included', () => {
    const arb = fc.record({
      containerName: fc.string({ maxLength: 39 }).filter((s) => !s.includes('\0')),
      providerName: fc.string({ maxLength: 60 }).filter((s) => !s.includes('\0')),
      providerType: fc.nat(0xffffffff),
      flags: fc.nat(0xffffffff),
      params: fc.array(fc.record({ param: fc.nat(0xffffffff), data: fc.uint8Array({ maxLength: 40 }), flags: fc.nat(0xffffffff) }), { maxLength: 3 }),
      keySpec: fc.nat(0xffffffff),
    });
    // fast-check builds null-prototype records; compare against plain copies.
    fc.assert(fc.property(arb, (x) => assert.deepEqual(parseKeyProvInfo(serializeKeyProvInfo(x)), { ...x, params: x.params.map((p) => ({ ...p })) })));
  });

  it('an element frames each property {id, 1, cb} and ends with the certificate as property 32', () => {
    const cert = new Uint8Array([0x30, 0x03, 1, 2, 3]);
    const bytes = serializeElement(cert, [{ propId: PROP.KEY_PROV_INFO, data: new Uint8Array([9]) }]);
    assert.deepEqual([...bytes.subarray(0, 13)], [2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9]);
    assert.deepEqual([...bytes.subarray(13, 25)], [32, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0]);
    assert.deepEqual(parseElement(bytes), { encoded: cert, properties: [{ propId: 2, data: new Uint8Array([9]) }] });
  });

  it('truncated or malformed input gives SerializedElementError, never garbage', () => {
    assert.throws(() => parseElement(new Uint8Array([2, 0, 0, 0, 1])), SerializedElementError);
    assert.throws(() => parseElement(new Uint8Array([2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0])), /marker 7/);
    assert.throws(() => parseElement(serializeElement(new Uint8Array([1]), []).subarray(0, 12)), /overruns/);
    assert.throws(() => parseElement(new Uint8Array(0)), /no certificate/);
    assert.throws(() => parseKeyProvInfo(new Uint8Array(27)), SerializedElementError);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (b) => {
        try {
          parseElement(b);
          parseKeyProvInfo(b);
        } catch (err) {
          assert.ok(err instanceof SerializedElementError, String(err));
        }
      }),
    );
  });
});
