import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ServiceClient, type ServiceClientError } from '../../src/service/client.js';
import { x509 } from '../../src/x509.js';
import { freshPgDatabase, login, makeToken, pool, softKey, spawnServe, tempDir } from './helpers.js';

const AUTO = 120;
const MANUAL = 40;

describe('scale-out: two service processes on one PostgreSQL', () => {
  test('concurrent load: every request answered, none issued twice, no serial repeats', async () => {
    const db = await freshPgDatabase();
    const dataDir = tempDir();
    // Started together on an empty data directory and database: the CA, the migrations and the
    // default profiles are made once even though both race to make them.
    const [a, b] = await Promise.all([spawnServe(dataDir, db.url), spawnServe(dataDir, db.url)]);
    const ca = readFileSync(join(dataDir, 'ca', 'cert.pem'), 'utf8');
    const ca1 = new x509.X509Certificate(ca);
    const clients = [new ServiceClient({ server: a.url, ca, maxSockets: 16 }), new ServiceClient({ server: b.url, ca, maxSockets: 16 })];
    try {
      const ops = await Promise.all(clients.map((c) => login(c)));
      const users = await pool(Array.from({ length: AUTO + MANUAL }, (_, i) => i), 8, async (i) => ({
        token: await makeToken(clients[i % 2]!, ops[i % 2]!, `u${i}@example.com`, i < AUTO ? 'smartcard-logon-auto' : 'smartcard-logon'),
        key: await softKey(),
      }));

      // Everyone submits at once, alternating between the two processes.
      const answers = await pool(users, 32, async (u, i) => {
        const c = clients[i % 2]!;
        return c.submit(u.token, { csr: u.key.csrPem }).catch((err: ServiceClientError) => ({ status: err.status ?? 0, value: undefined, message: err.message }));
      });
      assert.deepEqual(answers.flatMap((r, i) => (r.status === (i < AUTO ? 200 : 202) ? [] : [`${i}: ${r.status} ${'message' in r ? r.message : r.value?.state}`])), [], 'every request answered as its profile says');
      const views = answers.map((r) => r.value!);

      // Both operators approve every manual request at the same moment, each on its own process.
      const manual = views.slice(AUTO);
      const races = await pool(manual, 16, async (r) =>
        Promise.all(clients.map((c, k) => c.approve(ops[k]!, r.id).then(() => 200, (err: ServiceClientError) => err.status))),
      );
      for (const pair of races) assert.deepEqual(pair.sort(), [200, 409], 'one approval wins, the other is told it was decided');

      const all = await clients[0]!.requests(ops[0]!, { limit: 10000 });
      assert.equal(all.length, AUTO + MANUAL);
      assert.deepEqual(all.filter((r) => r.state !== 'issued').map((r) => r.id), []);
      const serials = all.map((r) => r.serial!);
      assert.equal(new Set(serials).size, serials.length, 'no serial repeats');
      for (const r of all) {
        const cert = new x509.X509Certificate(r.certificate!);
        assert.ok(await cert.verify({ publicKey: ca1.publicKey, signatureOnly: true }));
      }
      const issued = await clients[1]!.audit(ops[1]!, { action: 'request.issued', limit: 10000 });
      assert.equal(issued.length, AUTO + MANUAL, 'one issuance per request');
      assert.equal(new Set(issued.map((e) => e.subject)).size, AUTO + MANUAL);
      const profiles = await clients[1]!.profiles(ops[1]!);
      // The three built-in profiles (temporary-card since issue 13), each made once.
      assert.deepEqual(profiles.map((x) => x.name), ['smartcard-logon', 'smartcard-logon-auto', 'temporary-card'], 'the default profiles were made once');
    } finally {
      for (const c of clients) c.close();
      for (const p of [a, b]) p.child.kill('SIGTERM');
      await Promise.all([a.exited, b.exited]);
      await db.drop();
    }
  });
});
