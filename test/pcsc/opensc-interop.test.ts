/**
 * Interoperability with OpenSC, whose GIDS driver was written independently of ours, through the
 * real pcscd + vpcd: OpenSC finds the emulated card, reads what cardlink wrote (and signs with it
 * through its PKCS#11 module), and cardlink reads what OpenSC wrote.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hex } from '../../src/bytes.js';
import { MinidriverCard } from '../../src/card/index.js';
import { DEFAULT_ATR, GidsCard, openCardImage } from '../../src/gids/emulator/index.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { openPcscTransport, waitForPcscCard } from '../../src/transport/pcsc.js';
import { TEST_ADMIN_KEY, TEST_PIN, tempDir } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';
import { cli } from '../helpers/cli.js';
import { SLOTS, VPCD_HOST, insertCard, lockPcsc, runTool } from './harness.js';

const SEED_CONTAINER = 'lr-e46f1586-7133-4284-895d-557e2261c24d';
const PKCS11_MODULE = '/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so';
const SLOT = SLOTS[0];

function cardlinkEnv(dir: string): Record<string, string> {
  return { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) };
}

async function tool(command: string, args: string[]): Promise<string> {
  const r = await runTool(command, args, { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `${command} ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout + r.stderr;
}

function pemToDer(pem: string): Uint8Array {
  const body = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem)?.[1];
  assert.ok(body, `no PEM certificate in:\n${pem}`);
  return new Uint8Array(Buffer.from(body.replace(/\s+/g, ''), 'base64'));
}

describe('OpenSC and cardlink on the same emulated card, through pcscd + vpcd', () => {
  let release: () => void = () => {};
  before(async () => {
    release = await lockPcsc();
  });
  after(() => release());

  it('the ATR offers T=1 only, has a correct check byte, and OpenSC names the card a GIDS card', async () => {
    // TS, T0 (TD1 present, K historical bytes), TD1 = 01 (T=1, nothing further), history, TCK.
    assert.equal(DEFAULT_ATR[0], 0x3b);
    assert.equal(DEFAULT_ATR[1]! >> 4, 0x8);
    assert.equal(DEFAULT_ATR[2], 0x01);
    assert.equal(DEFAULT_ATR.length, 3 + (DEFAULT_ATR[1]! & 0x0f) + 1);
    assert.equal(DEFAULT_ATR.subarray(1).reduce((x, b) => x ^ b, 0), 0, 'TCK makes the XOR of T0..TCK zero');

    const inserted = await insertCard(GidsCard.blank(), SLOT);
    try {
      const list = await tool('opensc-tool', ['--list-readers']);
      assert.match(list, /0\s+Yes\s+Virtual PCD 00 00/);
      assert.match(list, /1\s+No\s+Virtual PCD 00 01/);
      assert.match(await tool('opensc-tool', ['-r', '0', '--atr']), new RegExp(hex(DEFAULT_ATR).replace(/(..)(?!$)/g, '$1:'), 'i'));
      // Every driver before OpenSC's gids driver probes its own AID: all must be refused (6A82).
      assert.equal((await tool('opensc-tool', ['-r', '0', '-n'])).trim(), 'GIDS Smart Card');
    } finally {
      await inserted.eject();
    }
  });

  it('OpenSC reads what cardlink wrote: pkcs15-tool lists key and certificate, pkcs11-tool signs, openssl verifies', async () => {
    const dir = tempDir('cardlink-interop-');
    const env = cardlinkEnv(dir);
    const inserted = await insertCard(GidsCard.blank(), SLOT);
    try {
      const init = await cli(['card', 'init', '--reader', SLOT.reader, '--json'], env);
      assert.equal(init.code, 0, init.stderr);
      const cardId = JSON.parse(init.stdout).cardId as string;
      const gen = await cli(['card', 'gen', '--container', SEED_CONTAINER, '--alg', 'rsa2048', '--json'], env);
      assert.equal(gen.code, 0, gen.stderr);
      const publicKey = createPublicKey(JSON.parse(gen.stdout).publicKey as string);
      const der = await issueOurs(publicKey, 2, 'CN=Interop User');
      const certFile = join(dir, 'user.der');
      writeFileSync(certFile, der);
      const install = await cli(['card', 'install', certFile, '--reader', SLOT.reader], env);
      assert.equal(install.code, 0, install.stderr);

      const dump = await tool('pkcs15-tool', ['-r', '0', '--dump']);
      assert.match(dump, /PKCS#15 Card \[GIDS card\]/);
      assert.match(dump, new RegExp(`Serial number\\s*: ${cardId}`, 'i'));
      assert.match(dump, new RegExp(`Private RSA Key \\[${SEED_CONTAINER}\\][\\s\\S]*?ModLength\\s*: 2048`));
      assert.match(dump, new RegExp(`X\\.509 Certificate \\[${SEED_CONTAINER}\\]`));
      const pem = await tool('pkcs15-tool', ['-r', '0', '--read-certificate', '00']);
      assert.deepEqual(pemToDer(pem), der);

      const message = join(dir, 'message.txt');
      const signature = join(dir, 'message.sig');
      writeFileSync(message, 'signed by OpenSC with a key cardlink generated\n');
      await tool('pkcs11-tool', [
        '--module', PKCS11_MODULE, '--slot-index', '0', '--login', '--pin', TEST_PIN,
        '--sign', '--mechanism', 'SHA256-RSA-PKCS', '--id', '00', '-i', message, '-o', signature,
      ]);
      const certPub = join(dir, 'cert-pub.pem');
      writeFileSync(certPub, new X509Certificate(der).publicKey.export({ type: 'spki', format: 'pem' }));
      const verified = await tool('openssl', ['dgst', '-sha256', '-verify', certPub, '-signature', signature, message]);
      assert.match(verified, /Verified OK/);
      // And the check is meaningful: a flipped byte does not verify.
      const bad = readFileSync(signature);
      bad[10]! ^= 0x01;
      writeFileSync(signature, bad);
      const rejected = await runTool('openssl', ['dgst', '-sha256', '-verify', certPub, '-signature', signature, message]);
      assert.notEqual(rejected.code, 0);
    } finally {
      await inserted.eject();
    }
  });

  it('cardlink reads what OpenSC wrote: gids-tool --initialize, pkcs15-init key and certificate, then card ls and card check', async () => {
    const dir = tempDir('cardlink-interop-');
    const env = cardlinkEnv(dir);
    const inserted = await insertCard(GidsCard.blank(), SLOT);
    try {
      await tool('gids-tool', ['-r', '0', '--initialize', '--pin', TEST_PIN, '--admin-key', hex(TEST_ADMIN_KEY), '--serial-number', '00'.repeat(16)]);
      await tool('pkcs15-init', ['-r', '0', '--generate-key', 'rsa/2048', '--auth-id', '80', '--verify-pin', '--pin', TEST_PIN, '--label', 'OpenSC key']);
      const pubPem = await tool('pkcs15-tool', ['-r', '0', '--read-public-key', '00']);
      const publicKey = createPublicKey(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/.exec(pubPem)![0]);
      const der = await issueOurs(publicKey, 0, 'CN=OpenSC User');
      const certFile = join(dir, 'opensc-user.der');
      writeFileSync(certFile, der);
      await tool('pkcs15-init', ['-r', '0', '--store-certificate', certFile, '--format', 'der', '--id', '00', '--verify-pin', '--pin', TEST_PIN]);

      const ls = await cli(['card', 'ls', '--reader', SLOT.reader, '--json'], env);
      assert.equal(ls.code, 0, ls.stderr);
      const containers = JSON.parse(ls.stdout).containers as Array<Record<string, unknown>>;
      assert.deepEqual(
        containers.map((c) => [c.index, c.name, c.keySpec, c.keyBits, c.isDefault, c.certificateFile]),
        // OpenSC makes a key without decrypt usage a signature container, and names its file ksc00.
        [[0, 'OpenSC key', 'sig', 2048, true, 'mscp/ksc00']],
      );

      const t = await openPcscTransport({ reader: SLOT.reader });
      try {
        const card = await MinidriverCard.open(t);
        assert.deepEqual(await card.readCertificate('OpenSC key'), der);
        assert.equal(
          (await card.publicKey('OpenSC key')).export({ type: 'spki', format: 'pem' }),
          publicKey.export({ type: 'spki', format: 'pem' }),
        );
      } finally {
        await t.close();
      }

      const check = await cli(['card', 'check', '--reader', SLOT.reader], env);
      assert.equal(check.code, 0, `card check found something:\n${check.stdout}${check.stderr}`);
      assert.match(check.stdout, /clean/);
    } finally {
      await inserted.eject();
    }
  });

  it('`cardlink emulate` serves an image file to OpenSC, toggles removal on SIGUSR2 and stops on SIGTERM', async () => {
    const dir = tempDir('cardlink-emulate-');
    const image = join(dir, 'card.json');
    const slot = SLOTS[1];
    const entry = resolve('src/cli/main.ts');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '-e', `import(${JSON.stringify(entry)}).then((m) => m.main(process.argv.slice(1))).then((c) => { process.exitCode = c; })`,
        'emulate', '--image', image, '--vpcd', `${VPCD_HOST}:${slot.port}`, '--json'],
      { env: { ...process.env, CARDLINK_HOME: join(dir, 'home') }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      const deadline = Date.now() + 30_000;
      while (!stdout.includes('}') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const ready = JSON.parse(stdout) as Record<string, unknown>;
      assert.deepEqual(
        [ready.event, ready.image, ready.created, ready.vpcd, ready.pid, ready.atr],
        ['ready', image, true, `${VPCD_HOST}:${slot.port}`, child.pid, hex(DEFAULT_ATR)],
      );
      await waitForPcscCard(slot.reader, 'present', { timeoutMs: 10_000 });
      assert.equal((await tool('opensc-tool', ['-r', '1', '-n'])).trim(), 'GIDS Smart Card');
      await tool('gids-tool', ['-r', '1', '--initialize', '--pin', TEST_PIN, '--admin-key', hex(TEST_ADMIN_KEY), '--serial-number', '00'.repeat(16)]);

      child.kill('SIGUSR2');
      await waitForPcscCard(slot.reader, 'empty', { timeoutMs: 10_000 });
      child.kill('SIGUSR2');
      await waitForPcscCard(slot.reader, 'present', { timeoutMs: 10_000 });
      // Persistent state survived the removal; the PIN status is fresh (volatile state cleared).
      const dump = await tool('pkcs15-tool', ['-r', '1', '--dump']);
      assert.match(dump, /PIN \[UserPIN\][\s\S]*Tries left\s*: 3/);
      assert.match(stderr, /card removed from the reader[\s\S]*card inserted/);

      child.kill('SIGTERM');
      assert.equal(await exited, 0);
      await waitForPcscCard(slot.reader, 'empty', { timeoutMs: 10_000 });
      const gone = await runTool('opensc-tool', ['-r', '1', '-n']);
      assert.notEqual(gone.code, 0, 'no card once the emulator stopped');
      // The image on disk is the card gids-tool initialised (sealed with that CARDLINK_HOME's key).
      const savedHome = process.env.CARDLINK_HOME;
      process.env.CARDLINK_HOME = join(dir, 'home');
      try {
        const card = await MinidriverCard.open(new MemoryTransport(openCardImage(image)));
        assert.deepEqual(await card.pinStatus(), { triesLeft: 3, tryLimit: 3 });
        assert.equal((await card.refresh()).cardId.length, 16);
      } finally {
        if (savedHome === undefined) delete process.env.CARDLINK_HOME;
        else process.env.CARDLINK_HOME = savedHome;
      }
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
