import { createHash, verify, type KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { AlgorithmIdentifier, Attribute, DirectoryString, Extensions, SubjectPublicKeyInfo, type Extension, type Name } from '@peculiar/asn1-x509';
import { toPem } from '../pem.js';
import { digestInfoOf } from './digest-info.js';
import { parseSubject } from './dn.js';
import { CardError } from './errors.js';

const SHA256_WITH_RSA = '1.2.840.113549.1.1.11';
/** ecdsa-with-SHA256 / -SHA384 (RFC 5758 §3.2: parameters absent). */
const ECDSA_WITH = { sha256: '1.2.840.10045.4.3.2', sha384: '1.2.840.10045.4.3.3' } as const;
const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
/** PKCS#9 challengePassword (RFC 2985 §5.4.1). */
const CHALLENGE_PASSWORD = '1.2.840.113549.1.9.7';

export interface CsrOptions {
  /** Extensions to request (e.g. a subject alternative name with a UPN), as @peculiar/asn1-x509 values. */
  extensions?: Extension[];
  /**
   * A challengePassword attribute (RFC 2985 §5.4.1), as a UTF8String DirectoryString (the
   * renewal's card binding holds `_`, which a PrintableString may not).
   */
  challengePassword?: string;
}

export interface BuiltCsr {
  der: Uint8Array;
  pem: string;
}

/**
 * Builds a PKCS#10 request (RFC 2986) whose signature is made by `signDigestInfo` (the card):
 * for an RSA key it gets the SHA-256 DigestInfo (PKCS#1 v1.5), for an ECC key (PIV) the hash
 * itself (SHA-256 for P-256, SHA-384 for P-384) and returns a DER ECDSA-Sig-Value. The private
 * key never leaves the card. The request is checked with the public key before it is returned.
 */
export async function buildCsr(
  subject: string,
  publicKey: KeyObject,
  signDigestInfo: (digestInfo: Uint8Array) => Promise<Uint8Array>,
  options: CsrOptions = {},
): Promise<BuiltCsr> {
  let name: Name;
  try {
    name = parseSubject(subject);
  } catch (err) {
    throw new CardError('BAD_SUBJECT', `--subject '${subject}': ${(err as Error).message} (RFC 4514, e.g. "CN=Alice,O=Example,C=DE")`, { cause: err });
  }
  const spki = AsnConvert.parse(publicKey.export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo);
  const info = new CertificationRequestInfo({ subject: name, subjectPKInfo: spki });
  if (options.extensions && options.extensions.length > 0) {
    info.attributes.push(new Attribute({ type: EXTENSION_REQUEST, values: [AsnConvert.serialize(new Extensions(options.extensions))] }));
  }
  if (options.challengePassword !== undefined) {
    info.attributes.push(new Attribute({ type: CHALLENGE_PASSWORD, values: [AsnConvert.serialize(new DirectoryString({ utf8String: options.challengePassword }))] }));
  }
  const tbs = new Uint8Array(AsnConvert.serialize(info));
  const ec = publicKey.asymmetricKeyType === 'ec';
  const hash = ec && publicKey.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'sha384' : 'sha256';
  const signature = await signDigestInfo(ec ? new Uint8Array(createHash(hash).update(tbs).digest()) : digestInfoOf('sha256', tbs));
  if (!verify(hash, tbs, publicKey, signature)) throw new CardError('BAD_SIGNATURE', 'the card signed the request, but the signature does not verify with the container public key');
  const request = new CertificationRequest({
    certificationRequestInfo: info,
    signatureAlgorithm: ec ? new AlgorithmIdentifier({ algorithm: ECDSA_WITH[hash] }) : new AlgorithmIdentifier({ algorithm: SHA256_WITH_RSA, parameters: null }),
    signature: signature.slice().buffer,
  });
  const der = new Uint8Array(AsnConvert.serialize(request));
  return { der, pem: toPem(der, 'CERTIFICATE REQUEST') };
}
