import type { KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { AlgorithmIdentifier, Attribute, Extension, Extensions, Name, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { x509 } from '../x509.js';
import { digestInfoOf } from './digest-info.js';
import { CardError } from './errors.js';

const SHA256_WITH_RSA = '1.2.840.113549.1.1.11';
const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';

export interface CsrOptions {
  /** Extensions to request (e.g. a subject alternative name with a UPN). */
  extensions?: x509.Extension[];
}

export interface BuiltCsr {
  der: Uint8Array;
  pem: string;
}

/**
 * Builds a PKCS#10 request whose signature is made by `signDigestInfo` (the card, PKCS#1 v1.5
 * over SHA-256): the private key never leaves the card.
 */
export async function buildCsr(
  subject: string,
  publicKey: KeyObject,
  signDigestInfo: (digestInfo: Uint8Array) => Promise<Uint8Array>,
  options: CsrOptions = {},
): Promise<BuiltCsr> {
  let name: Name;
  try {
    name = AsnConvert.parse(new x509.Name(subject).toArrayBuffer(), Name);
  } catch (err) {
    throw new CardError('BAD_SUBJECT', `subject '${subject}' is not a distinguished name like "CN=Alice, O=Example"`, { cause: err });
  }
  const spki = AsnConvert.parse(publicKey.export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo);
  const info = new CertificationRequestInfo({ subject: name, subjectPKInfo: spki });
  if (options.extensions && options.extensions.length > 0) {
    const exts = new Extensions(options.extensions.map((e) => AsnConvert.parse(e.rawData, Extension)));
    info.attributes.push(new Attribute({ type: EXTENSION_REQUEST, values: [AsnConvert.serialize(exts)] }));
  }
  const tbs = new Uint8Array(AsnConvert.serialize(info));
  const signature = await signDigestInfo(digestInfoOf('sha256', tbs));
  const request = new CertificationRequest({
    certificationRequestInfo: info,
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm: SHA256_WITH_RSA, parameters: null }),
    signature: signature.slice().buffer,
  });
  const der = new Uint8Array(AsnConvert.serialize(request));
  const csr = new x509.Pkcs10CertificateRequest(der);
  if (!(await csr.verify())) throw new CardError('BAD_SIGNATURE', 'the card signed the request, but the signature does not verify with the container public key');
  return { der, pem: csr.toString('pem') };
}
