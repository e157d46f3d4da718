import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { hex } from '../../src/bytes.js';
import { TEST_ADMIN_KEY, TEST_PIN, tempDir } from '../helpers/card.js';
import { cli } from '../helpers/cli.js';

const STACK = /^\s+at /m;

interface Setup {
  dir: string;
  image: string;
  env: Record<string, string>;
}

async function setup(): Promise<Setup> {
  const dir = tempDir();
  const image = join(dir, 'card.json');
  const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) };
  assert.equal((await cli(['card', 'init', '--image', image], env)).code, 0);
  return { dir, image, env };
}

/** What the case runs, its environment, and what the one line must say. */
type Case = [name: string, make: (s: Setup) => { argv: string[]; env?: Record<string, string> }, code: string, message: RegExp];

const CASES: Case[] = [
  ['a certificate file that is not there', (s) => ({ argv: ['card', 'install', join(s.dir, 'nowhere.pem'), '--image', s.image] }), 'ENOENT', /nowhere\.pem: no such file or directory/],
  ['a certificate "file" that is a directory', (s) => ({ argv: ['card', 'install', s.dir, '--image', s.image] }), 'EISDIR', /cardlink-test-\w+: is a directory/],
  ['--out into a directory that does not exist', (s) => ({ argv: ['card', 'files', 'read', 'cardid', '--image', s.image, '--out', join(s.dir, 'no', 'such', 'dir', 'x.bin')] }), 'ENOENT', /x\.bin: no such file or directory/],
  ['an image that does not exist', (s) => ({ argv: ['card', 'ls', '--image', join(s.dir, 'nothere.json')] }), 'USAGE', /no card image at .*nothere\.json \(create one with 'cardlink card init --image/],
  ['an unknown option', (s) => ({ argv: ['card', 'ls', '--imgae', s.image] }), 'USAGE', /unknown option '--imgae'; did you mean --image\?/],
  ['an unknown command', () => ({ argv: ['card', 'lss'] }), 'USAGE', /unknown command 'card lss'; did you mean 'cardlink card ls'\?/],
  ['a missing required option', (s) => ({ argv: ['card', 'export', '--image', s.image] }), 'USAGE', /--container is required/],
  ['a value not in the list', (s) => ({ argv: ['card', 'gen', '--image', s.image, '--alg', 'p256'] }), 'USAGE', /--alg must be one of rsa2048, rsa3072, rsa4096, rsa1024/],
  ['no PIN and no terminal', (s) => ({ argv: ['card', 'gen', '--image', s.image], env: { CARDLINK_PIN: '' } }), 'USAGE', /set CARDLINK_PIN or run on a terminal/],
  ['a wrong PIN', (s) => ({ argv: ['card', 'pin', 'verify', '--image', s.image], env: { CARDLINK_PIN: '999999' } }), 'PIN_INCORRECT', /wrong PIN, \d tr(y|ies) left/],
  ['a container that does not exist', (s) => ({ argv: ['card', 'export', '--image', s.image, '--container', 'nope'] }), 'NO_CONTAINER', /no container 'nope' on the card/],
  ['a service that is not there', () => ({ argv: ['admin', 'requests', '--server', 'https://127.0.0.1:9'], env: { CARDLINK_OPERATOR_PASSWORD: 'a long operator password' } }), 'SERVICE_UNREACHABLE', /127\.0\.0\.1:9/],
];

describe('one error contract: one line, no stack trace, one JSON object under --json', () => {
  for (const [name, make, code, message] of CASES) {
    test(name, async () => {
      const s = await setup();
      const { argv, env } = make(s);
      const text = await cli(argv, { ...s.env, ...env });
      assert.equal(text.code, 2, text.stderr);
      assert.doesNotMatch(text.stderr, STACK);
      assert.equal(text.stderr.split('\n').length, 2, `one line: ${text.stderr}`);
      assert.match(text.stderr, message);
      assert.equal(text.stdout, '');

      const json = await cli([...argv, '--json'], { ...s.env, ...env });
      assert.equal(json.code, 2);
      const answer = JSON.parse(json.stdout) as { ok: boolean; error: { code: string; message: string } };
      assert.equal(answer.ok, false);
      assert.equal(answer.error.code, code);
      assert.match(answer.error.message, message);
      assert.equal(Object.keys(answer).join(), 'ok,error');
    });
  }

  test('a blocked PIN names the command that unblocks it', async () => {
    const s = await setup();
    for (let i = 0; i < 3; i++) await cli(['card', 'pin', 'verify', '--image', s.image], { ...s.env, CARDLINK_PIN: '999999' });
    const r = await cli(['card', 'pin', 'verify', '--image', s.image, '--json'], s.env);
    assert.equal(r.code, 2);
    const answer = JSON.parse(r.stdout) as { error: { code: string; message: string } };
    assert.equal(answer.error.code, 'PIN_BLOCKED');
    assert.match(answer.error.message, /run 'cardlink card pin unblock' \(administrator key in CARDLINK_ADMIN_KEY, new PIN in CARDLINK_NEW_PIN\)/);
  });

  test('a port in use, under --json', async () => {
    const blocker = createServer();
    await new Promise<void>((done) => blocker.listen(0, '127.0.0.1', done));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = await cli(['serve', '--data', join(tempDir(), 'data'), '--listen', `127.0.0.1:${port}`, '--json'], { CARDLINK_CA_PASSPHRASE: 'a long enough test passphrase' });
      assert.equal(r.code, 2);
      assert.doesNotMatch(r.stderr, STACK);
      assert.deepEqual(JSON.parse(r.stdout), { ok: false, error: { code: 'EADDRINUSE', message: `127.0.0.1:${port}: address already in use (another program, or another cardlink serve, listens there)` } });
    } finally {
      await new Promise((done) => blocker.close(done));
    }
  });

  test('every successful --json answer carries ok: true', async () => {
    const s = await setup();
    for (const argv of [['card', 'ls'], ['card', 'info'], ['card', 'files'], ['card', 'files', 'read', 'cardid']]) {
      const r = await cli([...argv, '--image', s.image, '--json'], s.env);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((JSON.parse(r.stdout) as { ok: unknown }).ok, true, argv.join(' '));
    }
    const help = await cli(['card', 'ls', '--help', '--json']);
    assert.equal((JSON.parse(help.stdout) as { ok: boolean; help: string }).help.startsWith('usage: cardlink card ls'), true);
  });

  test('bin/cardlink before dist/ is built: what to run, no stack trace', () => {
    const root = tempDir();
    mkdirSync(join(root, 'bin'));
    copyFileSync(resolve('bin/cardlink'), join(root, 'bin', 'cardlink'));
    copyFileSync(resolve('package.json'), join(root, 'package.json'));
    const text = spawnSync(process.execPath, [join(root, 'bin', 'cardlink'), '--help'], { encoding: 'utf8' });
    assert.equal(text.status, 2);
    assert.equal(text.stderr, `cardlink: cardlink is not built yet: run 'npm ci' (or 'npm run build') in ${root}/\n`);
    const json = spawnSync(process.execPath, [join(root, 'bin', 'cardlink'), 'card', 'ls', '--json'], { encoding: 'utf8' });
    assert.equal((JSON.parse(json.stdout) as { error: { code: string } }).error.code, 'NOT_BUILT');
  });
});
