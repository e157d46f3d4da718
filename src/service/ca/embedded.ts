/**
 * cardlink's own certificate authority, the one implementation: persistent for the service (its
 * RSA key in the data directory, encrypted with the operator's passphrase) or in memory for the
 * demo and tests (the key never touches disk). Both issue through the same `issue`, so a test
 * certificate carries the very extensions the service puts in a smart card logon certificate.
 */
import { generateKeyPairSync, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { syncDirectory, writeFileAtomic } from '../../atomic-file.js';
import { x509 } from '../../x509.js';
import { ServiceError } from '../errors.js';
import { decryptKey, encryptedPkcs8, needsRewrap } from './encrypted-key.js';
import { checkDomainSid, crlNumber, newSerial, OID, sidExtensionValue, spkiAlgorithm } from './pki.js';
import { authorityInfoAccessParams, PreparedIssuer, type CaUrls } from './prepared.js';
import type { CrlOrder, IssueOrder, Template, UpstreamCa } from './upstream.js';

type CryptoKey = webcrypto.CryptoKey;

/** The CA key types the embedded CA makes: RSA-2048 (the default) or ECDSA on P-256 (NIST SP 800-57 Part 1 gives both 112 and 128 bits of security respectively). */
export type CaKeyType = 'rsa-2048' | 'p-256';
export const CA_KEY_TYPES: readonly CaKeyType[] = ['rsa-2048', 'p-256'];

type Signing = { name: 'RSASSA-PKCS1-v1_5'; hash: 'SHA-256' } | { name: 'ECDSA'; hash: 'SHA-256'; namedCurve: 'P-256' };

/** How a CA key signs: SHA-256 with PKCS#1 v1.5 for RSA, ECDSA with SHA-256 for P-256 (RFC 5758 §3.2). */
function signingFor(key: KeyObject): Signing {
  if (key.asymmetricKeyType === 'rsa') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return { name: 'ECDSA', hash: 'SHA-256', namedCurve: 'P-256' };
  throw new ServiceError('CONFIG', `the CA key is ${key.asymmetricKeyType} ${key.asymmetricKeyDetails?.namedCurve ?? ''}: the embedded CA signs with RSA or ECDSA P-256 only`);
}

function generateCaKey(type: CaKeyType): { privateKey: KeyObject; publicKey: KeyObject } {
  return type === 'p-256' ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
}
const CA_YEARS = 10;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;


async function toWebKey(key: KeyObject): Promise<CryptoKey> {
  const der = key.export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, signingFor(key), false, ['sign']) as Promise<CryptoKey>;
}

function extensionsFor(template: Template, publicKey: x509.PublicKey): x509.Extension[] {
  if (template.kind === 'ocsp-responder') {
    // RFC 6960 §4.2.2.2: a delegated responder is named by id-kp-OCSPSigning; §4.2.2.2.1: with
    // id-pkix-ocsp-nocheck (value NULL) relying parties trust it for its lifetime without
    // checking its own status, so it is kept short and renewed (ocsp.ts).
    return [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([OID.ocspSigning]),
      new x509.Extension(OID.ocspNoCheck, false, new Uint8Array([0x05, 0x00])),
    ];
  }
  // keyEncipherment only where the key can encipher: an rsaEncryption key (RFC 5280 §4.2.1.3),
  // not an RSASSA-PSS one, which RFC 4055 §1.2 limits to signatures.
  const isRsa = spkiAlgorithm(publicKey.rawData) === OID.rsaEncryption;
  const usage = x509.KeyUsageFlags.digitalSignature | (isRsa ? x509.KeyUsageFlags.keyEncipherment : 0);
  const common = [new x509.BasicConstraintsExtension(false, undefined, true), new x509.KeyUsagesExtension(usage, true)];
  if (template.kind === 'smartcard-logon') {
    const names: x509.JsonGeneralName[] = [
      ...(template.userPrincipalName !== undefined ? [{ type: 'upn' as const, value: template.userPrincipalName }] : []),
      ...(template.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ];
    return [
      ...common,
      new x509.ExtendedKeyUsageExtension([OID.clientAuth, OID.smartcardLogon]),
      ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : []),
      ...(template.sid !== undefined ? [new x509.Extension(OID.ntdsCaSecurity, false, sidExtensionValue(template.sid))] : []),
    ];
  }
  return [
    ...common,
    new x509.ExtendedKeyUsageExtension([OID.serverAuth]),
    new x509.SubjectAlternativeNameExtension([
      ...template.dnsNames.map((value) => ({ type: 'dns' as const, value })),
      ...template.ipAddresses.map((value) => ({ type: 'ip' as const, value })),
    ]),
  ];
}

