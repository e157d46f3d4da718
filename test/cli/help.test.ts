import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { commands } from '../../src/cli/catalog.js';
import { loadHandler } from '../../src/cli/loader.js';
import { closest, editDistance } from '../../src/cli/spec.js';
import { cli } from '../helpers/cli.js';

const VERSION = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;

describe('help at every level, from the table that parses', () => {
  for (const spec of commands) {
    const words = spec.path.join(' ');
    test(`cardlink ${words} --help names every option, its values, the environment, exit codes and an example`, async () => {
      const r = await cli([...spec.path, '--help']);
      assert.equal(r.code, 0, r.stderr);
      const page = r.stdout;
      assert.ok(page.startsWith(`usage: cardlink ${words}`), page);
      for (const [name, o] of Object.entries(spec.options)) {
        assert.match(page, new RegExp(`^  --${name}\\b.*\\S`, 'm'), `--${name} missing from the help of ${words}`);
        for (const choice of o.choices ?? []) assert.ok(page.includes(choice), `${words} --${name}: value ${choice} not listed`);
        if (o.env) assert.match(page, new RegExp(`^  ${o.env} `, 'm'), `${words}: ${o.env} not in the environment section`);
      }
      for (const p of spec.positionals ?? []) {
        assert.match(page, new RegExp(`^  ${p.name} `, 'm'));
        for (const choice of p.choices ?? []) assert.ok(page.includes(choice));
      }
      for (const name of spec.env ?? []) assert.match(page, new RegExp(`^  ${name} +\\S`, 'm'), `${words}: ${name} not explained`);
      assert.match(page, /^ {2}--json /m);
      assert.match(page, /^exit status:\n {2}0 {2}done\n( {2}\d {2}.*\n)* {2}2 {2}\S/m);
      assert.match(page, /^examples?:\n {2}.*\bcardlink \S/m);
      // `cardlink help WORDS` is the same page.
      assert.equal((await cli(['help', ...spec.path])).stdout, page);
    });
  }

  test('every option the help lists is one the command parses (and nothing else is)', async () => {
    for (const spec of commands) {
      for (const name of Object.keys(spec.options)) {
        const r = await cli([...spec.path, `--${name}x`]);
        assert.equal(r.code, 2);
        assert.match(r.stderr, new RegExp(`unknown option '--${name}x'; did you mean --${name}\\?`), `${spec.path.join(' ')} --${name}x: ${r.stderr}`);
      }
    }
  });

  test('every command has a loadable implementation', async () => {
    for (const spec of commands) assert.equal(typeof (await loadHandler(spec)), 'function', spec.path.join(' '));
  });

  test('the services variables are on the help pages that use them', async () => {
    const page = (await cli(['admin', 'approve', '--help'])).stdout;
    for (const v of ['CARDLINK_SERVER', 'CARDLINK_CACERT', 'CARDLINK_OPERATOR', 'CARDLINK_OPERATOR_PASSWORD']) assert.match(page, new RegExp(`^  ${v} `, 'm'));
    assert.match((await cli(['enroll', '--help'])).stdout, /^ {2}CARDLINK_TOKEN +the one-time enrollment token/m);
    assert.match((await cli(['admin', 'revoke', '--help'])).stdout, /1 keyCompromise.*4 superseded/);
    assert.match((await cli(['admin', 'requests', '--help'])).stdout, /one of: pending, approved, issuing, issued, delivered, rejected, revoked/);
    assert.match((await cli(['admin', 'token', '--help'])).stdout, /smartcard-logon-auto/);
  });

  test('group pages: cardlink card, card --help, help card, admin --help, card files --help', async () => {
    for (const argv of [['card', '--help'], ['help', 'card'], ['card', '-h']]) {
      const r = await cli(argv);
      assert.equal(r.code, 0, argv.join(' '));
      for (const c of commands.filter((x) => x.path[0] === 'card')) assert.ok(r.stdout.includes(`  ${c.path.join(' ')} `), `${argv.join(' ')}: ${c.path.join(' ')}`);
      assert.doesNotMatch(r.stdout, /admin approve/);
    }
    const bare = await cli(['card']);
    assert.equal(bare.code, 2);
    assert.match(bare.stderr, /usage: cardlink card <command>/);
    const admin = await cli(['admin', '--help']);
    assert.match(admin.stdout, /admin token revoke/);
    const files = await cli(['card', 'files', '--help']);
    assert.match(files.stdout, /^usage: cardlink card files \[options\]/);
    assert.match(files.stdout, /^subcommands:\n(.*\n)* {2}card files read /m);
  });

  test('top page, --version', async () => {
    const top = await cli(['--help']);
    assert.equal(top.code, 0);
    for (const c of commands) assert.ok(top.stdout.includes(`  ${c.path.join(' ')} `));
    for (const argv of [['--version'], ['-V'], ['version']]) {
      const r = await cli(argv);
      assert.equal(r.code, 0);
      assert.equal(r.stdout, `cardlink ${VERSION}\n`);
    }
    assert.deepEqual(JSON.parse((await cli(['--version', '--json'])).stdout), { ok: true, version: VERSION });
  });
});

describe('did you mean', () => {
  const CASES: Array<[string[], RegExp]> = [
    [['crad', 'ls'], /unknown command 'crad ls'; did you mean 'cardlink card ls'\?/],
    [['card', 'lss', '--image', 'x.json'], /unknown command 'card lss'; did you mean 'cardlink card ls'\?/],
    [['card', 'files', 'raed', 'mscp/cmapfile'], /did you mean 'cardlink card files read'\?/],
    [['admin', 'aprove', 'x'], /did you mean 'cardlink admin approve'\?/],
    [['card', 'ls', '--imgae', 'x.json'], /unknown option '--imgae'; did you mean --image\?/],
    [['card', 'gen', '--alg', 'rsa248'], /--alg must be one of rsa2048, rsa3072, rsa4096, rsa1024; did you mean rsa2048\?/],
    [['card', 'pin', 'stauts'], /ACTION is one of verify, change, unblock, status; did you mean status\?/],
    [['help', 'card', 'instal'], /no command 'card instal'; did you mean 'cardlink help card install'\?/],
  ];
  for (const [argv, want] of CASES) {
    test(argv.join(' '), async () => {
      const r = await cli(argv);
      assert.equal(r.code, 2);
      assert.match(r.stderr, want);
      assert.equal(r.stderr.split('\n').length, 2, r.stderr);
    });
  }

  test('nothing close: no guess', async () => {
    const r = await cli(['frobnicate']);
    assert.equal(r.code, 2);
    assert.doesNotMatch(r.stderr, /did you mean/);
    assert.equal(closest('zzzzzz', ['image', 'reader']), undefined);
  });

  test('edit distance counts a swap of neighbours as one', () => {
    assert.equal(editDistance('crad', 'card'), 1);
    assert.equal(editDistance('imgae', 'image'), 1);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('kitten', 'sitting'), 3);
  });
});
