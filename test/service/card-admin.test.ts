/**
 * Issue 14 end to end: per-card administrator keys set during enrollment, the help desk's
 * challenge/response unblock, the online unblock with a ticket, and master key rotation — the
 * real service (HTTPS, SQLite), the real CLI in process, emulated cards in image files.
 */
import assert from 'node:assert/strict';
import { createHmac, X509Certificate, verify } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { adminChallengeResponse } from '../../src/admin-challenge.js';
import { containsBytes, fromHex, hex } from '../../src/bytes.js';
import { MinidriverCard } from '../../src/card/index.js';
import { main } from '../../src/cli/main.js';
import { openCardImage } from '../../src/gids/emulator/index.js';
import { AdminKeyVault, deriveCardAdminKey } from '../../src/service/admin-keys.js';
import { ServiceClient } from '../../src/service/client.js';
import { startService, type RunningService } from '../../src/service/index.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { TEST_ADMIN_KEY, TEST_PIN } from '../helpers/card.js';
import { cli } from '../helpers/cli.js';
import { CA_PASSPHRASE, OPERATOR, login, makeToken, tempDir } from './helpers.js';

interface Enrolled {
  image: string;
  cardId: string;
  container: string;
  certificate: string;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

describe('per-card administrator keys and PIN unblock through the service', () => {
  let svc: RunningService;
  let client: ServiceClient;
  let op: string;
  const logs: string[] = [];
  const dir = tempDir();
  const dataDir = join(dir, 'data');
  const home = join(dir, 'home');
  const caFile = join(dir, 'ca.pem');
  const env = { CARDLINK_HOME: home, CARDLINK_PIN: TEST_PIN };
  const server = (): string[] => ['--server', svc.url, '--cacert', caFile];
  const opEnv = (): Record<string, string> => ({ ...env, CARDLINK_OPERATOR_PASSWORD: OPERATOR.password });
  let alice: Enrolled;
  let bob: Enrolled;

  async function newCard(name: string, adminKey: Uint8Array = TEST_ADMIN_KEY): Promise<string> {
    const image = join(dir, `${name}.json`);
    const r = await cli(['card', 'init', '--image', image], { ...env, CARDLINK_ADMIN_KEY: hex(adminKey) });
    assert.equal(r.code, 0, r.stderr);
    return image;
  }

  async function enrollCard(image: string, user: string, extraEnv: Record<string, string> = {}): Promise<Enrolled & { adminKey: { managed: boolean; keyVersion?: number; changed?: boolean } }> {
    const token = await makeToken(client, op, user, 'smartcard-logon-auto');
    const r = await cli(['enroll', ...server(), '--image', image, '--bits', '2048', '--json'], { ...env, CARDLINK_TOKEN: token, ...extraEnv });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { cardId: string; container: string; certificate: string; adminKey: { managed: boolean; keyVersion?: number; changed?: boolean } };
    return { image, cardId: out.cardId, container: out.container, certificate: out.certificate, adminKey: out.adminKey };
  }

  async function onCard<T>(image: string, fn: (card: MinidriverCard) => Promise<T>): Promise<T> {
    const transport = new MemoryTransport(openCardImage(image, { home }));
    try {
      return await fn(await MinidriverCard.open(transport));
    } finally {
      await transport.close();
    }
  }

  async function blockPin(image: string): Promise<void> {
    for (let i = 0; i < 3; i++) assert.equal((await cli(['card', 'pin', 'verify', '--image', image], { ...env, CARDLINK_PIN: '000000' })).code, 2);
    const status = JSON.parse((await cli(['card', 'pin', 'status', '--image', image, '--json'], env)).stdout) as { triesLeft: number };
    assert.equal(status.triesLeft, 0);
  }

  /** `card unblock --challenge` as a user at a terminal: the response comes from `answer(challenge)`. */
  async function unblockByPhone(image: string, newPin: string, answer: (cardId: string, challenge: string) => Promise<string>): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const code = await main(['card', 'unblock', '--challenge', '--image', image], {
      stdout: (t) => (stdout += t),
      stderr: (t) => (stderr += t),
      env: { PATH: process.env.PATH ?? '', ...env, CARDLINK_NEW_PIN: newPin },
      promptSecret: async (question) => {
        assert.equal(question, 'Response: ');
        const cardId = /card\s+([0-9A-F]{32})/.exec(stdout)![1]!;
        const challenge = /challenge ([0-9A-F]{4} [0-9A-F]{4} [0-9A-F]{4} [0-9A-F]{4})\n/.exec(stdout)![1]!;
        return answer(cardId, challenge);
      },
    });
    return { code, stdout, stderr };
  }

  async function helpDesk(cardId: string, challenge: string): Promise<string> {
    const r = await cli(['admin', 'unblock-response', ...server(), '--card', cardId, '--challenge', challenge, '--json'], opEnv());
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { response: string }).response;
  }

