import assert from 'node:assert/strict';
import { connect, type TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/service/index.js';
import { BACKENDS, login, makeToken, OPERATOR, randomCardId, softKey, startTestService, type TestService } from './helpers.js';

const MINUTE = 60_000;

for (const backend of BACKENDS) describe(`login lockout per operator and per source address on ${backend.name}`, () => {
  let t: TestService;
  let clock: ManualClock;
  before(async () => {
    clock = new ManualClock();
    t = await startTestService(backend, { clock });
  });
  after(async () => t.close());

  const attempt = (username: string, password: string) => t.client.raw('POST', '/api/v1/sessions', { json: { username, password } });

  test('100 wrong passwords, then the right one is refused until the lockout ends', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 100; i++) statuses.push((await attempt(OPERATOR.username, `wrong password ${i}`)).status);
    assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401]);
    assert.ok(statuses.slice(5).every((s) => s === 429), `after 5 failures every attempt is locked out: ${statuses.join(',')}`);
    const right = await attempt(OPERATOR.username, OPERATOR.password);
    assert.equal(right.status, 429, 'the right password is refused during the lockout');
    assert.ok(Number(right.headers['retry-after']) > 0 && Number(right.headers['retry-after']) <= 15 * 60);
    assert.match(right.body.toString(), /too many failed logins/);

    clock.advance(14 * MINUTE);
    assert.equal((await attempt(OPERATOR.username, OPERATOR.password)).status, 429, 'still locked at 14 minutes');
    clock.advance(MINUTE + 1000);
    assert.equal((await attempt(OPERATOR.username, OPERATOR.password)).status, 200, 'the lockout ended');

    const op = await login(t.client);
    const locked = await t.client.audit(op, { action: 'session.locked' });
    assert.deepEqual(locked.map((e) => e.subject), ['operator:admin'], 'one audit entry for the lockout, not one per attempt');
    const refused = await t.client.audit(op, { action: 'session.refused' });
    assert.equal(refused.length, 5, 'attempts refused by the lockout are not written one by one');
  });

  test('20 failures from one address under any names lock that address', async () => {
    clock.advance(60 * MINUTE);
    for (let i = 0; i < 20; i++) assert.equal((await attempt(`guess${i}`, 'not the password')).status, 401);
    assert.equal((await attempt(OPERATOR.username, OPERATOR.password)).status, 429);
    const op = (await (clock.advance(16 * MINUTE), attempt(OPERATOR.username, OPERATOR.password)));
    assert.equal(op.status, 200);
    const session = JSON.parse(op.body.toString()) as { token: string };
    const locked = await t.client.audit(session.token, { action: 'session.locked', subject: 'address:127.0.0.1' });
    assert.equal(locked.length, 1);
  });
});

describe('bounded input', () => {
  let t: TestService;
  let op: string;
  before(async () => {
    t = await startTestService(BACKENDS[0]!);
    op = await login(t.client);
  });
  after(async () => t.close());

  test('a 250 KB user name is refused without writing it', async () => {
    const before = await t.client.audit(op, { limit: 10000 });
    const huge = 'a'.repeat(250 * 1024);
    const res = await t.client.raw('POST', '/api/v1/sessions', { json: { username: huge, password: 'x' } });
    assert.equal(res.status, 400);
    const token = await t.client.raw('POST', '/api/v1/tokens', { bearer: op, json: { user: `${huge}@example.com` } });
    assert.equal(token.status, 400);
    const afterwards = await t.client.audit(op, { limit: 10000 });
    assert.equal(afterwards.length, before.length, 'nothing was written');
    assert.ok(!JSON.stringify(afterwards).includes('aaaaaaaaaaaaaaaa'), 'the name is nowhere in the log');
  });

  test('container names, reasons and every other string are bounded', async () => {
    const token = await makeToken(t.client, op, 'bounded@example.com');
    const key = await softKey();
    const long = await t.client.raw('POST', '/api/v1/requests', { bearer: token, json: { csr: key.csrPem, cardId: randomCardId(), container: 'c'.repeat(40) } });
    assert.equal(long.status, 400);
    const { value } = await t.client.submit(token, { csr: key.csrPem, cardId: randomCardId(), container: 'c1' });
    const reason = await t.client.raw('POST', `/api/v1/requests/${value.id}/reject`, { bearer: op, json: { reason: 'r'.repeat(501) } });
    assert.equal(reason.status, 400);
    const audit = await t.client.raw('GET', `/api/v1/audit?actor=${'x'.repeat(301)}`, { bearer: op });
    assert.equal(audit.status, 400);
  });
});

