import { execFileSync } from 'node:child_process';
import type { KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddedCa } from '../../src/service/ca/embedded.js';
import { tempDir } from './card.js';

let ca: Promise<EmbeddedCa> | undefined;

/** A certificate for `publicKey` from cardlink's own CA (in memory), padded with `sans` DNS names. */
export async function issueOurs(publicKey: KeyObject, sans = 0, subject = 'CN=Test User'): Promise<Uint8Array> {
  ca ??= EmbeddedCa.inMemory();
  return (await ca).issueFor(publicKey, { subject, dnsNames: Array.from({ length: sans }, (_, i) => `host-${i}.workstations.example.com`) });
}

let opensslCa: { dir: string } | undefined;

/** A certificate issued by the `openssl` command line from a PKCS#10 request (PEM). */
export function issueWithOpenssl(csrPem: string, sans = 0): Uint8Array {
  if (!opensslCa) {
    const dir = tempDir('cardlink-openssl-ca-');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.pem'), '-subj', '/CN=OpenSSL test CA', '-days', '30'], { stdio: 'pipe' });
    opensslCa = { dir };
  }
  const { dir } = opensslCa;
  const csr = join(dir, `req-${process.hrtime.bigint()}.pem`);
  writeFileSync(csr, csrPem);
  const ext = join(dir, `ext-${process.hrtime.bigint()}.cnf`);
  const names = Array.from({ length: sans }, (_, i) => `DNS:o${i}.openssl.example.org`);
  writeFileSync(ext, `[v3]\nextendedKeyUsage = clientAuth, 1.3.6.1.4.1.311.20.2.2\nkeyUsage = critical, digitalSignature, keyEncipherment\n${names.length ? `subjectAltName = ${names.join(', ')}\n` : ''}`);
  const out = join(dir, `cert-${process.hrtime.bigint()}.der`);
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', join(dir, 'ca.pem'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-days', '30', '-extfile', ext, '-extensions', 'v3', '-outform', 'DER', '-out', out], { stdio: 'pipe' });
  return new Uint8Array(readFileSync(out));
}
