/**
 * Cards you cannot break by accident (issue 12, point 6): the image lock against emulate, the
 * minidriver core files behind --force, a full card left consistent, new secrets asked twice,
 * init that checks before it asks, PINs OpenSC can still use.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { hex } from '../../src/bytes.js';
import { MinidriverCard } from '../../src/card/index.js';
import { openCardImage } from '../../src/gids/emulator/index.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { TEST_ADMIN_KEY, TEST_PIN, tempDir } from '../helpers/card.js';
import { cli } from '../helpers/cli.js';

const ADMIN_HEX = hex(TEST_ADMIN_KEY);

async function initialised(): Promise<{ dir: string; image: string; env: Record<string, string> }> {
  const dir = tempDir();
  const image = join(dir, 'card.json');
  const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: ADMIN_HEX };
  const r = await cli(['card', 'init', '--image', image], env);
  assert.equal(r.code, 0, r.stderr);
  return { dir, image, env };
}

async function waitFor(what: string, ok: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the image lock', () => {
  test('while emulate serves an image, a command on the same file is refused and names it; after, it works', { timeout: 60_000 }, async () => {
    const { image, env } = await initialised();
    // Nothing listens on port 1: emulate waits for vpcd, holding the image, until stopped.
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/service/fixtures/cli-entry.ts', 'emulate', '--image', image, '--vpcd', '127.0.0.1:1'], { env: { ...process.env, ...env }, stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await waitFor('the lock', () => existsSync(`${image}.lock`));
      const r = await cli(['card', 'gen', '--image', image, '--container', 'x', '--alg', 'rsa1024', '--json'], env);
      assert.equal(r.code, 2);
      const answer = JSON.parse(r.stdout) as { error: { code: string; message: string } };
      assert.equal(answer.error.code, 'IMAGE_IN_USE');
      assert.match(answer.error.message, new RegExp(`card\\.json is in use by emulate \\(pid ${child.pid}\\)`));
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    assert.equal(existsSync(`${image}.lock`), false, 'emulate removes its lock when it stops');
    const after = await cli(['card', 'gen', '--image', image, '--container', 'x', '--alg', 'rsa1024'], env);
    assert.equal(after.code, 0, after.stderr);
    assert.equal(existsSync(`${image}.lock`), false, 'a command removes its lock when it ends');
  });

  test('a lock left by a process that is gone is taken over', async () => {
    const { image, env } = await initialised();
    writeFileSync(`${image}.lock`, JSON.stringify({ holder: 'emulate', pid: 2 ** 22 + 12345 }));
    const r = await cli(['card', 'ls', '--image', image], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync(`${image}.lock`), false);
  });
});

describe('minidriver core files need --force', () => {
  for (const path of ['mscp/cmapfile', 'cardcf', 'cardid', 'cardapps', 'MSCP/CMAPFILE']) {
    test(`card files rm ${path}`, async () => {
      const { image, env } = await initialised();
      const r = await cli(['card', 'files', 'rm', path, '--image', image], env);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /is a minidriver core file: deleting it by hand can leave every container unreachable; add --force/);
      const files = JSON.parse((await cli(['card', 'files', '--image', image, '--json'], env)).stdout) as { files: { path: string }[] };
      assert.ok(files.files.some((f) => f.path.toLowerCase() === path.toLowerCase()), 'still there');
    });
  }

  test('card files write mscp/cmapfile without --force is refused; msroots is not a core file', async () => {
    const { dir, image, env } = await initialised();
    const data = join(dir, 'data.bin');
    writeFileSync(data, Buffer.alloc(0));
    const refused = await cli(['card', 'files', 'write', 'mscp/cmapfile', '--in', data, '--image', image], env);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /writing it by hand/);
    assert.equal((await cli(['card', 'check', '--image', image], env)).code, 0);
    writeFileSync(data, Buffer.from([1, 2, 3]));
    assert.equal((await cli(['card', 'files', 'write', 'mscp/msroots', '--in', data, '--image', image], env)).code, 0);
    const forced = await cli(['card', 'files', 'rm', 'mscp/msroots', '--image', image, '--force'], env);
    assert.equal(forced.code, 0, forced.stderr);
  });
});

describe('a full card', () => {
  test('answers "card full (N containers)" and is left consistent', { timeout: 120_000 }, async () => {
    const dir = tempDir();
    const image = join(dir, 'small.json');
    const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: ADMIN_HEX };
    // A small chip: room for a few RSA-1024 keys.
    openCardImage(image, { create: true, capacityBytes: 12000, home: env.CARDLINK_HOME });
    const init = await cli(['card', 'init', '--image', image], env);
    assert.equal(init.code, 0, init.stderr);
    let made = 0;
    const transport = new MemoryTransport(openCardImage(image, { home: env.CARDLINK_HOME }));
    try {
      const card = await MinidriverCard.open(transport);
      await card.verifyPin(TEST_PIN);
      for (;;) {
        try {
          await card.createContainer(`k${made}`, { bits: 1024 });
          made++;
        } catch (err) {
          assert.equal((err as { code?: string }).code, 'CARD_FULL', String(err));
          break;
        }
        assert.ok(made < 40, 'the small card never filled up');
      }
    } finally {
      await transport.close();
    }
    assert.ok(made >= 1);
    const r = await cli(['card', 'gen', '--image', image, '--alg', 'rsa1024', '--json'], env);
    assert.equal(r.code, 2);
    const answer = JSON.parse(r.stdout) as { error: { code: string; message: string } };
    assert.equal(answer.error.code, 'CARD_FULL');
    assert.match(answer.error.message, new RegExp(`^card full \\(${made} containers\\)`));
    const check = await cli(['card', 'check', '--image', image, '--json'], env);
    assert.equal(check.code, 0, check.stdout);
    assert.deepEqual((JSON.parse(check.stdout) as { findings: unknown[] }).findings, []);
  });
});

describe('new secrets', () => {
  test('a new PIN and the administrator key are asked twice on a terminal; a mismatch changes nothing', async () => {
    const dir = tempDir();
    const image = join(dir, 'card.json');
    const home = { CARDLINK_HOME: join(dir, 'home') };
    const answers = (list: string[]) => {
      const asked: string[] = [];
      return { asked, promptSecret: async (q: string) => (asked.push(q), list.shift() ?? '') };
    };
    const typo = answers(['123456', '123465']);
    const r = await cli(['card', 'init', '--image', image], home, { promptSecret: typo.promptSecret });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /the two new PIN entries differ: nothing was changed/);
    assert.deepEqual(typo.asked, ['New PIN: ', 'New PIN (again): ']);
    assert.equal(existsSync(image), false, 'no image was made');

    const keyTypo = answers(['123456', '123456', ADMIN_HEX, ADMIN_HEX.replace(/^01/, '02')]);
    const r2 = await cli(['card', 'init', '--image', image], home, { promptSecret: keyTypo.promptSecret });
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /the two Administrator key \(48 hex digits\) entries differ/);

    const right = answers(['123456', '123456', ADMIN_HEX, ADMIN_HEX]);
    const ok = await cli(['card', 'init', '--image', image], home, { promptSecret: right.promptSecret });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(right.asked.length, 4);

    const change = answers(['123456', '654321', '654321']);
    const changed = await cli(['card', 'pin', 'change', '--image', image], home, { promptSecret: change.promptSecret });
    assert.equal(changed.code, 0, changed.stderr);
    assert.deepEqual(change.asked, ['PIN: ', 'New PIN: ', 'New PIN (again): ']);
    assert.equal((await cli(['card', 'pin', 'verify', '--image', image], { ...home, CARDLINK_PIN: '654321' })).code, 0);
  });

  test('card init says "already initialised" before asking for anything', async () => {
    const { image, env } = await initialised();
    const asked: string[] = [];
    const r = await cli(['card', 'init', '--image', image, '--json'], { CARDLINK_HOME: env.CARDLINK_HOME! }, { promptSecret: async (q) => (asked.push(q), '123456') });
    assert.equal(r.code, 2);
    assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, 'ALREADY_INITIALIZED');
    assert.deepEqual(asked, []);
  });

  test('a new PIN has at most 15 characters (what OpenSC accepts); an existing longer one still verifies', async () => {
    const dir = tempDir();
    const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_ADMIN_KEY: ADMIN_HEX };
    const long = await cli(['card', 'init', '--image', join(dir, 'a.json')], { ...env, CARDLINK_PIN: '1234567890123456' });
    assert.equal(long.code, 2);
    assert.match(long.stderr, /a new PIN has 4 to 15 characters \(OpenSC's GIDS driver takes no more than 15\); this one has 16/);
    assert.equal((await cli(['card', 'init', '--image', join(dir, 'b.json')], { ...env, CARDLINK_PIN: '123456789012345' })).code, 0);
    const change = await cli(['card', 'pin', 'change', '--image', join(dir, 'b.json')], { ...env, CARDLINK_PIN: '123456789012345', CARDLINK_NEW_PIN: '1234567890123456' });
    assert.equal(change.code, 2);
    assert.match(change.stderr, /at most|4 to 15/);
  });
});

describe('check --repair rebuilds a lost cmapfile from the keys on the card', () => {
  for (const how of ['deleted', 'overwritten with garbage'] as const) {
    test(`mscp/cmapfile ${how}`, async () => {
      const { dir, image, env } = await initialised();
      const gen = await cli(['card', 'gen', '--image', image, '--container', 'alice', '--alg', 'rsa1024', '--json'], env);
      assert.equal(gen.code, 0, gen.stderr);
      assert.equal((await cli(['card', 'gen', '--image', image, '--container', 'bob', '--keyspec', 'sig', '--alg', 'rsa1024'], env)).code, 0);
      const { issueOurs } = await import('../helpers/certs.js');
      const { createPublicKey } = await import('node:crypto');
      const { toPem } = await import('../../src/pem.js');
      const der = await issueOurs(createPublicKey((JSON.parse(gen.stdout) as { publicKey: string }).publicKey), 0, 'CN=Alice');
      writeFileSync(join(dir, 'a.pem'), toPem(der, 'CERTIFICATE'));
      assert.equal((await cli(['card', 'install', join(dir, 'a.pem'), '--image', image], env)).code, 0);

      if (how === 'deleted') assert.equal((await cli(['card', 'files', 'rm', 'mscp/cmapfile', '--image', image, '--force'], env)).code, 0);
      else {
        writeFileSync(join(dir, 'garbage'), Buffer.from([1, 2, 3]));
        assert.equal((await cli(['card', 'files', 'write', 'mscp/cmapfile', '--in', join(dir, 'garbage'), '--image', image, '--force'], env)).code, 0);
      }
      const check = await cli(['card', 'check', '--image', image, '--json'], env);
      assert.equal(check.code, 1, check.stdout + check.stderr);
      const findings = (JSON.parse(check.stdout) as { findings: { code: string; message: string }[] }).findings;
      assert.deepEqual(findings.map((f) => f.code), ['CMAPFILE_LOST']);
      assert.match(findings[0]!.message, how === 'deleted' ? /mscp\/cmapfile is missing: .*2 keys/ : /mscp\/cmapfile is damaged/);

      const repair = await cli(['card', 'check', '--image', image, '--repair', '--json'], env);
      assert.equal(repair.code, 0, repair.stdout + repair.stderr);
      const ls = JSON.parse((await cli(['card', 'ls', '--image', image, '--json'], env)).stdout) as { containers: { name: string; keySpec: string; keyBits: number; certificateFile?: string; certificate: { subject: string } | null }[] };
      assert.deepEqual(ls.containers.map((c) => [c.name, c.keySpec, c.keyBits, c.certificateFile ?? null]), [['recovered-0', 'kx', 1024, 'mscp/kxc00'], ['recovered-1', 'sig', 1024, null]]);
      assert.equal(ls.containers[0]!.certificate?.subject, 'CN=Alice');
      // The recovered container is usable: its key signs a request.
      const csr = await cli(['card', 'csr', '--image', image, '--container', 'recovered-0', '--subject', 'CN=Alice', '--out', join(dir, 'r.csr')], env);
      assert.equal(csr.code, 0, csr.stderr);
      assert.equal((await cli(['card', 'check', '--image', image], env)).code, 0);
    });
  }
});
