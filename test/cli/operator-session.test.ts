/**
 * Issue 12 point 7: the audit log does not record a session for every CLI call. An operator
 * logs in once for the shell (`eval "$(cardlink admin login)"`), runs admin commands in that
 * session, and logs out: one session.started and one session.ended in the audit log, however many
 * commands ran; the session never touches the disk and is useless after logout.
 */
import assert from 'node:assert/strict';
import { readdirSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ServiceClient } from '../../src/service/client.js';
import { startService, type RunningService } from '../../src/service/index.js';
import { cli } from '../helpers/cli.js';
import { CA_PASSPHRASE, OPERATOR, login, tempDir } from '../service/helpers.js';

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

describe('an operator session for the shell', () => {
  let svc: RunningService;
  let client: ServiceClient;
  const dir = tempDir();
  const home = join(dir, 'home');
  const caFile = join(dir, 'ca.pem');
  const server = (): string[] => ['--server', svc.url, '--cacert', caFile];

  before(async () => {
    svc = await startService({ dataDir: join(dir, 'data'), port: 0, passphrase: CA_PASSPHRASE, operator: OPERATOR, sweepIntervalMs: 0 });
    client = new ServiceClient({ server: svc.url, ca: svc.caCertPem });
    writeFileSync(caFile, svc.caCertPem);
  });
  after(async () => {
    client.close();
    await svc.close();
  });

  async function sessionEvents(): Promise<string[]> {
    const op = await login(client);
    try {
      return (await client.audit(op, { limit: 500 }))
        .map((e) => e.action).filter((a) => a === 'session.started' || a === 'session.ended');
    } finally {
      await client.logout(op);
    }
  }

  test('login once, three commands, logout: one session in the audit log; the session is dead afterwards', async () => {
    const before = (await sessionEvents()).length;
    const env = { CARDLINK_HOME: home, CARDLINK_OPERATOR_PASSWORD: OPERATOR.password };
    const loggedIn = await cli(['admin', 'login', ...server()], env);
    assert.equal(loggedIn.code, 0, loggedIn.stderr);
    const m = /^export CARDLINK_SESSION=(cls_[A-Za-z0-9_-]+)$/m.exec(loggedIn.stdout);
    assert.ok(m, loggedIn.stdout);
    assert.doesNotMatch(loggedIn.stderr, /cls_/, 'the hint on stderr does not repeat the secret');
    const session = m[1]!;
    // No password any more: the commands must use the session (a password prompt would fail the test).
    const inSession = { CARDLINK_HOME: home, CARDLINK_SESSION: session };
    for (const argv of [['admin', 'requests'], ['admin', 'token', '--user', 'bob@example.com'], ['admin', 'requests', '--state', 'pending']]) {
      const r = await cli([...argv, ...server()], inSession);
      assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
    }
    const out = await cli(['admin', 'logout', ...server()], inSession);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^unset CARDLINK_SESSION$/m);
    const after = await sessionEvents();
    // Between the two counts: the first lookup's own end, the shell's start and end, the second
    // lookup's own start — 4. A login per command would add 6 more.
    assert.equal(after.length - before, 4, `session events: before ${before}, after ${after.join(", ")}`);
    const dead = await cli(['admin', 'requests', ...server()], inSession);
    assert.equal(dead.code, 2, dead.stderr);
    assert.match(dead.stderr, /CARDLINK_SESSION has expired or was ended/);
    for (const f of filesUnder(dir)) assert.ok(!readFileSync(f).includes(Buffer.from(session)), `${f} holds the session in the clear`);
  });

  test('a value that is not a session is refused before anything is sent', async () => {
    const r = await cli(['admin', 'requests', ...server()], { CARDLINK_HOME: home, CARDLINK_SESSION: 'cle_not-a-session' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /does not hold an operator session/);
  });
});
