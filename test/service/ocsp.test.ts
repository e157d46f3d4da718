/**
 * Revocation as relying parties check it, with OpenSSL as the relying party: `openssl ocsp`
 * against the service's OCSP responder and `openssl verify -crl_check` with the CRL it serves,
 * both over the plain-HTTP revocation listener the certificates point at.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AsnConvert } from '@peculiar/asn1-schema';
import { BasicOCSPResponse, OCSPResponse, OCSPResponseStatus } from '@peculiar/asn1-ocsp';
import { EmbeddedCa } from '../../src/service/ca/embedded.js';
import { MAX_NONCE, memoryKeyStore, OcspResponder, RESPONDER_RENEW_BEFORE_MS, RESPONDER_VALIDITY_MS, type StatusSource } from '../../src/service/ca/ocsp.js';
import { OID } from '../../src/service/ca/pki.js';
import { ServiceClient } from '../../src/service/client.js';
import { ManualClock, startService, type RunningService } from '../../src/service/index.js';
import { toPem } from '../../src/pem.js';
import { x509 } from '../../src/x509.js';
import { opensslAsync } from '../helpers/openssl.js';
import { BACKENDS, CA_PASSPHRASE, login, makeToken, OPERATOR, softKey, spawnServe, startTestService, tempDir } from './helpers.js';

interface Issued {
  id: string;
  serial: string;
  file: string;
}

function http(port: number, method: 'GET' | 'POST', path: string, body?: Uint8Array, contentType = 'application/ocsp-request'): Promise<{ status: number; type: string | undefined; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: body ? { 'content-type': contentType, 'content-length': body.length } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'], body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const openssl = opensslAsync;

function responseStatus(der: Buffer): OCSPResponseStatus {
  return AsnConvert.parse(der, OCSPResponse).responseStatus;
}

describe('revocation relying parties can check (openssl ocsp, openssl verify -crl_check)', () => {
  let svc: RunningService;
  let client: ServiceClient;
  let op: string;
  let dir: string;
  let caFile: string;
  let ocspUrl: string;
  const certs: Issued[] = [];

  async function issue(user: string): Promise<Issued> {
    const token = await makeToken(client, op, user, 'smartcard-logon-auto');
    const key = await softKey(`CN=${user}`);
    const answer = await client.submit(token, { csr: key.csrPem });
    assert.equal(answer.value.state, 'issued');
    const file = join(dir, `${answer.value.serial}.pem`);
    writeFileSync(file, answer.value.certificate!);
    return { id: answer.value.id, serial: answer.value.serial!, file };
  }

  before(async () => {
    dir = tempDir();
    svc = await startService({ dataDir: join(dir, 'data'), port: 0, revocationPort: 0, passphrase: CA_PASSPHRASE, operator: OPERATOR, sweepIntervalMs: 0 });
    client = new ServiceClient({ server: svc.url, ca: svc.caCertPem });
    op = await login(client);
    caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, svc.caCertPem);
    ocspUrl = `${svc.revocationUrl}/ocsp`;
    for (const user of ['good@example.com', 'lost@example.com', 'retired@example.com', 'away@example.com']) certs.push(await issue(user));
  });

  after(async () => {
    client.close();
    await svc.close();
  });

  test('issued certificates point at the revocation listener: CRL distribution point, OCSP and caIssuers, and the caIssuers URL serves the CA as DER', async () => {
    const cert = new x509.X509Certificate(readFileSync(certs[0]!.file, 'utf8'));
    const aia = cert.getExtension(x509.AuthorityInfoAccessExtension)!;
    assert.deepEqual(aia.ocsp.map((n) => n.value), [ocspUrl]);
    assert.deepEqual(aia.caIssuers.map((n) => n.value), [`${svc.revocationUrl}/ca.crt`]);
    const cdp = cert.getExtension(x509.CRLDistributionPointsExtension)!;
    assert.equal(cdp.distributionPoints[0]!.distributionPoint!.fullName![0]!.uniformResourceIdentifier, `${svc.revocationUrl}/crl`);
    const text = execFileSync('openssl', ['x509', '-in', certs[0]!.file, '-noout', '-ocsp_uri'], { encoding: 'utf8' }).trim();
    assert.equal(text, ocspUrl);
    const ca = await http(svc.revocationPort!, 'GET', '/ca.crt');
    assert.equal(ca.status, 200);
    assert.equal(ca.type, 'application/pkix-cert');
    assert.equal(new x509.X509Certificate(ca.body).toString('pem').trim(), svc.caCertPem.trim());
  });

  test('openssl ocsp says good for a valid certificate, with a verified signature and a nonce that round-trips', async () => {
    const r = await openssl(['ocsp', '-issuer', caFile, '-cert', certs[0]!.file, '-url', ocspUrl, '-CAfile', caFile, '-nonce', '-resp_text']);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /Response verify OK/);
    assert.match(r.out, new RegExp(`${certs[0]!.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: good`));
    // The responder echoed the nonce (openssl would print "WARNING: no nonce in response" otherwise).
    assert.doesNotMatch(r.out, /no nonce in response/i);
    assert.match(r.out, /OCSP Nonce:/);
    // Signed by the delegated responder, not the CA: its certificate is in the response with id-kp-OCSPSigning.
    assert.match(r.out, /OCSP Signing/);
    assert.match(r.out, /OCSP No Check/);
  });

  test('after revocation (key compromise) openssl ocsp says revoked with the reason, and verify -crl_check with the served CRL fails with error 23', async () => {
    const lost = certs[1]!;
    await client.revoke(op, lost.id, 1);
    const r = await openssl(['ocsp', '-issuer', caFile, '-cert', lost.file, '-url', ocspUrl, '-CAfile', caFile, '-resp_text']);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /Response verify OK/);
    assert.match(r.out, /: revoked/);
    assert.match(r.out, /Reason: keyCompromise/);
    assert.match(r.out, /Revocation Time:/);

    // The CRL at its stable plain-HTTP path, DER with the right type.
    const crl = await http(svc.revocationPort!, 'GET', '/crl');
    assert.equal(crl.status, 200);
    assert.equal(crl.type, 'application/pkix-crl');
    const crlFile = join(dir, 'crl.der');
    writeFileSync(crlFile, crl.body);
    const crlPem = join(dir, 'crl.pem');
    execFileSync('openssl', ['crl', '-inform', 'DER', '-in', crlFile, '-out', crlPem]);
    const crlText = execFileSync('openssl', ['crl', '-in', crlPem, '-noout', '-text'], { encoding: 'utf8' });
    assert.match(crlText, new RegExp(`Serial Number: ${lost.serial.toUpperCase()}`));
    assert.match(crlText, /Key Compromise/);
    assert.match(crlText, /Next Update:/);
    const bad = await openssl(['verify', '-crl_check', '-CRLfile', crlPem, '-CAfile', caFile, lost.file]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.out, /error 23 at 0 depth lookup: certificate revoked/);
    const good = await openssl(['verify', '-crl_check', '-CRLfile', crlPem, '-CAfile', caFile, certs[0]!.file]);
    assert.equal(good.status, 0, good.out);
    assert.match(good.out, /: OK/);
    // The same CRL under the API path too.
    assert.deepEqual((await client.raw('GET', '/api/v1/crl')).body, crl.body);
  });

  test('cessationOfOperation, certificateHold and its release: the CRL and OCSP follow each change', async () => {
    const retired = certs[2]!;
    const away = certs[3]!;
    assert.equal(await svc.service.revocation.revoke('operator:admin', retired.serial, 5), true);
    assert.equal(await svc.service.revocation.revoke('operator:admin', retired.serial, 5), false, 'revoking twice changes nothing');
    const r1 = await openssl(['ocsp', '-issuer', caFile, '-cert', retired.file, '-url', ocspUrl, '-CAfile', caFile, '-resp_text']);
    assert.match(r1.out, /: revoked/);
    assert.match(r1.out, /Reason: cessationOfOperation/);

    await svc.service.revocation.revoke('operator:admin', away.serial, 6);
    const held = await openssl(['ocsp', '-issuer', caFile, '-cert', away.file, '-url', ocspUrl, '-CAfile', caFile, '-resp_text']);
    assert.match(held.out, /: revoked/);
    assert.match(held.out, /Reason: certificateHold/);
    const crlHeld = await http(svc.revocationPort!, 'GET', '/crl');
    assert.match(execFileSync('openssl', ['crl', '-inform', 'DER', '-noout', '-text'], { input: crlHeld.body, encoding: 'utf8' }), /Certificate Hold/);

    await svc.service.revocation.unhold('operator:admin', away.serial);
    const released = await openssl(['ocsp', '-issuer', caFile, '-cert', away.file, '-url', ocspUrl, '-CAfile', caFile, '-resp_text']);
    assert.match(released.out, /: good/, released.out);
    const crlAfter = await http(svc.revocationPort!, 'GET', '/crl');
    assert.doesNotMatch(execFileSync('openssl', ['crl', '-inform', 'DER', '-noout', '-text'], { input: crlAfter.body, encoding: 'utf8' }), new RegExp(away.serial, 'i'));
    // A final revocation cannot be released; a serial never issued is not found.
    await assert.rejects(svc.service.revocation.unhold('operator:admin', retired.serial), { code: 'CONFLICT', message: /revoked for good/ });
    await assert.rejects(svc.service.revocation.revoke('operator:admin', '0123', 1), { code: 'NOT_FOUND' });
    await assert.rejects(svc.service.revocation.revoke('operator:admin', 'zz', 1), { code: 'BAD_REQUEST' });
    const audit = (await client.audit(op, {})).map((e) => e.action);
    assert.ok(audit.includes('certificate.held') && audit.includes('certificate.released') && audit.includes('certificate.revoked'));
  });

  test('a serial this CA never issued is unknown; so is a certificate of another CA with the same name', async () => {
    const r = await openssl(['ocsp', '-issuer', caFile, '-serial', '0x123456789abcdef', '-url', ocspUrl, '-CAfile', caFile, '-resp_text']);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /0x123456789ABCDEF: unknown/i);
    // Another CA, same subject name: the name hash matches, the key hash does not.
    const caName = new x509.X509Certificate(svc.caCertPem).subject;
    const other = await EmbeddedCa.inMemory({ name: caName });
    const otherCa = join(dir, 'other-ca.pem');
    writeFileSync(otherCa, other.chain()[0]!.toString('pem'));
    const otherCert = join(dir, 'other.pem');
    writeFileSync(otherCert, toPem(await other.issueFor(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey, { subject: 'CN=x' }), 'CERTIFICATE'));
    // Our responder is not authorised for the other CA (its certificate comes from ours), so a
    // relying party would not trust the answer anyway: read it without verifying.
    const r2 = await openssl(['ocsp', '-issuer', otherCa, '-cert', otherCert, '-url', ocspUrl, '-noverify', '-resp_text']);
    assert.equal(r2.status, 0, r2.out);
    assert.match(r2.out, /: unknown/);
  });

  test('CertIDs hashed with SHA-256 are answered; with a hash the responder does not compute (SHA3-256), unknown', async () => {
    const sha256 = await openssl(['ocsp', '-sha256', '-issuer', caFile, '-cert', certs[0]!.file, '-url', ocspUrl, '-CAfile', caFile, '-resp_text']);
    assert.equal(sha256.status, 0, sha256.out);
    assert.match(sha256.out, /Hash Algorithm: sha256/);
    assert.match(sha256.out, /: good|: revoked/);
    const sha3 = await openssl(['ocsp', '-sha3-256', '-issuer', caFile, '-cert', certs[0]!.file, '-url', ocspUrl, '-CAfile', caFile, '-resp_text']);
    assert.equal(sha3.status, 0, sha3.out);
    assert.match(sha3.out, /Hash Algorithm: sha3-256/);
    assert.match(sha3.out, /: unknown/);
  });

  test('the GET form (RFC 6960 Appendix A.1), base64 and base64url, answers like POST', async () => {
    const reqFile = join(dir, 'req.der');
    execFileSync('openssl', ['ocsp', '-issuer', caFile, '-cert', certs[1]!.file, '-no_nonce', '-reqout', reqFile]);
    const der = readFileSync(reqFile);
    const post = await http(svc.revocationPort!, 'POST', '/ocsp', der);
    for (const path of [`/ocsp/${encodeURIComponent(der.toString('base64'))}`, `/ocsp/${der.toString('base64url')}`]) {
      const get = await http(svc.revocationPort!, 'GET', path);
      assert.equal(get.status, 200);
      assert.equal(get.type, 'application/ocsp-response');
      assert.equal(responseStatus(get.body), OCSPResponseStatus.successful);
      // Without a nonce the answer comes from the cache: the very bytes POST got.
      assert.deepEqual(get.body, post.body);
    }
    const respFile = join(dir, 'resp.der');
    writeFileSync(respFile, post.body);
    const r = await openssl(['ocsp', '-respin', respFile, '-issuer', caFile, '-cert', certs[1]!.file, '-CAfile', caFile, '-resp_text']);
    assert.match(r.out, /Response verify OK/);
    assert.match(r.out, /: revoked/);
    // The HTTPS service answers the same routes.
    assert.equal(responseStatus((await client.raw('GET', `/ocsp/${der.toString('base64url')}`)).body as Buffer), OCSPResponseStatus.successful);
  });

  test('garbage, tampered, truncated, oversized and empty requests get malformedRequest, never a 500', async () => {
    const reqFile = join(dir, 'req2.der');
    execFileSync('openssl', ['ocsp', '-issuer', caFile, '-cert', certs[0]!.file, '-reqout', reqFile]);
    const der = readFileSync(reqFile);
    const tampered = Buffer.from(der);
    tampered[1] = tampered[1]! ^ 0x05; // the outer length no longer matches
    const cases: [string, Promise<{ status: number; type: string | undefined; body: Buffer }>][] = [
      ['garbage', http(svc.revocationPort!, 'POST', '/ocsp', Buffer.from('hello, responder'))],
      ['tampered length', http(svc.revocationPort!, 'POST', '/ocsp', tampered)],
      ['truncated', http(svc.revocationPort!, 'POST', '/ocsp', der.subarray(0, der.length - 3))],
      ['trailing bytes', http(svc.revocationPort!, 'POST', '/ocsp', Buffer.concat([der, Buffer.from([0, 0])]))],
      ['empty', http(svc.revocationPort!, 'POST', '/ocsp', Buffer.alloc(0))],
      ['over the body limit', http(svc.revocationPort!, 'POST', '/ocsp', Buffer.alloc(5000, 0x30))],
      ['wrong content type', http(svc.revocationPort!, 'POST', '/ocsp', der, 'application/json')],
      ['GET not base64', http(svc.revocationPort!, 'GET', '/ocsp/%%%')],
      ['GET garbage base64', http(svc.revocationPort!, 'GET', `/ocsp/${Buffer.from('nonsense').toString('base64')}`)],
    ];
    for (const [name, pending] of cases) {
      const res = await pending;
      assert.equal(res.status, 200, name);
      assert.equal(res.type, 'application/ocsp-response', name);
      assert.equal(responseStatus(res.body), OCSPResponseStatus.malformedRequest, name);
      // Just the status: no response bytes (RFC 6960 §4.2.1).
      assert.equal(AsnConvert.parse(res.body, OCSPResponse).responseBytes, undefined, name);
    }
    // openssl itself reports the status as an error.
    const garbage = join(dir, 'garbage.der');
    writeFileSync(garbage, (await http(svc.revocationPort!, 'POST', '/ocsp', Buffer.from('x'))).body);
    assert.match((await openssl(['ocsp', '-respin', garbage, '-resp_text'])).out, /malformedrequest/i);
  });

  test('nonces: up to 32 octets echoed, longer ones left out of the answer (RFC 8954 §2.1)', async () => {
    const ok = await openssl(['ocsp', '-issuer', caFile, '-cert', certs[0]!.file, '-url', ocspUrl, '-CAfile', caFile, '-nonce', '-resp_text']);
    assert.match(ok.out, /OCSP Nonce:/);
    // A request with a 33-octet nonce: the extension value is OCTET STRING (33 bytes).
    const reqFile = join(dir, 'req3.der');
    execFileSync('openssl', ['ocsp', '-issuer', caFile, '-cert', certs[0]!.file, '-no_nonce', '-reqout', reqFile]);
    for (const [length, echoed] of [[MAX_NONCE, true], [MAX_NONCE + 1, false]] as const) {
      const req = withNonce(readFileSync(reqFile), length);
      const res = await http(svc.revocationPort!, 'POST', '/ocsp', req);
      assert.equal(responseStatus(res.body), OCSPResponseStatus.successful);
      const basic = AsnConvert.parse(AsnConvert.parse(res.body, OCSPResponse).responseBytes!.response.buffer, BasicOCSPResponse);
      const nonce = basic.tbsResponseData.responseExtensions?.find((e) => e.extnID === '1.3.6.1.5.5.7.48.1.2');
      assert.equal(nonce !== undefined, echoed, `nonce of ${length}`);
      if (nonce) assert.equal(Buffer.from(nonce.extnValue.buffer).subarray(2).toString('hex'), 'ab'.repeat(length));
    }
  });

  test('answers are cached until the CRL changes: a repeated question is not signed again, a revocation is seen at once', async () => {
    const responder = svc.ocsp!;
    const reqFile = join(dir, 'req4.der');
    execFileSync('openssl', ['ocsp', '-issuer', caFile, '-cert', certs[0]!.file, '-no_nonce', '-reqout', reqFile]);
    const der = readFileSync(reqFile);
    const first = await http(svc.revocationPort!, 'POST', '/ocsp', der);
    const signed = responder.signed;
    const again = await http(svc.revocationPort!, 'POST', '/ocsp', der);
    assert.deepEqual(again.body, first.body);
    assert.equal(responder.signed, signed, 'served from the cache');
    // A revocation publishes a CRL, which ends the cache: the next answer is revoked.
    await client.revoke(op, certs[0]!.id, 4);
    const after = await http(svc.revocationPort!, 'POST', '/ocsp', der);
    assert.equal(responder.signed, signed + 1);
    const respFile = join(dir, 'resp4.der');
    writeFileSync(respFile, after.body);
    const r = await openssl(['ocsp', '-respin', respFile, '-issuer', caFile, '-cert', certs[0]!.file, '-CAfile', caFile, '-resp_text']);
    assert.match(r.out, /: revoked/);
    assert.match(r.out, /Reason: superseded/);
  });

  test('the responder key is stored encrypted beside the CA key and survives a restart', async () => {
    const file = join(dir, 'data', 'ca', 'ocsp.pem');
    const text = readFileSync(file, 'utf8');
    assert.match(text, /-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    assert.doesNotMatch(text, /-----BEGIN PRIVATE KEY-----/);
    assert.equal(statSync(file).mode & 0o077, 0, 'owner-only');
    const before = (await svc.ocsp!.certificate()).serialNumber;
    const again = await startService({ dataDir: join(dir, 'data'), port: 0, passphrase: CA_PASSPHRASE, sweepIntervalMs: 0 });
    try {
      assert.equal((await again.ocsp!.certificate()).serialNumber, before);
    } finally {
      await again.close();
    }
  });
});

describe('revoke, hold and release by serial on every storage backend', () => {
  for (const backend of BACKENDS) {
    test(backend.name, async () => {
      const t = await startTestService(backend);
      try {
        const op = await login(t.client);
        const token = await makeToken(t.client, op, 'carol@example.com', 'smartcard-logon-auto');
        const { value } = await t.client.submit(token, { csr: (await softKey('CN=carol')).csrPem });
        const serial = value.serial!;
        const revocation = t.svc.service.revocation;
        assert.deepEqual(await revocation.status(serial), { status: 'good' });
        assert.deepEqual(await revocation.status('7777'), { status: 'unknown' });
        const n0 = (await revocation.current()).number;
        await revocation.revoke('operator:admin', serial, 6);
        const held = await revocation.status(serial);
        assert.equal(held.status === 'revoked' && held.reason, 6);
        assert.ok((await revocation.current()).number > n0, 'a hold publishes a CRL');
        // The request stays as it was: a hold is not the end of the certificate.
        assert.equal((await t.client.request(op, value.id)).value.state, 'issued');
        await revocation.unhold('operator:admin', serial);
        assert.deepEqual(await revocation.status(serial), { status: 'good' });
        // A final reason after a hold revokes the request too.
        await revocation.revoke('operator:admin', serial, 6);
        assert.equal(await revocation.revoke('operator:admin', serial, 1), true);
        const final = await revocation.status(serial);
        assert.equal(final.status === 'revoked' && final.reason, 1);
        assert.equal((await t.client.request(op, value.id)).value.state, 'revoked');
        await assert.rejects(revocation.unhold('operator:admin', serial), { code: 'CONFLICT' });
      } finally {
        await t.close();
      }
    });
  }
});

describe('cardlink serve --revocation-port', () => {
  test('serves the CRL over plain HTTP and says where in its --json line', async () => {
    const server = await spawnServe(tempDir(), undefined, ['--revocation-port', '0']);
    try {
      assert.match(server.revocationUrl!, /^http:\/\/127\.0\.0\.1:\d+$/);
      const port = Number(new URL(server.revocationUrl!).port);
      const crl = await http(port, 'GET', '/crl');
      assert.equal(crl.status, 200);
      assert.equal(crl.type, 'application/pkix-crl');
      assert.match(execFileSync('openssl', ['crl', '-inform', 'DER', '-noout', '-lastupdate'], { input: crl.body, encoding: 'utf8' }), /lastUpdate=/);
      // Only the revocation routes: the JSON API is not on the plain listener.
      assert.equal((await http(port, 'GET', '/api/v1/health')).status, 404);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });
});

describe('the delegated responder certificate', () => {
  const source: StatusSource = {
    current: async () => ({ number: 1, thisUpdate: new Date(), nextUpdate: new Date(Date.now() + 86_400_000) }),
    status: async () => ({ status: 'good' }),
  };

  test('at most maxSigning answers are signed at once: the others get tryLater, cached answers are unaffected', async () => {
    const ca = await EmbeddedCa.inMemory();
    const responder = new OcspResponder(ca, source, memoryKeyStore(), () => new Date(), async () => undefined, 1);
    const d = tempDir();
    writeFileSync(join(d, 'ca.pem'), ca.chain()[0]!.toString('pem'));
    const make = (nonce: boolean): Buffer => {
      execFileSync('openssl', ['ocsp', '-issuer', join(d, 'ca.pem'), '-serial', '0x42', nonce ? '-nonce' : '-no_nonce', '-reqout', join(d, 'r.der')]);
      return readFileSync(join(d, 'r.der'));
    };
    const plain = make(false);
    assert.equal(responseStatus(await responder.respond(plain)), OCSPResponseStatus.successful);
    const nonced = Array.from({ length: 5 }, () => make(true));
    const answers = await Promise.all([...nonced.map((r) => responder.respond(r)), responder.respond(plain)]);
    const statuses = answers.map(responseStatus);
    assert.equal(statuses[0], OCSPResponseStatus.successful);
    assert.ok(statuses.slice(1, 5).every((s) => s === OCSPResponseStatus.tryLater), String(statuses));
    assert.equal(statuses[5], OCSPResponseStatus.successful, 'the cached answer still comes');
    // Once the signing is done, the next one is answered.
    assert.equal(responseStatus(await responder.respond(nonced[1]!)), OCSPResponseStatus.successful);
  });

  test('is issued by the CA for OCSP signing only, with ocsp-nocheck, and renewed before it expires', async () => {
    const clock = new ManualClock(new Date());
    const ca = await EmbeddedCa.inMemory({ crlUrl: 'http://x/crl', aia: { ocsp: 'http://x/ocsp' } });
    const booked: string[] = [];
    const responder = new OcspResponder(ca, source, memoryKeyStore(), () => clock.now(), async (c) => void booked.push(c.serial));
    const cert = await responder.certificate();
    assert.equal(cert.issuer, ca.chain()[0]!.subject);
    assert.ok(await cert.verify({ publicKey: ca.chain()[0]!.publicKey, signatureOnly: true }));
    assert.deepEqual([...cert.getExtension(x509.ExtendedKeyUsageExtension)!.usages], [OID.ocspSigning]);
    assert.equal(cert.getExtension(x509.KeyUsagesExtension)!.usages, x509.KeyUsageFlags.digitalSignature);
    assert.ok(cert.getExtension(OID.ocspNoCheck));
    assert.equal(cert.getExtension(x509.BasicConstraintsExtension)!.ca, false);
    // The responder's own certificate points at nothing: nobody checks it.
    assert.equal(cert.getExtension(x509.CRLDistributionPointsExtension), null);
    assert.equal(cert.getExtension(x509.AuthorityInfoAccessExtension), null);
    assert.deepEqual(booked, [cert.serialNumber.toLowerCase()]);
    // Same certificate until the renewal window, a new key and certificate inside it.
    clock.advance(RESPONDER_VALIDITY_MS - RESPONDER_RENEW_BEFORE_MS - 3_600_000);
    assert.equal((await responder.certificate()).serialNumber, cert.serialNumber);
    clock.advance(2 * 3_600_000);
    const renewed = await responder.certificate();
    assert.notEqual(renewed.serialNumber, cert.serialNumber);
    assert.notEqual(Buffer.from(renewed.publicKey.rawData).toString('hex'), Buffer.from(cert.publicKey.rawData).toString('hex'));
    assert.ok(renewed.notAfter.getTime() > clock.now().getTime() + RESPONDER_RENEW_BEFORE_MS);
    assert.equal(booked.length, 2);
  });
});

/** The request with a nonce extension of `length` bytes of 0xab added to its tbsRequest (a request openssl will not make). */
function withNonce(req: Buffer, length: number): Buffer {
  const tlv = (tag: number, ...parts: Buffer[]): Buffer => {
    const body = Buffer.concat(parts);
    const len = body.length < 0x80 ? Buffer.from([body.length]) : body.length < 0x100 ? Buffer.from([0x81, body.length]) : Buffer.from([0x82, body.length >> 8, body.length & 0xff]);
    return Buffer.concat([Buffer.from([tag]), len, body]);
  };
  const header = (b: Buffer, at: number): { start: number; end: number } => {
    const first = b[at + 1]!;
    if (first < 0x80) return { start: at + 2, end: at + 2 + first };
    const n = first & 0x7f;
    let len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[at + 2 + i]!;
    return { start: at + 2 + n, end: at + 2 + n + len };
  };
  const outer = header(req, 0);
  const tbs = header(req, outer.start);
  const nonceOid = Buffer.from('06092b0601050507300102', 'hex');
  const ext = tlv(0xa2, tlv(0x30, tlv(0x30, nonceOid, tlv(0x04, tlv(0x04, Buffer.alloc(length, 0xab))))));
  return tlv(0x30, tlv(0x30, req.subarray(tbs.start, tbs.end), ext));
}
