import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { kdfIterations, KEY_KDF_ITERATIONS } from '../../src/service/ca/encrypted-key.js';
import { startService } from '../../src/service/index.js';
import { x509 } from '../../src/x509.js';
import { ServiceClient } from '../../src/service/client.js';
import { CA_PASSPHRASE, softKey, tempDir } from './helpers.js';

/** `openssl asn1parse` of an encrypted key file: what an independent tool reads in it. */
function asn1(file: string): string {
  return execFileSync('openssl', ['asn1parse', '-in', file], { encoding: 'utf8' });
}

describe('keys and files at rest', () => {
  test('the CA and TLS keys are PBES2 with PBKDF2-HMAC-SHA256 at 600,000 iterations, and openssl opens them with the passphrase', async () => {
    const dataDir = tempDir();
    const s = await startService({ dataDir, port: 0, passphrase: CA_PASSPHRASE, sweepIntervalMs: 0 });
    await s.close();
    const tlsKey = join(dataDir, 'tls-key.pem');
    writeFileSync(tlsKey, /-----BEGIN ENCRYPTED PRIVATE KEY-----[^]*?-----END ENCRYPTED PRIVATE KEY-----/.exec(readFileSync(join(dataDir, 'tls.pem'), 'utf8'))![0]);
    for (const file of [join(dataDir, 'ca', 'key.pem'), tlsKey]) {
      const text = asn1(file);
      assert.match(text, /PBES2/);
      assert.match(text, /PBKDF2/);
      assert.match(text, /hmacWithSHA256/);
      assert.match(text, /aes-256-cbc/);
      assert.match(text, /INTEGER\s+:0927C0/, `600000 iterations in ${file}`);
      assert.match(execFileSync('openssl', ['pkey', '-in', file, '-passin', `pass:${CA_PASSPHRASE}`, '-noout', '-text'], { encoding: 'utf8' }), /Private-Key/);
    }
  });

  test('a CA key written with weaker parameters (an older version, 2048 iterations) is wrapped again at start', async () => {
    const dataDir = tempDir();
    await (await startService({ dataDir, port: 0, passphrase: CA_PASSPHRASE, sweepIntervalMs: 0 })).close();
    const file = join(dataDir, 'ca', 'key.pem');
    const key = createPrivateKey({ key: readFileSync(file, 'utf8'), passphrase: CA_PASSPHRASE });
    writeFileSync(file, key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: CA_PASSPHRASE }), { mode: 0o600 });
    assert.equal(kdfIterations(readFileSync(file, 'utf8')), 2048, "Node's own export: the weak default");
    await (await startService({ dataDir, port: 0, passphrase: CA_PASSPHRASE, sweepIntervalMs: 0 })).close();
    assert.equal(kdfIterations(readFileSync(file, 'utf8')), KEY_KDF_ITERATIONS);
  });

  test('a passphrase under 12 characters is refused', async () => {
    await assert.rejects(startService({ dataDir: tempDir(), port: 0, passphrase: 'eleven-char', sweepIntervalMs: 0 }), { code: 'CONFIG', message: /12 characters/ });
  });

  test('an existing data directory and database file open to others are made owner-only at start', async () => {
    const dataDir = tempDir();
    chmodSync(dataDir, 0o755);
    const dbFile = join(tempDir(), 'pre.db');
    writeFileSync(dbFile, '', { mode: 0o644 });
    chmodSync(dbFile, 0o644);
    const s = await startService({ dataDir, dbUrl: `sqlite:${dbFile}`, port: 0, passphrase: CA_PASSPHRASE, sweepIntervalMs: 0 });
    await s.close();
    assert.equal(statSync(dataDir).mode & 0o777, 0o700);
    assert.equal(statSync(dbFile).mode & 0o777, 0o600);
    for (const f of [`${dbFile}-wal`, `${dbFile}-shm`]) {
      try {
        assert.equal(statSync(f).mode & 0o077, 0, f);
      } catch (err) {
        if ((err as { code?: string }).code !== 'ENOENT') throw err;
      }
    }
    // The data directory's own files too.
    const dir2 = tempDir();
    await (await startService({ dataDir: dir2, port: 0, passphrase: CA_PASSPHRASE, sweepIntervalMs: 0 })).close();
    chmodSync(join(dir2, 'cardlink.db'), 0o644);
    chmodSync(join(dir2, 'ca', 'key.pem'), 0o644);
    await (await startService({ dataDir: dir2, port: 0, passphrase: CA_PASSPHRASE, sweepIntervalMs: 0 })).close();
    assert.equal(statSync(join(dir2, 'cardlink.db')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir2, 'ca', 'key.pem')).mode & 0o777, 0o600);
  });
});

describe('revocation on by default', () => {
  test('without --public-url, certificates carry a CRL distribution point derived from the listen address, with a warning for loopback', async () => {
    const lines: string[] = [];
    const s = await startService({ dataDir: tempDir(), port: 0, passphrase: CA_PASSPHRASE, sweepIntervalMs: 0, operator: { username: 'admin', password: 'correct horse battery staple' }, log: (l) => lines.push(l) });
    try {
      const client = new ServiceClient({ server: s.url, ca: s.caCertPem });
      try {
        const op = (await client.login({ username: 'admin', password: 'correct horse battery staple' })).token;
        const token = (await client.createToken(op, { user: 'crl@example.com', profile: 'smartcard-logon-auto' })).token;
        const issued = (await client.submit(token, { csr: (await softKey()).csrPem })).value;
        const cert = new x509.X509Certificate(issued.certificate!);
        const cdp = cert.getExtension(x509.CRLDistributionPointsExtension);
        assert.ok(cdp, 'a CRL distribution point');
        const url = cdp.distributionPoints[0]!.distributionPoint!.fullName![0]!.uniformResourceIdentifier;
        assert.equal(url, `https://127.0.0.1:${s.port}/api/v1/crl`);
        // The point serves the CRL.
        assert.equal((await client.raw('GET', new URL(url!).pathname)).status, 200);
      } finally {
        client.close();
      }
      assert.equal(s.warnings.length, 1);
      assert.match(s.warnings[0]!, /loopback only .* --public-url/);
      assert.ok(lines.some((l) => /warning: .*loopback/.test(l)), 'the warning is logged at start');
    } finally {
      await s.close();
    }
  });

  test('with --public-url there is no warning', async () => {
    const s = await startService({ dataDir: tempDir(), port: 0, passphrase: CA_PASSPHRASE, sweepIntervalMs: 0, publicUrl: 'https://ca.example.com:8443' });
    try {
      assert.deepEqual(s.warnings, []);
    } finally {
      await s.close();
    }
  });
});
