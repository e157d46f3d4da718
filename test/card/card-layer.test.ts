import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { hex } from '../../src/bytes.js';
import { MemoryCardCache, MinidriverCard, type PinError } from '../../src/card/index.js';
import { openCardImage } from '../../src/gids/emulator/index.js';
import { DO, EF } from '../../src/gids/protocol/constants.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { cli } from '../helpers/cli.js';
import { readTrace } from '../helpers/traces.js';
import { readTlv } from '../../src/gids/protocol/tlv.js';
import { TEST_ADMIN_KEY, TEST_PIN, gidsSession, initialisedCard, tempDir } from '../helpers/card.js';

const SEED_CONTAINER = 'lr-e46f1586-7133-4284-895d-557e2261c24d';

function opensslVerify(args: string[]): string {
  const r = spawnSync('openssl', ['req', ...args, '-verify', '-noout'], { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`;
}

function envFor(dir: string): Record<string, string> {
  return { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) };
}

test('blank image → card init → card gen → card csr: openssl accepts the request, its key is the container key', async () => {
  const dir = tempDir();
  const image = join(dir, 'card.json');
  const env = envFor(dir);
  const init = await cli(['card', 'init', '--image', image, '--json'], env);
  assert.equal(init.code, 0, init.stderr);
  const gen = await cli(['card', 'gen', '--image', image, '--container', SEED_CONTAINER, '--alg', 'rsa2048', '--json'], env);
  assert.equal(gen.code, 0, gen.stderr);
  assert.equal(JSON.parse(gen.stdout).container.keyBits, 2048);
  const csrPath = join(dir, 'req.pem');
  const csr = await cli(['card', 'csr', '--image', image, '--container', SEED_CONTAINER, '--subject', 'CN=Alice Example, O=cardlink', '--out', csrPath], env);
  assert.equal(csr.code, 0, csr.stderr);

  // OpenSSL 3.0 exits 0 even when verification fails: read its verdict.
  assert.match(opensslVerify(['-in', csrPath]), /self-signature verify OK/);
  const csrKey = execFileSync('openssl', ['req', '-in', csrPath, '-pubkey', '-noout'], { encoding: 'utf8' });
  const subject = execFileSync('openssl', ['req', '-in', csrPath, '-subject', '-noout'], { encoding: 'utf8' });
  assert.match(subject, /CN ?= ?Alice Example/);

  // The container's public key, read back from the card by a fresh session on the image.
  const card = await MinidriverCard.open(new MemoryTransport(openCardImage(image, { home: env.CARDLINK_HOME })));
  const onCard = (await card.publicKey(SEED_CONTAINER)).export({ type: 'spki', format: 'pem' }).toString();
  assert.equal(csrKey.trim(), onCard.trim());
});

test('openssl req -verify fails on a tampered request (the check above is meaningful)', async () => {
  const t = await initialisedCard();
  await t.card.verifyPin(TEST_PIN);
  await t.card.createContainer('c', { bits: 1024 });
  const { der } = await t.card.csr('c', 'CN=x');
  const bad = Buffer.from(der);
  bad[bad.length - 5]! ^= 0xff;
  const dir = tempDir();
  const path = join(dir, 'bad.der');
  (await import('node:fs')).writeFileSync(path, bad);
  assert.match(opensslVerify(['-inform', 'DER', '-in', path]), /verify failure/);
  (await import('node:fs')).writeFileSync(path, der);
  assert.match(opensslVerify(['-inform', 'DER', '-in', path]), /self-signature verify OK/);
});

// Vectors: the PUT DATA commands GidsApplet accepted from OpenSC, read straight from
// test/fixtures/opensc-gidsapplet/initialize.txt (`gids-tool --initialize`) and keygen.txt
// (`pkcs15-init --generate-key rsa/2048`, label "GIDS test key", a signature key). The note
// OpenSC's card-gids.c writes the same bytes (docs/sources.md#opensc-gids).
function lastPut(trace: string, efAndDo: string): string {
  const puts = readTrace(trace).filter((e) => e.command.startsWith(`00DB${efAndDo.slice(0, 4)}`) && e.command.slice(10).startsWith(efAndDo.slice(4)));
  const last = puts.at(-1);
  assert.ok(last, `${trace} has a PUT DATA of ${efAndDo}`);
  const tlv = Buffer.from(last.command.slice(10), 'hex');
  return hex(readTlv(tlv, 0).tlv.value);
}

test('after init and gen the file system bytes equal what OpenSC writes', async () => {
  const t = await initialisedCard();
  await t.card.verifyPin(TEST_PIN);
  await t.card.createContainer('GIDS test key', { keySpec: 'sig', bits: 2048 });
  const s = gidsSession(t);
  assert.equal(hex((await s.getData(EF.UserCreateDeleteDirAc, DO.MASTER_FILE_TABLE))!), lastPut('initialize.txt', 'A000DF1F'), 'master file table');
  assert.equal(hex((await s.getData(EF.EveryoneReadUserWriteAc, DO.CARDAPPS))!), lastPut('initialize.txt', 'A010DF21'), 'cardapps');
  // `00 DB A0 00 10 DF 20 0D 01 01 00 00 00 07 9C 81 B0 FF FF 00 00`
  assert.equal(hex((await s.getData(EF.UserCreateDeleteDirAc, DO.KEY_MAP))!), lastPut('keygen.txt', 'A000DF20'), 'key map');
  assert.equal(lastPut('keygen.txt', 'A000DF20'), '0101000000079C81B0FFFF0000');
  // The final 86-byte record for "GIDS test key": flags 03, wSigKeySizeBits 0x0800.
  assert.equal(hex((await s.getData(EF.EveryoneReadUserWriteAc, DO.CMAPFILE))!), lastPut('keygen.txt', 'A010DF23'), 'cmapfile');
  // cardcf went 00 00 00 00 00 00 → 00 00 01 00 02 00 (containers +1, files +2).
  assert.equal(hex((await s.getData(EF.EveryoneReadUserWriteAc, DO.CARDCF))!), lastPut('keygen.txt', 'A010DF22'), 'cardcf');
  assert.equal(lastPut('keygen.txt', 'A010DF22'), '000001000200');
});

test('wrong PIN: tries drop and are reported, 0 blocks (6983), admin unblock restores; protected commands answer 6982 first', async () => {
  const t = await initialisedCard();
  // Before VERIFY a PIN-protected command is refused.
  await assert.rejects(t.card.createContainer('c1', { bits: 1024 }), (e: Error & { sw?: number }) => e.sw === 0x6982);
  await assert.rejects(t.card.verifyPin('000000'), (e: PinError) => e.code === 'PIN_INCORRECT' && e.triesLeft === 2);
  assert.equal((await t.card.pinStatus()).triesLeft, 2);
  await assert.rejects(t.card.verifyPin('000000'), (e: PinError) => e.triesLeft === 1);
  await assert.rejects(t.card.verifyPin('000000'), (e: PinError) => e.code === 'PIN_BLOCKED' && e.triesLeft === 0);
  assert.equal((await t.card.pinStatus()).triesLeft, 0);
  // Blocked: even the right PIN is refused with 6983.
  await assert.rejects(t.card.verifyPin(TEST_PIN), (e: PinError) => e.code === 'PIN_BLOCKED');
  const last = t.transport.records.at(-1)!.response;
  assert.equal(hex(last.subarray(-2)), '6983');
  // RESET RETRY COUNTER without admin authentication is refused.
  await assert.rejects(gidsSession(t).unblockPin('222222'), (e: Error & { sw?: number }) => e.sw === 0x6982);
  // A wrong admin key is refused, the right one unblocks.
  await assert.rejects(t.card.unblockPin(Buffer.alloc(24, 7), '222222'), { code: 'ADMIN_AUTH_FAILED' });
  await t.card.unblockPin(TEST_ADMIN_KEY, '222222');
  assert.deepEqual(await t.card.pinStatus(), { triesLeft: 3, tryLimit: 3 });
  await t.card.verifyPin('222222');
  await t.card.createContainer('c1', { bits: 1024 });
  await t.card.changePin('222222', '333333');
  await t.card.logout();
  await assert.rejects(t.card.createContainer('c2', { bits: 1024 }), (e: Error & { sw?: number }) => e.sw === 0x6982);
  await t.card.verifyPin('333333');
});

test('the image survives a restart: the key signs as before, counters unchanged', async () => {
  const dir = tempDir();
  const image = join(dir, 'card.json');
  const env = envFor(dir);
  assert.equal((await cli(['card', 'init', '--image', image], env)).code, 0);
  assert.equal((await cli(['card', 'gen', '--image', image, '--container', 'k', '--alg', 'rsa1024'], env)).code, 0);
  const first = await MinidriverCard.open(new MemoryTransport(openCardImage(image, { home: env.CARDLINK_HOME })), { cache: new MemoryCardCache() });
  const publicKey = await first.publicKey('k');
  await assert.rejects(first.verifyPin('999999'));
  const before = { cf: await first.cardcf(), id: hex(await first.cardId()), pin: await first.pinStatus() };
  assert.equal(before.pin.triesLeft, 2);

  // A new emulator process-equivalent: nothing shared but the file.
  const again = await MinidriverCard.open(new MemoryTransport(openCardImage(image, { home: env.CARDLINK_HOME })), { cache: new MemoryCardCache() });
  assert.deepEqual({ cf: await again.cardcf(), id: hex(await again.cardId()), pin: await again.pinStatus() }, before);
  await again.verifyPin(TEST_PIN);
  const data = Buffer.from('signed after a restart');
  const sig = await again.sign('k', data);
  assert.ok(createVerify('sha256').update(data).verify(publicKey, sig));
  // The image holds neither the PIN nor the admin key in the clear.
  const text = readFileSync(image);
  assert.equal(text.includes(Buffer.from(TEST_PIN)), false);
  assert.equal(text.includes(Buffer.from(hex(TEST_ADMIN_KEY))), false);
  assert.equal(text.includes(TEST_ADMIN_KEY), false);
});

test('the CLI never takes a PIN from a flag and says where to put it', async () => {
  const dir = tempDir();
  const r = await cli(['card', 'gen', '--image', join(dir, 'x.json'), '--container', 'a', '--pin', '1234'], { CARDLINK_HOME: dir });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown option '--pin'/);
  const image = join(dir, 'card.json');
  assert.equal((await cli(['card', 'init', '--image', image], envFor(dir))).code, 0);
  const noPin = await cli(['card', 'gen', '--image', image, '--container', 'a'], { CARDLINK_HOME: dir });
  assert.equal(noPin.code, 2);
  assert.match(noPin.stderr, /CARDLINK_PIN/);
});

test('card ls / info / files / pin status with --json', async () => {
  const dir = tempDir();
  const image = join(dir, 'card.json');
  const env = envFor(dir);
  await cli(['card', 'init', '--image', image, '--serial', '00112233445566778899AABBCCDDEEFF'], env);
  await cli(['card', 'gen', '--image', image, '--container', SEED_CONTAINER, '--keyspec', 'sig', '--alg', 'rsa1024'], env);
  const ls = JSON.parse((await cli(['card', 'ls', '--image', image, '--json'], env)).stdout);
  assert.deepEqual(ls.containers.map((c: { name: string; index: number; keySpec: string; keyBits: number; isDefault: boolean }) => [c.name, c.index, c.keySpec, c.keyBits, c.isDefault]), [
    [SEED_CONTAINER, 0, 'sig', 1024, true],
  ]);
  const info = JSON.parse((await cli(['card', 'info', '--image', image, '--json'], env)).stdout);
  assert.equal(info.cardId, '00112233445566778899AABBCCDDEEFF');
  assert.deepEqual(info.pin, { triesLeft: 3, tryLimit: 3 });
  const files = JSON.parse((await cli(['card', 'files', '--image', image, '--json'], env)).stdout);
  assert.deepEqual(
    files.files.map((f: { path: string; size: number }) => [f.path, f.size]),
    [
      ['cardid', 16],
      ['cardapps', 8],
      ['cardcf', 6],
      ['mscp/cmapfile', 86],
    ],
  );
  const text = await cli(['card', 'ls', '--image', image], env);
  assert.match(text.stdout, /lr-e46f1586-7133-4284-895d-557e2261c24d\s+AT_SIGNATURE\s+RSA-1024\s+default/);
});

test('logical files by minidriver name: write, read, delete move the files counter', async () => {
  const t = await initialisedCard();
  await t.card.verifyPin(TEST_PIN);
  const before = (await t.card.cardcf()).filesFreshness;
  await t.card.writeFile('mscp/msroots', Buffer.from('roots'));
  assert.equal(Buffer.from(await t.card.readFile('mscp/msroots')).toString(), 'roots');
  assert.equal((await t.card.cardcf()).filesFreshness, before + 1);
  await t.card.writeFile('mscp/msroots', Buffer.from('roots v2'));
  assert.equal(Buffer.from(await t.card.readFile('MSCP/MSROOTS')).toString(), 'roots v2', 'names are case-insensitive');
  await t.card.deleteFile('mscp/msroots');
  await assert.rejects(t.card.readFile('mscp/msroots'), { code: 'FILE_NOT_FOUND' });
  assert.equal((await t.card.cardcf()).filesFreshness, before + 3);
  await assert.rejects(t.card.readFile('a/b/c'), { code: 'CARD_FORMAT' });
});

test('a session never writes back a file table remembered from an earlier operation (no file of another writer is lost)', async () => {
  const t = await initialisedCard();
  await t.card.verifyPin(TEST_PIN);
  await t.card.writeFile('mscp/a', Buffer.from('a'));
  // A GIDS session on the same connection reads the file table (an earlier operation).
  const first = gidsSession(t);
  assert.ok(await first.locate('mscp', 'a'));
  // Another application creates a file in the meantime.
  const other = await (await import('../helpers/card.js')).reopen(t);
  await other.card.verifyPin(TEST_PIN);
  await other.card.writeFile('mscp/b', Buffer.from('b'));
  // The first session, used directly at the GIDS level as the seed's loader does, creates one more;
  // so does the card API, whose session wrote before too.
  await t.card.verifyPin(TEST_PIN);
  await first.createFile('mscp', 'c', Buffer.from('c'));
  await t.card.writeFile('mscp/d', Buffer.from('d'));
  const names = (await t.card.listFiles()).map((f) => f.path);
  assert.deepEqual(names.filter((n) => /^mscp\/[abcd]$/.test(n)).sort(), ['mscp/a', 'mscp/b', 'mscp/c', 'mscp/d']);
});