/** A self-signed CA certificate for certificates and CRLs only, valid CA_YEARS from an hour ago. */
async function selfSigned(name: string, privateKey: KeyObject, publicKey: KeyObject, now: Date): Promise<x509.X509Certificate> {
  const signing = signingFor(privateKey);
  const pub = await webcrypto.subtle.importKey('spki', publicKey.export({ type: 'spki', format: 'der' }), signing, true, ['verify']);
  const notAfter = new Date(now.getTime());
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_YEARS);
  return x509.X509CertificateGenerator.create({
    serialNumber: newSerial(),
    subject: name,
    issuer: name,
    notBefore: new Date(now.getTime() - HOUR),
    notAfter,
    publicKey: pub,
    signingKey: await toWebKey(privateKey),
    signingAlgorithm: signing,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(pub),
    ],
  });
}

type Later<T> = T | (() => T);

export interface CaOptions {
  /**
   * Puts a CRL distribution point in every issued certificate; a function when the URL is known
   * only later (the service's listen port).
   */
  crlUrl?: Later<string | undefined>;
  /** Puts authority information access (OCSP responder, CA certificate) in every issued certificate; a function likewise. */
  aia?: Later<{ ocsp?: string; caIssuers?: string } | undefined>;
  /** The key a new CA gets (default rsa-2048); an existing CA keeps the key it has. */
  keyType?: CaKeyType;
}

/**
 * RSA-2048 with PKCS#1 v1.5 signatures (deterministic: signing the same order twice gives the same
 * bytes), or ECDSA P-256, whose signatures differ each time over the very same to-be-signed
 * certificate. Either way a retried issuance is harmless: only the issuer that completes it
 * (storage's conditional `issuing -> issued`) stores and hands out its bytes.
 */
export class EmbeddedCa implements UpstreamCa {
  readonly name = 'embedded';
  private constructor(
    private readonly cert: x509.X509Certificate,
    private readonly key: CryptoKey,
    private readonly signing: Signing,
    private readonly prepared: PreparedIssuer,
    private readonly options: CaOptions,
    /** The CA key's type: what a delegated OCSP responder key is made as, too. */
    readonly keyType: CaKeyType,
  ) {}

  private static async make(cert: x509.X509Certificate, key: KeyObject, options: CaOptions): Promise<EmbeddedCa> {
    const keyType: CaKeyType = key.asymmetricKeyType === 'ec' ? 'p-256' : 'rsa-2048';
    return new EmbeddedCa(cert, await toWebKey(key), signingFor(key), await PreparedIssuer.create(key, cert), options, keyType);
  }

  /** The URLs issued certificates point relying parties at, as they stand now. */
  private get urls(): CaUrls {
    const later = <T>(v: Later<T>): T => (typeof v === 'function' ? (v as () => T)() : v);
    const crl = later(this.options.crlUrl);
    const aia = later(this.options.aia);
    return { ...(crl !== undefined ? { crl } : {}), ...(aia?.ocsp !== undefined ? { ocsp: aia.ocsp } : {}), ...(aia?.caIssuers !== undefined ? { caIssuers: aia.caIssuers } : {}) };
  }

