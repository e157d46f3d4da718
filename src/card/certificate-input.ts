/**
 * What a CA hands back, as a list of certificates: PEM (any number of CERTIFICATE blocks, in any
 * order), DER, bare base64, or PKCS#7 certs-only (".p7b", PEM or DER: certsrv's "download chain",
 * `certreq -retrieve`, EST's /simpleenroll answer; RFC 5652 §5 with no signers). PKCS#12 is refused
 * with the openssl command that takes the certificate out: keys never come from files.
 * Also writes the PKCS#7 certs-only bag that `mscp/msroots` holds (Minidriver spec [FSR]).
 */
import { X509Certificate } from 'node:crypto';
import { ContentInfo, id_signedData, SignedData, CertificateSet, CertificateChoices, EncapsulatedContentInfo, id_data } from '@peculiar/asn1-cms';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import { pemBlocks } from '../pem.js';
import { parseCertificate, type ParsedCertificate } from './certificate.js';
import { CardError } from './errors.js';

const CERT_LABELS = new Set(['CERTIFICATE', 'X509 CERTIFICATE', 'TRUSTED CERTIFICATE']);
const PKCS7_LABELS = new Set(['PKCS7', 'CMS']);

function fromDer(der: Uint8Array, name: string): ParsedCertificate[] {
  const asCertificate = tryCertificate(der);
  if (asCertificate) return [asCertificate];
  const bag = tryPkcs7(der, name);
  if (bag) return bag;
  if (looksLikePkcs12(der)) throw pkcs12Refused(name);
  throw new CardError('BAD_CERTIFICATE', `${name} is not a certificate: expected PEM, DER, base64 or PKCS#7 (.p7b)`);
}

function tryCertificate(der: Uint8Array): ParsedCertificate | undefined {
  try {
    new X509Certificate(der);
  } catch {
    return undefined;
  }
  return parseCertificate(der);
}

function tryPkcs7(der: Uint8Array, name: string): ParsedCertificate[] | undefined {
  let info: ContentInfo;
  try {
    info = AsnConvert.parse(der, ContentInfo);
  } catch {
    return undefined;
  }
  if (info.contentType !== id_signedData) return undefined;
  let signed: SignedData;
  try {
    signed = AsnConvert.parse(info.content, SignedData);
  } catch (err) {
    throw new CardError('BAD_CERTIFICATE', `${name}: a damaged PKCS#7 file (${(err as Error).message})`, { cause: err });
  }
  const certs = (signed.certificates ?? []).flatMap((c) => (c.certificate ? [parseCertificate(new Uint8Array(AsnConvert.serialize(c.certificate)))] : []));
  if (certs.length === 0) throw new CardError('BAD_CERTIFICATE', `${name}: the PKCS#7 file holds no certificate`);
  return certs;
}

/**
 * PFX ::= SEQUENCE { version INTEGER {v3(3)}, authSafe ContentInfo, ... } (RFC 7292 §4), the
 * authSafe's content type `data` or `signedData` (1.2.840.113549.1.7.1 or .2).
 */
function looksLikePkcs12(der: Uint8Array): boolean {
  if (der[0] !== 0x30 || der.length < 8) return false;
  const at = 2 + (der[1]! & 0x80 ? der[1]! & 0x7f : 0);
  if (der[at] !== 0x02 || der[at + 1] !== 0x01 || der[at + 2] !== 0x03) return false;
  const head = Buffer.from(der.subarray(at + 3, at + 24)).toString('hex');
  return /06092a864886f70d01070[12]/.test(head);
}

function pkcs12Refused(name: string): CardError {
  return new CardError(
    'PKCS12_REFUSED',
    `${name} is PKCS#12 (.p12/.pfx), which cardlink does not read: keys never come from files, they are made on the card; take the certificate out with 'openssl pkcs12 -in ${name} -nokeys -clcerts -out cert.pem' and install cert.pem`,
  );
}

/**
 * Every certificate in a file's bytes. `name` is how errors call the file (its path). Throws
 * CardError BAD_CERTIFICATE for anything else, PKCS12_REFUSED for PKCS#12.
 */
export function readCertificates(bytes: Uint8Array, name = 'the file'): ParsedCertificate[] {
  if (bytes.length === 0) throw new CardError('BAD_CERTIFICATE', `${name} is empty`);
  if (bytes[0] === 0x30) return fromDer(bytes, name);
  const text = Buffer.from(bytes).toString('latin1');
  if (text.includes('-----BEGIN ')) {
    const blocks = pemBlocks(text);
    if (blocks.some((b) => b.label.includes('PRIVATE KEY'))) {
      throw new CardError('PRIVATE_KEY_REFUSED', `${name} holds a private key: cardlink never takes keys from files (the key is made on the card); give a file with the certificate only`);
    }
    if (blocks.some((b) => b.label === 'PKCS12')) throw pkcs12Refused(name);
    const certs = blocks.flatMap((b) => (CERT_LABELS.has(b.label) ? [parseCertificate(b.der)] : PKCS7_LABELS.has(b.label) ? fromDer(b.der, name) : []));
    if (certs.length === 0) throw new CardError('BAD_CERTIFICATE', `${name} has no CERTIFICATE or PKCS7 block (found: ${blocks.map((b) => b.label).join(', ') || 'none'})`);
    return certs;
  }
  const body = text.replace(/\s+/g, '');
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(body)) return fromDer(new Uint8Array(Buffer.from(body, 'base64')), name);
  throw new CardError('BAD_CERTIFICATE', `${name} is not a certificate: expected PEM, DER, base64 or PKCS#7 (.p7b)`);
}

/** Is it a CA certificate (basicConstraints cA)? */
export function isCaCertificate(c: ParsedCertificate): boolean {
  return c.cert.ca;
}

/** The PKCS#7 certs-only bag (SignedData without content or signers) for `mscp/msroots`. */
export function certsOnlyPkcs7(certs: readonly ParsedCertificate[]): Uint8Array {
  const signed = new SignedData({
    version: 1,
    encapContentInfo: new EncapsulatedContentInfo({ eContentType: id_data }),
    certificates: new CertificateSet(certs.map((c) => new CertificateChoices({ certificate: AsnConvert.parse(c.der, Certificate) }))),
  });
  const info = new ContentInfo({ contentType: id_signedData, content: AsnConvert.serialize(signed) });
  return new Uint8Array(AsnConvert.serialize(info));
}
