/**
 * The card commands on an emulated PIV card (`--image` of a PIV image): the application is known
 * from the image and reported, gen/csr/install/ls/check/files/pin work, and the management key
 * comes from CARDLINK_MGMT_KEY or, only with --default-mgmt-key, is the factory key with a warning.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { hex } from '../../src/bytes.js';
import { FACTORY } from '../../src/piv/emulator/index.js';
import { issueWithOpenssl } from '../helpers/certs.js';
import { cli } from '../helpers/cli.js';
import { blankPivImage } from '../helpers/piv-card.js';

function pivImage(aesKey?: Uint8Array): { image: string; home: string } {
  return blankPivImage(aesKey);
}

function opensslVerify(path: string): string {
  const r = spawnSync('openssl', ['req', '-in', path, '-verify', '-noout'], { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`;
}

describe('card commands on a PIV image', () => {
  for (const [label, keyArgs, expect] of [
    ['P-256', ['--curve', 'p256'], 'ECC P-256'],
    ['RSA-2048', ['--alg', 'rsa2048'], 'RSA-2048'],
  ] as const) {
    it(`${label}: gen in 9A with the factory key (warned), csr verified by openssl, a test CA's certificate installed, ls and check`, async () => {
      const { image, home } = pivImage();
      const env = { CARDLINK_HOME: home, CARDLINK_PIN: FACTORY.PIN };
      const empty = await cli(['card', 'ls', '--image', image, '--json'], env);
      assert.equal(empty.code, 0, empty.stderr);
      assert.deepEqual(JSON.parse(empty.stdout), { ok: true, app: 'piv', containers: [] });

      const noKey = await cli(['card', 'gen', '--image', image, '--container', '9a', ...keyArgs, '--json'], env);
      assert.equal(noKey.code, 2);
      assert.match(JSON.parse(noKey.stdout).error.message, /needs the PIV management key: set CARDLINK_MGMT_KEY/);

      const gen = await cli(['card', 'gen', '--image', image, '--container', '9a', ...keyArgs, '--default-mgmt-key', '--json'], env);
      assert.equal(gen.code, 0, gen.stderr);
      assert.match(gen.stderr, /warning: using the well-known factory PIV management key/);
      assert.doesNotMatch(gen.stdout + gen.stderr, new RegExp(hex(FACTORY.MANAGEMENT_KEY), 'i'), 'not even the factory key is printed');
      const made = JSON.parse(gen.stdout);
      assert.equal(made.app, 'piv');
      assert.equal(made.container.algorithm, expect);
      assert.equal(made.container.slot, 0x9a);

      const csrPath = join(home, '..', 'req.pem');
      const csr = await cli(['card', 'csr', '--image', image, '--container', '9a', '--subject', 'CN=Alice Example,O=cardlink', '--out', csrPath], env);
      assert.equal(csr.code, 0, csr.stderr);
      assert.match(opensslVerify(csrPath), /self-signature verify OK/);
      const certPath = join(home, '..', 'alice.der');
      writeFileSync(certPath, issueWithOpenssl(readFileSync(csrPath, 'utf8')));

      const install = await cli(['card', 'install', certPath, '--image', image], { ...env, CARDLINK_MGMT_KEY: hex(FACTORY.MANAGEMENT_KEY) });
      assert.equal(install.code, 0, install.stderr);
      assert.match(install.stdout, /installed 5FC105 for container 0 '[0-9a-f-]{36}'.*Windows sees it once the card is re-inserted/);
      assert.doesNotMatch(install.stdout + install.stderr, new RegExp(hex(FACTORY.MANAGEMENT_KEY), 'i'), 'the key from the environment is never printed');

      const exported = join(home, '..', 'exported.der');
      const exp = await cli(['card', 'export', '--image', image, '--container', '9a', '--der', '--out', exported], env);
      assert.equal(exp.code, 0, exp.stderr);
      assert.deepEqual(readFileSync(exported), readFileSync(certPath), 'export returns the certificate byte for byte');

      const ls = await cli(['card', 'ls', '--image', image], env);
      assert.equal(ls.code, 0, ls.stderr);
      assert.match(ls.stdout, /^PIV application/);
      assert.match(ls.stdout, new RegExp(`${made.container.name}.*${expect}.*default.*5FC105.*slot 9A`));
      assert.match(ls.stdout, /subject +.*CN=Alice Example/);
      assert.match(ls.stdout, /issuer +CN=OpenSSL test CA/);
      assert.match(ls.stdout, /SHA-1 +[0-9A-F]{40}/);

      const check = await cli(['card', 'check', '--image', image, '--json'], env);
      assert.equal(check.code, 0, check.stdout);
      assert.equal(JSON.parse(check.stdout).app, 'piv');

      // Windows' side through the PIV minidriver port: link into the model's store (the model
      // acquires the key and verifies a signature over its challenge), then doctor is clean.
      const store = `model:${join(home, '..', 'store')}`;
      const link = await cli(['link', '--image', image, '--store', store, '--json'], env);
      assert.equal(link.code, 0, link.stdout + link.stderr);
      const linked = JSON.parse(link.stdout);
      assert.equal(linked.linked.length, 1);
      assert.equal(linked.linked[0].container, made.container.name);
      assert.equal(linked.linked[0].thumbprint, createHash('sha1').update(readFileSync(certPath)).digest('hex').toUpperCase());
      assert.equal(linked.linked[0].proof.verified, true);
      const doctor = await cli(['doctor', '--image', image, '--store', store, '--json'], env);
      assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr);
      const diagnosis = JSON.parse(doctor.stdout);
      assert.deepEqual(diagnosis.findings, []);
      assert.equal(diagnosis.certificates.length, 1);
      assert.ok(diagnosis.certificates[0].acquisition.proof, 'the proof signature was made (CARDLINK_PIN given)');
    });
  }

  it('a wrong CARDLINK_MGMT_KEY is a typed error in plain words; an AES key works with --mgmt-alg', async () => {
    const aes = new Uint8Array(16).map((_, i) => i + 0x40);
    const { image, home } = pivImage(aes);
    const env = { CARDLINK_HOME: home };
    const wrong = await cli(['card', 'gen', '--image', image, '--container', '9a', '--curve', 'p256', '--mgmt-alg', 'aes128', '--json'], { ...env, CARDLINK_MGMT_KEY: '00'.repeat(16) });
    assert.notEqual(wrong.code, 0);
    assert.equal(JSON.parse(wrong.stdout).error.code, 'MGMT_KEY_REFUSED');
    assert.match(JSON.parse(wrong.stdout).error.message, /refused the management key/);
    const short = await cli(['card', 'gen', '--image', image, '--container', '9a', '--mgmt-alg', 'aes128', '--json'], { ...env, CARDLINK_MGMT_KEY: 'abcd' });
    assert.equal(short.code, 2);
    assert.match(JSON.parse(short.stdout).error.message, /32 hex digits/);
    const right = await cli(['card', 'gen', '--image', image, '--container', '9a', '--curve', 'p256', '--mgmt-alg', 'aes128'], { ...env, CARDLINK_MGMT_KEY: hex(aes) });
    assert.equal(right.code, 0, right.stderr);
    assert.match(right.stderr, /generated ECC P-256 key in PIV slot 9A/);
    assert.doesNotMatch(right.stderr, /warning/);
    const both = await cli(['card', 'gen', '--image', image, '--container', '9c', '--default-mgmt-key'], { ...env, CARDLINK_MGMT_KEY: hex(aes) });
    assert.equal(both.code, 2);
  });

  it('without CARDLINK_MGMT_KEY the management key is asked on the terminal, without echo', async () => {
    const { image, home } = pivImage();
    const asked: string[] = [];
    const promptSecret = async (question: string): Promise<string> => {
      asked.push(question);
      return hex(FACTORY.MANAGEMENT_KEY);
    };
    const gen = await cli(['card', 'gen', '--image', image, '--container', '9d', '--curve', 'p384'], { CARDLINK_HOME: home }, { promptSecret });
    assert.equal(gen.code, 0, gen.stderr);
    assert.deepEqual(asked, ['PIV management key (hex): ']);
    assert.match(gen.stderr, /generated ECC P-384 key in PIV slot 9D/);
    const status = await cli(['card', 'pin', 'status', '--image', image], { CARDLINK_HOME: home });
    assert.match(status.stdout, /PIN status: 3 of 3 tries left \(PIV card\)/);
  });

  it('files shows the data objects read-only; --app gids on a PIV image is a usage error; pin status and unblock with the PUK', async () => {
    const { image, home } = pivImage();
    const env = { CARDLINK_HOME: home };
    const files = await cli(['card', 'files', '--image', image], env);
    assert.equal(files.code, 0, files.stderr);
    assert.match(files.stdout, /PIV card: no file system; its data objects/);
    assert.match(files.stdout, /7E +Discovery Object/);
    const wrongApp = await cli(['card', 'ls', '--image', image, '--app', 'gids'], env);
    assert.equal(wrongApp.code, 2);
    assert.match(wrongApp.stderr, /holds a PIV card, not GIDS/);
    for (let i = 0; i < 3; i++) await cli(['card', 'pin', 'verify', '--image', image], { ...env, CARDLINK_PIN: '000000' });
    const blocked = await cli(['card', 'pin', 'status', '--image', image, '--json'], env);
    assert.deepEqual(JSON.parse(blocked.stdout), { ok: true, action: 'status', app: 'piv', triesLeft: 0, tryLimit: 3 });
    const badPuk = await cli(['card', 'pin', 'unblock', '--image', image, '--json'], { ...env, CARDLINK_NEW_PIN: '246810', CARDLINK_PUK: '00000000' });
    assert.equal(JSON.parse(badPuk.stdout).error.code, 'PUK_INCORRECT');
    const unblock = await cli(['card', 'pin', 'unblock', '--image', image, '--json'], { ...env, CARDLINK_NEW_PIN: '246810', CARDLINK_PUK: FACTORY.PUK });
    assert.equal(unblock.code, 0, unblock.stdout);
    assert.equal(JSON.parse(unblock.stdout).triesLeft, 3);
    const verify = await cli(['card', 'pin', 'verify', '--image', image], { ...env, CARDLINK_PIN: '246810' });
    assert.equal(verify.code, 0, verify.stderr);
  });
});

describe('card info on a PIV image', () => {
  it('says the application, the CHUID GUID as card id, the slots with their certificates, PIN and PUK tries', async () => {
    const { image, home } = pivImage();
    const env = { CARDLINK_HOME: home, CARDLINK_PIN: FACTORY.PIN, CARDLINK_MGMT_KEY: hex(FACTORY.MANAGEMENT_KEY) };
    const blank = await cli(['card', 'info', '--image', image, '--json'], env);
    assert.equal(blank.code, 0, blank.stdout + blank.stderr);
    const b = JSON.parse(blank.stdout);
    assert.deepEqual([b.app, b.cardId, b.slots, b.pin], ['piv', null, [], { triesLeft: 3, tryLimit: 3 }]);
    assert.match(b.chuid, /missing/);

    const gen = await cli(['card', 'gen', '--image', image, '--container', '9a', '--curve', 'p256', '--json'], env);
    assert.equal(gen.code, 0, gen.stderr);
    const made = JSON.parse(gen.stdout).container;
    await cli(['card', 'gen', '--image', image, '--container', '9d', '--alg', 'rsa2048'], env);
    const csrPath = join(home, '..', 'req.pem');
    assert.equal((await cli(['card', 'csr', '--image', image, '--container', '9a', '--subject', 'CN=Info Example', '--out', csrPath], env)).code, 0);
    const certPath = join(home, '..', 'info.der');
    writeFileSync(certPath, issueWithOpenssl(readFileSync(csrPath, 'utf8')));
    assert.equal((await cli(['card', 'install', certPath, '--image', image], env)).code, 0);
    await cli(['card', 'pin', 'verify', '--image', image], { ...env, CARDLINK_PIN: '000000' });

    const info = await cli(['card', 'info', '--image', image, '--json'], env);
    assert.equal(info.code, 0, info.stderr);
    const i = JSON.parse(info.stdout);
    assert.equal(i.app, 'piv');
    assert.match(i.cardId, /^[0-9A-F]{32}$/);
    assert.equal(made.name.slice(0, 8).toUpperCase(), i.cardId.slice(6, 8) + i.cardId.slice(4, 6) + i.cardId.slice(2, 4) + i.cardId.slice(0, 2), "the container name is made from the card id's GUID");
    assert.deepEqual(i.pin, { triesLeft: 2, tryLimit: 3 });
    assert.equal(i.puk.triesLeft, null);
    assert.match(i.puk.note, /plain PIV has no command/);
    assert.deepEqual(
      i.slots.map((x: { slot: string; algorithm: string; isDefault: boolean; certificate: { subject: string } | null }) => [x.slot, x.algorithm, x.isDefault, x.certificate?.subject ?? null]),
      [
        ['9A', 'ECC P-256', true, 'CN=Info Example'],
        ['9D', 'RSA-2048', false, null],
      ],
    );
    assert.equal(i.slots[0].certificate.thumbprint, createHash('sha1').update(readFileSync(certPath)).digest('hex').toUpperCase());
    const text = await cli(['card', 'info', '--image', image], env);
    assert.match(text.stdout, /^PIV application/);
    assert.match(text.stdout, new RegExp(`card id +${i.cardId} \\(CHUID GUID\\)`));
    assert.match(text.stdout, /PIN +2 of 3 tries left/);
    assert.match(text.stdout, /9A +[0-9a-f-]{36} +ECC P-256 +default\n +CN=Info Example, until/);
  });
});
