import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { createPublicKey, generateKeyPairSync, webcrypto, type KeyObject } from 'node:crypto';
import { EmbeddedCa } from '../../src/service/ca/embedded.js';
import { crlNumber, csrAttrs, newSerial, OID, parseCsr } from '../../src/service/ca/pki.js';
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

  test('the prepared-parts issuance is byte for byte what the generic @peculiar/x509 generator makes of the same order', async () => {
    const rsaCa = await EmbeddedCa.inMemory({ name: 'CN=prepared, O=cardlink', crlUrl: 'https://ca.example.com/api/v1/crl', aia: { ocsp: 'http://ca.example.com/ocsp', caIssuers: 'http://ca.example.com/ca.crt' } });
    const ecCa = await EmbeddedCa.inMemory({ name: 'CN=prepared P-256', keyType: 'p-256' });
    const keys = [
      new x509.PublicKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' })),
      new x509.PublicKey(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ type: 'spki', format: 'der' })),
      new x509.PublicKey(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' })),
    ];
    const upn = fc.tuple(fc.stringMatching(/^[A-Za-z0-9._%+'-]{1,64}$/), fc.stringMatching(/^[a-z0-9]{1,20}(\.[a-z]{2,10}){0,3}$/)).map(([l, d]) => `${l}@${d}`);
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          serial: fc.uint8Array({ minLength: 1, maxLength: 20 }).map((b) => Buffer.from(b).toString('hex')).filter((h) => /[1-9a-f]/.test(h)),
          // Both sides of RFC 5280's UTCTime/GeneralizedTime switch in 2050, with milliseconds.
          notBefore: fc.date({ min: new Date(Date.UTC(2000, 0, 1)), max: new Date(Date.UTC(2060, 0, 1)), noInvalidDate: true }),
          days: fc.integer({ min: 1, max: 3650 }),
          key: fc.constantFrom(...keys),
          upn: fc.option(upn, { nil: undefined }),
          dnsNames: fc.option(fc.array(fc.stringMatching(/^[a-z0-9]{1,12}\.example\.com$/), { maxLength: 3 }), { nil: undefined }),
          subjectKeyId: fc.boolean(),
          ec: fc.boolean(),
          sid: fc.option(fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 4, maxLength: 4 }).map((n) => `S-1-5-21-${n.join('-')}`), { nil: undefined }),
        }),
        async (o) => {
          const ca = o.ec ? ecCa : rsaCa;
          const order = {
            serial: o.serial, notBefore: o.notBefore, notAfter: new Date(o.notBefore.getTime() + o.days * 86_400_000), subject: new x509.Name([{ CN: [o.upn ?? 'nobody'] }]), publicKey: o.key,
            template: {
              kind: 'smartcard-logon' as const, ...(o.upn !== undefined ? { userPrincipalName: o.upn } : {}), ...(o.dnsNames !== undefined ? { dnsNames: o.dnsNames } : {}),
              ...(o.sid !== undefined ? { sid: o.sid } : {}),
            },
          };
          // issue() with a subject key identifier, issueFor() (the card tests' certificates) without one.
          const forCard = {
            subject: 'CN=card test', notBefore: o.notBefore, days: o.days, ...(o.upn !== undefined ? { userPrincipalName: o.upn } : {}), ...(o.dnsNames !== undefined ? { dnsNames: o.dnsNames } : {}),
            ...(o.sid !== undefined ? { sid: o.sid } : {}),
          };
          const fast = new x509.X509Certificate(o.subjectKeyId ? await ca.issueDer(order) : await ca.issueFor(await keyObject(o.key), forCard));
          const reference = await ca.generic(o.subjectKeyId ? order : { ...order, subject: 'CN=card test', serial: fast.serialNumber.toLowerCase() }, { subjectKeyId: o.subjectKeyId });
          assert.ok(await fast.verify({ publicKey: ca.chain()[0]!.publicKey, signatureOnly: true }), 'the prepared certificate verifies under the CA key');
          assert.equal(fast.getExtension(OID.ntdsCaSecurity) !== null, o.sid !== undefined, 'the SID extension is there exactly when a SID is given');
          assert.equal(fast.getExtension(x509.AuthorityInfoAccessExtension) !== null, !o.ec, 'authority information access when the CA has URLs');
          // ECDSA signatures differ each time: the signed parts must be equal; RSA PKCS#1 v1.5 gives the whole certificate.
          if (o.ec) assert.equal(hexOf(tbsOf(fast)), hexOf(tbsOf(reference)));
          else assert.equal(hexOf(fast.rawData), hexOf(reference.rawData));
        },
      ),
      { numRuns: 60 },
    );
  });

  test('a request\'s self-signature is checked over the bytes received: any changed byte of the signed part or the signature is refused', async () => {
    const kinds = [
      { key: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
      { key: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } },
      { key: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, sign: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } },
      { key: { name: 'RSA-PSS', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, sign: { name: 'RSA-PSS', hash: 'SHA-256', saltLength: 32 } },
    ];
    for (const kind of kinds) {
      const keys = (await webcrypto.subtle.generateKey(kind.key, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      const der = new Uint8Array((await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=signed by its key', keys, signingAlgorithm: kind.sign })).rawData);
      const parsed = await parseCsr(der);
      assert.equal(parsed.subject, 'CN=signed by its key', `${kind.sign.name}: a good request is accepted`);
      // Flip one bit in the subject's value (inside the signed part) and in the signature's last byte.
      const name = Buffer.from(der).indexOf(Buffer.from('signed by its key'));
      for (const at of [name + 3, der.length - 1]) {
        const bad = der.slice();
        bad[at]! ^= 0x01;
        await assert.rejects(parseCsr(bad), { code: 'CSR_INVALID' }, `${kind.sign.name}: byte ${at} of ${der.length} changed`);
      }
    }
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

function hexOf(b: ArrayBuffer): string {
  return Buffer.from(b).toString('hex');
}

/** The tbsCertificate DER of a certificate: the first element of its outer SEQUENCE. */
function tbsOf(cert: x509.X509Certificate): ArrayBuffer {
  const der = new Uint8Array(cert.rawData);
  const at = (der[1]! & 0x80) === 0 ? 2 : 2 + (der[1]! & 0x7f);
  const lenBytes = (der[at + 1]! & 0x80) === 0 ? 0 : der[at + 1]! & 0x7f;
  let len = lenBytes === 0 ? der[at + 1]! : 0;
  for (let i = 0; i < lenBytes; i++) len = len * 256 + der[at + 2 + i]!;
  return der.slice(at, at + 2 + lenBytes + len).buffer;
}

async function keyObject(pub: x509.PublicKey): Promise<KeyObject> {
  return createPublicKey({ key: Buffer.from(pub.rawData), format: 'der', type: 'spki' });
}
