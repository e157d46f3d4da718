/**
 * The OCSP responder (RFC 6960): parses a request, looks each certificate's status up, and signs
 * the answer with a delegated responder certificate (§4.2.2.2) the embedded CA issues to a key of
 * the responder's own. The structures come from @peculiar/asn1-ocsp; this module decides only
 * what goes in them. Status comes from a `StatusSource` (revocation.ts), so nothing here touches
 * storage.
 *
 * Choices, each against the RFCs:
 * - A request that does not parse, has trailing bytes, or asks about more than MAX_REQUESTS
 *   certificates gets an OCSPResponse with status malformedRequest and no body (§2.3, §4.2.1).
 * - A CertID with a hash algorithm the responder does not compute, or the name/key hash of another
 *   issuer, is answered `unknown` (§2.2: "the responder doesn't know about the certificate being
 *   requested, usually because the request indicates an unrecognized issuer").
 * - A nonce (§4.4.1) of 1 to 32 octets is echoed; a longer one, or one that is not an OCTET STRING,
 *   is left out of the answer (RFC 8954 §2.1 lets a responder answer without the nonce).
 * - thisUpdate and nextUpdate are those of the CRL in force (§4.2.2.1): the answer is cached until
 *   the CRL changes, which every revocation makes it do.
 */
