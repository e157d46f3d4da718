/**
 * koffi definitions of the crypt32 structures, built from the field lists in layout.ts so the
 * koffi layout and the documented one cannot drift apart unnoticed (test/windows/layout.test.ts).
 */
import koffi from 'koffi';
import {
  CERT_CONTEXT_FIELDS,
  CRYPT_DATA_BLOB_FIELDS,
  CRYPT_KEY_PROV_INFO_FIELDS,
  CRYPT_KEY_PROV_PARAM_FIELDS,
  type FieldList,
} from './layout.js';

type KoffiType = ReturnType<typeof koffi.struct>;

function define(name: string, fields: FieldList, pointerTypes: Record<string, string | KoffiType>): KoffiType {
  const def: Record<string, string | KoffiType> = {};
  for (const [field, kind] of fields) def[field] = kind === 'u32' ? 'uint32_t' : (pointerTypes[field] ?? 'void *');
  return koffi.struct(name, def);
}

export const CRYPT_KEY_PROV_PARAM = define('CRYPT_KEY_PROV_PARAM', CRYPT_KEY_PROV_PARAM_FIELDS, {});
export const CRYPT_KEY_PROV_INFO = define('CRYPT_KEY_PROV_INFO', CRYPT_KEY_PROV_INFO_FIELDS, {
  pwszContainerName: 'str16',
  pwszProvName: 'str16',
});
export const CRYPT_DATA_BLOB = define('CRYPT_DATA_BLOB', CRYPT_DATA_BLOB_FIELDS, {});
export const CERT_CONTEXT = define('CERT_CONTEXT', CERT_CONTEXT_FIELDS, {});
/** BCRYPT_PKCS1_PADDING_INFO { LPCWSTR pszAlgId } for NCryptSignHash with RSA keys. */
export const BCRYPT_PKCS1_PADDING_INFO = koffi.struct('BCRYPT_PKCS1_PADDING_INFO', { pszAlgId: 'str16' });

export { koffi };
