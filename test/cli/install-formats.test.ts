/**
 * The formats CAs hand back (issue 12, point 4), through `cardlink card install` on an emulated
 * card: PEM, DER, bare base64, PKCS#7 (PEM and DER, made by openssl), chains in any order,
 * PKCS#12 refused with the openssl command, `unchanged`, --force, --roots.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { hex } from '../../src/bytes.js';
import { readCertificates } from '../../src/card/certificate-input.js';
import { toPem } from '../../src/pem.js';
import { EmbeddedCa } from '../../src/service/ca/embedded.js';
import { certThumbprint } from '../../src/thumbprint.js';
import { TEST_ADMIN_KEY, TEST_PIN, tempDir } from '../helpers/card.js';
import { cli } from '../helpers/cli.js';

const DAY = 86_400_000;

interface Card {
  dir: string;
  image: string;
  env: Record<string, string>;
  key: KeyObject;
}

async function cardWithKey(): Promise<Card> {
  const dir = tempDir();
  const image = join(dir, 'card.json');
  const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) };
  assert.equal((await cli(['card', 'init', '--image', image], env)).code, 0);
  const gen = await cli(['card', 'gen', '--image', image, '--container', 'alice', '--alg', 'rsa1024', '--json'], env);
  assert.equal(gen.code, 0, gen.stderr);
  return { dir, image, env, key: createPublicKey((JSON.parse(gen.stdout) as { publicKey: string }).publicKey) };
}

let caPromise: Promise<EmbeddedCa> | undefined;
async function ca(): Promise<{ ca: EmbeddedCa; caDer: Uint8Array }> {
  caPromise ??= EmbeddedCa.inMemory();
  const c = await caPromise;
  return { ca: c, caDer: new Uint8Array(c.chain()[0]!.rawData) };
}

function write(dir: string, name: string, data: Uint8Array | string): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}

async function install(card: Card, file: string, ...extra: string[]) {
  const r = await cli(['card', 'install', file, '--image', card.image, '--json', ...extra], card.env);
  return { ...r, json: JSON.parse(r.stdout) as { ok: boolean; unchanged?: boolean; thumbprint?: string; ignored?: { subject: string }[]; roots?: { thumbprint: string }[]; cardcf?: { filesFreshness: number }; error?: { code: string; message: string } } };
}

describe('card install takes what CAs return', () => {
  test('PEM, DER, bare base64: the same certificate; installing it again is unchanged and does not move cardcf', async () => {
    const card = await cardWithKey();
    const { ca: issuer } = await ca();
    const der = await issuer.issueFor(card.key, { subject: 'CN=Alice' });
    const first = await install(card, write(card.dir, 'a.cer', der));
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.json.unchanged, false);
    assert.equal(first.json.thumbprint, certThumbprint(der));
    const counter = first.json.cardcf!.filesFreshness;
    for (const [name, data] of [['a.pem', toPem(der, 'CERTIFICATE')], ['a.b64', Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n')], ['a.der', der]] as const) {
      const again = await install(card, write(card.dir, name, data));
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.json.unchanged, true, name);
      assert.equal(again.json.cardcf!.filesFreshness, counter, `${name}: cardcf did not move`);
    }
    const text = await cli(['card', 'install', join(card.dir, 'a.pem'), '--image', card.image], card.env);
    assert.match(text.stdout, /^unchanged: mscp\/kxc00 of container 0 'alice' already holds this certificate \(nothing written\)\n$/);
  });

  test('a chain in any order, as PEM and as PKCS#7 (PEM and DER from openssl crl2pkcs7): the certificate whose key is on the card', async () => {
    const card = await cardWithKey();
    const { ca: issuer, caDer } = await ca();
    const der = await issuer.issueFor(card.key, { subject: 'CN=Alice Chain' });
    const caFirst = write(card.dir, 'chain.pem', toPem(caDer, 'CERTIFICATE') + toPem(der, 'CERTIFICATE'));
    const r = await install(card, caFirst);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.thumbprint, certThumbprint(der));
    assert.deepEqual(r.json.ignored!.map((i) => i.subject), [readCertificates(caDer)[0]!.subject]);
    const text = await cli(['card', 'install', caFirst, '--image', card.image], card.env);
    assert.match(text.stdout, /ignored: .* \([0-9A-F]{40}, a CA certificate; --roots puts it into mscp\/msroots\)/);

    for (const form of ['PEM', 'DER']) {
      const other = await cardWithKey();
      const leaf = await issuer.issueFor(other.key, { subject: `CN=Alice ${form}` });
      const chain = write(other.dir, 'chain.pem', toPem(caDer, 'CERTIFICATE') + toPem(leaf, 'CERTIFICATE'));
      const p7b = join(other.dir, `chain-${form}.p7b`);
      execFileSync('openssl', ['crl2pkcs7', '-nocrl', '-certfile', chain, '-outform', form, '-out', p7b]);
      const got = await install(other, p7b);
      assert.equal(got.code, 0, got.stderr);
      assert.equal(got.json.thumbprint, certThumbprint(leaf), form);
      assert.equal(got.json.ignored!.length, 1);
    }
  });

  test('--roots puts the CA certificates into mscp/msroots as a PKCS#7 bag (openssl reads it back)', async () => {
    const card = await cardWithKey();
    const { ca: issuer, caDer } = await ca();
    const der = await issuer.issueFor(card.key, { subject: 'CN=Alice Roots' });
    const r = await install(card, write(card.dir, 'chain.pem', toPem(der, 'CERTIFICATE') + toPem(caDer, 'CERTIFICATE')), '--roots');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json.roots!.map((x) => x.thumbprint), [certThumbprint(caDer)]);
    const out = join(card.dir, 'msroots.der');
    assert.equal((await cli(['card', 'files', 'read', 'mscp/msroots', '--image', card.image, '--out', out], card.env)).code, 0);
    const printed = execFileSync('openssl', ['pkcs7', '-inform', 'DER', '-in', out, '-print_certs', '-noout'], { encoding: 'utf8' });
    assert.match(printed, /subject=.*CN ?= ?[^\n]*/);
    assert.equal(readCertificates(new Uint8Array(readFileSync(out)))[0]!.thumbprint, certThumbprint(caDer));
  });

  test('PKCS#12 is refused with the openssl command that takes the certificate out', async () => {
    const card = await cardWithKey();
    const { ca: issuer } = await ca();
    const pem = write(card.dir, 'a.pem', toPem(await issuer.issueFor(card.key, { subject: 'CN=Alice P12' }), 'CERTIFICATE'));
    const p12 = join(card.dir, 'alice.p12');
    execFileSync('openssl', ['pkcs12', '-export', '-nokeys', '-in', pem, '-out', p12, '-passout', 'pass:secret']);
    const r = await install(card, p12);
    assert.equal(r.code, 2);
    assert.equal(r.json.error!.code, 'PKCS12_REFUSED');
    assert.match(r.json.error!.message, /keys never come from files.*'openssl pkcs12 -in .*alice\.p12 -nokeys -clcerts -out cert\.pem'/);
  });

  test('expired, not yet valid, a CA, or older than the one it replaces: refused without --force, saying why', async () => {
    const card = await cardWithKey();
    const { ca: issuer } = await ca();
    const now = Date.now();
    const current = await issuer.issueFor(card.key, { subject: 'CN=Alice Now', notBefore: new Date(now - DAY) });
    assert.equal((await install(card, write(card.dir, 'now.cer', current))).code, 0);
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ['expired', await issuer.issueFor(card.key, { subject: 'CN=Alice Old', notBefore: new Date(now - 400 * DAY), days: 30 }), /it expired on \d{4}-/],
      ['future', await issuer.issueFor(card.key, { subject: 'CN=Alice Later', notBefore: new Date(now + 10 * DAY) }), /it is not valid before \d{4}-/],
      ['older', await issuer.issueFor(card.key, { subject: 'CN=Alice Earlier', notBefore: new Date(now - 10 * DAY) }), /it is older than the certificate it would replace/],
    ];
    for (const [name, der, why] of cases) {
      const r = await install(card, write(card.dir, `${name}.cer`, der));
      assert.equal(r.code, 2, name);
      assert.equal(r.json.error!.code, 'CERT_NEEDS_FORCE');
      assert.match(r.json.error!.message, why);
      assert.match(r.json.error!.message, /add --force to install it anyway/);
    }
    const exported = await cli(['card', 'export', '--image', card.image, '--container', 'alice', '--der', '--out', join(card.dir, 'back.der')], card.env);
    assert.equal(exported.code, 0, exported.stderr);
    assert.equal(certThumbprint(new Uint8Array(readFileSync(join(card.dir, 'back.der')))), certThumbprint(current), 'the card still holds the current one');
    const forced = await install(card, join(card.dir, 'older.cer'), '--force');
    assert.equal(forced.code, 0, forced.stderr);
  });

  test('a CA certificate (basicConstraints cA) for the card key is refused without --force', async () => {
    const card = await cardWithKey();
    const { x509 } = await import('../../src/x509.js');
    const { webcrypto } = await import('node:crypto');
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
    const signer = await webcrypto.subtle.generateKey(alg, false, ['sign', 'verify']);
    const publicKey = await webcrypto.subtle.importKey('spki', card.key.export({ type: 'spki', format: 'der' }), { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, true, ['verify']);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: '01', subject: 'CN=Alice as a CA', issuer: 'CN=Some signer', notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + 30 * DAY),
      publicKey, signingKey: signer.privateKey, signingAlgorithm: alg, extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
    });
    const file = write(card.dir, 'ca.cer', new Uint8Array(cert.rawData));
    const r = await install(card, file);
    assert.equal(r.code, 2);
    assert.equal(r.json.error!.code, 'CERT_NEEDS_FORCE');
    assert.match(r.json.error!.message, /^not installed: it is a CA certificate \(basicConstraints cA\), not a user certificate; add --force/);
    assert.equal((await install(card, file, '--force')).code, 0);
  });
});
