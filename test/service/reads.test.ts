import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Principal } from '../../src/service/auth.js';
import { EmbeddedCa } from '../../src/service/ca/embedded.js';
import { ManualClock } from '../../src/service/clock.js';
import { EnrollmentService } from '../../src/service/enrollment.js';
import type { Db, DbTx } from '../../src/service/storage/db.js';
import { openDb } from '../../src/service/storage/open.js';
import { Storage } from '../../src/service/storage/storage.js';
import { softKey, tempDir } from './helpers.js';

/** A database that writes down every statement it is given, inside transactions too. */
function counting(inner: Db, log: string[]): Db {
  const tx = (t: DbTx): DbTx => ({ query: (sql, params) => (log.push(sql), t.query(sql, params)) });
  return {
    dialect: inner.dialect,
    query: (sql, params) => (log.push(sql), inner.query(sql, params)),
    transaction: (fn) => inner.transaction((t) => fn(tx(t))),
    close: () => inner.close(),
  };
}

const readsOf = (log: string[], table: string) => log.filter((sql) => /^\s*SELECT/i.test(sql) && new RegExp(`\\bFROM ${table}\\b`).test(sql));

describe('the use cases read what they need once', () => {
  test('a submit with automatic approval reads the request row once (CSR lookup; the issuance claim is made with the submission) and never reads it back; a list is one query', async () => {
    const log: string[] = [];
    const clock = new ManualClock(new Date(Date.UTC(2026, 0, 1)));
    const storage = await Storage.open(counting(openDb(undefined, tempDir()), log), clock.now().getTime());
    const service = new EnrollmentService({ storage, ca: await EmbeddedCa.inMemory(), clock });
    try {
      await service.ensureDefaults();
      const operator: Principal = { kind: 'operator', username: 'op', role: 'admin', sessionHash: 'unused' };
      const users: Principal[] = [];
      for (const name of ['a', 'b', 'c']) {
        const { token } = await service.createToken(operator, { user: `${name}@example.com`, profile: 'smartcard-logon-auto' });
        users.push((await service.fromBearer(token))!);
      }

      log.length = 0;
      const view = await service.submit(users[0]!, { csr: (await softKey()).csrPem });
      assert.equal(view.state, 'issued');
      assert.match(view.certificate ?? '', /^-----BEGIN CERTIFICATE-----/);
      const reads = readsOf(log, 'requests').map((sql) => (/WHERE r\.csr_hash = \?/.test(sql) ? 'csr lookup' : /lease_until FROM requests/.test(sql) ? 'claim' : sql));
      assert.deepEqual(reads, ['csr lookup'], 'the CSR lookup, no separate claim, nothing read back');
      assert.deepEqual(readsOf(log, 'certificates'), [], 'the certificate just signed is not read back either');

      for (const p of users.slice(1)) await service.submit(p, { csr: (await softKey()).csrPem });
      log.length = 0;
      const all = await service.list(operator);
      assert.equal(all.length, 3);
      assert.ok(all.every((r) => r.certificate !== null));
      assert.equal(log.length, 1, `one query for the list with its certificates, not one per request: ${log.join(' | ')}`);
    } finally {
      await service.close();
    }
  });
});
