/**
 * The C layouts of the crypt32 structures the native binding passes, as field lists with natural
 * alignment (MSVC default packing). One list feeds both the koffi definitions (structs.ts) and the
 * layout check for x64 and x86 — koffi on one machine only knows its own pointer size, so the
 * 32-bit layout is computed here and compared with the documented offsets [KPI][MGW][DEC].
 */
export type FieldKind = 'u32' | 'ptr';
export type FieldList = readonly (readonly [name: string, kind: FieldKind])[];

export const CRYPT_KEY_PROV_INFO_FIELDS = [
  ['pwszContainerName', 'ptr'],
  ['pwszProvName', 'ptr'],
  ['dwProvType', 'u32'],
  ['dwFlags', 'u32'],
  ['cProvParam', 'u32'],
  ['rgProvParam', 'ptr'],
  ['dwKeySpec', 'u32'],
] as const satisfies FieldList;

export const CRYPT_KEY_PROV_PARAM_FIELDS = [
  ['dwParam', 'u32'],
  ['pbData', 'ptr'],
  ['cbData', 'u32'],
  ['dwFlags', 'u32'],
] as const satisfies FieldList;

/** CRYPT_DATA_BLOB / CRYPT_HASH_BLOB. */
export const CRYPT_DATA_BLOB_FIELDS = [
  ['cbData', 'u32'],
  ['pbData', 'ptr'],
] as const satisfies FieldList;

/** CERT_CONTEXT: the binding reads the encoding back out of a PCCERT_CONTEXT. */
export const CERT_CONTEXT_FIELDS = [
  ['dwCertEncodingType', 'u32'],
  ['pbCertEncoded', 'ptr'],
  ['cbCertEncoded', 'u32'],
  ['pCertInfo', 'ptr'],
  ['hCertStore', 'ptr'],
] as const satisfies FieldList;

export interface Layout {
  size: number;
  align: number;
  offsets: Record<string, number>;
}

export function layoutOf(fields: FieldList, pointerSize: 4 | 8): Layout {
  let offset = 0;
  let align = 1;
  const offsets: Record<string, number> = {};
  for (const [name, kind] of fields) {
    const size = kind === 'ptr' ? pointerSize : 4;
    offset = Math.ceil(offset / size) * size;
    offsets[name] = offset;
    offset += size;
    align = Math.max(align, size);
  }
  return { size: Math.ceil(offset / align) * align, align, offsets };
}
