/**
 * The PIV emulator behind the real pcscd + vpcd, against tools written independently of cardlink:
 * OpenSC (`opensc-tool`, `pkcs15-tool`, `pkcs11-tool`), Yubico's `yubico-piv-tool` and `ykman`.
 * cardlink's PivSession writes and the tools read and sign; the tools write and PivSession reads.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, createPublicKey, verify, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { equalBytes, hex } from '../../src/bytes.js';
import { digestInfo, digestInfoOf } from '../../src/card/digest-info.js';
import { DEFAULT_ATR, FACTORY, PivCard } from '../../src/piv/emulator/index.js';
import { pkcs1SignatureBlock, PivSession } from '../../src/piv/host/session.js';
import { ALG, OBJECT } from '../../src/piv/protocol/constants.js';
import { newChuid, parseChuid } from '../../src/piv/protocol/objects.js';
import { openPcscTransport, waitForPcscCard } from '../../src/transport/pcsc.js';
import { tempDir } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';
import { SLOTS, VPCD_HOST, insertCard, lockPcsc, runTool } from './harness.js';

const PKCS11_MODULE = '/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so';
const SLOT = SLOTS[0];

async function tool(command: string, args: string[]): Promise<string> {
  const r = await runTool(command, args, { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `${command} ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout + r.stderr;
}

function pemToDer(pem: string, label = 'CERTIFICATE'): Uint8Array {
  const body = new RegExp(`-----BEGIN ${label}-----([\\s\\S]+?)-----END ${label}-----`).exec(pem)?.[1];
  assert.ok(body, `no PEM ${label} in:\n${pem}`);
  return new Uint8Array(Buffer.from(body.replace(/\s+/g, ''), 'base64'));
}

async function withSession<T>(fn: (s: PivSession) => Promise<T>): Promise<T> {
  const t = await openPcscTransport({ reader: SLOT.reader });
  try {
    const s = new PivSession(t);
    await s.select();
    return await fn(s);
  } finally {
    await t.close();
  }
}

describe('PIV emulator and real PIV tools, through pcscd + vpcd', () => {
  let release: () => void = () => {};
  before(async () => {
    release = await lockPcsc();
  });
  after(() => release());

  it('the ATR offers T=1 with a correct check byte; OpenSC, yubico-piv-tool and ykman take it for a PIV card', async () => {
    assert.equal(DEFAULT_ATR[0], 0x3b);
    assert.equal(DEFAULT_ATR[2], 0x01, 'TD1: T=1 only');
    assert.equal(DEFAULT_ATR.length, 3 + (DEFAULT_ATR[1]! & 0x0f) + 1);
    assert.equal(DEFAULT_ATR.subarray(1).reduce((x, b) => x ^ b, 0), 0, 'TCK makes the XOR of T0..TCK zero');
    const inserted = await insertCard(PivCard.blank({ serial: 4242 }), SLOT);
    try {
      assert.match(await tool('opensc-tool', ['-r', '0', '--atr']), new RegExp(hex(DEFAULT_ATR).replace(/(..)(?!$)/g, '$1:'), 'i'));
      assert.equal((await tool('opensc-tool', ['-r', '0', '-n'])).trim(), 'Personal Identity Verification Card');
      const status = await tool('yubico-piv-tool', ['-r', SLOT.reader, '-a', 'status']);
      assert.match(status, /Version:\s*5\.2\.7/);
      assert.match(status, /Serial Number:\s*4242/);
      assert.match(status, /PIN tries left:\s*3/);
      // ykman accepts a card that is not a YubiKey when asked for its reader by name: it finds the
      // PIV application and takes the version from the Yubico GET VERSION extension.
      const info = await tool('ykman', ['--reader', SLOT.reader, 'piv', 'info']);
      assert.match(info, /PIV version:\s*5\.2\.7/);
      assert.match(info, /PIN tries remaining:\s*3/);
      assert.match(info, /Management key algorithm:\s*TDES/);
    } finally {
      await inserted.eject();
    }
  });

  it('OpenSC and yubico-piv-tool read what PivSession wrote: pkcs15-tool lists and returns the certificates byte-identical, pkcs11-tool signs, openssl verifies', async () => {
    const dir = tempDir('cardlink-piv-interop-');
    const inserted = await insertCard(PivCard.blank(), SLOT);
    try {
      const { rsaCert, ecCert } = await withSession(async (s) => {
        await s.authenticate(FACTORY.MANAGEMENT_KEY);
        await s.putObject(OBJECT.CHUID, newChuid());
        const rsa = await s.generateKey(0x9a, ALG.RSA_2048);
        const rsaCert = await issueOurs(rsa, 2, 'CN=PIV Interop User');
        await s.writeCertificate(0x9a, rsaCert);
        const ec = await s.generateKey(0x9d, ALG.ECC_P256);
        const ecCert = await issueOurs(ec, 30, 'CN=PIV Interop EC');
        await s.writeCertificate(0x9d, ecCert, { compress: true });
        return { rsaCert, ecCert };
      });

      const dump = await tool('pkcs15-tool', ['-r', '0', '--dump']);
      assert.match(dump, /X\.509 Certificate \[Certificate for PIV Authentication\]/);
      assert.match(dump, /X\.509 Certificate \[Certificate for Key Management\]/);
      assert.match(dump, /Private RSA Key \[PIV AUTH key\][\s\S]*?ModLength\s*: 2048/);
      assert.deepEqual(pemToDer(await tool('pkcs15-tool', ['-r', '0', '--read-certificate', '01'])), rsaCert);
      assert.deepEqual(pemToDer(await tool('pkcs15-tool', ['-r', '0', '--read-certificate', '03'])), ecCert, 'gzip-compressed on the card, byte-identical out');

      const message = join(dir, 'message.txt');
      writeFileSync(message, 'signed by OpenSC with a key cardlink generated on a PIV card\n');
      for (const [id, mechanism, cert, extra] of [
        ['01', 'SHA256-RSA-PKCS', rsaCert, []],
        ['03', 'ECDSA-SHA256', ecCert, ['--signature-format', 'openssl']],
      ] as const) {
        const signature = join(dir, `message-${id}.sig`);
        await tool('pkcs11-tool', [
          '--module', PKCS11_MODULE, '--slot-index', '0', '--login', '--pin', FACTORY.PIN,
          '--sign', '--mechanism', mechanism, '--id', id, '-i', message, '-o', signature, ...extra,
        ]);
        const certPub = join(dir, `cert-${id}.pem`);
        writeFileSync(certPub, new X509Certificate(cert).publicKey.export({ type: 'spki', format: 'pem' }));
        assert.match(await tool('openssl', ['dgst', '-sha256', '-verify', certPub, '-signature', signature, message]), /Verified OK/);
        const bad = readFileSync(signature);
        bad[bad.length - 5]! ^= 0x01;
        writeFileSync(signature, bad);
        assert.notEqual((await runTool('openssl', ['dgst', '-sha256', '-verify', certPub, '-signature', signature, message])).code, 0);
      }

      const status = await tool('yubico-piv-tool', ['-r', SLOT.reader, '-a', 'status']);
      assert.match(status, /Slot 9a:\s*\n\s*Algorithm:\s*RSA2048\s*\n\s*Subject DN:\s*CN=PIV Interop User/);
      // Slot 9d's certificate is gzip-compressed (CertInfo 01): yubico-piv-tool 2.2.0 does not
      // decompress and prints "Invalid cert data" for it, so only 9a is asked of it here.
      assert.match(status, /CHUID:\s*[0-9a-f]{20}/i);
    } finally {
      await inserted.eject();
    }
  });

  it('PivSession reads what yubico-piv-tool wrote: keys it generated (and signs with), a certificate it imported, CHUID and CCC', async () => {
    const dir = tempDir('cardlink-piv-interop-');
    const inserted = await insertCard(PivCard.blank(), SLOT);
    try {
      const r = ['-r', SLOT.reader];
      const pubFile = join(dir, 'pub.pem');
      const certFile = join(dir, 'cert.pem');
      await tool('yubico-piv-tool', [...r, '-a', 'generate', '-s', '9a', '-A', 'ECCP256', '-o', pubFile]);
      const generated = createPublicKey(readFileSync(pubFile, 'utf8'));
      const issued = await issueOurs(generated, 0, 'CN=yubico-piv-tool user');
      writeFileSync(certFile, new X509Certificate(issued).toString());
      await tool('yubico-piv-tool', [...r, '-a', 'import-certificate', '-s', '9a', '-i', certFile]);
      await tool('yubico-piv-tool', [...r, '-a', 'set-chuid', '-a', 'set-ccc']);
      // yubico-piv-tool signs with the key it made and checks the signature against the
      // certificate (test-signature: GENERAL AUTHENTICATE with the hash, ECDSA on the card).
      assert.match(await tool('yubico-piv-tool', [...r, '-a', 'verify-pin', '-P', FACTORY.PIN, '-a', 'test-signature', '-s', '9a', '-i', certFile]), /Successful ECDSA verification/i);
      const rsaPub = join(dir, 'rsa.pem');
      await tool('yubico-piv-tool', [...r, '-a', 'generate', '-s', '9e', '-A', 'RSA2048', '-o', rsaPub]);

      const written = pemToDer(readFileSync(certFile, 'utf8'));
      await withSession(async (s) => {
        const cert = await s.readCertificate(0x9a);
        assert.ok(cert && equalBytes(cert.der, written), 'the certificate yubico-piv-tool imported, byte for byte');
        const x509 = new X509Certificate(Buffer.from(cert.der));
        assert.equal(x509.subject, 'CN=yubico-piv-tool user');
        assert.ok(x509.publicKey.equals(generated), 'its key is the one yubico-piv-tool generated on the card');
        const chuid = parseChuid((await s.getObject(OBJECT.CHUID))!);
        assert.equal(chuid.guid.length, 16);
        assert.equal(chuid.fascn.length, 25);
        assert.ok(await s.getObject(OBJECT.CARD_CAPABILITY_CONTAINER));
        // The RSA key yubico-piv-tool generated in 9E (no PIN policy) signs for PivSession.
        const data = Buffer.from('signed with a yubico-piv-tool key');
        const sig = await s.sign(0x9e, ALG.RSA_2048, pkcs1SignatureBlock(digestInfoOf('sha256', data), 256));
        assert.ok(verify('sha256', data, createPublicKey(readFileSync(rsaPub, 'utf8')), sig));
      });
    } finally {
      await inserted.eject();
    }
  });

  it("PivSession reads the certificates OpenSC's piv-tool loaded, plain and gzip-compressed", async () => {
    const dir = tempDir('cardlink-piv-interop-');
    const inserted = await insertCard(PivCard.blank(), SLOT);
    try {
      // piv-tool reads the management key from the file PIV_EXT_AUTH_KEY names (never argv).
      const keyFile = join(dir, 'mgmt.key');
      writeFileSync(keyFile, FACTORY.MANAGEMENT_KEY, { mode: 0o600 });
      const env = { PIV_EXT_AUTH_KEY: keyFile };
      // piv-tool 0.23 exits with the byte count sc_write_binary returned (mod 256) after loading a
      // certificate, so success is "no error printed" and the object read back below.
      const pivTool = async (args: string[], written: number): Promise<void> => {
        const res = await runTool('piv-tool', ['-r', '0', ...args], { env, timeoutMs: 60_000 });
        assert.equal(res.code, written & 0xff, `piv-tool ${args.join(' ')} failed (${res.code}):\n${res.stdout}\n${res.stderr}`);
        assert.doesNotMatch(res.stdout + res.stderr, /fail|error|unable/i);
      };
      // The key comes from PivSession: piv-tool 0.23's --genkey has the card generate the key but
      // then fails to build the public key with OpenSSL 3 ("unable to gen RSA", "invalid curve"),
      // a limit of the tool on Debian 12, not of the card. Keys made by another tool are shown
      // with yubico-piv-tool above.
      const generated = await withSession(async (s) => {
        await s.authenticate(FACTORY.MANAGEMENT_KEY);
        return s.generateKey(0x9d, ALG.RSA_2048);
      });
      const cert = await issueOurs(generated, 0, 'CN=piv-tool user');
      const certFile = join(dir, 'cert.pem');
      writeFileSync(certFile, new X509Certificate(cert).toString());
      await pivTool(['-A', 'M:9B:03', '-C', '9D', '-i', certFile], cert.length);
      // -Z loads a certificate that is gzipped already: piv-tool sets CertInfo's compression bit.
      const gzFile = join(dir, 'cert.der.gz');
      const gz = gzipSync(cert);
      writeFileSync(gzFile, gz);
      await pivTool(['-A', 'M:9B:03', '-Z', '9A', '-i', gzFile], gz.length);
      await withSession(async (s) => {
        const plain = await s.readCertificate(0x9d);
        assert.ok(plain && equalBytes(plain.der, cert) && !plain.compressed, 'the certificate piv-tool loaded, byte for byte');
        const compressed = await s.readCertificate(0x9a);
        assert.ok(compressed && equalBytes(compressed.der, cert) && compressed.compressed, 'and the one it loaded gzipped, decompressed');
        assert.ok(new X509Certificate(Buffer.from(plain.der)).publicKey.equals(generated));
        await s.verifyPin(FACTORY.PIN);
        const data = Buffer.from('signed with the key under the certificate piv-tool loaded');
        const block = pkcs1SignatureBlock(digestInfo('sha256', createHash('sha256').update(data).digest()), 256);
        const sig = await s.sign(0x9d, ALG.RSA_2048, block);
        assert.ok(verify('sha256', data, new X509Certificate(Buffer.from(plain.der)).publicKey, sig), 'the slot key signs for the loaded certificate');
      });
    } finally {
      await inserted.eject();
    }
  });

  it('`cardlink emulate --app piv` serves a PIV image that records its application', async () => {
    const dir = tempDir('cardlink-emulate-piv-');
    const image = join(dir, 'piv.json');
    const slot = SLOTS[1];
    const entry = resolve('src/cli/main.ts');
    const start = (args: string[]) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', '-e', `import(${JSON.stringify(entry)}).then((m) => m.main(process.argv.slice(1))).then((c) => { process.exitCode = c; })`,
          'emulate', '--image', image, '--vpcd', `${VPCD_HOST}:${slot.port}`, '--json', ...args],
        { env: { ...process.env, CARDLINK_HOME: join(dir, 'home') }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      return { child, exited, out: () => stdout, err: () => stderr };
    };
    const first = start(['--app', 'piv']);
    try {
      const deadline = Date.now() + 30_000;
      while (!first.out().includes('}') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const ready = JSON.parse(first.out()) as Record<string, unknown>;
      assert.deepEqual([ready.event, ready.app, ready.created, ready.atr], ['ready', 'piv', true, hex(DEFAULT_ATR)]);
      await waitForPcscCard(slot.reader, 'present', { timeoutMs: 10_000 });
      assert.equal((await tool('opensc-tool', ['-r', '1', '-n'])).trim(), 'Personal Identity Verification Card');
      await tool('yubico-piv-tool', ['-r', slot.reader, '-a', 'change-pin', '-P', FACTORY.PIN, '-N', '24682468']);
      first.child.kill('SIGTERM');
      assert.equal(await first.exited, 0);
      await waitForPcscCard(slot.reader, 'empty', { timeoutMs: 10_000 });
    } finally {
      if (first.child.exitCode === null) first.child.kill('SIGKILL');
    }
    // The image remembers it is a PIV card (no --app needed) and what was changed on it; asking
    // for GIDS is refused.
    const wrong = start(['--app', 'gids']);
    assert.equal(await wrong.exited, 2);
    assert.match(wrong.err(), /holds a PIV card, not GIDS/);
    const second = start([]);
    try {
      const deadline = Date.now() + 30_000;
      while (!second.out().includes('}') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const ready = JSON.parse(second.out()) as Record<string, unknown>;
      assert.deepEqual([ready.app, ready.created], ['piv', false]);
      await waitForPcscCard(slot.reader, 'present', { timeoutMs: 10_000 });
      await tool('yubico-piv-tool', ['-r', slot.reader, '-a', 'verify-pin', '-P', '24682468']);
      second.child.kill('SIGTERM');
      assert.equal(await second.exited, 0);
      await waitForPcscCard(slot.reader, 'empty', { timeoutMs: 10_000 });
    } finally {
      if (second.child.exitCode === null) second.child.kill('SIGKILL');
    }
  });
});
