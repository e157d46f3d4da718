import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { enroll } from '../../src/agent/enroll.js';
import { hex } from '../../src/bytes.js';
import { MinidriverCard } from '../../src/card/index.js';
import { openCardImage } from '../../src/gids/emulator/index.js';
import { ServiceClient } from '../../src/service/client.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { TEST_ADMIN_KEY, TEST_PIN } from '../helpers/card.js';
import { cli } from '../helpers/cli.js';
import { BACKENDS, OPERATOR, login, makeToken, startTestService, tempDir } from '../service/helpers.js';

/** A loopback port nothing listens on (taken, then given back). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/**
 * The real service for everything, but submissions go elsewhere: the token check before the key
 * passes, and the submission that follows the key fails for real (connection refused, or the
 * service refusing a spent token).
 */
class SubmitsElsewhere extends ServiceClient {
  constructor(
    real: { server: string; ca: string },
    private readonly submitVia: (token: string, body: Parameters<ServiceClient['submit']>[1]) => ReturnType<ServiceClient['submit']>,
  ) {
    super(real);
  }
  override submit(token: string, body: Parameters<ServiceClient['submit']>[1]): ReturnType<ServiceClient['submit']> {
    return this.submitVia(token, body);
  }
}

test('30 failed enrolls leave the card with its original containers only (token and service checked before the key; the key deleted when the submission fails)', { timeout: 240_000 }, async () => {
  const t = await startTestService(BACKENDS[0]!);
  try {
    const dir = tempDir();
    const image = join(dir, 'card.json');
    const home = join(dir, 'home');
    const env = { CARDLINK_HOME: home, CARDLINK_PIN: TEST_PIN };
    assert.equal((await cli(['card', 'init', '--image', image], { ...env, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) })).code, 0);
    assert.equal((await cli(['card', 'gen', '--image', image, '--container', 'original', '--alg', 'rsa1024'], env)).code, 0);
    const caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, t.svc.caCertPem);
    const otherCa = join(dir, 'other-ca.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'other.key'), '-subj', '/CN=Some other CA', '-days', '1', '-out', otherCa], { stdio: 'ignore' });
    const session = await login(t.client, OPERATOR);

    // One enrollment that works: its container belongs to the card from now on, its token is spent.
    const spent = await makeToken(t.client, session, 'alice@example.com');
    const ok = await cli(['enroll', '--server', t.svc.url, '--cacert', caFile, '--image', image, '--json'], { ...env, CARDLINK_TOKEN: spent });
    assert.equal(ok.code, 0, ok.stderr);
    const names = async (): Promise<string[]> => (JSON.parse((await cli(['card', 'ls', '--image', image, '--json'], env)).stdout) as { containers: { name: string }[] }).containers.map((c) => c.name);
    const original = await names();
    assert.equal(original.length, 2);

    const failures: string[] = [];
    const viaCli = async (server: string, ca: string, token: string): Promise<void> => {
      const r = await cli(['enroll', '--server', server, '--cacert', ca, '--image', image, '--bits', '2048'], { ...env, CARDLINK_TOKEN: token });
      assert.equal(r.code, 2, r.stdout);
      failures.push(r.stderr);
    };
    const dead = `https://127.0.0.1:${await closedPort()}`;
    for (let i = 0; i < 6; i++) await viaCli(t.svc.url, caFile, `cle_${'x'.repeat(40)}${i}`); // a token the service never made
    for (let i = 0; i < 6; i++) await viaCli(t.svc.url, otherCa, await makeToken(t.client, session, 'bob@example.com')); // not the CA we were told to trust
    for (let i = 0; i < 6; i++) await viaCli(dead, caFile, await makeToken(t.client, session, 'bob@example.com')); // the service is down
    for (let i = 0; i < 6; i++) await viaCli(t.svc.url, caFile, spent); // the token was used already
    assert.ok(failures.slice(0, 6).every((e) => /does not accept this enrollment token .*nothing was done on the card/.test(e)), failures[0]);
    assert.ok(failures.slice(6, 12).every((e) => /nothing was done on the card/.test(e)), failures[6]);
    assert.ok(failures.slice(12, 18).every((e) => /cannot reach .*nothing was done on the card/.test(e)), failures[12]);
    assert.ok(failures.slice(18, 24).every((e) => /was used already, for request .*run 'cardlink collect'/.test(e)), failures[18]);

    // Six more pass the token check and fail at the submission, after the key was made.
    const downClient = new ServiceClient({ server: dead, ca: t.svc.caCertPem });
    const realClient = new ServiceClient({ server: t.svc.url, ca: t.svc.caCertPem });
    try {
      const submitters = [(tok: string, body: Parameters<ServiceClient['submit']>[1]) => downClient.submit(tok, body), (_tok: string, body: Parameters<ServiceClient['submit']>[1]) => realClient.submit(spent, body)];
      for (let i = 0; i < 6; i++) {
        const client = new SubmitsElsewhere({ server: t.svc.url, ca: t.svc.caCertPem }, submitters[i % 2]!);
        const token = await makeToken(t.client, session, 'carol@example.com');
        const transport = new MemoryTransport(openCardImage(image, { home }));
        try {
          const card = await MinidriverCard.open(transport);
          await assert.rejects(enroll(card, client, { token, pin: TEST_PIN, bits: 2048 }), (err: Error) => {
            assert.match(err.message, /the container 'lr-[0-9a-f-]{36}' and its key were deleted again/);
            return true;
          });
        } finally {
          client.close();
          await transport.close();
        }
      }
    } finally {
      downClient.close();
      realClient.close();
    }

    assert.deepEqual(await names(), original);
    const check = await cli(['card', 'check', '--image', image], env);
    assert.equal(check.code, 0, check.stdout);
    const pin = JSON.parse((await cli(['card', 'pin', 'status', '--image', image, '--json'], env)).stdout) as { triesLeft: number; tryLimit: number };
    assert.equal(pin.triesLeft, pin.tryLimit);
  } finally {
    await t.close();
  }
});
