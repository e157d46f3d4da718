import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { pemBlock, toPem } from '../pem.js';
import { x509 } from '../x509.js';
import { decryptKey, encryptedPkcs8, needsRewrap } from './ca/encrypted-key.js';
import { newSerial } from './ca/pki.js';
import type { UpstreamCa } from './ca/upstream.js';

const DAY = 86_400_000;

export interface TlsMaterial {
  /** PKCS#8 PEM, in memory only: on disk it is encrypted (ca/encrypted-key.ts). */
  key: string;
  /** Server certificate then the CA chain, PEM. */
  cert: string;
}

/** A certificate the service issued to itself, for the record (its serial is reserved like any other). */
export interface OwnCertificate {
  serial: string;
  subject: string;
  der: Uint8Array;
  notBefore: Date;
  notAfter: Date;
}

/** The names the service's certificate must cover for a listen address. */
function serverNames(listenHost: string): { dnsNames: string[]; ipAddresses: string[] } {
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
 * longer covers the listen names, nears its end, or comes from another CA. Replaced atomically
 * (src/atomic-file.ts), so a second process starting at the same time reads either the old file
 * or the new one. `record` keeps a newly issued certificate in the service's books.
 */
export async function ensureTlsCertificate(
  dataDir: string,
  ca: UpstreamCa,
  listenHost: string,
  passphrase: string,
  now: Date,
  record: (cert: OwnCertificate) => Promise<void>,
): Promise<TlsMaterial> {
  const file = join(dataDir, 'tls.pem');
  const names = serverNames(listenHost);
  const chainPem = ca.chain().map((c) => c.toString('pem')).join('\n');
  if (existsSync(file)) {
    const text = readFileSync(file, 'utf8');
    const certDer = pemBlock(text, 'CERTIFICATE');
    const keyDer = pemBlock(text, 'ENCRYPTED PRIVATE KEY');
    if (certDer && keyDer) {
      const cert = new x509.X509Certificate(certDer);
      const issuer = ca.chain()[0]!;
      const fresh = cert.notAfter.getTime() - now.getTime() > 30 * DAY && cert.notBefore.getTime() <= now.getTime();
      if (fresh && covers(cert, names) && (await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true }))) {
        const keyPem = toPem(keyDer, 'ENCRYPTED PRIVATE KEY').trim();
        // Decrypted once here; the TLS stack gets the key in memory rather than decrypting it again.
        const key = decryptKey(keyPem, passphrase, file);
        // A key wrapped with an older version's weaker parameters gets a new key and certificate below.
        if (!needsRewrap(keyPem)) return { key: key.export({ type: 'pkcs8', format: 'pem' }) as string, cert: `${toPem(certDer, 'CERTIFICATE').trim()}\n${chainPem}` };
      }
    }
  }
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pub = new x509.PublicKey(publicKey.export({ type: 'spki', format: 'der' }));
  const serial = newSerial();
  const notBefore = new Date(now.getTime() - 3_600_000);
  const notAfter = new Date(now.getTime() + 397 * DAY);
  const subject = 'CN=cardlink enrollment service';
  const cert = await ca.issue({ serial, notBefore, notAfter, subject, publicKey: pub, template: { kind: 'tls-server', ...names } });
  await record({ serial, subject: cert.subject, der: new Uint8Array(cert.rawData), notBefore, notAfter });
  const keyPem = encryptedPkcs8(privateKey, passphrase).trim();
  const certPem = cert.toString('pem');
  writeFileAtomic(file, `${keyPem}\n${certPem}\n`);
  return { key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert: `${certPem}\n${chainPem}` };
}
