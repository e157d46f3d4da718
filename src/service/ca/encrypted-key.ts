/**
 * Private keys as the service writes them to disk: PKCS#8 EncryptedPrivateKeyInfo with PBES2
 * (RFC 8018 §6.2), PBKDF2 with HMAC-SHA256 at 600,000 iterations (OWASP's password storage
 * guidance for PBKDF2-HMAC-SHA256; NIST SP 800-132 §5.2 asks the count be as large as is
 * tolerable), AES-256-CBC. Node's own `export({ cipher, passphrase })` would use OpenSSL's default
 * of 2048 iterations. Any PKCS#8 OpenSSL can read opens here, so keys written by older versions
 * still open, and `needsRewrap` says when one should be written again with today's parameters.
 */
import { createCipheriv, createPrivateKey, pbkdf2Sync, randomBytes, type KeyObject } from 'node:crypto';
import { AsnConvert, AsnProp, AsnPropTypes, AsnType, AsnTypeTypes, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { pemBlock, toPem } from '../../pem.js';
import { ServiceError } from '../errors.js';

export const KEY_KDF_ITERATIONS = 600_000;

const OIDS = {
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  hmacWithSha256: '1.2.840.113549.2.9',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
} as const;

// The schema decorators applied as calls: the project compiles without experimentalDecorators.

/** EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm AlgorithmIdentifier, encryptedData OCTET STRING } (RFC 5958 §3). */
class EncryptedPrivateKeyInfo {
  encryptionAlgorithm = new AlgorithmIdentifier();
  encryptedData = new OctetString();
  constructor(params: Partial<EncryptedPrivateKeyInfo> = {}) {
    Object.assign(this, params);
  }
}
AsnType({ type: AsnTypeTypes.Sequence })(EncryptedPrivateKeyInfo);
AsnProp({ type: AlgorithmIdentifier })(EncryptedPrivateKeyInfo.prototype, 'encryptionAlgorithm');
AsnProp({ type: OctetString })(EncryptedPrivateKeyInfo.prototype, 'encryptedData');

/** PBES2-params ::= SEQUENCE { keyDerivationFunc AlgorithmIdentifier, encryptionScheme AlgorithmIdentifier } (RFC 8018 appendix A.4). */
class Pbes2Params {
  keyDerivationFunc = new AlgorithmIdentifier();
  encryptionScheme = new AlgorithmIdentifier();
  constructor(params: Partial<Pbes2Params> = {}) {
    Object.assign(this, params);
  }
}
AsnType({ type: AsnTypeTypes.Sequence })(Pbes2Params);
AsnProp({ type: AlgorithmIdentifier })(Pbes2Params.prototype, 'keyDerivationFunc');
AsnProp({ type: AlgorithmIdentifier })(Pbes2Params.prototype, 'encryptionScheme');

/** PBKDF2-params ::= SEQUENCE { salt OCTET STRING, iterationCount INTEGER, keyLength INTEGER OPTIONAL, prf AlgorithmIdentifier } (RFC 8018 appendix A.2). */
class Pbkdf2Params {
  salt = new OctetString();
  iterationCount = 0;
  keyLength?: number;
  prf?: AlgorithmIdentifier;
  constructor(params: Partial<Pbkdf2Params> = {}) {
    Object.assign(this, params);
  }
}
AsnType({ type: AsnTypeTypes.Sequence })(Pbkdf2Params);
AsnProp({ type: OctetString })(Pbkdf2Params.prototype, 'salt');
AsnProp({ type: AsnPropTypes.Integer })(Pbkdf2Params.prototype, 'iterationCount');
AsnProp({ type: AsnPropTypes.Integer, optional: true })(Pbkdf2Params.prototype, 'keyLength');
AsnProp({ type: AlgorithmIdentifier, optional: true })(Pbkdf2Params.prototype, 'prf');

const toArrayBuffer = (b: Buffer): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

/** A private key as it may be written to disk: encrypted PKCS#8 PEM (see the module comment). */
export function encryptedPkcs8(key: KeyObject, passphrase: string): string {
  const salt = randomBytes(16);
  const iv = randomBytes(16);
  const kek = pbkdf2Sync(Buffer.from(passphrase, 'utf8'), salt, KEY_KDF_ITERATIONS, 32, 'sha256');
  const cipher = createCipheriv('aes-256-cbc', kek, iv);
  const plain = key.export({ type: 'pkcs8', format: 'der' });
  const encrypted = Buffer.concat([cipher.update(plain), cipher.final()]);
  plain.fill(0);
  kek.fill(0);
  const kdf = new Pbkdf2Params({
    salt: new OctetString(toArrayBuffer(salt)),
    iterationCount: KEY_KDF_ITERATIONS,
    keyLength: 32,
    // The PRF's parameters are NULL (RFC 8018 appendix B.1.2): its DER is 05 00.
    prf: new AlgorithmIdentifier({ algorithm: OIDS.hmacWithSha256, parameters: new Uint8Array([0x05, 0x00]).buffer }),
  });
  const params = new Pbes2Params({
    keyDerivationFunc: new AlgorithmIdentifier({ algorithm: OIDS.pbkdf2, parameters: AsnConvert.serialize(kdf) }),
    encryptionScheme: new AlgorithmIdentifier({ algorithm: OIDS.aes256Cbc, parameters: AsnConvert.serialize(new OctetString(toArrayBuffer(iv))) }),
  });
  const info = new EncryptedPrivateKeyInfo({
    encryptionAlgorithm: new AlgorithmIdentifier({ algorithm: OIDS.pbes2, parameters: AsnConvert.serialize(params) }),
    encryptedData: new OctetString(toArrayBuffer(encrypted)),
  });
  return toPem(new Uint8Array(AsnConvert.serialize(info)), 'ENCRYPTED PRIVATE KEY');
}

export function decryptKey(pem: string, passphrase: string, file: string): KeyObject {
  try {
    return createPrivateKey({ key: pem, format: 'pem', passphrase });
  } catch (err) {
    throw new ServiceError('CONFIG', `cannot decrypt ${file}: wrong CARDLINK_CA_PASSPHRASE?`, { cause: err });
  }
}

/** The PBKDF2 iteration count of an encrypted key, or undefined when it is not PBES2 with PBKDF2. */
export function kdfIterations(pem: string): number | undefined {
  const der = pemBlock(pem, 'ENCRYPTED PRIVATE KEY');
  if (!der) return undefined;
  try {
    const info = AsnConvert.parse(der, EncryptedPrivateKeyInfo);
    if (info.encryptionAlgorithm.algorithm !== OIDS.pbes2 || !info.encryptionAlgorithm.parameters) return undefined;
    const params = AsnConvert.parse(info.encryptionAlgorithm.parameters, Pbes2Params);
    if (params.keyDerivationFunc.algorithm !== OIDS.pbkdf2 || !params.keyDerivationFunc.parameters) return undefined;
    return AsnConvert.parse(params.keyDerivationFunc.parameters, Pbkdf2Params).iterationCount;
  } catch {
    return undefined;
  }
}

/** Whether a key file was written with weaker parameters than today's (an older cardlink's 2048 iterations). */
export function needsRewrap(pem: string): boolean {
  return (kdfIterations(pem) ?? 0) < KEY_KDF_ITERATIONS;
}
