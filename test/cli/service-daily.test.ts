/**
 * Service first run and daily use (issue 12, point 7), from the CLI side: serve's warning when no
 * operator exists and its data under CARDLINK_HOME, request-id prefixes, collect's reject reason
 * and revoked certificates still on the card, collect --watch saying what it waits for.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { hex } from '../../src/bytes.js';
import { toPem } from '../../src/pem.js';
import { ServiceClientError, type RequestView } from '../../src/service/client.js';
import { TEST_ADMIN_KEY, TEST_PIN, tempDir } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';
import { cli } from '../helpers/cli.js';
import { NOWHERE, OPERATOR_ENV, withFakeService } from './fake-service.js';

function request(over: Partial<RequestView>): RequestView {
  return {
    id: '5f1c0a52-0000-4000-8000-000000000001', kind: 'enroll', user: 'alice@example.com', profile: 'smartcard-logon', state: 'pending', subject: 'CN=alice',
    cardId: 'ab'.repeat(16), container: 'lr-1', createdAt: '2026-12-04T10:00:00.000Z', decidedBy: null, decidedAt: null, reason: null, serial: null,
    notBefore: null, notAfter: null, issuedAt: null, deliveredAt: null, certificate: null, retryAfter: null, ...over,
  };
}

describe('serve on a first start', () => {
  test('warns that no operator exists and how to make one; its data lives under CARDLINK_HOME', { timeout: 60_000 }, async () => {
    const home = tempDir();
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/service/fixtures/cli-entry.ts', 'serve', '--listen', '127.0.0.1:0', '--json'], {
      env: { PATH: process.env.PATH ?? '', HOME: home, CARDLINK_HOME: home, CARDLINK_CA_PASSPHRASE: 'a long enough test passphrase' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      const end = Date.now() + 45_000;
      while (!stdout.includes('\n') && Date.now() < end && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      const facts = JSON.parse(stdout.split('\n')[0]!) as { ok: boolean; dataDir: string };
      assert.equal(facts.dataDir, join(home, 'service'));
      assert.match(stderr, /warning: there is no operator 'admin': 'cardlink admin' cannot log in\. Stop serve, set CARDLINK_OPERATOR_PASSWORD and start it again to create 'admin'/);
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    }
  });
});

describe('request ids', () => {
  const rows = [request({ id: 'a1b2c3d4-0000-4000-8000-000000000001' }), request({ id: 'a1b2ffff-0000-4000-8000-000000000002' }), request({ id: '77777777-0000-4000-8000-000000000003' })];
  const fakes = (seen: string[]) => ({
    requestPage: async () => ({ requests: rows, next: null }),
    approve: async (_s: string, id: string) => {
      seen.push(id);
      const r = rows.find((x) => x.id === id);
      if (!r) throw new ServiceClientError('SERVICE_REFUSED', `POST /api/v1/requests/${id}/approve: 404 no request ${id}`, { status: 404 });
      return { ...r, state: 'issued' };
    },
  });

  test('a unique prefix picks the request; an ambiguous one lists the candidates; none gives the service answer', async () => {
    const seen: string[] = [];
    const unique = await withFakeService(fakes(seen), () => cli(['admin', 'approve', ...NOWHERE, 'a1b2c3'], OPERATOR_ENV));
    assert.equal(unique.code, 0, unique.stderr);
    assert.equal(unique.stdout, 'a1b2c3d4-0000-4000-8000-000000000001 issued\n');
    assert.deepEqual(seen, ['a1b2c3', 'a1b2c3d4-0000-4000-8000-000000000001']);

    const ambiguous = await withFakeService(fakes([]), () => cli(['admin', 'approve', ...NOWHERE, 'A1B2'], OPERATOR_ENV));
    assert.equal(ambiguous.code, 2);
    assert.match(ambiguous.stderr, /'A1B2' starts 2 request ids \(a1b2c3d4-.*, a1b2ffff-.*\): give more characters/);

    const none = await withFakeService(fakes([]), () => cli(['admin', 'approve', ...NOWHERE, 'ffff00'], OPERATOR_ENV));
    assert.equal(none.code, 2);
    assert.match(none.stderr, /404 no request ffff00/);
  });
});

describe('collect', () => {
  test('shows why a request was rejected, and a revoked certificate still on the card with the command that removes it', async () => {
    const dir = tempDir();
    const image = join(dir, 'card.json');
    const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) };
    assert.equal((await cli(['card', 'init', '--image', image], env)).code, 0);
    const gen = await cli(['card', 'gen', '--image', image, '--container', 'lr-1', '--alg', 'rsa1024', '--json'], env);
    const der = await issueOurs(createPublicKey((JSON.parse(gen.stdout) as { publicKey: string }).publicKey), 0, 'CN=Revoked');
    const certFile = join(dir, 'c.pem');
    writeFileSync(certFile, toPem(der, 'CERTIFICATE'));
    assert.equal((await cli(['card', 'install', certFile, '--image', image], env)).code, 0);
    const fakes = {
      challenge: async () => ({ nonce: 'bm9uY2U', expiresAt: '2099-01-01T00:00:00.000Z' }),
      collect: async () => [
        { ...request({ id: 'r-rejected', state: 'rejected', reason: 'wrong user' }), deliveryTicket: null },
        { ...request({ id: 'r-revoked', state: 'revoked', reason: 'keyCompromise', certificate: toPem(der, 'CERTIFICATE') }), deliveryTicket: null },
      ],
    };
    const r = await withFakeService(fakes, () => cli(['collect', '--server', 'https://127.0.0.1:9', '--image', image, '--store', `model:${join(dir, 'store')}`], env));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^r-rejected {2}'lr-1': rejected by an operator \(wrong user\)$/m);
    assert.match(r.stdout, /^r-revoked {2}'lr-1': revoked \(keyCompromise\); STILL ON THE CARD: remove it with 'cardlink card rm-cert --container lr-1' {2}[0-9A-F]{40}$/m);
  });

  test('--watch on an image that is not there says what it waits for', async () => {
    const dir = tempDir();
    const missing = join(dir, 'nothere.json');
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 1500);
    const r = await cli(['collect', '--watch', '--server', 'https://127.0.0.1:9', '--image', missing, '--store', `model:${join(dir, 'store')}`], { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN }, { signal: stop.signal });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, `cardlink collect: waiting for the card image ${missing} to appear\n`);
  });
});

describe('admin audit', () => {
  test('logins and logouts of every admin command are left out unless asked for; times are ISO 8601', async () => {
    const entries = [
      { id: 1, at: '2026-12-04T10:00:00.000Z', actor: 'operator:admin', action: 'session.started', subject: 'operator:admin', details: { expiresAt: Date.UTC(2026, 11, 4, 11) } },
      { id: 2, at: '2026-12-04T10:00:01.000Z', actor: 'operator:admin', action: 'token.created', subject: 'token:t1', details: { user: 'alice@example.com', expiresAt: Date.UTC(2026, 11, 5) } },
      { id: 3, at: '2026-12-04T10:00:02.000Z', actor: 'operator:admin', action: 'session.ended', subject: 'operator:admin', details: {} },
      { id: 4, at: '2026-12-04T10:00:03.000Z', actor: 'anonymous', action: 'session.refused', subject: 'operator:mallory', details: {} },
    ];
    const quiet = await withFakeService({ audit: async () => entries }, () => cli(['admin', 'audit', ...NOWHERE], OPERATOR_ENV));
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.deepEqual(quiet.stdout.trimEnd().split('\n').map((l) => l.split('  ')[2]), ['token.created', 'session.refused']);
    assert.ok(quiet.stdout.includes('"expiresAt":"2026-12-05T00:00:00.000Z"'), quiet.stdout);
    const all = await withFakeService({ audit: async () => entries }, () => cli(['admin', 'audit', ...NOWHERE, '--sessions', '--json'], OPERATOR_ENV));
    const parsed = JSON.parse(all.stdout) as { entries: { action: string; details: { expiresAt?: string } }[] };
    assert.deepEqual(parsed.entries.map((e) => e.action), ['session.started', 'token.created', 'session.ended', 'session.refused']);
    assert.equal(parsed.entries[0]!.details.expiresAt, '2026-12-04T11:00:00.000Z');
  });
});
