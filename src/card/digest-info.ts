import { createHash } from 'node:crypto';
import { concat } from '../bytes.js';

export type HashName = 'sha1' | 'sha256' | 'sha384' | 'sha512';

/** DER prefixes of PKCS#1 v1.5 DigestInfo (RFC 8017 §9.2, note 1). */
const PREFIX: Record<HashName, Uint8Array> = {
  sha1: Buffer.from('3021300906052b0e03021a05000414', 'hex'),
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

const LENGTH: Record<HashName, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };

export function digestInfo(hash: HashName, digest: Uint8Array): Uint8Array {
  if (digest.length !== LENGTH[hash]) throw new RangeError(`${hash} digest must be ${LENGTH[hash]} bytes, got ${digest.length}`);
  return concat(PREFIX[hash], digest);
}

export function digestInfoOf(hash: HashName, data: Uint8Array): Uint8Array {
  return digestInfo(hash, createHash(hash).update(data).digest());
}
