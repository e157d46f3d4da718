import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, login, makeToken, startTestService, tempDir, type TestService } from './helpers.js';

const run = promisify(execFile);

/**
 * curl as an independent EST client: returns status, headers (lower-case) and body. Asynchronous:
 * the service answers from this very process.
 */
async function curl(args: string[]): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  const dir = tempDir('cardlink-curl-');
  const hdr = join(dir, 'h');
  const out = join(dir, 'b');
  await run('curl', ['-sS', '-D', hdr, '-o', out, ...args]);
  const lines = readFileSync(hdr, 'utf8').trim().split(/\r?\n/);
  const status = Number(lines[0]!.split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status, headers, body: readFileSync(out) };
}

/** `openssl pkcs7 -print_certs` on a base64 EST answer. */
function printCerts(base64Body: Buffer, dir: string, extra: string[] = []): string {
  const der = join(dir, `p7-${process.hrtime.bigint()}.der`);
  writeFileSync(der, Buffer.from(base64Body.toString('ascii'), 'base64'));
  return execFileSync('openssl', ['pkcs7', '-inform', 'DER', '-in', der, '-print_certs', ...extra], { encoding: 'utf8' });
}

describe('EST (RFC 7030) with curl and openssl as the client', () => {
  let t: TestService;
  let dir: string;
  let caFile: string;
  before(async () => {
    t = await startTestService(BACKENDS[0]!, { retryAfterSeconds: 3 });
    dir = tempDir('cardlink-est-');
    caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, t.svc.caCertPem);
  });
  after(async () => t.close());

  const est = (path: string) => `${t.svc.url}/.well-known/est/${path}`;

  test('cacerts is a base64 certs-only PKCS#7 with the CA', async () => {
    const r = await curl(['--cacert', caFile, est('cacerts')]);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/pkcs7-mime; smime-type=certs-only');
    assert.equal(r.headers['content-transfer-encoding'], undefined, 'RFC 8951 §3: no Content-Transfer-Encoding');
    const text = printCerts(r.body, dir);
    assert.match(text, /subject=CN ?= ?cardlink CA/);
  });

  test('csrattrs lists OIDs in DER, base64', async () => {
    const r = await curl(['--cacert', caFile, est('csrattrs')]);
    assert.equal(r.headers['content-type'], 'application/csrattrs');
    const der = join(dir, 'attrs.der');
    writeFileSync(der, Buffer.from(r.body.toString('ascii'), 'base64'));
    assert.match(execFileSync('openssl', ['asn1parse', '-inform', 'DER', '-in', der], { encoding: 'utf8' }), /sha256WithRSAEncryption/);
  });

  test('simpleenroll: 202 + Retry-After, the same request after approval gets the certificate; simplereenroll with it as client certificate', async () => {
    const op = await login(t.client);
    const token = await makeToken(t.client, op, 'dave@example.com');
    const key = join(dir, 'dave.key');
    const csr = join(dir, 'dave.csr.der');
    execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-subj', '/CN=dave@example.com', '-outform', 'DER', '-out', csr], { stdio: 'pipe' });
    const b64 = join(dir, 'dave.csr.b64');
    writeFileSync(b64, readFileSync(csr).toString('base64'));
    const post = (path: string, auth: string[]) => curl(['--cacert', caFile, ...auth, '-H', 'Content-Type: application/pkcs10', '--data-binary', `@${b64}`, est(path)]);

    const anonymous = await post('simpleenroll', []);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers['www-authenticate'] ?? '', /^Basic/);
    assert.equal((await post('simpleenroll', ['-u', `dave@example.com:wrong`])).status, 401);
    assert.equal((await post('simpleenroll', ['-u', `mallory@example.com:${token}`])).status, 401, 'the token is bound to its user');

    const first = await post('simpleenroll', ['-u', `dave@example.com:${token}`]);
    assert.equal(first.status, 202);
    assert.equal(first.headers['retry-after'], '3');
    const again = await post('simpleenroll', ['-u', `dave@example.com:${token}`]);
    assert.equal(again.status, 202, 'still waiting: the same request, not a new one');

    const pending = await t.client.requests(op, { state: 'pending', user: 'dave@example.com' });
    assert.equal(pending.length, 1);
    await t.client.approve(op, pending[0]!.id);

    const issued = await post('simpleenroll', ['-u', `dave@example.com:${token}`]);
    assert.equal(issued.status, 200);
    assert.equal(issued.headers['content-type'], 'application/pkcs7-mime; smime-type=certs-only');
    const certPem = printCerts(issued.body, dir);
    assert.match(certPem, /subject=CN ?= ?dave@example.com/);
    const certFile = join(dir, 'dave.pem');
    writeFileSync(certFile, certPem);
    const text = execFileSync('openssl', ['x509', '-in', certFile, '-noout', '-text'], { encoding: 'utf8' });
    assert.match(text, /TLS Web Client Authentication, Microsoft Smartcard Login/);
    assert.match(text, /othername: ?UPN::dave@example.com/);
    assert.match(execFileSync('openssl', ['verify', '-CAfile', caFile, certFile], { encoding: 'utf8' }), /OK/);
    // The modulus in the certificate is the one of the key openssl generated.
    assert.equal(
      execFileSync('openssl', ['x509', '-in', certFile, '-noout', '-modulus'], { encoding: 'utf8' }),
      execFileSync('openssl', ['rsa', '-in', key, '-noout', '-modulus'], { encoding: 'utf8' }),
    );
    assert.equal((await post('simpleenroll', ['-u', `dave@example.com:${token}`])).status, 200, 'asking again still answers with the certificate');

    // Re-enrollment: a new key, authenticated by the current certificate in the TLS handshake. An
    // openssl key is a software key, and the certificate is fresh: the profile must allow both
    // (renewal.test.ts shows the default refusing them).
    await t.client.updateProfile(op, 'smartcard-logon', { renewalWindowDays: 365, allowSoftwareKeys: true });
    const key2 = join(dir, 'dave2.key');
    const csr2 = join(dir, 'dave2.csr.der');
    execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', key2, '-subj', '/CN=dave@example.com', '-outform', 'DER', '-out', csr2], { stdio: 'pipe' });
    writeFileSync(b64, readFileSync(csr2).toString('base64'));
    assert.equal((await post('simplereenroll', [])).status, 401, 'no client certificate');
    assert.equal((await post('simplereenroll', ['-u', `dave@example.com:${token}`])).status, 403, 'a token is not a certificate');
    const renew = await post('simplereenroll', ['--cert', certFile, '--key', key]);
    assert.equal(renew.status, 202);
    assert.ok(Number(renew.headers['retry-after']) > 0);
    const renewal = await t.client.requests(op, { state: 'pending', user: 'dave@example.com' });
    assert.equal(renewal[0]?.kind, 'reenroll');
    await t.client.approve(op, renewal[0]!.id);
    const renewed = await post('simplereenroll', ['--cert', certFile, '--key', key]);
    assert.equal(renewed.status, 200);
    const renewedPem = printCerts(renewed.body, dir);
    assert.match(renewedPem, /subject=CN ?= ?dave@example.com/);
    assert.notEqual(renewedPem.replace(/^subject.*$|^issuer.*$/gm, ''), certPem.replace(/^subject.*$|^issuer.*$/gm, ''));

    // Once revoked, the old certificate no longer authenticates.
    const all = await t.client.requests(op, { user: 'dave@example.com' });
    await t.client.revoke(op, all.find((r) => r.kind === 'enroll')!.id, 4);
    assert.equal((await post('simplereenroll', ['--cert', certFile, '--key', key])).status, 401);
  });

  test('cacerts and csrattrs answer without authentication, even with bad credentials (RFC 7030 §4.1.1)', async () => {
    for (const auth of [[], ['-u', 'nobody@example.com:cle_wrong'], ['-H', 'Authorization: Bearer cls_stale']]) {
      for (const path of ['cacerts', 'csrattrs', 'smartcard-logon/cacerts']) {
        const r = await curl(['--cacert', caFile, ...auth, est(path)]);
        assert.equal(r.status, 200, `${path} with ${auth.join(' ') || 'nothing'}`);
      }
    }
  });

  test('a CA label (RFC 7030 §3.2.2) names a profile: unknown labels are 404, a token enrolls only under its own', async () => {
    const r = await curl(['--cacert', caFile, est('smartcard-logon-auto/cacerts')]);
    assert.equal(r.status, 200);
    assert.match(printCerts(r.body, dir), /subject=CN ?= ?cardlink CA/);
    assert.equal((await curl(['--cacert', caFile, est('no-such-profile/cacerts')])).status, 404);

    const op = await login(t.client);
    const token = await makeToken(t.client, op, 'gina@example.com', 'smartcard-logon-auto');
    const csr = join(dir, 'gina.csr.der');
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'gina.key'), '-subj', '/CN=gina@example.com', '-outform', 'DER', '-out', csr], { stdio: 'pipe' });
    const b64 = join(dir, 'gina.b64');
    writeFileSync(b64, readFileSync(csr).toString('base64'));
    const post = (label: string) => curl(['--cacert', caFile, '-u', `gina@example.com:${token}`, '-H', 'Content-Type: application/pkcs10', '--data-binary', `@${b64}`, est(`${label}/simpleenroll`)]);
    const wrong = await post('smartcard-logon');
    assert.equal(wrong.status, 403);
    assert.match(wrong.body.toString(), /profile 'smartcard-logon-auto', not for CA label 'smartcard-logon'/);
    const right = await post('smartcard-logon-auto');
    assert.equal(right.status, 200, right.body.toString());
    assert.match(printCerts(right.body, dir), /subject=CN ?= ?gina@example.com/);
  });

  test('a raw DER body gets an error that says so', async () => {
    const op = await login(t.client);
    const token = await makeToken(t.client, op, 'hank@example.com');
    const csr = join(dir, 'hank.csr.der');
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'hank.key'), '-subj', '/CN=hank@example.com', '-outform', 'DER', '-out', csr], { stdio: 'pipe' });
    const r = await curl(['--cacert', caFile, '-u', `hank@example.com:${token}`, '-H', 'Content-Type: application/pkcs10', '--data-binary', `@${csr}`, est('simpleenroll')]);
    assert.equal(r.status, 400);
    assert.match(r.body.toString(), /binary DER: EST wants the PKCS#10 request base64-encoded/);
  });

  test('a subject that differs from the certificate being renewed is refused', async () => {
    const op = await login(t.client);
    await t.client.updateProfile(op, 'smartcard-logon', { approval: 'automatic' });
    try {
      const token = await makeToken(t.client, op, 'erin@example.com');
      const key = join(dir, 'erin.key');
      const csr = join(dir, 'erin.csr');
      execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', '/CN=erin@example.com', '-out', csr], { stdio: 'pipe' });
      const pem = readFileSync(csr, 'utf8');
      const b64 = join(dir, 'erin.b64');
      writeFileSync(b64, pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''));
      const r = await curl(['--cacert', caFile, '-H', `Authorization: Bearer ${token}`, '-H', 'Content-Type: application/pkcs10', '--data-binary', `@${b64}`, est('simpleenroll')]);
      assert.equal(r.status, 200, 'automatic approval answers at once');
      const certFile = join(dir, 'erin.pem');
      writeFileSync(certFile, printCerts(r.body, dir));
      execFileSync('openssl', ['req', '-new', '-key', key, '-subj', '/CN=someone-else@example.com', '-out', csr], { stdio: 'pipe' });
      writeFileSync(b64, readFileSync(csr, 'utf8').replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''));
      const bad = await curl(['--cacert', caFile, '--cert', certFile, '--key', key, '-H', 'Content-Type: application/pkcs10', '--data-binary', `@${b64}`, est('simplereenroll')]);
      assert.equal(bad.status, 400);
      assert.match(bad.body.toString(), /subject/);
    } finally {
      await t.client.updateProfile(op, 'smartcard-logon', { approval: 'operator' });
    }
  });
});
