/**
 * The service's PKI vocabulary: the one OID table, serial numbers, PKCS#10 checking, and the few
 * ASN.1 structures EST needs, built with the @peculiar/asn1-* schema libraries (never by hand).
 */
import { createHash, randomBytes } from 'node:crypto';
import { AsnArray, AsnConvert, AsnPropTypes, AsnType, AsnTypeTypes } from '@peculiar/asn1-schema';
import { CRLNumber, id_ce_cRLNumber, id_kp_clientAuth, id_kp_serverAuth } from '@peculiar/asn1-x509';
import { toDer } from '../../pem.js';
import { spkiSha256 } from '../../thumbprint.js';
import { x509 } from '../../x509.js';
import { ServiceError } from '../errors.js';

/** Every OID the service names (RFC 5280 §4.2.1.12 and §5.2.3, RFC 4055, RFC 5758, Microsoft KB 287547). */
export const OID = {
  clientAuth: id_kp_clientAuth,
  serverAuth: id_kp_serverAuth,
  /** Microsoft's "Smart Card Logon" extended key usage. */
  smartcardLogon: '1.3.6.1.4.1.311.20.2.2',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  crlNumber: id_ce_cRLNumber,
} as const;

/** A fresh serial: 16 random bytes, positive and without a leading zero byte, as lowercase hex. */
export function newSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x40;
  return b.toString('hex');
}

export interface ParsedCsr {
  der: Buffer;
  csr: x509.Pkcs10CertificateRequest;
  /** SHA-256 of the request's DER: the same request sent again is recognised by it. */
  csrHash: string;
  /** SHA-256 of the SubjectPublicKeyInfo (src/thumbprint.ts): how cardlink names a key. */
  keyHash: string;
  subject: string;
}

/** Parses a PKCS#10 request (PEM, base64 or DER) and checks its self-signature and key: proof the sender holds the key. */
export async function parseCsr(input: Uint8Array | string): Promise<ParsedCsr> {
  const decoded = toDer(input);
  if (!decoded) throw new ServiceError('BAD_REQUEST', 'certificate request: not PEM, base64 or DER');
  const der = Buffer.from(decoded.der);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(der);
  } catch (err) {
    throw new ServiceError('CSR_INVALID', `not a PKCS#10 certificate request: ${(err as Error).message}`, { cause: err });
  }
  const alg = csr.publicKey.algorithm as { name: string; modulusLength?: number; namedCurve?: string };
  const rsaOk = alg.name === 'RSASSA-PKCS1-v1_5' || alg.name === 'RSA-PSS' || alg.name === 'RSA-OAEP';
  const ecOk = alg.name === 'ECDSA' || alg.name === 'ECDH';
  if (!rsaOk && !ecOk) throw new ServiceError('CSR_INVALID', `key algorithm ${alg.name} is not accepted (use RSA of 2048 bits or more, or ECDSA P-256/P-384)`);
  let ok = false;
  try {
    ok = await csr.verify();
  } catch (err) {
    throw new ServiceError('CSR_INVALID', `cannot check the request's signature: ${(err as Error).message}`, { cause: err });
  }
  if (!ok) throw new ServiceError('CSR_INVALID', "the request's signature does not match its public key");
  const key = await csr.publicKey.export();
  const kalg = key.algorithm as { modulusLength?: number; namedCurve?: string };
  if (rsaOk && (kalg.modulusLength ?? 0) < 2048) throw new ServiceError('CSR_INVALID', `RSA key of ${kalg.modulusLength} bits: 2048 at least`);
  if (ecOk && kalg.namedCurve !== 'P-256' && kalg.namedCurve !== 'P-384') throw new ServiceError('CSR_INVALID', `curve ${kalg.namedCurve}: use P-256 or P-384`);
  return {
    der,
    csr,
    csrHash: createHash('sha256').update(der).digest('hex'),
    keyHash: spkiSha256(new Uint8Array(csr.publicKey.rawData)),
    subject: csr.subject,
  };
}

/** A certs-only PKCS#7 (CMS SignedData without signers, RFC 7030 §4.1.3): EST's answer format. */
export function certsOnly(certs: x509.X509Certificate[]): Buffer {
  return Buffer.from(new x509.X509Certificates(certs).export('raw'));
}

/** RFC 7030 §4.5.2 CsrAttrs ::= SEQUENCE OF AttrOrOID; here only OIDs (what the client should use). */
class CsrAttrs extends AsnArray<string> {
  constructor(items?: string[]) {
    super(items);
    Object.setPrototypeOf(this, CsrAttrs.prototype);
  }
}
// The schema decorator applied as a call: the project compiles without experimentalDecorators.
AsnType({ type: AsnTypeTypes.Sequence, itemType: AsnPropTypes.ObjectIdentifier })(CsrAttrs);

export function csrAttrs(oids: string[]): Buffer {
  return Buffer.from(AsnConvert.serialize(new CsrAttrs(oids)));
}

/** The value of the CRL number extension (RFC 5280 §5.2.3): a DER INTEGER. */
export function crlNumber(value: number): Buffer {
  return Buffer.from(AsnConvert.serialize(new CRLNumber(value)));
}
