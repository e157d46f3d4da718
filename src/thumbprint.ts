/**
 * How cardlink names certificates and keys. A certificate's thumbprint is the SHA-1 of its DER, in
 * upper-case hex, as Windows shows it (`certutil`, `CERT_SHA1_HASH_PROP_ID`); a key is named by
 * the SHA-256 of its SubjectPublicKeyInfo, lower-case hex (RFC 7469 §2.4 style pinning hash).
 */
import { createHash, type KeyObject } from 'node:crypto';

/** SHA-1 of the certificate's DER, upper-case hex (40 digits): Windows' thumbprint. */
export function certThumbprint(der: Uint8Array): string {
  return createHash('sha1').update(der).digest('hex').toUpperCase();
}

/** SHA-1 of the certificate's DER as bytes (`CERT_SHA1_HASH_PROP_ID`). */
export function certSha1(der: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha1').update(der).digest());
}

/** SHA-256 of a DER SubjectPublicKeyInfo, lower-case hex: how cardlink names a key. */
export function spkiSha256(spkiDer: Uint8Array): string {
  return createHash('sha256').update(spkiDer).digest('hex');
}

/** `spkiSha256` of a public key object. */
export function keyId(key: KeyObject): string {
  return spkiSha256(new Uint8Array(key.export({ type: 'spki', format: 'der' })));
}