describe('enrollment tokens an operator revokes', () => {
  let t: TestService;
  let op: string;
  before(async () => {
    t = await startTestService(BACKENDS[0]!);
    op = await login(t.client);
  });
  after(async () => t.close());

  test('a revoked token cannot enroll, by the JSON API or EST; a used one cannot be revoked', async () => {
    const created = await t.client.createToken(op, { user: 'mallory@example.com' });
    const revoked = await t.client.revokeToken(op, created.id);
    assert.ok(revoked.revokedAt);
    assert.equal((await t.client.tokens(op)).find((x) => x.id === created.id)?.revokedAt, revoked.revokedAt);
    const key = await softKey();
    await assert.rejects(t.client.submit(created.token, { csr: key.csrPem }), { status: 401 });
    const est = await t.client.raw('POST', '/.well-known/est/simpleenroll', {
      basic: { user: 'mallory@example.com', password: created.token }, body: Buffer.from(key.csrDer).toString('base64'), contentType: 'application/pkcs10',
    });
    assert.equal(est.status, 401);
    assert.equal((await t.client.requests(op, { user: 'mallory@example.com' })).length, 0);
    const entries = await t.client.audit(op, { action: 'token.revoked', subject: `token:${created.id}` });
    assert.equal(entries.length, 1);

    const used = await t.client.createToken(op, { user: 'trent@example.com' });
    await t.client.submit(used.token, { csr: (await softKey()).csrPem });
    await assert.rejects(t.client.revokeToken(op, used.id), { status: 409 });
    await assert.rejects(t.client.revokeToken(op, '00000000-0000-0000-0000-000000000000'), { status: 404 });
  });
});

describe('request listing in pages, newest first', () => {
  let t: TestService;
  let op: string;
  before(async () => {
    t = await startTestService(BACKENDS[0]!);
    op = await login(t.client);
  });
  after(async () => t.close());

  test('25 requests in pages of 10: newest first, a cursor while more follow, none lost or repeated', async () => {
    const made: string[] = [];
    for (let i = 0; i < 25; i++) {
      const token = await makeToken(t.client, op, `page${i}@example.com`);
      made.push((await t.client.submit(token, { csr: (await softKey()).csrPem })).value.id);
    }
    const seen: string[] = [];
    const sizes: number[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await t.client.requestPage(op, { limit: 10, ...(cursor ? { cursor } : {}) });
      sizes.push(page.requests.length);
      seen.push(...page.requests.map((r) => r.id));
      if (page.next === null) break;
      cursor = page.next;
    }
    assert.deepEqual(sizes, [10, 10, 5]);
    assert.deepEqual(seen, [...made].reverse(), 'every request once, newest first');
    const first = await t.client.requests(op, { limit: 3 });
    assert.equal(first[0]!.id, made[24], 'the newest is on the first page');
    assert.equal((await t.client.raw('GET', '/api/v1/requests?cursor=bm90LWEtY3Vyc29y', { bearer: op })).status, 400);
  });
});

describe('slow clients', () => {
  let t: TestService;
  before(async () => {
    t = await startTestService(BACKENDS[0]!, { limits: { requestTimeoutMs: 1000, headersTimeoutMs: 1000, idleTimeoutMs: 1000, maxConnections: 400 } });
  });
  after(async () => t.close());

  /** A TLS connection and when it closed (listened for from the start: a slow start may see the server close it early). */
  function open(): Promise<{ socket: TLSSocket; closed: Promise<number> }> {
    const url = new URL(t.svc.url);
    return new Promise((resolve, reject) => {
      const socket = connect({ host: url.hostname, port: Number(url.port), ca: t.svc.caCertPem, servername: 'localhost' }, () => resolve({ socket, closed }));
      const closed = new Promise<number>((done) => socket.on('close', () => done(Date.now())));
      socket.on('error', reject);
    });
  }

  test('300 trickling connections are closed by the server shortly after the request timeout', async () => {
    const conns = await Promise.all(Array.from({ length: 300 }, () => open()));
    const started = Date.now();
    const sockets = conns.map((c) => c.socket);
    for (const s of sockets) s.on('error', () => undefined);
    // Each sends a request line, then one header byte every 200 ms: never idle, never done.
    for (const s of sockets) if (!s.destroyed) s.write('POST /api/v1/sessions HTTP/1.1\r\nHost: localhost\r\nX-Slow: ');
    const trickle = setInterval(() => {
      for (const s of sockets) if (!s.destroyed) s.write('a');
    }, 200);
    try {
      const times = await Promise.race([
        Promise.all(conns.map((c) => c.closed)),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('connections still held after 10 s')), 10_000)),
      ]);
      const last = Math.max(...times) - started;
      assert.ok(last < 6000, `the last connection was closed ${last} ms after the trickle began`);
    } finally {
      clearInterval(trickle);
      for (const s of sockets) s.destroy();
    }
    assert.deepEqual(await t.client.health(), { ok: true }, 'the service still answers');
  });
});

describe('connection cap', () => {
  let t: TestService;
  before(async () => {
    t = await startTestService(BACKENDS[0]!, { limits: { maxConnections: 20 } });
  });
  after(async () => t.close());

  test('connections beyond the cap are closed at once', async () => {
    const url = new URL(t.svc.url);
    // Every socket stays open until all 40 have been accepted or dropped, so the count does not
    // depend on how fast this machine completes handshakes.
    const sockets: TLSSocket[] = [];
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, () =>
        new Promise<'open' | 'refused'>((resolve) => {
          const s = connect({ host: url.hostname, port: Number(url.port), ca: t.svc.caCertPem, servername: 'localhost' }, () => resolve('open'));
          sockets.push(s);
          s.on('error', () => resolve('refused'));
          s.on('close', () => resolve('refused'));
        }),
      ),
    );
    await new Promise((r) => setTimeout(r, 300));
    const stillOpen = sockets.filter((s) => !s.destroyed).length;
    for (const s of sockets) s.destroy();
    assert.ok(stillOpen <= 20, `${stillOpen} connections held open with a cap of 20`);
    const open = outcomes.filter((o) => o === 'open').length;
    assert.ok(open >= 10, `${open}: the cap should still let connections in`);
  });
});
