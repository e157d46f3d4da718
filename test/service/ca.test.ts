import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { generateKeyPairSync } from 'node:crypto';
import { EmbeddedCa } from '../../src/service/ca/embedded.js';
import { crlNumber, csrAttrs, newSerial, OID } from '../../src/service/ca/pki.js';
import { hashPassword, verifyPassword } from '../../src/service/auth.js';
import { startService } from '../../src/service/index.js';
import { x509 } from '../../src/x509.js';
import { BACKENDS, CA_PASSPHRASE, login, makeToken, OPERATOR, softKey, startTestService, tempDir } from './helpers.js';

describe('embedded CA and data directory', () => {
  test('first start: owner-only files, keys encrypted on disk, secrets never stored in the clear', async () => {
    const t = await startTestService(BACKENDS[0]!);
    let token: string;
    let session: string;
    try {
      session = await login(t.client);
      token = await makeToken(t.client, session, 'frank@example.com');
    } finally {
      await t.close();
    }
    const files: string[] = [];
    const walk = (d: string): void => {
      assert.equal(statSync(d).mode & 0o077, 0, `${d} is owner-only`);
      for (const f of readdirSync(d)) {
        const p = join(d, f);
        if (statSync(p).isDirectory()) walk(p);
        else files.push(p);
      }
    };
    walk(t.dataDir);
    for (const f of files) assert.equal(statSync(f).mode & 0o077, 0, `${f} is owner-only`);
    const key = readFileSync(join(t.dataDir, 'ca', 'key.pem'), 'utf8');
    assert.match(key, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    assert.match(readFileSync(join(t.dataDir, 'tls.pem'), 'utf8'), /-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    for (const f of files) {
      const bytes = readFileSync(f);
      for (const secret of [token, session, OPERATOR.password, CA_PASSPHRASE]) assert.equal(bytes.includes(secret), false, `${f} holds a secret in the clear`);
      assert.equal(bytes.includes('-----BEGIN PRIVATE KEY-----'), false);
    }
  });

  test('a restart keeps the CA; a wrong passphrase is refused with a message that says so', async () => {
    const dataDir = tempDir();
    const a = await startService({ dataDir, port: 0, passphrase: CA_PASSPHRASE, sweepIntervalMs: 0 });
    const pem = a.caCertPem;
    await a.close();
    const b = await startService({ dataDir, port: 0, passphrase: CA_PASSPHRASE, sweepIntervalMs: 0 });
    assert.equal(b.caCertPem, pem);
    await b.close();
    await assert.rejects(startService({ dataDir, port: 0, passphrase: 'not the passphrase', sweepIntervalMs: 0 }), { code: 'CONFIG', message: /CARDLINK_CA_PASSPHRASE/ });
  });

  test('the CA certificate is a CA for certificates and CRLs only', async () => {
    const ca = await EmbeddedCa.open(tempDir(), CA_PASSPHRASE, new Date());
    const cert = ca.chain()[0]!;
    const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
    assert.deepEqual([bc.ca, bc.pathLength, bc.critical], [true, 0, true]);
    assert.equal(cert.getExtension(x509.KeyUsagesExtension)!.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    assert.ok(await cert.verify({ signatureOnly: true }));
  });

  test('signing the same order twice gives the same certificate (what makes a retried issuance harmless)', async () => {
    const ca = await EmbeddedCa.open(tempDir(), CA_PASSPHRASE, new Date());
    const key = await softKey();
    const publicKey = new x509.Pkcs10CertificateRequest(key.csrDer).publicKey;
    const order = { serial: newSerial(), notBefore: new Date(Date.UTC(2026, 0, 1)), notAfter: new Date(Date.UTC(2027, 0, 1)), subject: 'CN=g@example.com', publicKey, template: { kind: 'smartcard-logon' as const, userPrincipalName: 'g@example.com' } };
    const [one, two] = await Promise.all([ca.issue(order), ca.issue(order)]);
    assert.deepEqual(Buffer.from(one.rawData), Buffer.from(two.rawData));
    assert.equal(one.serialNumber.toLowerCase(), order.serial);
  });

  test('the in-memory CA is the same implementation: its certificates chain to it and carry the smart card logon profile', async () => {
    const ca = await EmbeddedCa.inMemory({ name: 'CN=test in memory' });
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const der = await ca.issueFor(publicKey, { subject: 'CN=h', userPrincipalName: 'h@example.com', dnsNames: ['h.example.com'], days: 10 });
    const cert = new x509.X509Certificate(der);
    const issuer = ca.chain()[0]!;
    assert.equal(issuer.subject, 'CN=test in memory');
    assert.equal(cert.issuer, issuer.subject);
    assert.ok(await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true }));
    assert.equal(cert.notAfter.getTime() - cert.notBefore.getTime(), 10 * 86_400_000);
    assert.deepEqual([...cert.getExtension(x509.ExtendedKeyUsageExtension)!.usages], [OID.clientAuth, OID.smartcardLogon]);
    assert.equal(cert.getExtension(x509.KeyUsagesExtension)!.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    assert.deepEqual(cert.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON(), [{ type: 'upn', value: 'h@example.com' }, { type: 'dns', value: 'h.example.com' }]);
    assert.equal(Buffer.from(cert.publicKey.rawData).equals(publicKey.export({ type: 'spki', format: 'der' })), true);
    // issueFor leaves out the subject key identifier (test certificates keep their size); issue() does not.
    assert.equal(cert.getExtension(x509.SubjectKeyIdentifierExtension), null);
    const order = { serial: newSerial(), notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000), subject: 'CN=h', publicKey: cert.publicKey, template: { kind: 'smartcard-logon' as const, userPrincipalName: 'h@example.com' } };
    assert.ok((await ca.issue(order)).getExtension(x509.SubjectKeyIdentifierExtension));
  });

  test('CsrAttrs and the CRL number are DER from the ASN.1 library, byte for byte what RFC 7030 and RFC 5280 want', () => {
    // SEQUENCE { OID sha256WithRSAEncryption, OID ecdsa-with-SHA256 }
    assert.equal(csrAttrs([OID.sha256WithRSA, OID.ecdsaWithSha256]).toString('hex'), '301506092a864886f70d01010b06082a8648ce3d040302');
    // INTEGER, two's complement, shortest form: 128 needs a leading zero byte.
    assert.deepEqual([0, 127, 128, 256, 70000].map((n) => crlNumber(n).toString('hex')), ['020100', '02017f', '02020080', '02020100', '0203011170']);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => {
        const der = crlNumber(n);
        const content = der.subarray(2);
        assert.deepEqual([der[0], der[1]], [0x02, content.length]);
        assert.equal(BigInt(`0x${content.toString('hex')}`), BigInt(n));
        assert.ok(content[0]! < 0x80, 'non-negative');
        assert.ok(content.length === 1 || content[0] !== 0 || content[1]! >= 0x80, 'shortest form');
      }),
    );
  });

  test('serial numbers: 16 bytes, positive, no leading zero, as the certificate carries them (property)', () => {
    fc.assert(
      fc.property(fc.integer(), () => {
        const s = newSerial();
        assert.match(s, /^[4-7][0-9a-f]{31}$/);
      }),
      { numRuns: 500 },
    );
    const many = new Set(Array.from({ length: 10_000 }, newSerial));
    assert.equal(many.size, 10_000);
  });

  test('operator passwords: scrypt, salted, checked; short ones refused', async () => {
    const h1 = await hashPassword('a long enough password');
    const h2 = await hashPassword('a long enough password');
    assert.match(h1, /^scrypt\$32768\$8\$1\$/);
    assert.notEqual(h1, h2);
    assert.equal(await verifyPassword('a long enough password', h1), true);
    assert.equal(await verifyPassword('a long enough passwore', h1), false);
    await assert.rejects(hashPassword('short'), { code: 'BAD_REQUEST' });
  });

  test('a wrong operator password is refused and audited', async () => {
    const t = await startTestService(BACKENDS[0]!);
    try {
      await assert.rejects(t.client.login({ username: 'admin', password: 'wrong password!' }), { status: 401 });
      await assert.rejects(t.client.login({ username: 'nobody', password: 'wrong password!' }), { status: 401 });
      const op = await login(t.client);
      const value = await t.client.audit(op, { action: 'session.refused' });
      assert.deepEqual(value.map((e) => e.subject), ['operator:admin', 'operator:nobody']);
    } finally {
      await t.close();
    }
  });
});