  before(async () => {
    svc = await startService({ dataDir, port: 0, passphrase: CA_PASSPHRASE, operator: OPERATOR, sweepIntervalMs: 0, unblockLimitPerHour: 4, log: (l) => logs.push(l) });
    client = new ServiceClient({ server: svc.url, ca: svc.caCertPem });
    writeFileSync(caFile, svc.caCertPem);
    op = await login(client);
    const a = await enrollCard(await newCard('alice'), 'alice@example.com');
    const b = await enrollCard(await newCard('bob'), 'bob@example.com');
    assert.deepEqual(a.adminKey, { managed: true, keyVersion: 1, changed: true });
    assert.deepEqual(b.adminKey, { managed: true, keyVersion: 1, changed: true });
    alice = a;
    bob = b;
  });
  after(async () => {
    client.close();
    await svc.close();
  });

  test('two cards enrolled end up with different keys; neither opens the other, the transport key opens neither', async () => {
    const vault = AdminKeyVault.open(dataDir, CA_PASSPHRASE, () => new Date());
    const keyA = vault.cardKey(alice.cardId, 1);
    const keyB = vault.cardKey(bob.cardId, 1);
    assert.notEqual(hex(keyA), hex(keyB));
    assert.equal(await onCard(alice.image, (c) => c.adminKeyWorks(keyA)), true);
    assert.equal(await onCard(alice.image, (c) => c.adminKeyWorks(keyB)), false);
    assert.equal(await onCard(bob.image, (c) => c.adminKeyWorks(keyB)), true);
    assert.equal(await onCard(bob.image, (c) => c.adminKeyWorks(keyA)), false);
    assert.equal(await onCard(alice.image, (c) => c.adminKeyWorks(TEST_ADMIN_KEY)), false);
  });

  test('a user token cannot obtain a response; an operator can, for an active card only; every response is audited', async () => {
    const userToken = await makeToken(client, op, 'alice@example.com');
    const asUser = await client.raw('POST', '/api/v1/cards/unblock-response', { bearer: userToken, json: { cardId: alice.cardId, challenge: '0011223344556677' } });
    assert.equal(asUser.status, 403);
    const anonymous = await client.raw('POST', '/api/v1/cards/unblock-response', { json: { cardId: alice.cardId, challenge: '0011223344556677' } });
    assert.equal(anonymous.status, 401);
    const unknownCard = await client.raw('POST', '/api/v1/cards/unblock-response', { bearer: op, json: { cardId: 'ab'.repeat(16), challenge: '0011223344556677' } });
    assert.equal(unknownCard.status, 404);
    const answer = await client.unblockResponse(op, bob.cardId, '0011 2233 4455 6677');
    const vault = AdminKeyVault.open(dataDir, CA_PASSPHRASE, () => new Date());
    assert.equal(answer.response, hex(adminChallengeResponse(vault.cardKey(bob.cardId, 1), fromHex('0011223344556677'))));
    // The same challenge twice: the service answers once.
    await assert.rejects(client.unblockResponse(op, bob.cardId, '0011223344556677'), (e: { status?: number }) => e.status === 409);
    const audit = await client.audit(op, { action: 'card.unblock-response' });
    const mine = audit.filter((e) => e.subject === `card:${bob.cardId.toLowerCase()}`);
    assert.equal(mine.length, 1);
    assert.equal(mine[0]!.actor, 'operator:admin');
    assert.ok(Date.parse(mine[0]!.at) > 0);
    assert.ok(!JSON.stringify(audit).includes(answer.response), 'the response itself is not in the audit log');
  });