  /** A CA that lives in memory only, for the demo and tests. */
  static async inMemory(options: CaOptions & { name?: string; now?: Date } = {}): Promise<EmbeddedCa> {
    const { privateKey, publicKey } = generateCaKey(options.keyType ?? 'rsa-2048');
    const cert = await selfSigned(options.name ?? 'CN=cardlink throwaway CA', privateKey, publicKey, options.now ?? new Date());
    return EmbeddedCa.make(cert, privateKey, options);
  }

  /**
   * The service's CA in `DIR/ca/`, made on first start. Two services starting together on one data
   * directory both generate, and only one rename wins; the loser loads the winner's.
   */
  static async open(dataDir: string, passphrase: string, now: Date, options: CaOptions = {}): Promise<EmbeddedCa> {
    const dir = join(dataDir, 'ca');
    if (!existsSync(join(dir, 'cert.pem'))) await EmbeddedCa.create(dataDir, passphrase, now, options.keyType ?? 'rsa-2048');
    const keyFile = join(dir, 'key.pem');
    const keyPem = readFileSync(keyFile, 'utf8');
    const key = decryptKey(keyPem, passphrase, keyFile);
    // A key an older version wrapped with weaker parameters is written again with today's.
    if (needsRewrap(keyPem)) writeFileAtomic(keyFile, encryptedPkcs8(key, passphrase));
    const cert = new x509.X509Certificate(readFileSync(join(dir, 'cert.pem'), 'utf8'));
    return EmbeddedCa.make(cert, key, options);
  }

  private static async create(dataDir: string, passphrase: string, now: Date, keyType: CaKeyType): Promise<void> {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    // Both files are written (and fsynced) in a private directory, which then appears whole under
    // its final name: a reader never sees a certificate without its key.
    const tmp = join(dataDir, `.ca-${randomBytes(6).toString('hex')}`);
    mkdirSync(tmp, { mode: 0o700 });
    try {
      const { privateKey, publicKey } = generateCaKey(keyType);
      const cert = await selfSigned(`CN=cardlink CA ${hostname()} ${randomBytes(4).toString('hex')}, O=cardlink`, privateKey, publicKey, now);
      writeFileAtomic(join(tmp, 'key.pem'), encryptedPkcs8(privateKey, passphrase));
      writeFileAtomic(join(tmp, 'cert.pem'), cert.toString('pem') + '\n');
      renameSync(tmp, join(dataDir, 'ca'));
      syncDirectory(dataDir);
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      const code = (err as { code?: string }).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') return;
      throw err;
    }
  }

  chain(): x509.X509Certificate[] {
    return [this.cert];
  }

  async issue(order: IssueOrder): Promise<x509.X509Certificate> {
    return new x509.X509Certificate(await this.issueDer(order));
  }

  issueDer(order: IssueOrder): Promise<Uint8Array> {
    return this.sign(order, { subjectKeyId: true });
  }

