import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { x509 } from '../x509.js';
import { decryptKey, encryptedPkcs8 } from './ca/embedded.js';
import { newSerial } from './ca/pki.js';
import type { UpstreamCa } from './ca/upstream.js';
import type { Storage } from './storage/storage.js';

const DAY = 86_400_000;

export interface TlsMaterial {
  /** Encrypted PKCS#8 PEM; `passphrase` opens it inside the TLS stack only. */
  key: string;
  passphrase: string;
  /** Server certificate then the CA chain, PEM. */
  cert: string;
}

/** The names the service's certificate must cover for a listen address. */
export function serverNames(listenHost: string): { dnsNames: string[]; ipAddresses: string[] } {
  const dns = new Set(['localhost', hostname()]);
  const ips = new Set(['127.0.0.1', '::1']);
  if (isIP(listenHost)) {
    if (listenHost !== '0.0.0.0' && listenHost !== '::') ips.add(listenHost);
  } else dns.add(listenHost);
  return { dnsNames: [...dns].sort(), ipAddresses: [...ips].sort() };
}

function covers(cert: x509.X509Certificate, names: { dnsNames: string[]; ipAddresses: string[] }): boolean {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  if (!san) return false;
  const have = new Set(san.names.items.map((n) => `${n.type}:${n.value}`));
  return names.dnsNames.every((d) => have.has(`dns:${d}`)) && names.ipAddresses.every((ip) => have.has(`ip:${ip}`));
}

/**
 * `DIR/tls.pem`: the HTTPS key (encrypted) and a certificate from the CA, remade when it no
 * longer covers the listen names, nears its end, or comes from another CA. Replaced by rename,
 * so a second process starting at the same time reads either the old file or the new one.
 */
export async function ensureTlsCertificate(dataDir: string, ca: UpstreamCa, storage: Storage, listenHost: string, passphrase: string, now: Date): Promise<TlsMaterial> {
  const file = join(dataDir, 'tls.pem');
  const names = serverNames(listenHost);
  const chainPem = ca.chain().map((c) => c.toString('pem')).join('\n');
  if (existsSync(file)) {
    const text = readFileSync(file, 'utf8');
    const certPem = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)?.[0];
    const keyPem = text.match(/-----BEGIN ENCRYPTED PRIVATE KEY-----[\s\S]+?-----END ENCRYPTED PRIVATE KEY-----/)?.[0];
    if (certPem && keyPem) {
      const cert = new x509.X509Certificate(certPem);
      const issuer = ca.chain()[0]!;
      const fresh = cert.notAfter.getTime() - now.getTime() > 30 * DAY && cert.notBefore.getTime() <= now.getTime();
      if (fresh && covers(cert, names) && (await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true }))) {
        decryptKey(keyPem, passphrase, file);
        return { key: keyPem, passphrase, cert: `${certPem}\n${chainPem}` };
      }
    }
  }
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pub = new x509.PublicKey(publicKey.export({ type: 'spki', format: 'der' }));
  const serial = newSerial();
  const notBefore = new Date(now.getTime() - 3_600_000);
  const notAfter = new Date(now.getTime() + 397 * DAY);
  const cert = await ca.issue({ serial, notBefore, notAfter, subject: 'CN=cardlink enrollment service', publicKey: pub, template: { kind: 'tls-server', ...names } });
  await storage.recordCertificate(
    { serial, subject: cert.subject, der: Buffer.from(cert.rawData), notBefore: notBefore.getTime(), notAfter: notAfter.getTime(), issuedAt: now.getTime() },
    'service TLS',
    'system',
  );
  const keyPem = encryptedPkcs8(privateKey, passphrase).trim();
  const certPem = cert.toString('pem');
  const tmp = `${file}.${randomBytes(6).toString('hex')}`;
  writeFileSync(tmp, `${keyPem}\n${certPem}\n`, { mode: 0o600 });
  renameSync(tmp, file);
  return { key: keyPem, passphrase, cert: `${certPem}\n${chainPem}` };
}
