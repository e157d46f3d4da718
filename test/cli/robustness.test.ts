import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { hex } from '../../src/bytes.js';
import { DEFAULT_REQUEST_LIMIT, fetchRequestPages } from '../../src/cli/commands/admin.js';
import type { RequestPage } from '../../src/service/client.js';
import type { RequestView } from '../../src/service/client.js';
import { TEST_ADMIN_KEY, TEST_PIN, tempDir } from '../helpers/card.js';
import { cli } from '../helpers/cli.js';
import { NOWHERE, OPERATOR_ENV, withFakeService } from './fake-service.js';

const STACK = /^\s+at /m;

async function initialisedImage(): Promise<{ image: string; env: { CARDLINK_HOME: string; CARDLINK_PIN: string; CARDLINK_ADMIN_KEY: string } }> {
  const dir = tempDir();
  const image = join(dir, 'card.json');
  const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) };
  const init = await cli(['card', 'init', '--image', image], env);
  assert.equal(init.code, 0, init.stderr);
  return { image, env };
}

describe('expected failures are one line, never a stack trace', () => {
  // Each of these parses as JSON but is not what the cache writes; the probe's broke every command.
  const DAMAGED: Array<[string, string]> = [
    ['an item without fields', JSON.stringify({ ['ab'.repeat(16)]: { 'mscp/cmapfile': {} } })],
    ['an item of the wrong types', JSON.stringify({ ['ab'.repeat(16)]: { 'mscp/cmapfile': { f: '1', v: 2, u: null } } })],
    ['a card that is a number', JSON.stringify({ ['ab'.repeat(16)]: 5 })],
    ['an array', '[1,2,3]'],
    ['null', 'null'],
    ['not JSON', '{ "half'],
  ];
  for (const [what, content] of DAMAGED) {
    test(`a damaged card cache (${what}) is discarded with a warning and rebuilt`, async () => {
      const { image, env } = await initialisedImage();
      const cacheFile = join(env.CARDLINK_HOME, 'cache', 'cards.json');
      mkdirSync(join(env.CARDLINK_HOME, 'cache'), { recursive: true });
      writeFileSync(cacheFile, content, { mode: 0o600 });
      const ls = await cli(['card', 'ls', '--image', image], env);
      assert.equal(ls.code, 0, ls.stderr);
      assert.match(ls.stderr, /warning: card cache .*cards\.json discarded and rebuilt: /);
      assert.doesNotMatch(ls.stderr, STACK);
      // Rebuilt: the file is now the cache's own, and the next command reads it without a word.
      const rebuilt = JSON.parse(readFileSync(cacheFile, 'utf8')) as Record<string, Record<string, { f: number; v: string; u: number }>>;
      assert.ok(Object.values(rebuilt).every((items) => Object.values(items).every((it) => typeof it.v === 'string' && Number.isInteger(it.f))));
      const again = await cli(['card', 'info', '--image', image], env);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.stderr, '');
    });
  }

  test('a certificate file that is not there', async () => {
    const { image, env } = await initialisedImage();
    const missing = join(tempDir(), 'nowhere.pem');
    const r = await cli(['card', 'install', missing, '--image', image], env);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, `cardlink card install: ${missing}: no such file or directory\n`);
    const json = await cli(['card', 'install', missing, '--image', image, '--json'], env);
    assert.deepEqual(JSON.parse(json.stdout), { ok: false, error: { code: 'ENOENT', message: `${missing}: no such file or directory` } });
  });

  test('serve on a port that is already in use', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const dir = tempDir();
      const r = await cli(['serve', '--data', join(dir, 'data'), '--listen', `127.0.0.1:${port}`], { CARDLINK_CA_PASSPHRASE: 'a long enough test passphrase' });
      assert.equal(r.code, 2, r.stderr);
      assert.doesNotMatch(r.stderr, STACK);
      assert.ok(r.stderr.endsWith(`cardlink serve: 127.0.0.1:${port}: address already in use (another program, or another cardlink serve, listens there)\n`), r.stderr);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});

describe('enroll takes the token from the environment or a prompt only', () => {
  test('--token is refused with the reason, before anything is done', async () => {
    const { image, env } = await initialisedImage();
    const r = await cli(['enroll', '--server', 'https://127.0.0.1:9', '--token', 'cle_secret', '--image', image], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--token is not accepted: a command line is visible to every user \(ps\) .* set CARDLINK_TOKEN or answer the prompt/);
    assert.doesNotMatch(r.stderr, /cle_secret/);
    assert.equal((await cli(['card', 'ls', '--image', image], env)).stdout, 'no containers\n');
  });

  test('without CARDLINK_TOKEN the token is asked for without echo', async () => {
    const { image, env } = await initialisedImage();
    const asked: string[] = [];
    // The fake service refuses the token: what matters here is which token it was given.
    const seen: string[] = [];
    const r = await withFakeService(
      {
        requests: async (bearer: string) => {
          seen.push(bearer);
          throw new (await import('../../src/service/client.js')).ServiceClientError('SERVICE_REFUSED', 'GET /api/v1/requests: 401 the session or token is unknown or expired', { status: 401 });
        },
      },
      () => cli(['enroll', '--server', 'https://127.0.0.1:9', '--image', image], { CARDLINK_HOME: env.CARDLINK_HOME, CARDLINK_PIN: TEST_PIN }, { promptSecret: async (q) => (asked.push(q), 'cle_from_prompt') }),
    );
    assert.equal(r.code, 2);
    assert.deepEqual(asked, ['enrollment token: ']);
    assert.deepEqual(seen, ['cle_from_prompt']);
  });
});

