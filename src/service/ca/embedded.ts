import { createPrivateKey, generateKeyPairSync, randomBytes, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { x509 } from '../../x509.js';
import { ServiceError } from '../errors.js';
import { derInteger, newSerial, OID } from './pki.js';
import type { CrlOrder, IssueOrder, Template, UpstreamCa } from './upstream.js';

type CryptoKey = webcrypto.CryptoKey;

const SIGNING = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;
const CA_YEARS = 10;

/** Writes a private key to disk only encrypted, and every file owner-only. */
export function encryptedPkcs8(key: ReturnType<typeof createPrivateKey>, passphrase: string): string {
  return key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }) as string;
}

export function decryptKey(pem: string, passphrase: string, file: string): ReturnType<typeof createPrivateKey> {
  try {
    return createPrivateKey({ key: pem, format: 'pem', passphrase });
  } catch (err) {
    throw new ServiceError('CONFIG', `cannot decrypt ${file}: wrong CARDLINK_CA_PASSPHRASE?`, { cause: err });
  }
}

async function toWebKey(key: ReturnType<typeof createPrivateKey>): Promise<CryptoKey> {
  const der = key.export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, SIGNING, false, ['sign']) as Promise<CryptoKey>;
}

function extensionsFor(template: Template, publicKey: x509.PublicKey): x509.Extension[] {
  const isRsa = (publicKey.algorithm as { name: string }).name.startsWith('RSA');
  if (template.kind === 'smartcard-logon') {
    const usage = x509.KeyUsageFlags.digitalSignature | (isRsa ? x509.KeyUsageFlags.keyEncipherment : 0);
    return [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(usage, true),
      new x509.ExtendedKeyUsageExtension([OID.clientAuth, OID.smartcardLogon]),
      new x509.SubjectAlternativeNameExtension([{ type: 'upn', value: template.userPrincipalName }]),
    ];
  }
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | (isRsa ? x509.KeyUsageFlags.keyEncipherment : 0), true),
    new x509.ExtendedKeyUsageExtension([OID.serverAuth]),
    new x509.SubjectAlternativeNameExtension([
      ...template.dnsNames.map((value) => ({ type: 'dns' as const, value })),
      ...template.ipAddresses.map((value) => ({ type: 'ip' as const, value })),
    ]),
  ];
}

/**
 * A CA whose RSA key lives in the data directory, encrypted with the operator's passphrase.
 * RSA with PKCS#1 v1.5 signatures is deterministic: signing the same order twice gives the same
 * bytes, which is what makes a retried issuance harmless.
 */
export class EmbeddedCa implements UpstreamCa {
  readonly name = 'embedded';
  private constructor(
    private readonly cert: x509.X509Certificate,
    private readonly key: CryptoKey,
    private readonly crlUrl: string | undefined,
  ) {}

  /**
   * Loads `DIR/ca/`, or makes it on first start. Two services starting together on one data
   * directory both generate, and only one rename wins; the loser loads the winner's.
   */
  static async open(dataDir: string, passphrase: string, now: Date, options: { crlUrl?: string } = {}): Promise<EmbeddedCa> {
    const dir = join(dataDir, 'ca');
    if (!existsSync(join(dir, 'cert.pem'))) await EmbeddedCa.create(dataDir, passphrase, now);
    const keyFile = join(dir, 'key.pem');
    const key = decryptKey(readFileSync(keyFile, 'utf8'), passphrase, keyFile);
    const cert = new x509.X509Certificate(readFileSync(join(dir, 'cert.pem'), 'utf8'));
    return new EmbeddedCa(cert, await toWebKey(key), options.crlUrl);
  }

  private static async create(dataDir: string, passphrase: string, now: Date): Promise<void> {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const tmp = join(dataDir, `.ca-${randomBytes(6).toString('hex')}`);
    mkdirSync(tmp, { mode: 0o700 });
    try {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const spki = publicKey.export({ type: 'spki', format: 'der' });
      const signingKey = await toWebKey(privateKey);
      const pub = await webcrypto.subtle.importKey('spki', spki, SIGNING, true, ['verify']);
      const name = `CN=cardlink CA ${hostname()} ${randomBytes(4).toString('hex')}, O=cardlink`;
      const notBefore = new Date(now.getTime() - 3_600_000);
      const notAfter = new Date(now.getTime());
      notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_YEARS);
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: newSerial(),
        subject: name,
        issuer: name,
        notBefore,
        notAfter,
        publicKey: pub,
        signingKey,
        signingAlgorithm: SIGNING,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
          await x509.SubjectKeyIdentifierExtension.create(pub),
        ],
      });
      writeFileSync(join(tmp, 'key.pem'), encryptedPkcs8(privateKey, passphrase), { mode: 0o600 });
      writeFileSync(join(tmp, 'cert.pem'), cert.toString('pem') + '\n', { mode: 0o600 });
      renameSync(tmp, join(dataDir, 'ca'));
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
    const extensions = extensionsFor(order.template, order.publicKey);
    extensions.push(await x509.SubjectKeyIdentifierExtension.create(order.publicKey));
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(this.cert));
    if (this.crlUrl !== undefined) extensions.push(new x509.CRLDistributionPointsExtension([this.crlUrl]));
    try {
      return await x509.X509CertificateGenerator.create({
        serialNumber: order.serial,
        subject: order.subject,
        issuer: this.cert.subjectName,
        notBefore: order.notBefore,
        notAfter: order.notAfter,
        publicKey: order.publicKey,
        signingKey: this.key,
        signingAlgorithm: SIGNING,
        extensions,
      });
    } catch (err) {
      throw new ServiceError('CA', `the embedded CA could not sign: ${(err as Error).message}`, { cause: err });
    }
  }

  async signCrl(order: CrlOrder): Promise<Buffer> {
    const crl = await x509.X509CrlGenerator.create({
      issuer: this.cert.subjectName,
      thisUpdate: order.thisUpdate,
      nextUpdate: order.nextUpdate,
      signingKey: this.key,
      signingAlgorithm: SIGNING,
      entries: order.entries.map((e) => ({ serialNumber: e.serial, revocationDate: e.revokedAt, reason: e.reason })),
      extensions: [
        await x509.AuthorityKeyIdentifierExtension.create(this.cert),
        new x509.Extension(OID.crlNumber, false, derInteger(order.number)),
      ],
    });
    return Buffer.from(crl.rawData);
  }
}
