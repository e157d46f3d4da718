/**
 * A certificate's to-be-signed part (RFC 5280 §4.1) assembled from DER pieces a CA prepares once:
 * the version, signature algorithm, issuer name and the extensions every certificate of a
 * template shares are encoded when the CA opens; per certificate only the serial, validity,
 * subject, key and the user's names are encoded, straight to DER, and the signature is made by
 * node:crypto on libuv's thread pool. The pieces that come from outside (the subject key) were
 * parsed and checked by the maintained library before they get here (pki.ts parseCsr).
 * test/service/ca.test.ts checks that the result is byte for byte what @peculiar/x509's generic
 * generator makes of the same order.
 */
import { createHash, sign, type KeyObject } from 'node:crypto';
import { encodeTlv } from '../../ber-tlv.js';
import { concat, fromHex } from '../../bytes.js';
import { x509 } from '../../x509.js';
import { derOid, OID, sidExtensionValue, spkiAlgorithm } from './pki.js';

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OCTET_STRING = 0x04;
const UTF8_STRING = 0x0c;
const UTC_TIME = 0x17;
const GENERALIZED_TIME = 0x18;

const oid = derOid;

/** A positive INTEGER from lowercase hex, minimal (X.690 §8.3.2). */
function positiveInteger(hexDigits: string): Uint8Array {
  let b = fromHex(hexDigits.length % 2 === 1 ? `0${hexDigits}` : hexDigits);
  let start = 0;
  while (start < b.length - 1 && b[start] === 0 && b[start + 1]! < 0x80) start++;
  b = b.subarray(start);
  return encodeTlv(INTEGER, b[0]! >= 0x80 ? concat(new Uint8Array([0]), b) : b);
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, in whole seconds, Z. */
function time(d: Date): Uint8Array {
  const iso = d.toISOString();
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const year = d.getUTCFullYear();
  return year >= 1950 && year < 2050 ? encodeTlv(UTC_TIME, Buffer.from(digits.slice(2), 'ascii')) : encodeTlv(GENERALIZED_TIME, Buffer.from(digits, 'ascii'));
}

const UPN_OID = oid('1.3.6.1.4.1.311.20.2.3');

/** subjectAltName (RFC 5280 §4.2.1.6) with a UPN otherName (Microsoft KB 287547) and DNS names. */
function subjectAltName(upn: string | undefined, dnsNames: readonly string[]): Uint8Array {
  const names = [
    ...(upn === undefined ? [] : [encodeTlv(0xa0, UPN_OID, encodeTlv(0xa0, encodeTlv(UTF8_STRING, Buffer.from(upn, 'utf8'))))]),
    ...dnsNames.map((d) => encodeTlv(0x82, Buffer.from(d, 'ascii'))),
  ];
  return encodeTlv(SEQUENCE, oid('2.5.29.17'), encodeTlv(OCTET_STRING, encodeTlv(SEQUENCE, ...names)));
}

/** subjectKeyIdentifier by RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's bits. */
function subjectKeyIdentifier(spki: Uint8Array): Uint8Array {
  // SubjectPublicKeyInfo ::= SEQUENCE { algorithm SEQUENCE, subjectPublicKey BIT STRING }
  const keyBits = lastBitString(spki);
  const id = createHash('sha1').update(keyBits.subarray(1)).digest();
  return encodeTlv(SEQUENCE, oid('2.5.29.14'), encodeTlv(OCTET_STRING, encodeTlv(OCTET_STRING, id)));
}

/** The value of the BIT STRING that ends a SubjectPublicKeyInfo (its unused-bits byte first). */
function lastBitString(spki: Uint8Array): Uint8Array {
  const headerEnd = (at: number): { start: number; end: number } => {
    const first = spki[at + 1]!;
    if (first < 0x80) return { start: at + 2, end: at + 2 + first };
    const n = first & 0x7f;
    let len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + spki[at + 2 + i]!;
    return { start: at + 2 + n, end: at + 2 + n + len };
  };
  const outer = headerEnd(0);
  const algorithm = headerEnd(outer.start);
  if (spki[algorithm.end] !== BIT_STRING) throw new Error('SubjectPublicKeyInfo without a BIT STRING key');
  const bits = headerEnd(algorithm.end);
  return spki.subarray(bits.start, bits.end);
}

/** The SID extension (Microsoft KB5014754), non-critical: a DC that does not know it ignores it. */
function sidExtension(sid: string): Uint8Array {
  return encodeTlv(SEQUENCE, oid(OID.ntdsCaSecurity), encodeTlv(OCTET_STRING, sidExtensionValue(sid)));
}

/** The authority information access extension's parameters for @peculiar/x509, OCSP first; undefined when neither URL is known. */
export function authorityInfoAccessParams(urls: CaUrls): { ocsp?: string[]; caIssuers?: string[] } | undefined {
  if (urls.ocsp === undefined && urls.caIssuers === undefined) return undefined;
  return { ...(urls.ocsp !== undefined ? { ocsp: [urls.ocsp] } : {}), ...(urls.caIssuers !== undefined ? { caIssuers: [urls.caIssuers] } : {}) };
}

export interface PreparedOrder {
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** The subject Name's DER. */
  subject: Uint8Array;
  /** The subject's SubjectPublicKeyInfo DER, already checked. */
  spki: Uint8Array;
  userPrincipalName?: string;
  dnsNames?: readonly string[];
  /** The user's domain SID for the SID extension (pki.ts sidExtensionValue), already checked. */
  sid?: string;
  subjectKeyId: boolean;
}

/** Where relying parties find the CA's revocation information and its certificate (all optional). */
export interface CaUrls {
  /** CRL distribution point (RFC 5280 §4.2.1.13). */
  crl?: string;
  /** Authority information access: the OCSP responder (RFC 5280 §4.2.2.1, RFC 6960). */
  ocsp?: string;
  /** Authority information access: the issuing CA's certificate, DER (RFC 5280 §4.2.2.1). */
  caIssuers?: string;
}

/** The fixed parts of a smart card logon certificate from one CA, and the signing of them. */
export class PreparedIssuer {
  private readonly head: Uint8Array;
  private readonly signatureAlgorithm: Uint8Array;
  private readonly issuer: Uint8Array;
  private readonly fixedRsa: Uint8Array;
  private readonly fixedOther: Uint8Array;
  private readonly authorityKeyId: Uint8Array;
  private crlPoint: { url: string; der: Uint8Array } | undefined;
  private aia: { key: string; der: Uint8Array } | undefined;

  /** `fixed` are the extensions the generic path makes (embedded.ts extensionsFor), encoded once by it. */
  private constructor(
    private readonly key: KeyObject,
    o: { issuer: Uint8Array; isRsa: boolean; fixedRsa: Uint8Array[]; fixedOther: Uint8Array[]; authorityKeyId: Uint8Array },
  ) {
    // version [0] EXPLICIT INTEGER 2 (v3)
    this.head = encodeTlv(0xa0, encodeTlv(INTEGER, new Uint8Array([2])));
    // RFC 4055 §5: NULL parameters for sha256WithRSAEncryption; RFC 5758 §3.2: none for ECDSA.
    this.signatureAlgorithm = o.isRsa
      ? encodeTlv(SEQUENCE, oid(OID.sha256WithRSA), new Uint8Array([0x05, 0x00]))
      : encodeTlv(SEQUENCE, oid(OID.ecdsaWithSha256));
    this.issuer = o.issuer;
    this.fixedRsa = concat(...o.fixedRsa);
    this.fixedOther = concat(...o.fixedOther);
    this.authorityKeyId = o.authorityKeyId;
  }

  static async create(key: KeyObject, caCert: x509.X509Certificate): Promise<PreparedIssuer> {
    const ext = (e: x509.Extension): Uint8Array => new Uint8Array(e.rawData);
    const common = (usage: number): Uint8Array[] => [
      ext(new x509.BasicConstraintsExtension(false, undefined, true)),
      ext(new x509.KeyUsagesExtension(usage, true)),
      ext(new x509.ExtendedKeyUsageExtension([OID.clientAuth, OID.smartcardLogon])),
    ];
    const signature = x509.KeyUsageFlags.digitalSignature;
    return new PreparedIssuer(key, {
      issuer: new Uint8Array(caCert.subjectName.toArrayBuffer()),
      isRsa: key.asymmetricKeyType === 'rsa',
      fixedRsa: common(signature | x509.KeyUsageFlags.keyEncipherment),
      fixedOther: common(signature),
      authorityKeyId: ext(await x509.AuthorityKeyIdentifierExtension.create(caCert)),
    });
  }

  /** The signed certificate's DER. */
  async issue(order: PreparedOrder, urls: CaUrls): Promise<Uint8Array> {
    // keyEncipherment only for an rsaEncryption key (embedded.ts extensionsFor says why).
    const fixed = spkiAlgorithm(order.spki) === OID.rsaEncryption ? this.fixedRsa : this.fixedOther;
    const names = order.userPrincipalName !== undefined || (order.dnsNames?.length ?? 0) > 0 ? [subjectAltName(order.userPrincipalName, order.dnsNames ?? [])] : [];
    const extensions = encodeTlv(
      0xa3,
      encodeTlv(
        SEQUENCE, fixed, ...names, ...(order.sid === undefined ? [] : [sidExtension(order.sid)]), ...(order.subjectKeyId ? [subjectKeyIdentifier(order.spki)] : []), this.authorityKeyId,
        ...(urls.crl === undefined ? [] : [this.crlDistributionPoint(urls.crl)]), ...this.authorityInfoAccess(urls),
      ),
    );
    const tbs = encodeTlv(
      SEQUENCE,
      this.head,
      positiveInteger(order.serial),
      this.signatureAlgorithm,
      this.issuer,
      encodeTlv(SEQUENCE, time(order.notBefore), time(order.notAfter)),
      order.subject,
      order.spki,
      extensions,
    );
    const signature = await new Promise<Buffer>((resolve, reject) => sign('sha256', tbs, this.key, (err, sig) => (err ? reject(err) : resolve(sig))));
    return encodeTlv(SEQUENCE, tbs, this.signatureAlgorithm, encodeTlv(BIT_STRING, new Uint8Array([0]), signature));
  }

  private authorityInfoAccess(urls: CaUrls): Uint8Array[] {
    const params = authorityInfoAccessParams(urls);
    if (params === undefined) return [];
    const key = `${urls.ocsp ?? ''} ${urls.caIssuers ?? ''}`;
    if (this.aia?.key !== key) this.aia = { key, der: new Uint8Array(new x509.AuthorityInfoAccessExtension(params).rawData) };
    return [this.aia.der];
  }

  private crlDistributionPoint(url: string): Uint8Array {
    if (this.crlPoint?.url !== url) this.crlPoint = { url, der: new Uint8Array(new x509.CRLDistributionPointsExtension([url]).rawData) };
    return this.crlPoint.der;
  }
}