  /**
   * Smart card logon certificates, the ones issued at volume, come from the prepared parts
   * (prepared.ts); anything else through @peculiar/x509's generic generator.
   */
  private async sign(order: IssueOrder, o: { subjectKeyId: boolean }): Promise<Uint8Array> {
    if (order.template.kind !== 'smartcard-logon') return new Uint8Array((await this.generic(order, o)).rawData);
    if (order.template.sid !== undefined) checkDomainSid(order.template.sid);
    try {
      return await this.prepared.issue(
        {
          serial: order.serial,
          notBefore: order.notBefore,
          notAfter: order.notAfter,
          subject: new Uint8Array((typeof order.subject === 'string' ? new x509.Name(order.subject) : order.subject).toArrayBuffer()),
          spki: new Uint8Array(order.publicKey.rawData),
          ...(order.template.userPrincipalName !== undefined ? { userPrincipalName: order.template.userPrincipalName } : {}),
          ...(order.template.dnsNames !== undefined ? { dnsNames: order.template.dnsNames } : {}),
          ...(order.template.sid !== undefined ? { sid: order.template.sid } : {}),
          subjectKeyId: o.subjectKeyId,
        },
        this.urls,
      );
    } catch (err) {
      throw new ServiceError('CA', `the embedded CA could not sign: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * The certificate for `order` through @peculiar/x509's generic generator: the path for templates
   * without prepared parts, and the reference the prepared path is tested against.
   */
  async generic(order: IssueOrder, o: { subjectKeyId: boolean } = { subjectKeyId: true }): Promise<x509.X509Certificate> {
    const extensions = extensionsFor(order.template, order.publicKey);
    if (o.subjectKeyId) extensions.push(await x509.SubjectKeyIdentifierExtension.create(order.publicKey));
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(this.cert));
    // A delegated OCSP responder's certificate is checked by nobody (id-pkix-ocsp-nocheck): no pointers to revocation.
    const urls: CaUrls = order.template.kind === 'ocsp-responder' ? {} : this.urls;
    if (urls.crl !== undefined) extensions.push(new x509.CRLDistributionPointsExtension([urls.crl]));
    const aia = authorityInfoAccessParams(urls);
    if (aia !== undefined) extensions.push(new x509.AuthorityInfoAccessExtension(aia));
    try {
      return await x509.X509CertificateGenerator.create({
        serialNumber: order.serial,
        subject: order.subject,
        issuer: this.cert.subjectName,
        notBefore: order.notBefore,
        notAfter: order.notAfter,
        publicKey: order.publicKey,
        signingKey: this.key,
        signingAlgorithm: this.signing,
        extensions,
      });
    } catch (err) {
      throw new ServiceError('CA', `the embedded CA could not sign: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * For the demo and tests: a smart card logon certificate for a key (a card's: only its public
   * half is ever here), with a fresh serial, valid `days` from `notBefore` (default now). DER.
   * It leaves out the subject key identifier (a SHOULD for end entities in RFC 5280 §4.2.1.2,
   * which Windows logon does not need): the card tests and `bench load` count the APDUs and bytes
   * of installing exactly these certificates, and those numbers must stay comparable.
   */
  async issueFor(publicKey: KeyObject, o: { subject: string; userPrincipalName?: string; dnsNames?: string[]; sid?: string; notBefore?: Date; days?: number }): Promise<Uint8Array> {
    const notBefore = o.notBefore ?? new Date();
    return this.sign({
      serial: newSerial(),
      notBefore,
      notAfter: new Date(notBefore.getTime() + (o.days ?? 365) * DAY),
      subject: o.subject,
      publicKey: new x509.PublicKey(publicKey.export({ type: 'spki', format: 'der' })),
      template: {
        kind: 'smartcard-logon',
        ...(o.userPrincipalName !== undefined ? { userPrincipalName: o.userPrincipalName } : {}),
        ...(o.dnsNames !== undefined ? { dnsNames: o.dnsNames } : {}),
        ...(o.sid !== undefined ? { sid: o.sid } : {}),
      },
    }, { subjectKeyId: false });
  }

  async signCrl(order: CrlOrder): Promise<Buffer> {
    const crl = await x509.X509CrlGenerator.create({
      issuer: this.cert.subjectName,
      thisUpdate: order.thisUpdate,
      nextUpdate: order.nextUpdate,
      signingKey: this.key,
      signingAlgorithm: this.signing,
      entries: order.entries.map((e) => ({ serialNumber: e.serial, revocationDate: e.revokedAt, reason: e.reason })),
      extensions: [
        await x509.AuthorityKeyIdentifierExtension.create(this.cert),
        new x509.Extension(OID.crlNumber, false, crlNumber(order.number)),
      ],
    });
    return Buffer.from(crl.rawData);
  }
}