function rows(n: number, from = 0): RequestView[] {
  return Array.from({ length: n }, (_, i) => ({ id: `r${from + i}`, state: 'pending', user: 'alice@example.com', profile: 'smartcard-logon', createdAt: '2026-12-04T10:00:00.000Z', cardId: null, container: null }) as RequestView);
}

describe('admin requests pages and says when it stops short', () => {
  test('fetchRequestPages follows cursors for --all, stops at --limit and reports truncation', async () => {
    const all = rows(450);
    const calls: Array<[string | undefined, number]> = [];
    const page = async (cursor: string | undefined, limit: number): Promise<RequestPage> => {
      calls.push([cursor, limit]);
      const start = cursor === undefined ? 0 : Number(cursor);
      const items = all.slice(start, start + Math.min(limit, 200));
      return { requests: items, next: start + items.length < all.length ? String(start + items.length) : null };
    };
    const every = await fetchRequestPages(page, { limit: 100, all: true });
    assert.equal(every.items.length, 450);
    assert.deepEqual(every.items.map((r) => r.id), all.map((r) => r.id));
    assert.equal(every.truncated, false);
    calls.length = 0;
    const some = await fetchRequestPages(page, { limit: 250, all: false });
    assert.deepEqual(some.items.map((r) => r.id), all.slice(0, 250).map((r) => r.id));
    assert.deepEqual([some.truncated, some.nextCursor], [true, '250']);
    assert.deepEqual(calls, [[undefined, 200], ['200', 50]]);
    const exact = await fetchRequestPages(page, { limit: 450, all: false });
    assert.equal(exact.items.length, 450);
    assert.equal(exact.truncated, false);
    await assert.rejects(fetchRequestPages(async () => ({ requests: [], next: 'x' }), { limit: 10, all: false }), { code: 'SERVICE_BAD_ANSWER' });
  });

  test('the command: --limit, --all, the truncation notice, and --json', async () => {
    const all = rows(1100);
    const requestPage = async (_session: string, q: { limit?: number; cursor?: string }): Promise<RequestPage> => {
      const start = q.cursor === undefined ? 0 : Number(q.cursor);
      const requests = all.slice(start, start + (q.limit ?? 1000));
      return { requests, next: start + requests.length < all.length ? String(start + requests.length) : null };
    };
    const byDefault = await withFakeService({ requestPage }, () => cli(['admin', 'requests', ...NOWHERE], OPERATOR_ENV));
    assert.equal(byDefault.code, 0, byDefault.stderr);
    const lines = byDefault.stdout.trimEnd().split('\n');
    // The header row, the rows, the notice.
    assert.equal(lines.length, DEFAULT_REQUEST_LIMIT + 2);
    assert.match(lines[0]!, /^ID +STATE +USER/);
    assert.equal(lines.at(-1), `(first ${DEFAULT_REQUEST_LIMIT} shown; more match: --limit N for more, --all for every one)`);
    const everything = await withFakeService({ requestPage }, () => cli(['admin', 'requests', ...NOWHERE, '--all', '--json'], OPERATOR_ENV));
    const parsed = JSON.parse(everything.stdout) as { requests: RequestView[]; truncated: boolean };
    assert.equal(parsed.requests.length, 1100);
    assert.equal(parsed.requests.at(-1)!.id, 'r1099');
    assert.equal(parsed.truncated, false);
    const limited = JSON.parse((await withFakeService({ requestPage }, () => cli(['admin', 'requests', ...NOWHERE, '--limit', '3', '--json'], OPERATOR_ENV))).stdout) as { requests: RequestView[]; truncated: boolean; nextCursor: string };
    assert.deepEqual([limited.requests.map((r) => r.id), limited.truncated, limited.nextCursor], [['r0', 'r1', 'r2'], true, '3']);
    assert.equal((await cli(['admin', 'requests', ...NOWHERE, '--limit', '0'], OPERATOR_ENV)).code, 2);
    assert.equal((await cli(['admin', 'requests', ...NOWHERE, '--limit', '5', '--all'], OPERATOR_ENV)).code, 2);
  });
});

describe('admin token revoke', () => {
  test('revokes the token by id through the service client', async () => {
    const revoked: Array<[string, string]> = [];
    const r = await withFakeService({ revokeToken: async (session: string, id: string) => void revoked.push([session, id]) }, () =>
      cli(['admin', 'token', 'revoke', ...NOWHERE, 'tok-1', '--json'], OPERATOR_ENV),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(revoked, [['cls_fake', 'tok-1']]);
    assert.deepEqual(JSON.parse(r.stdout), { ok: true, id: 'tok-1', revoked: true });
    assert.equal((await cli(['admin', 'token', 'revoke', ...NOWHERE], OPERATOR_ENV)).code, 2);
  });
});

describe('the well-known GIDS administrator key', () => {
  test('card init warns when it is used for a card in a reader, and not for an emulated card', async () => {
    const dir = tempDir();
    const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) };
    // The reader is not there (or pcscd is not): the warning comes before the card is opened.
    const real = await cli(['card', 'init', '--reader', 'No Such Reader 4242'], env);
    assert.equal(real.code, 2);
    assert.match(real.stderr, /warning: this is the well-known default GIDS administrator key; .* Use a random key on a real card/);
    assert.doesNotMatch(real.stderr, STACK);
    const emulated = await cli(['card', 'init', '--image', join(dir, 'card.json')], env);
    assert.equal(emulated.code, 0);
    assert.equal(emulated.stderr, '');
  });
});
