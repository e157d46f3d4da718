/**
 * The service's PKI vocabulary: the one OID table, serial numbers, PKCS#10 checking, and the few
 * ASN.1 structures EST needs, built with the @peculiar/asn1-* schema libraries (never by hand).
 */
import { createHash, createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import { AsnArray, AsnConvert, AsnPropTypes, AsnType, AsnTypeTypes } from '@peculiar/asn1-schema';
import { CRLNumber, id_ce_cRLNumber, id_kp_clientAuth, id_kp_serverAuth, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { encodeTlv, readTlv } from '../../ber-tlv.js';
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
  /** rsaEncryption (RFC 8017 appendix C): the one RSA key type that may encipher. */
  rsaEncryption: '1.2.840.113549.1.1.1',
  crlNumber: id_ce_cRLNumber,
  /** id-kp-OCSPSigning (RFC 6960 §4.2.2.2): the EKU of a delegated OCSP responder. */
  ocspSigning: '1.3.6.1.5.5.7.3.9',
  /** id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): relying parties do not check the responder's own status. */
  ocspNoCheck: '1.3.6.1.5.5.7.48.1.5',
  /** szOID_NTDS_CA_SECURITY_EXT (Microsoft KB5014754): the account's SID in a certificate. */
  ntdsCaSecurity: '1.3.6.1.4.1.311.25.2',
  /** szOID_NTDS_OBJECTSID: the otherName type inside that extension, whose value is the SID as text. */
  ntdsObjectSid: '1.3.6.1.4.1.311.25.2.1',
} as const;

/**
 * A domain account's SID as the SID extension takes it: S-1-5-21, the three sub-authorities of
 * the domain identifier, then the relative identifier, each a 32-bit unsigned decimal (MS-DTYP
 * §2.4.2.1 gives the S-1-IdentifierAuthority-SubAuthority… string form; §2.4.2.4 the well-known
 * S-1-5-21 domain prefix). Only users of a domain are mapped, so nothing else is accepted.
 */
const SID_RE = /^S-1-5-21(?:-(?:0|[1-9][0-9]{0,9})){4}$/;

export function isDomainSid(value: string): boolean {
  return SID_RE.test(value) && value.split('-').slice(3).every((n) => Number(n) <= 0xffffffff);
}

/** The checked SID, or a typed error in the operator's terms. */
export function checkDomainSid(value: string): string {
  if (!isDomainSid(value)) throw new ServiceError('BAD_REQUEST', `'${value.slice(0, 80)}' is not a domain account SID: expected S-1-5-21-<domain>-<domain>-<domain>-<RID>, e.g. S-1-5-21-3623811015-3361044348-30300820-1013`);
  return value;
}

/**
 * The value of the SID extension (Microsoft KB5014754, as AD CS writes it): a SEQUENCE holding
 * one otherName [0] { szOID_NTDS_OBJECTSID, [0] EXPLICIT OCTET STRING of the SID's ASCII text }.
 */
export function sidExtensionValue(sid: string): Uint8Array {
  checkDomainSid(sid);
  const value = encodeTlv(0xa0, encodeTlv(0x04, Buffer.from(sid, 'ascii')));
  return encodeTlv(0x30, encodeTlv(0xa0, derOid(OID.ntdsObjectSid), value));
}

/** An OID's DER (X.690 §8.19). */
export function derOid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map(Number);
  const bytes: number[] = [];
  for (const arc of [arcs[0]! * 40 + arcs[1]!, ...arcs.slice(2)]) {
    const chunk = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return encodeTlv(0x06, new Uint8Array(bytes));
}

/**
 * The subject of a user's certificate: one RDN, CN = the user principal name, built from the
 * attribute so that no character of the name can add an attribute or an RDN (a DN string
 * `CN=${upn}` would let `eve@example.com,CN=Administrator` do both).
 */
export function userSubject(upn: string): x509.Name {
  return new x509.Name([{ CN: [upn] }]);
}

/**
 * A user principal name as the service accepts it: local@domain in the RFC 822 style, letters,
 * digits and `. _ % + ' -` before the @, DNS labels after it, at most 256 characters (Active
 * Directory's limit for userPrincipalName is larger, but 256 is what the probe found reasonable).
 * No spaces, commas, quotes, equals signs, controls or NUL.
 */
const UPN_RE = /^[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
export const UPN_MAX = 256;

export function isUserPrincipalName(value: string): boolean {
  return value.length <= UPN_MAX && UPN_RE.test(value);
}

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

/** The SubjectPublicKeyInfo algorithm OID of a key: rsaEncryption and RSASSA-PSS keys differ here only. */
export function spkiAlgorithm(spki: ArrayBuffer | Uint8Array): string {
  return AsnConvert.parse(spki, SubjectPublicKeyInfo).algorithm.algorithm;
}

/** The RSA moduli the service certifies: 2048 bits at least (NIST SP 800-131A), 8192 at most (larger ones cost every verifier and no card makes them). */
const RSA_BITS = { min: 2048, max: 8192 } as const;
/** Signature hashes a request may be signed with: SHA-1 is refused (NIST SP 800-131A Rev. 2 §3 disallows it for signatures). */
const CSR_HASHES = new Set(['SHA-256', 'SHA-384', 'SHA-512']);

/**
 * The key policy, before any signature is checked: RSA with e = 65537 (NIST SP 800-56B Rev. 2
 * §6.2 wants an odd exponent above 2^16; 65537 is the one cards and Windows use), 2048 to 8192
 * bits; ECDSA on P-256 or P-384.
 */
function checkKey(spki: Uint8Array): KeyObject {
  let key;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (err) {
    throw new ServiceError('CSR_INVALID', `the request's public key cannot be read: ${(err as Error).message}`, { cause: err });
  }
  const type = key.asymmetricKeyType;
  const d = key.asymmetricKeyDetails ?? {};
  if (type === 'rsa' || type === 'rsa-pss') {
    const bits = d.modulusLength ?? 0;
    if (bits < RSA_BITS.min) throw new ServiceError('CSR_INVALID', `RSA key of ${bits} bits: ${RSA_BITS.min} at least`);
    if (bits > RSA_BITS.max) throw new ServiceError('CSR_INVALID', `RSA key of ${bits} bits: ${RSA_BITS.max} at most`);
    if (d.publicExponent !== 65537n) throw new ServiceError('CSR_INVALID', `RSA public exponent ${String(d.publicExponent)}: only 65537 is accepted`);
    return key;
  }
  if (type === 'ec') {
    if (d.namedCurve !== 'prime256v1' && d.namedCurve !== 'secp384r1') throw new ServiceError('CSR_INVALID', `curve ${d.namedCurve}: use P-256 or P-384`);
    return key;
  }
  throw new ServiceError('CSR_INVALID', `key algorithm ${type} is not accepted (use RSA of 2048 to 8192 bits, or ECDSA P-256/P-384)`);
}

/** Parses a PKCS#10 request (PEM, base64 or DER) and checks its key, its self-signature and the signature's hash: proof the sender holds the key. */
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
  const key = checkKey(new Uint8Array(csr.publicKey.rawData));
  const algorithm = csr.signatureAlgorithm as { name?: string; hash?: { name?: string } } | undefined;
  const hash = algorithm?.hash?.name;
  if (hash === undefined || !CSR_HASHES.has(hash)) throw new ServiceError('CSR_INVALID', `the request is signed with ${hash ?? 'an unknown hash'}: sign it with SHA-256, SHA-384 or SHA-512`);
  let ok = false;
  try {
    ok = await verifySignature(csr, der, key, algorithm!.name, hash);
  } catch (err) {
    throw new ServiceError('CSR_INVALID', `cannot check the request's signature: ${(err as Error).message}`, { cause: err });
  }
  if (!ok) throw new ServiceError('CSR_INVALID', "the request's signature does not match its public key");
  return {
    der,
    csr,
    csrHash: createHash('sha256').update(der).digest('hex'),
    keyHash: spkiSha256(new Uint8Array(csr.publicKey.rawData)),
    subject: csr.subject,
  };
}

/**
 * The request's self-signature. PKCS#1 v1.5 and ECDSA (what cards and cardlink's agent make) are
 * checked by node:crypto on libuv's thread pool over the CertificationRequestInfo bytes exactly as
 * received (RFC 2986 §4.2: the signature is over its DER), with the key checkKey already made;
 * anything else (RSA-PSS) through the library's own check.
 */
async function verifySignature(csr: x509.Pkcs10CertificateRequest, der: Uint8Array, key: KeyObject, algorithm: string | undefined, hash: string): Promise<boolean> {
  if (!(algorithm === 'ECDSA' && key.asymmetricKeyType === 'ec') && !(algorithm === 'RSASSA-PKCS1-v1_5' && key.asymmetricKeyType === 'rsa')) return csr.verify();
  // CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature }
  const outer = readTlv(der, 0);
  const info = readTlv(der, outer.headerLength);
  const signed = der.subarray(outer.headerLength, info.next);
  const signature = new Uint8Array(csr.signature);
  return new Promise<boolean>((resolve, reject) =>
    verify(hash.replace('-', '').toLowerCase(), signed, key, signature, (err, ok) => (err ? reject(err) : resolve(ok))),
  );
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