  test("PIN blocked → card unblock --challenge + admin unblock-response → new PIN works, retry counter full, the certificate's key still signs", async () => {
    await blockPin(alice.image);
    // First, wrong answers: another card's response to this challenge is refused by the card, and not wiped.
    const wrong = await unblockByPhone(alice.image, '135790', (_id, challenge) => helpDesk(bob.cardId, challenge));
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /refused the response.*does not count failed administrator attempts/);
    assert.equal((JSON.parse((await cli(['card', 'ls', '--image', alice.image, '--json'], env)).stdout) as { containers: unknown[] }).containers.length, 1);

    let given = '';
    const ok = await unblockByPhone(alice.image, '135790', async (cardId, challenge) => {
      assert.equal(cardId, alice.cardId.toUpperCase());
      given = await helpDesk(cardId, challenge);
      return given.replace(/(.{4})/g, '$1 ');
    });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /PIN unblocked and set: 3 of 3 tries left/);
    // The same response again, on a new challenge: refused by the card.
    const replay = await unblockByPhone(alice.image, '246800', async () => given);
    assert.equal(replay.code, 2);
    assert.match(replay.stderr, /refused the response/);

    const status = JSON.parse((await cli(['card', 'pin', 'verify', '--image', alice.image, '--json'], { ...env, CARDLINK_PIN: '135790' })).stdout) as { triesLeft: number; tryLimit: number };
    assert.deepEqual([status.triesLeft, status.tryLimit], [3, 3]);
    const data = Buffer.from('signed after the unblock');
    const signature = await onCard(alice.image, async (c) => {
      await c.verifyPin('135790');
      return c.sign(alice.container, data);
    });
    assert.ok(verify('sha256', data, new X509Certificate(alice.certificate).publicKey, signature));
  });

  test('responses are limited per card per hour', async () => {
    // Bob's card has 2 (the operator test, and the wrong answer given for Alice's challenge); the limit in this service is 4.
    const audited = await client.audit(op, { action: 'card.unblock-response', subject: `card:${bob.cardId.toLowerCase()}` });
    assert.equal(audited.length, 2);
    for (const c of ['1111111111111111', '2222222222222222']) await client.unblockResponse(op, bob.cardId, c);
    await assert.rejects(client.unblockResponse(op, bob.cardId, '4444444444444444'), (e: { status?: number; serviceCode?: string }) => e.status === 429 && e.serviceCode === 'RATE_LIMITED');
  });

  test('online unblock: an operator-made one-time ticket; the same ticket twice is refused', async () => {
    await blockPin(alice.image);
    const made = await cli(['admin', 'unblock-ticket', ...server(), '--card', alice.cardId, '--json'], opEnv());
    assert.equal(made.code, 0, made.stderr);
    const ticket = (JSON.parse(made.stdout) as { ticket: string }).ticket;
    const r = await cli(['card', 'unblock', '--online', ...server(), '--image', alice.image, '--json'], { ...env, CARDLINK_UNBLOCK_TICKET: ticket, CARDLINK_NEW_PIN: '112233' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { triesLeft: number }).triesLeft, 3);
    assert.equal((await cli(['card', 'pin', 'verify', '--image', alice.image], { ...env, CARDLINK_PIN: '112233' })).code, 0);
    const again = await cli(['card', 'unblock', '--online', ...server(), '--image', alice.image], { ...env, CARDLINK_UNBLOCK_TICKET: ticket, CARDLINK_NEW_PIN: '445566' });
    assert.equal(again.code, 2);
    assert.match(again.stderr, /401 the unblock ticket is unknown, expired, used, or for another card/);
  });

  test('master key rotation: a card enrolled under version 1 is re-keyed to version 2 on its next enrollment; both derivations checked', async () => {
    const rotated = await cli(['admin', 'rotate-admin-key', ...server(), '--json'], opEnv());
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.equal((JSON.parse(rotated.stdout) as { keyVersion: number }).keyVersion, 2);
    const vault = AdminKeyVault.open(dataDir, CA_PASSPHRASE, () => new Date());
    const v1 = vault.cardKey(alice.cardId, 1);
    const v2 = vault.cardKey(alice.cardId, 2);
    assert.notEqual(hex(v1), hex(v2));
    assert.equal(await onCard(alice.image, (c) => c.adminKeyWorks(v1)), true, 'still version 1 before its next contact');
    // Bob's card has not been in contact: the help desk still answers with its version 1 key.
    assert.equal((await client.unblockResponse(op, bob.cardId, '5555555555555555').catch((e: { status?: number }) => ({ keyVersion: e.status }))).keyVersion, 429);

    const again = await enrollCard(alice.image, 'alice@example.com', { CARDLINK_PIN: '112233' });
    assert.deepEqual(again.adminKey, { managed: true, keyVersion: 2, changed: true });
    assert.equal(await onCard(alice.image, (c) => c.adminKeyWorks(v2)), true);
    assert.equal(await onCard(alice.image, (c) => c.adminKeyWorks(v1)), false);
    const answer = await client.unblockResponse(op, alice.cardId, '6666666666666666');
    assert.equal(answer.keyVersion, 2);
    assert.equal(answer.response, hex(adminChallengeResponse(v2, fromHex('6666666666666666'))));
    // A third enrollment finds the card up to date and sends no key.
    const third = await enrollCard(alice.image, 'alice@example.com', { CARDLINK_PIN: '112233' });
    assert.deepEqual(third.adminKey, { managed: true, keyVersion: 2, changed: false });
  });

  test('the derivation is SP 800-108 counter-mode HMAC-SHA256 with the version in the label and the cardid as context', () => {
    const master = Buffer.alloc(32, 0x0b);
    const cardId = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    for (const version of [1, 2]) {
      const expected = createHmac('sha256', master)
        .update(Buffer.concat([Buffer.from('00000001', 'hex'), Buffer.from(`cardlink GIDS admin key v${version}`), Buffer.from([0]), cardId, Buffer.from('000000c0', 'hex')]))
        .digest()
        .subarray(0, 24);
      assert.equal(hex(deriveCardAdminKey(master, version, cardId)), hex(expected));
    }
    assert.notEqual(hex(deriveCardAdminKey(master, 1, cardId)), hex(deriveCardAdminKey(master, 2, cardId)));
  });

  test('a card initialised with a private key stays stand-alone: enrollment leaves its key, CARDLINK_ADMIN_KEY still unblocks it', async () => {
    const own = Buffer.alloc(24, 0x3c);
    const image = await newCard('carol', own);
    const carol = await enrollCard(image, 'carol@example.com');
    assert.equal(carol.adminKey.managed, false);
    assert.equal(await onCard(image, (c) => c.adminKeyWorks(own)), true);
    await blockPin(image);
    const r = await cli(['card', 'pin', 'unblock', '--image', image], { ...env, CARDLINK_ADMIN_KEY: hex(own), CARDLINK_NEW_PIN: '778899' });
    assert.equal(r.code, 0, r.stderr);
    // ...and with the key given, enrollment hands the card to the service.
    const managed = await enrollCard(image, 'carol@example.com', { CARDLINK_PIN: '778899', CARDLINK_ADMIN_KEY: hex(own) });
    assert.equal(managed.adminKey.managed, true);
    assert.equal(await onCard(image, (c) => c.adminKeyWorks(own)), false);
  });

  test("retire: the operator wipes a card with the service's key for it; no more unblock; anyone may enroll it again", async () => {
    const before = JSON.parse((await cli(['card', 'ls', '--image', bob.image, '--json'], env)).stdout) as { containers: { name: string }[] };
    assert.equal(before.containers.length, 1);
    const noConfirm = await cli(['admin', 'retire-card', ...server(), '--card', bob.cardId, '--image', bob.image], { ...opEnv(), CARDLINK_NEW_PIN: '909090' });
    assert.equal(noConfirm.code, 2);
    assert.match(noConfirm.stderr, /add --yes/);
    const wrongCard = await cli(['admin', 'retire-card', ...server(), '--card', alice.cardId, '--image', bob.image, '--yes'], { ...opEnv(), CARDLINK_NEW_PIN: '909090' });
    assert.equal(wrongCard.code, 2);
    assert.match(wrongCard.stderr, /nothing was done/);
    const r = await cli(['admin', 'retire-card', ...server(), '--card', bob.cardId, '--image', bob.image, '--yes', '--json'], { ...opEnv(), CARDLINK_NEW_PIN: '909090' });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { deletedContainers: string[] }).deletedContainers, [bob.container]);
    assert.equal((JSON.parse((await cli(['card', 'ls', '--image', bob.image, '--json'], env)).stdout) as { containers: unknown[] }).containers.length, 0);
    assert.equal(await onCard(bob.image, (c) => c.adminKeyWorks(TEST_ADMIN_KEY)), true);
    await assert.rejects(client.unblockResponse(op, bob.cardId, '7777777777777777'), (e: { status?: number }) => e.status === 409);
    const audit = await client.audit(op, { action: 'card.retired', subject: `card:${bob.cardId.toLowerCase()}` });
    assert.equal(audit.length, 1);
    assert.equal(audit[0]!.actor, 'operator:admin');
    // The next user: the card is enrolled like a new one and gets the current key version.
    const dave = await enrollCard(bob.image, 'dave@example.com', { CARDLINK_PIN: '909090' });
    assert.deepEqual(dave.adminKey, { managed: true, keyVersion: 2, changed: true });
    const vault = AdminKeyVault.open(dataDir, CA_PASSPHRASE, () => new Date());
    assert.equal(await onCard(bob.image, (c) => c.adminKeyWorks(vault.cardKey(bob.cardId, 2))), true);
    assert.equal((await client.unblockResponse(op, bob.cardId, '8888888888888888').catch((e: { status?: number }) => ({ keyVersion: e.status }))).keyVersion, 429, 'active again (the hourly limit still counts)');
  });

  test('a re-key written to the card but never reported (the agent stopped) is finished by the next enrollment', async () => {
    const image = await newCard('frank');
    const cardId = await onCard(image, async (c) => hex(await c.cardId()).toLowerCase());
    const token = await makeToken(client, op, 'frank@example.com', 'smartcard-logon-auto');
    const handed = await client.cardAdminKey(token, cardId);
    await onCard(image, (c) => c.changeAdminKey(TEST_ADMIN_KEY, fromHex(handed.newKey!)));
    await assert.rejects(client.unblockResponse(op, cardId, '9999999999999999'), (e: { status?: number }) => e.status === 409, 'not active before the report');
    const r = await cli(['enroll', ...server(), '--image', image, '--bits', '2048', '--json'], { ...env, CARDLINK_TOKEN: token });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { adminKey: unknown }).adminKey, { managed: true, keyVersion: handed.keyVersion, changed: false });
    assert.equal((await client.unblockResponse(op, cardId, '9999999999999999')).keyVersion, handed.keyVersion);
  });

  test('master keys: owner-only files, sealed with the passphrase (a wrong one is refused by name)', () => {
    const files = filesUnder(join(dataDir, 'admin-keys'));
    assert.deepEqual(files.map((f) => f.slice(f.lastIndexOf('/') + 1)).sort(), ['v1.json', 'v2.json']);
    for (const f of files) {
      assert.equal(statSync(f).mode & 0o077, 0, f);
      const sealed = JSON.parse(readFileSync(f, 'utf8')) as { kdf: { name: string }; ciphertext: string };
      assert.equal(sealed.kdf.name, 'scrypt');
      assert.equal(Buffer.from(sealed.ciphertext, 'base64').length, 32);
    }
    assert.throws(() => AdminKeyVault.open(dataDir, 'not the passphrase', () => new Date()), (e: Error & { code?: string }) => e.code === 'CONFIG' && /wrong CARDLINK_CA_PASSPHRASE/.test(e.message));
  });

  test('no card key is in clear in the data directory (database included) or the service log', async () => {
    const vault = AdminKeyVault.open(dataDir, CA_PASSPHRASE, () => new Date());
    const keys = [alice, bob].flatMap((c) => [vault.cardKey(c.cardId, 1), vault.cardKey(c.cardId, 2)]);
    const needles = keys.flatMap((k) => [k, Buffer.from(hex(k)), Buffer.from(hex(k).toLowerCase()), Buffer.from(Buffer.from(k).toString('base64'))]);
    const files = filesUnder(dataDir);
    assert.ok(files.some((f) => f.endsWith('.db')), 'the database is in the data directory');
    for (const f of files) {
      const content = readFileSync(f);
      for (const n of needles) assert.ok(!containsBytes(content, n), `${f} holds a card key`);
    }
    // Nor on the workstation side: the per-user directory (card cache) and the sealed card images.
    for (const f of [...filesUnder(home), ...filesUnder(dir).filter((p) => p.endsWith('.json') && !p.startsWith(dataDir))]) {
      const content = readFileSync(f);
      for (const n of needles) assert.ok(!containsBytes(content, n), `${f} holds a card key`);
    }
    const log = Buffer.from(logs.join('\n'));
    for (const n of needles) assert.ok(!containsBytes(log, n), 'the log holds a card key');
  });
});
