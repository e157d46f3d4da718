import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPublicKey, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { AlgorithmIdentifier, Name, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { x509 } from '../../src/x509.js';
import { BACKENDS, login, makeToken, startTestService, tempDir, type TestService } from './helpers.js';

/** A PKCS#10 request made by openssl with the given key options, as PEM. */
function opensslCsr(dir: string, name: string, args: string[]): string {
  const out = join(dir, `${name}.csr`);
  execFileSync('openssl', ['req', '-new', ...args, '-nodes', '-keyout', join(dir, `${name}.key`), '-subj', `/CN=${name}@example.com`, '-out', out], { stdio: 'pipe' });
  return readFileSync(out, 'utf8');
}

/**
 * A request for an RSA key of `bits` bits. The modulus is random (generating a real 8200-bit key
 * takes minutes) and the signature is garbage: the size is refused before any signature is checked.
 */
function oversizedRsaCsr(bits: number): string {
  const n = randomBytes(bits / 8);
  n[0]! |= 0x80;
  n[n.length - 1]! |= 1;
  const spki = createPublicKey({ key: { kty: 'RSA', n: n.toString('base64url'), e: 'AQAB' }, format: 'jwk' }).export({ type: 'spki', format: 'der' });
  const csr = new CertificationRequest({
    certificationRequestInfo: new CertificationRequestInfo({ version: 0, subject: new Name(), subjectPKInfo: AsnConvert.parse(spki, SubjectPublicKeyInfo) }),
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm: '1.2.840.113549.1.1.11', parameters: null }),
    signature: new Uint8Array(randomBytes(bits / 8)).buffer,
  });
  return Buffer.from(AsnConvert.serialize(csr)).toString('base64');
}

describe('strictness: key policy, no-store, 413, TLS suites', () => {
  let t: TestService;
  let op: string;
  let dir: string;
  before(async () => {
    t = await startTestService(BACKENDS[0]!);
    op = await login(t.client);
    dir = tempDir('cardlink-strict-');
  });
  after(async () => t.close());

  async function submit(user: string, csr: string): Promise<{ status: number; body: string }> {
    const token = await makeToken(t.client, op, `${user}@example.com`, 'smartcard-logon-auto');
    const res = await t.client.raw('POST', '/api/v1/requests', { bearer: token, json: { csr } });
    return { status: res.status, body: res.body.toString() };
  }

  test('an RSA-PSS key is certified without keyEncipherment (RFC 4055); an rsaEncryption key keeps it', async () => {
    const pss = await submit('pss', opensslCsr(dir, 'pss', ['-newkey', 'rsa-pss', '-pkeyopt', 'rsa_keygen_bits:2048']));
    assert.equal(pss.status, 200, pss.body);
    const cert = new x509.X509Certificate((JSON.parse(pss.body) as { certificate: string }).certificate);
    const usage = cert.getExtension(x509.KeyUsagesExtension)!.usages;
    assert.equal(usage & x509.KeyUsageFlags.keyEncipherment, 0);
    assert.ok(usage & x509.KeyUsageFlags.digitalSignature);

    const rsa = await submit('rsa', opensslCsr(dir, 'rsa', ['-newkey', 'rsa:2048']));
    const rsaCert = new x509.X509Certificate((JSON.parse(rsa.body) as { certificate: string }).certificate);
    assert.ok(rsaCert.getExtension(x509.KeyUsagesExtension)!.usages & x509.KeyUsageFlags.keyEncipherment);
  });

  test('e = 3, SHA-1 signatures and keys above 8192 bits are refused with the reason', async () => {
    const e3 = await submit('e3', opensslCsr(dir, 'e3', ['-newkey', 'rsa:2048', '-pkeyopt', 'rsa_keygen_pubexp:3']));
    assert.equal(e3.status, 400);
    assert.match(e3.body, /RSA public exponent 3: only 65537/);
    const sha1 = await submit('sha1', opensslCsr(dir, 'sha1', ['-newkey', 'rsa:2048', '-sha1']));
    assert.equal(sha1.status, 400);
    assert.match(sha1.body, /signed with SHA-1: sign it with SHA-256/);
    const big = await submit('big', oversizedRsaCsr(8200));
    assert.equal(big.status, 400);
    assert.match(big.body, /RSA key of 8200 bits: 8192 at most/);
  });

  test('Cache-Control: no-store on every answer: JSON, errors, EST', async () => {
    const answers = [
      await t.client.raw('POST', '/api/v1/sessions', { json: { username: 'admin', password: 'correct horse battery staple' } }),
      await t.client.raw('GET', '/api/v1/tokens', { bearer: op }),
      await t.client.raw('GET', '/api/v1/tokens'),
      await t.client.raw('GET', '/api/v1/nowhere'),
      await t.client.raw('GET', '/.well-known/est/cacerts'),
      await t.client.raw('GET', '/api/v1/crl'),
    ];
    for (const a of answers) assert.equal(a.headers['cache-control'], 'no-store', `status ${a.status}`);
  });

  test('a body over the limit is 413, not 400', async () => {
    const res = await t.client.raw('POST', '/api/v1/sessions', { body: JSON.stringify({ username: 'a', password: 'x'.repeat(300 * 1024) }), contentType: 'application/json' });
    assert.equal(res.status, 413);
    assert.match(res.body.toString(), /TOO_LARGE/);
  });

  test('TLS 1.2 offers no CBC-SHA1 suite; AEAD suites connect', async () => {
    const url = new URL(t.svc.url);
    const attempt = (ciphers: string) =>
      new Promise<string>((resolve) => {
        const s = connect({ host: url.hostname, port: Number(url.port), ca: t.svc.caCertPem, servername: 'localhost', maxVersion: 'TLSv1.2', ciphers }, () => {
          resolve(s.getCipher().standardName);
          s.destroy();
        });
        s.on('error', (err) => resolve(`refused: ${err.message}`));
      });
    for (const weak of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA', 'ECDHE-ECDSA-AES128-SHA256', 'AES128-SHA']) {
      assert.match(await attempt(weak), /^refused/, weak);
    }
    assert.equal(await attempt('ECDHE-ECDSA-AES128-GCM-SHA256'), 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256');
  });
});
