/**
 * Migration 6 on both databases: operators from before roles become admins; console sessions
 * end when idle and when the password changes (storage level, SQLite and PostgreSQL).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { openDb } from '../../src/service/storage/open.js';
import { MIGRATIONS } from '../../src/service/storage/migrations.js';
import { Storage } from '../../src/service/storage/storage.js';
import { BACKENDS, tempDir } from '../service/helpers.js';

for (const backend of BACKENDS) {
  describe(`operator roles and console sessions (${backend.name})`, () => {
    test('an operator made before migration 6 is an admin afterwards; new ones keep their role', async () => {
      const { dbUrl, cleanup } = await backend.open();
      const dir = tempDir();
      try {
        const old = openDb(dbUrl, dir);
        await old.transaction(async (tx) => {
          await tx.query('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
          for (const m of MIGRATIONS.filter((x) => x.version < 6)) {
            for (const sql of m.statements(old.dialect)) await tx.query(sql);
            await tx.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [m.version, m.name, 1]);
          }
          await tx.query("INSERT INTO operators (id, username, password_hash, created_at, created_by) VALUES ('o1', 'olga', 'x', 1, 'system')");
        });
        await old.close();
        const storage = await Storage.open(openDb(dbUrl, dir), 2);
        try {
          assert.equal((await storage.findOperator('olga'))?.role, 'admin');
          await storage.createOperator({ id: 'o2', username: 'vic', passwordHash: 'y', createdAt: 3, role: 'viewer' }, 'operator:olga');
          assert.equal((await storage.findOperator('vic'))?.role, 'viewer');
        } finally {
          await storage.close();
        }
      } finally {
        await cleanup();
      }
    });

    test('a console session ends when idle (use moves the end on) and every session ends on a password change', async () => {
      const { dbUrl, cleanup } = await backend.open();
      try {
        const storage = await Storage.open(openDb(dbUrl, tempDir()), 0);
        try {
          const op = { id: 'o1', username: 'ida', passwordHash: 'h1', createdAt: 0, role: 'approver' as const };
          await storage.createOperator(op, 'system');
          await storage.createSession('console', op, 0, 100_000, 1000);
          await storage.createSession('api', op, 0, 100_000);
          assert.equal((await storage.sessionOperator('console', 900))?.role, 'approver');
          assert.ok(await storage.sessionOperator('console', 1800), 'used at 900: alive until 1900');
          assert.equal(await storage.sessionOperator('console', 2900), undefined, 'idle from 1800 to 2900');
          assert.ok(await storage.sessionOperator('api', 50_000), 'an API session has no idle expiry');
          await storage.createSession('console2', op, 60_000, 100_000, 1000);
          assert.equal(await storage.changePassword(op.id, 'h2', 'operator:ida', 60_500), 2);
          assert.equal(await storage.sessionOperator('api', 60_600), undefined);
          assert.equal(await storage.sessionOperator('console2', 60_600), undefined);
          assert.equal((await storage.findOperator('ida'))?.passwordHash, 'h2');
          const audit = await storage.queryAudit({ action: 'operator.password-changed' });
          assert.deepEqual(audit.map((e) => e.details), [{ sessionsEnded: 2 }]);
        } finally {
          await storage.close();
        }
      } finally {
        await cleanup();
      }
    });
  });
}
