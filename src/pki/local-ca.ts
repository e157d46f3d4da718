import { randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { x509 } from '../x509.js';

type CryptoKeyPair = webcrypto.CryptoKeyPair;

const RSA_SHA256: webcrypto.RsaHashedKeyGenParams = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };

/** OIDs of the smart card logon profile (RFC 5280, Microsoft). */
export const OID = {
  clientAuth: '1.3.6.1.5.5.7.3.2',
  smartcardLogon: '1.3.6.1.4.1.311.20.2.2',
  upn: '1.3.6.1.4.1.311.20.2.3',
} as const;

export interface IssueOptions {
  subject: string;
  /** DNS names / e-mail addresses / UPNs for the subject alternative name. */
  dns?: string[];
  emails?: string[];
  upn?: string;
  notBefore?: Date;
  days?: number;
  /** Extended key usages; default client authentication + smart card logon. */
  eku?: string[];
}

/**
 * A throwaway certificate authority living in memory: for the demonstration and tests, where a
 * certificate must come back "days later" for a key generated on the card.
 */
export class LocalCa {
  private constructor(
    readonly certificate: x509.X509Certificate,
    private readonly keys: CryptoKeyPair,
  ) {}

  static async create(name = 'CN=cardlink throwaway CA', notBefore = new Date()): Promise<LocalCa> {
    const keys = (await webcrypto.subtle.generateKey(RSA_SHA256, true, ['sign', 'verify'])) as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name,
      notBefore: new Date(notBefore.getTime() - 3600_000),
      notAfter: new Date(notBefore.getTime() + 3650 * 86400_000),
      signingAlgorithm: RSA_SHA256,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return new LocalCa(cert, keys);
  }

  /** Issues a certificate for a public key (a card's key: only the public half is ever here). */
  async issue(publicKey: KeyObject, options: IssueOptions): Promise<x509.X509Certificate> {
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    const subjectKey = await webcrypto.subtle.importKey('spki', spki, RSA_SHA256, true, ['verify']);
    const notBefore = options.notBefore ?? new Date();
    const names: x509.JsonGeneralName[] = [
      ...(options.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
      ...(options.emails ?? []).map((value) => ({ type: 'email' as const, value })),
      ...(options.upn ? [{ type: 'upn' as const, value: options.upn }] : []),
    ];
    return x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: options.subject,
      issuer: this.certificate.subject,
      notBefore,
      notAfter: new Date(notBefore.getTime() + (options.days ?? 365) * 86400_000),
      signingAlgorithm: RSA_SHA256,
      publicKey: subjectKey,
      signingKey: this.keys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension(options.eku ?? [OID.clientAuth, OID.smartcardLogon]),
        ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : []),
        await x509.AuthorityKeyIdentifierExtension.create(this.certificate),
      ],
    });
  }
}

/** 16 random bytes with the top bit clear: positive, and never repeating in practice. */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}