import { createHash, generateKeyPairSync, sign as signData, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, CRLReason, Extension, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import {
  CertStatus,
  id_pkix_ocsp_basic,
  id_pkix_ocsp_nonce,
  OCSPRequest,
  OCSPResponse,
  OCSPResponseStatus,
  ResponderID,
  ResponseBytes,
  ResponseData,
  RevokedInfo,
  SingleResponse,
  type CertID,
} from '@peculiar/asn1-ocsp';
import { writeFileAtomic } from '../../atomic-file.js';
import { encodeTlv, readTlv } from '../../ber-tlv.js';
import { pemBlock, toPem } from '../../pem.js';
import { x509 } from '../../x509.js';
import { ServiceError } from '../errors.js';
import type { EmbeddedCa } from './embedded.js';
import { decryptKey, encryptedPkcs8 } from './encrypted-key.js';
import { newSerial, OID } from './pki.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** The responder certificate's life, and how long before its end a new one is made (id-pkix-ocsp-nocheck wants it short, RFC 6960 §4.2.2.2.1). */
export const RESPONDER_VALIDITY_MS = 30 * DAY;
export const RESPONDER_RENEW_BEFORE_MS = 7 * DAY;
/** Certificates one request may ask about; RFC 5019 §2.1.1 has lightweight clients ask about one. */
export const MAX_REQUESTS = 8;
/** RFC 8954 §2.1: nonces of up to 32 octets must be accepted. */
export const MAX_NONCE = 32;
/**
 * Answers being signed at once, at most; a request beyond that gets tryLater (RFC 6960 §2.3), so a
 * flood of nonce-carrying requests queues no unbounded work. Cached answers are not limited.
 */
export const MAX_SIGNING = 256;
/** Signed answers kept per CRL; beyond it the cache starts over. */
const CACHE_LIMIT = 100_000;

/** CertID hash algorithms the responder computes: SHA-1 (RFC 5019 §2.1.1 makes it the one clients use) and SHA-2. */
const HASHES: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

export type CertificateStatus =
  | { status: 'good' }
  | { status: 'revoked'; revokedAt: Date; reason: number }
  | { status: 'unknown' };

/** Where the responder learns a serial's status, and the CRL its answers are made under. */
export interface StatusSource {
  /** The CRL in force: its number names the cache generation; its times go into every answer. */
  current(): Promise<{ number: number; thisUpdate: Date; nextUpdate: Date }>;
  /** The status of a serial (lowercase hex, no leading zeros) this CA issued, or unknown. */
  status(serial: string): Promise<CertificateStatus>;
}

/** What a signer makes: the key and its certificate, and the parts of every answer that depend on them alone. */
interface Responder {
  key: KeyObject;
  cert: x509.X509Certificate;
  der: Uint8Array;
  notAfter: number;
  /** ResponderID byKey (RFC 6960 §4.2.2.3): SHA-1 of the responder key's BIT STRING value. */
  responderId: ResponderID;
  /** The BasicOCSPResponse's signatureAlgorithm, DER. */
  signatureAlgorithm: Uint8Array;
  /** The BasicOCSPResponse's `certs [0] EXPLICIT SEQUENCE OF Certificate`, DER: the responder's certificate. */
  certs: Uint8Array;
}

function responderOf(key: KeyObject, cert: x509.X509Certificate): Responder {
  const der = new Uint8Array(cert.rawData);
  const isRsa = key.asymmetricKeyType === 'rsa';
  const keyBits = new Uint8Array(AsnConvert.parse(cert.publicKey.rawData, SubjectPublicKeyInfo).subjectPublicKey);
  // RFC 4055 §5: NULL parameters for sha256WithRSAEncryption; RFC 5758 §3.2: none for ECDSA.
  const algorithm = new AlgorithmIdentifier({ algorithm: isRsa ? OID.sha256WithRSA : OID.ecdsaWithSha256, ...(isRsa ? { parameters: null } : {}) });
  return {
    key, cert, der, notAfter: cert.notAfter.getTime(),
    responderId: new ResponderID({ byKey: new OctetString(createHash('sha1').update(keyBits).digest()) }),
    signatureAlgorithm: new Uint8Array(AsnConvert.serialize(algorithm)),
    certs: encodeTlv(0xa0, encodeTlv(0x30, der)),
  };
}

export interface ResponderKeyStore {
  /** The responder as last saved, if any. */
  load(): { key: KeyObject; certPem: string } | undefined;
  save(key: KeyObject, certPem: string): void;
}

/** The responder key sealed with the CA passphrase beside the CA key, key and certificate in one file written whole. */
export function fileKeyStore(dataDir: string, passphrase: string): ResponderKeyStore {
  const file = join(dataDir, 'ca', 'ocsp.pem');
  return {
    load: () => {
      if (!existsSync(file)) return undefined;
      const text = readFileSync(file, 'utf8');
      const cert = pemBlock(text, 'CERTIFICATE');
      if (!cert) return undefined;
      return { key: decryptKey(text, passphrase, file), certPem: toPem(cert, 'CERTIFICATE') };
    },
    save: (key, certPem) => writeFileAtomic(file, encryptedPkcs8(key, passphrase) + certPem),
  };
}

/** For EmbeddedCa.inMemory: the key never leaves the process. */
export function memoryKeyStore(): ResponderKeyStore {
  let saved: { key: KeyObject; certPem: string } | undefined;
  return { load: () => saved, save: (key, certPem) => (saved = { key, certPem }) };
}

/** The responder's identity per CertID hash: the hashes of the CA's name and key a request must carry. */
function issuerHashes(ca: x509.X509Certificate): Map<string, { name: string; key: string }> {
  const spki = AsnConvert.parse(ca.publicKey.rawData, SubjectPublicKeyInfo);
  const name = new Uint8Array(ca.subjectName.toArrayBuffer());
  const out = new Map<string, { name: string; key: string }>();
  for (const [oid, hash] of Object.entries(HASHES)) {
    out.set(oid, { name: createHash(hash).update(name).digest('hex'), key: createHash(hash).update(new Uint8Array(spki.subjectPublicKey)).digest('hex') });
  }
  return out;
}

/** A CertID's serial as storage names serials: lowercase hex without leading zero bytes. */
function serialHex(serial: ArrayBuffer): string {
  let b = Buffer.from(serial);
  while (b.length > 1 && b[0] === 0) b = b.subarray(1);
  return b.toString('hex');
}

/** An OCSPResponse with a status and no body (RFC 6960 §4.2.1): for requests the responder cannot answer. */
export function statusOnly(status: OCSPResponseStatus): Buffer {
  return Buffer.from(AsnConvert.serialize(new OCSPResponse({ responseStatus: status })));
}

export const MALFORMED = statusOnly(OCSPResponseStatus.malformedRequest);
const TRY_LATER = statusOnly(OCSPResponseStatus.tryLater);

export class OcspResponder {
  private responder: Responder | undefined;
  private renewing: Promise<Responder> | undefined;
  private readonly hashes: Map<string, { name: string; key: string }>;
  private cache: { number: number; answers: Map<string, Buffer>; statuses: Map<string, CertificateStatus> } = { number: -1, answers: new Map(), statuses: new Map() };
  /** How many answers were signed (not served from the cache): the bench and tests read it. */
  signed = 0;
  private signing = 0;

  constructor(
    private readonly ca: EmbeddedCa,
    private readonly source: StatusSource,
    private readonly keys: ResponderKeyStore,
    private readonly now: () => Date,
    /** Books a new responder certificate's serial like any other the CA issues. */
    private readonly record: (cert: { serial: string; subject: string; der: Uint8Array; notBefore: Date; notAfter: Date }) => Promise<void> = async () => undefined,
    private readonly maxSigning = MAX_SIGNING,
  ) {
    this.hashes = issuerHashes(ca.chain()[0]!);
  }

  /** The responder certificate in use, made or renewed first when due. */
  async certificate(): Promise<x509.X509Certificate> {
    return (await this.current()).cert;
  }

  private async current(): Promise<Responder> {
    const now = this.now().getTime();
    const r = this.responder ?? this.loaded();
    if (r && r.notAfter - now > RESPONDER_RENEW_BEFORE_MS && r.cert.notBefore.getTime() <= now) return (this.responder = r);
    this.renewing ??= this.renew().finally(() => (this.renewing = undefined));
    return (this.responder = await this.renewing);
  }

  /** The saved responder, if it belongs to this CA. */
  private loaded(): Responder | undefined {
    const saved = this.keys.load();
    if (!saved) return undefined;
    const cert = new x509.X509Certificate(saved.certPem);
    const caCert = this.ca.chain()[0]!;
    if (cert.issuer !== caCert.subject) return undefined;
    return responderOf(saved.key, cert);
  }

  /** A new key and certificate: key generated here, certificate from the CA, both saved before use. */
  private async renew(): Promise<Responder> {
    const { privateKey, publicKey } = this.ca.keyType === 'p-256' ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
    const now = this.now().getTime();
    const serial = newSerial();
    const notBefore = new Date(now - HOUR);
    const notAfter = new Date(now + RESPONDER_VALIDITY_MS);
    const subject = new x509.Name([{ CN: [`cardlink OCSP responder ${serial.slice(0, 8)}`] }]);
    const der = await this.ca.issueDer({
      serial, notBefore, notAfter, subject, publicKey: new x509.PublicKey(publicKey.export({ type: 'spki', format: 'der' })), template: { kind: 'ocsp-responder' },
    });
    const cert = new x509.X509Certificate(der);
    await this.record({ serial, subject: cert.subject, der, notBefore, notAfter });
    this.keys.save(privateKey, toPem(der, 'CERTIFICATE'));
    return responderOf(privateKey, cert);
  }

  /**
   * The DER OCSPResponse for a DER OCSPRequest. Never throws for anything the request holds: a
   * request the responder cannot read gets malformedRequest, a failure of its own internalError.
   */
  async respond(request: Uint8Array): Promise<Buffer> {
    try {
      // The same request bytes without a nonce get the same answer until the CRL changes: looked
      // up by those bytes before anything is parsed.
      const crl = await this.source.current();
      if (this.cache.number !== crl.number) this.cache = { number: crl.number, answers: new Map(), statuses: new Map() };
      const raw = Buffer.from(request).toString('base64');
      const hit = this.cache.answers.get(raw);
      if (hit) return hit;
      const parsed = parseRequest(request);
      if (parsed === undefined) return MALFORMED;
      if (this.signing >= this.maxSigning) return TRY_LATER;
      this.signing++;
      let answer: Buffer;
      try {
        answer = await this.answer(parsed, crl);
      } finally {
        this.signing--;
      }
      if (parsed.nonce === undefined && parsed.certIds.length === 1) {
        if (this.cache.answers.size >= CACHE_LIMIT) this.cache.answers.clear();
        this.cache.answers.set(raw, answer);
      }
      return answer;
    } catch (err) {
      if (err instanceof ServiceError && err.code === 'STORAGE') return TRY_LATER;
      return statusOnly(OCSPResponseStatus.internalError);
    }
  }

  private async answer(req: ParsedRequest, crl: { thisUpdate: Date; nextUpdate: Date }): Promise<Buffer> {
    const responder = await this.current();
    const responses: SingleResponse[] = [];
    for (const id of req.certIds) responses.push(new SingleResponse({ certID: id, certStatus: statusOf(await this.statusFor(id)), thisUpdate: crl.thisUpdate, nextUpdate: crl.nextUpdate }));
    const data = new ResponseData({
      responderID: responder.responderId,
      // GeneralizedTime without fractions (RFC 5280 §4.1.2.5.2, which RFC 6960 §4.2.2.1 follows).
      producedAt: new Date(Math.floor(this.now().getTime() / 1000) * 1000),
      responses,
      ...(req.nonce ? { responseExtensions: [req.nonce] } : {}),
    });
    const tbs = new Uint8Array(AsnConvert.serialize(data));
    const signature = await new Promise<Buffer>((resolve, reject) => signData('sha256', tbs, responder.key, (err, sig) => (err ? reject(err) : resolve(sig))));
    this.signed++;
    // BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm, signature BIT STRING,
    // certs [0] EXPLICIT SEQUENCE OF Certificate } (RFC 6960 §4.2.1), from the library-encoded
    // parts: the responder's fixed fields are encoded once per responder certificate.
    const basic = encodeTlv(0x30, tbs, responder.signatureAlgorithm, encodeTlv(0x03, new Uint8Array([0]), signature), responder.certs);
    return Buffer.from(AsnConvert.serialize(new OCSPResponse({
      responseStatus: OCSPResponseStatus.successful,
      responseBytes: new ResponseBytes({ responseType: id_pkix_ocsp_basic, response: new OctetString(basic) }),
    })));
  }

  private async statusFor(id: CertID): Promise<CertificateStatus> {
    const ours = this.hashes.get(id.hashAlgorithm.algorithm);
    if (!ours || Buffer.from(id.issuerNameHash.buffer).toString('hex') !== ours.name || Buffer.from(id.issuerKeyHash.buffer).toString('hex') !== ours.key) return { status: 'unknown' };
    const serial = serialHex(id.serialNumber);
    const cached = this.cache.statuses.get(serial);
    if (cached) return cached;
    const status = await this.source.status(serial);
    if (this.cache.statuses.size >= CACHE_LIMIT) this.cache.statuses.clear();
    this.cache.statuses.set(serial, status);
    return status;
  }
}

function statusOf(s: CertificateStatus): CertStatus {
  if (s.status === 'good') return new CertStatus({ good: null });
  if (s.status === 'unknown') return new CertStatus({ unknown: null });
  // RFC 6960 §4.2.1 RevokedInfo: the time, and the CRLReason when there is one (0, unspecified, is left out as RFC 5280 §5.3.1 asks of CRL entries).
  return new CertStatus({ revoked: new RevokedInfo({ revocationTime: new Date(Math.floor(s.revokedAt.getTime() / 1000) * 1000), ...(s.reason !== 0 ? { revocationReason: new CRLReason(s.reason) } : {}) }) });
}

interface ParsedRequest {
  certIds: CertID[];
  /** The nonce extension to echo, when the request carries one the responder accepts. */
  nonce: Extension | undefined;
}

/** The request, or undefined when it is not one DER OCSPRequest of 1 to MAX_REQUESTS certificates. */
function parseRequest(der: Uint8Array): ParsedRequest | undefined {
  try {
    if (der.length < 2 || der[0] !== 0x30 || readTlv(der, 0).next !== der.length) return undefined;
    const req = AsnConvert.parse(der, OCSPRequest);
    const list = req.tbsRequest.requestList;
    if (list.length === 0 || list.length > MAX_REQUESTS) return undefined;
    const certIds = list.map((r) => r.reqCert);
    const ext = req.tbsRequest.requestExtensions?.find((e) => e.extnID === id_pkix_ocsp_nonce);
    return { certIds, nonce: ext && acceptableNonce(ext) ? new Extension({ extnID: id_pkix_ocsp_nonce, critical: false, extnValue: ext.extnValue }) : undefined };
  } catch {
    return undefined;
  }
}

/** RFC 8954 §2.1: Nonce ::= OCTET STRING (SIZE(1..32)). */
function acceptableNonce(ext: Extension): boolean {
  const value = new Uint8Array(ext.extnValue.buffer);
  try {
    const tlv = readTlv(value, 0);
    const length = tlv.next - tlv.headerLength;
    return value[0] === 0x04 && tlv.next === value.length && length >= 1 && length <= MAX_NONCE;
  } catch {
    return false;
  }
}
