/**
 * Certificates you can see (issue 12, point 5): card ls shows subject, issuer, validity and the
 * SHA-1 thumbprint (checked against openssl), card export gives the certificate back, card gen
 * keeps stdout for the public key and names containers as Windows does.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { hex } from '../../src/bytes.js';
import { toPem } from '../../src/pem.js';
import { TEST_ADMIN_KEY, TEST_PIN, tempDir } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';
import { cli } from '../helpers/cli.js';

async function setup() {
  const dir = tempDir();
  const image = join(dir, 'card.json');
  const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) };
  assert.equal((await cli(['card', 'init', '--image', image], env)).code, 0);
  return { dir, image, env };
}

describe('card gen', () => {
  test('status on stderr; the public key with --out FILE or --out -; an lr-<GUID> name without --container', async () => {
    const { dir, image, env } = await setup();
    const out = join(dir, 'pub.pem');
    const r = await cli(['card', 'gen', '--image', image, '--alg', 'rsa1024', '--out', out], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    const name = /generated RSA-1024 key in container 0 '(lr-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})' \(\d+\.\d s\); public key in /.exec(r.stderr)?.[1];
    assert.ok(name, r.stderr);
    const key = createPublicKey(readFileSync(out, 'utf8'));
    assert.equal(key.asymmetricKeyDetails?.modulusLength, 1024);

    const toStdout = await cli(['card', 'gen', '--image', image, '--alg', 'rsa1024', '--container', 'second', '--out', '-'], env);
    assert.equal(toStdout.code, 0, toStdout.stderr);
    assert.match(toStdout.stdout, /^-----BEGIN PUBLIC KEY-----\n[\s\S]+-----END PUBLIC KEY-----\n$/);
    const ls = JSON.parse((await cli(['card', 'ls', '--image', image, '--json'], env)).stdout) as { containers: { name: string }[] };
    assert.deepEqual(ls.containers.map((c) => c.name), [name, 'second']);
  });
});

describe('card ls and card export', () => {
  test('ls shows subject, issuer, validity and the thumbprint openssl computes; export gives PEM and DER back', async () => {
    const { dir, image, env } = await setup();
    const gen = await cli(['card', 'gen', '--image', image, '--container', 'alice', '--alg', 'rsa1024', '--json'], env);
    const der = await issueOurs(createPublicKey((JSON.parse(gen.stdout) as { publicKey: string }).publicKey), 0, 'CN=Alice Visible,O=Example');
    const certFile = join(dir, 'alice.pem');
    writeFileSync(certFile, toPem(der, 'CERTIFICATE'));
    assert.equal((await cli(['card', 'install', certFile, '--image', image], env)).code, 0);
    const fingerprint = execFileSync('openssl', ['x509', '-in', certFile, '-noout', '-fingerprint', '-sha1'], { encoding: 'utf8' }).replace(/^.*=/, '').replace(/[:\s]/g, '');
    const endDate = new Date(execFileSync('openssl', ['x509', '-in', certFile, '-noout', '-enddate'], { encoding: 'utf8' }).replace(/^notAfter=/, '').trim()).toISOString();

    const text = await cli(['card', 'ls', '--image', image], env);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /\n 0 {2}alice .*mscp\/kxc00\n {6}subject {3}(O=Example, CN=Alice Visible|CN=Alice Visible, O=Example)\n {6}issuer {4}\S.*\n {6}valid {5}\d{4}-\d\d-\d\dT[\d:.]+Z to (\S+)\n {6}SHA-1 {5}([0-9A-F]{40})\n$/);
    assert.ok(text.stdout.includes(`to ${endDate}`), `${endDate} in ${text.stdout}`);
    assert.ok(text.stdout.includes(`SHA-1     ${fingerprint}`), `${fingerprint} in ${text.stdout}`);
    const json = JSON.parse((await cli(['card', 'ls', '--image', image, '--json'], env)).stdout) as { containers: { certificate: { thumbprint: string; notAfter: string; expired: boolean } }[] };
    assert.equal(json.containers[0]!.certificate.thumbprint, fingerprint);
    assert.equal(json.containers[0]!.certificate.notAfter, endDate);
    assert.equal(json.containers[0]!.certificate.expired, false);

    const pem = await cli(['card', 'export', '--image', image, '--container', 'alice'], env);
    assert.equal(pem.code, 0, pem.stderr);
    assert.equal(pem.stdout, toPem(der, 'CERTIFICATE'));
    const out = join(dir, 'back.der');
    const derOut = await cli(['card', 'export', '--image', image, '--container', 'alice', '--der', '--out', out], env);
    assert.equal(derOut.code, 0, derOut.stderr);
    assert.deepEqual(new Uint8Array(readFileSync(out)), der);
    const noCert = await cli(['card', 'gen', '--image', image, '--container', 'bare', '--alg', 'rsa1024'], env);
    assert.equal(noCert.code, 0);
    const none = await cli(['card', 'export', '--image', image, '--container', 'bare', '--json'], env);
    assert.equal(none.code, 2);
    assert.equal((JSON.parse(none.stdout) as { error: { code: string } }).error.code, 'NO_CERTIFICATE');
    const binary = await cli(['card', 'export', '--image', image, '--container', 'alice', '--der'], env);
    assert.equal(binary.code, 2);
    assert.match(binary.stderr, /--der writes binary: give --out FILE/);
  });
});
