// CRYPT_KEY_PROV_INFO and friends: the layouts the native binding relies on, for x64 and x86, and
// koffi's own computation of them on this machine. (The Windows x64 check runs in
// native-wine.test.ts, in node.exe under Wine.)
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CERT_CONTEXT_FIELDS,
  CRYPT_DATA_BLOB_FIELDS,
  CRYPT_KEY_PROV_INFO_FIELDS,
  CRYPT_KEY_PROV_PARAM_FIELDS,
  layoutOf,
} from '../../src/windows/native/layout.js';
import { CERT_CONTEXT, CRYPT_DATA_BLOB, CRYPT_KEY_PROV_INFO, CRYPT_KEY_PROV_PARAM, koffi } from '../../src/windows/native/structs.js';

describe('native structure layouts', () => {
  it('CRYPT_KEY_PROV_INFO is 48 bytes on x64 with the documented offsets', () => {
    const l = layoutOf(CRYPT_KEY_PROV_INFO_FIELDS, 8);
    assert.equal(l.size, 48);
    assert.deepEqual(l.offsets, { pwszContainerName: 0, pwszProvName: 8, dwProvType: 16, dwFlags: 20, cProvParam: 24, rgProvParam: 32, dwKeySpec: 40 });
  });

  it('CRYPT_KEY_PROV_INFO is 28 bytes on x86 with the documented offsets', () => {
    const l = layoutOf(CRYPT_KEY_PROV_INFO_FIELDS, 4);
    assert.equal(l.size, 28);
    assert.deepEqual(l.offsets, { pwszContainerName: 0, pwszProvName: 4, dwProvType: 8, dwFlags: 12, cProvParam: 16, rgProvParam: 20, dwKeySpec: 24 });
  });

  it('CRYPT_KEY_PROV_PARAM is 24 bytes on x64 and 16 on x86', () => {
    assert.deepEqual(layoutOf(CRYPT_KEY_PROV_PARAM_FIELDS, 8), { size: 24, align: 8, offsets: { dwParam: 0, pbData: 8, cbData: 16, dwFlags: 20 } });
    assert.deepEqual(layoutOf(CRYPT_KEY_PROV_PARAM_FIELDS, 4), { size: 16, align: 4, offsets: { dwParam: 0, pbData: 4, cbData: 8, dwFlags: 12 } });
  });

  it('CRYPT_DATA_BLOB and CERT_CONTEXT on x64', () => {
    assert.deepEqual(layoutOf(CRYPT_DATA_BLOB_FIELDS, 8), { size: 16, align: 8, offsets: { cbData: 0, pbData: 8 } });
    assert.deepEqual(layoutOf(CERT_CONTEXT_FIELDS, 8).offsets, { dwCertEncodingType: 0, pbCertEncoded: 8, cbCertEncoded: 16, pCertInfo: 24, hCertStore: 32 });
    assert.equal(layoutOf(CERT_CONTEXT_FIELDS, 8).size, 40);
    assert.equal(layoutOf(CERT_CONTEXT_FIELDS, 4).size, 20);
  });

  it("koffi's definitions agree with the computed layout for this machine's pointer size", () => {
    const pointer = koffi.sizeof('void *') as 4 | 8;
    for (const [type, fields] of [
      [CRYPT_KEY_PROV_INFO, CRYPT_KEY_PROV_INFO_FIELDS],
      [CRYPT_KEY_PROV_PARAM, CRYPT_KEY_PROV_PARAM_FIELDS],
      [CRYPT_DATA_BLOB, CRYPT_DATA_BLOB_FIELDS],
      [CERT_CONTEXT, CERT_CONTEXT_FIELDS],
    ] as const) {
      const expected = layoutOf(fields, pointer);
      assert.equal(koffi.sizeof(type), expected.size, type.name);
      for (const [field] of fields) assert.equal(koffi.offsetof(type, field), expected.offsets[field], `${type.name}.${field}`);
    }
  });
});
