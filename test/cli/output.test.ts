import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { hex } from '../../src/bytes.js';
import { MinidriverCard } from '../../src/card/index.js';
import { forTerminal, guardOutput, line } from '../../src/cli/terminal.js';
import { openCardImage } from '../../src/gids/emulator/index.js';
import { ServiceClientError, type AuditEntryView, type RequestView } from '../../src/service/client.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { TEST_ADMIN_KEY, TEST_PIN, tempDir } from '../helpers/card.js';
import { cli } from '../helpers/cli.js';
import { NOWHERE, OPERATOR_ENV, withFakeService } from './fake-service.js';

// The probe's inputs (security-probe F4): an anonymous login name that sets the window title,
// clears the screen and prints a fake line in red, and a container name with NUL, a line break,
// a right-to-left override and a clear-screen.
const EVIL_USER = 'evil\x1b]0;PWNED\x07\x1b[2J\x1b[31mFAKE: request approved';
const EVIL_CONTAINER = 'a\0b\ncM\u202e\x1b[2J';
/** What must never reach a terminal raw: C0 but LF and TAB, DEL, C1, bidi controls, separators. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/;

function request(over: Partial<RequestView>): RequestView {
  return {
    id: '5f1c0a52-0000-4000-8000-000000000001', kind: 'enroll', user: 'alice@example.com', profile: 'smartcard-logon', state: 'pending', subject: 'CN=alice@example.com',
    cardId: '00'.repeat(16), container: 'lr-1', createdAt: '2026-12-04T10:00:00.000Z', decidedBy: null, decidedAt: null, reason: null, serial: null,
    notBefore: null, notAfter: null, issuedAt: null, deliveredAt: null, certificate: null, retryAfter: 5, ...over,
  };
}

describe('terminal escaping helper', () => {
  test('forTerminal escapes every control, bidi and separator character, LF and TAB included, and keeps the rest', () => {
    assert.equal(forTerminal(EVIL_USER), 'evil\\u001b]0;PWNED\\u0007\\u001b[2J\\u001b[31mFAKE: request approved');
    assert.equal(forTerminal(EVIL_CONTAINER), 'a\\u0000b\\u000acM\\u202e\\u001b[2J');
    assert.equal(forTerminal('x\u009b31m\u2066y\tz\r'), 'x\\u009b31m\\u2066y\\u0009z\\u000d');
    assert.equal(forTerminal('Zoë 山田 <alice@example.com>'), 'Zoë 山田 <alice@example.com>');
  });

  test('line escapes only the interpolated values; guardOutput keeps LF and TAB, and JSON stays JSON', () => {
    assert.equal(line`a\n${'b\nc'}\t${1}`, 'a\nb\\u000ac\t1');
    assert.equal(guardOutput('one\ttwo\nthree\x1b[2J\u202e'), 'one\ttwo\nthree\\u001b[2J\\u202e');
    const json = JSON.stringify({ v: `${EVIL_CONTAINER}\u0085\u202e` });
    assert.equal((JSON.parse(guardOutput(json)) as { v: string }).v, `${EVIL_CONTAINER}\u0085\u202e`);
  });
});

describe('the CLI prints request data escaped', () => {
  test('admin audit: the anonymous login name of a refused login', async () => {
    const entries: AuditEntryView[] = [{ id: 7, at: '2026-12-04T10:00:00.000Z', actor: 'anonymous', action: 'session.refused', subject: `operator:${EVIL_USER}`, details: { username: EVIL_USER } }];
    const r = await withFakeService({ audit: async () => entries }, () => cli(['admin', 'audit', ...NOWHERE], OPERATOR_ENV));
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, RAW_CONTROL);
    assert.equal(r.stdout.trimEnd().split('\n').length, 1);
    assert.ok(r.stdout.includes('operator:evil\\u001b]0;PWNED\\u0007\\u001b[2J\\u001b[31mFAKE: request approved'), r.stdout);
  });

  test('admin requests: user and container names, a header and one line per request, and the same data exact in --json', async () => {
    const rows = [request({ user: EVIL_USER, container: EVIL_CONTAINER }), request({ id: '5f1c0a52-0000-4000-8000-000000000002' })];
    const fakes = { requestPage: async () => ({ requests: rows, next: null }) };
    const text = await withFakeService(fakes, () => cli(['admin', 'requests', ...NOWHERE], OPERATOR_ENV));
    assert.equal(text.code, 0, text.stderr);
    assert.doesNotMatch(text.stdout, RAW_CONTROL);
    // A header row, then one line per request.
    assert.equal(text.stdout.trimEnd().split('\n').length, 3, text.stdout);
    assert.match(text.stdout, /^ID {36}STATE {5}USER {2}PROFILE {2}CREATED {2}CARD \/ CONTAINER\n/);
    assert.ok(text.stdout.includes('/ a\\u0000b\\u000acM\\u202e\\u001b[2J'), text.stdout);

    const json = await withFakeService(fakes, () => cli(['admin', 'requests', ...NOWHERE, '--json'], OPERATOR_ENV));
    assert.doesNotMatch(json.stdout, RAW_CONTROL);
    const parsed = JSON.parse(json.stdout) as { requests: RequestView[] };
    assert.deepEqual(parsed.requests.map((x) => [x.user, x.container]), [[EVIL_USER, EVIL_CONTAINER], ['alice@example.com', 'lr-1']]);
  });

  test("an error message carrying the service's text reaches stderr escaped", async () => {
    const refuse = async (): Promise<never> => {
      throw new ServiceClientError('SERVICE_REFUSED', `POST /api/v1/requests/x/approve: 404 no request ${EVIL_USER}`, { status: 404 });
    };
    const r = await withFakeService({ approve: refuse }, () => cli(['admin', 'approve', ...NOWHERE, 'x'], OPERATOR_ENV));
    assert.equal(r.code, 2);
    assert.doesNotMatch(r.stderr, RAW_CONTROL);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /no request evil\\u001b\]0;PWNED/);
  });

  test('collect: a container name the service sends back', async () => {
    const dir = tempDir();
    const image = join(dir, 'card.json');
    const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) };
    assert.equal((await cli(['card', 'init', '--image', image], env)).code, 0);
    assert.equal((await cli(['card', 'gen', '--image', image, '--container', 'lr-1', '--alg', 'rsa1024'], env)).code, 0);
    const fakes = {
      challenge: async () => ({ nonce: 'bm9uY2U', expiresAt: '2099-01-01T00:00:00.000Z' }),
      collect: async () => [{ ...request({ container: EVIL_CONTAINER }), deliveryTicket: null }],
    };
    const r = await withFakeService(fakes, () => cli(['collect', '--server', 'https://127.0.0.1:9', '--image', image], env));
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, RAW_CONTROL);
    assert.ok(r.stdout.includes("'a\\u0000b\\u000acM\\u202e\\u001b[2J': waiting for approval"), r.stdout);
  });

  test('card ls: a container name written onto the card by someone else', async () => {
    const dir = tempDir();
    const image = join(dir, 'card.json');
    const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) };
    assert.equal((await cli(['card', 'init', '--image', image], env)).code, 0);
    const hostile = 'x\x1b[2J\u202eb\ncM';
    const transport = new MemoryTransport(openCardImage(image, { home: env.CARDLINK_HOME }));
    try {
      const card = await MinidriverCard.open(transport);
      await card.verifyPin(TEST_PIN);
      await card.createContainer(hostile, { bits: 1024 });
    } finally {
      await transport.close();
    }
    const ls = await cli(['card', 'ls', '--image', image], env);
    assert.equal(ls.code, 0, ls.stderr);
    assert.doesNotMatch(ls.stdout, RAW_CONTROL);
    assert.equal(ls.stdout.trimEnd().split('\n').length, 2, ls.stdout);
    assert.ok(ls.stdout.includes('x\\u001b[2J\\u202eb\\u000acM'), ls.stdout);
    const json = await cli(['card', 'ls', '--image', image, '--json'], env);
    assert.deepEqual((JSON.parse(json.stdout) as { containers: { name: string }[] }).containers.map((c) => c.name), [hostile]);
  });
});
