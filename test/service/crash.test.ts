import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ServiceClient } from '../../src/service/client.js';
import type { RequestView } from '../../src/service/index.js';
import { x509 } from '../../src/x509.js';
import { BACKENDS, login, makeToken, pool, softKey, spawnServe, tempDir, type SoftKey } from './helpers.js';

const REQUESTS = 120;
const KILL_AFTER = 40;

for (const backend of BACKENDS) {
  describe(`SIGKILL under load on ${backend.name}, then restart`, () => {
    test('no accepted request is lost and no certificate is issued twice', async () => {
      const { dbUrl, cleanup } = await backend.open();
      const dataDir = tempDir();
      // A 2 s issuance lease: the restarted service takes over interrupted issuances quickly.
      const first = await spawnServe(dataDir, dbUrl, ['--issue-lease', '2']);
      const ca = readFileSync(join(dataDir, 'ca', 'cert.pem'), 'utf8');
      let client = new ServiceClient({ server: first.url, ca, maxSockets: 16, timeoutMs: 10_000 });
      let second: Awaited<ReturnType<typeof spawnServe>> | undefined;
      try {
        const op = await login(client);
        // Half the users are issued at once (issuance is in flight when the kill comes), half wait for an operator.
        const users = await pool(Array.from({ length: REQUESTS }, (_, i) => i), 8, async (i) => ({
          token: await makeToken(client, op, `user${i}@example.com`, i % 2 === 0 ? 'smartcard-logon-auto' : 'smartcard-logon'),
          key: await softKey(),
        }));

        const accepted = new Map<number, RequestView>();
        let answered = 0;
        await pool(users, 16, async (u: { token: string; key: SoftKey }, i) => {
          try {
            const res = await client.submit(u.token, { csr: u.key.csrPem });
            accepted.set(i, res.value);
            if (++answered === KILL_AFTER) first.child.kill('SIGKILL');
          } catch {
            // Refused or cut off by the kill: not accepted, so nothing is owed to this client.
          }
        });
        assert.equal(await first.exited, null, 'the service died by the signal');
        assert.ok(accepted.size >= KILL_AFTER && accepted.size < REQUESTS, `${accepted.size} accepted before the kill`);
        client.close();

        second = await spawnServe(dataDir, dbUrl, ['--issue-lease', '2']);
        client = new ServiceClient({ server: second.url, ca, maxSockets: 16 });
        const op2 = await login(client);

        // Every accepted request is there, with the same id and (when it had one) the same certificate.
        for (const [i, before] of accepted) {
          const { value: now } = await client.request(users[i]!.token, before.id);
          assert.equal(now.user, `user${i}@example.com`);
          if (before.certificate !== null) assert.equal(now.certificate, before.certificate);
        }
        // Clients that never heard back send the same request again: they get their one request, not a second.
        for (const [i, u] of users.entries()) {
          if (accepted.has(i)) continue;
          const res = await client.submit(u.token, { csr: u.key.csrPem });
          assert.ok([200, 202].includes(res.status), `resend ${i}: ${res.status} ${res.value.state}`);
        }
        // Approve everything still pending, and let the sweep finish what the kill interrupted.
        const pending = await client.requests(op2, { state: 'pending', limit: 10000 });
        await pool(pending, 8, (r) => client.approve(op2, r.id));
        const deadline = Date.now() + 30_000;
        let all: RequestView[] = [];
        while (Date.now() < deadline) {
          all = await client.requests(op2, { limit: 10000 });
          if (all.every((r) => r.state === 'issued')) break;
          await new Promise((r) => setTimeout(r, 500));
        }
        assert.equal(all.length, REQUESTS, 'one request per client, none lost, none doubled');
        assert.deepEqual(all.filter((r) => r.state !== 'issued').map((r) => r.state), []);

        const issuedLog = await client.audit(op2, { action: 'request.issued', limit: 10000 });
        const perRequest = new Map<string, number>();
        for (const e of issuedLog) perRequest.set(e.subject!, (perRequest.get(e.subject!) ?? 0) + 1);
        assert.equal(perRequest.size, REQUESTS);
        assert.ok([...perRequest.values()].every((n) => n === 1), 'each request issued exactly once');
        const serials = all.map((r) => new x509.X509Certificate(r.certificate!).serialNumber);
        assert.equal(new Set(serials).size, REQUESTS, 'no serial repeats');
        for (const r of all) assert.equal(new x509.X509Certificate(r.certificate!).serialNumber.toLowerCase(), r.serial);
      } finally {
        client.close();
        first.child.kill('SIGKILL');
        if (second) {
          second.child.kill('SIGTERM');
          await second.exited;
        }
        await cleanup();
      }
    });
  });
}
