import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import Database from 'better-sqlite3';
import { openDb } from '../../src/service/storage/open.js';
import { SqliteDb } from '../../src/service/storage/sqlite.js';
import { migrate, MIGRATIONS } from '../../src/service/storage/migrations.js';
import { Storage, type NewRequest } from '../../src/service/storage/storage.js';
import { CARD_MOVES, CardStorage } from '../../src/service/storage/cards.js';
import { newSerial } from '../../src/service/ca/pki.js';
import { BACKENDS, tempDir, type Backend } from './helpers.js';

const T0 = Date.UTC(2026, 0, 1);

async function open(backend: Backend): Promise<{ storage: Storage; url: string | undefined; dir: string; close(): Promise<void> }> {
  const { dbUrl, cleanup } = await backend.open();
  const dir = tempDir();
  const storage = await Storage.open(openDb(dbUrl, dir), T0);
  await storage.ensureProfile({ name: 'p', approval: 'operator', validityDays: 30 }, 'test', T0);
  return { storage, url: dbUrl, dir, close: async () => (await storage.close(), await cleanup()) };
}

function newRequest(over: Partial<NewRequest> = {}): NewRequest {
  const id = randomUUID();
  return {
    id, kind: 'enroll', user: 'alice@example.com', profile: 'p', csr: Buffer.from('csr'), csrHash: `h-${id}`, keyHash: 'k', subject: 'CN=alice',
    cardId: null, container: null, renews: null, state: 'pending', createdBy: 'test', decidedBy: null, ...over,
  };
}

for (const backend of BACKENDS) {
  describe(`storage on ${backend.name}`, () => {
    const opened: { close(): Promise<void> }[] = [];
    after(async () => {
      for (const o of opened) await o.close();
    });
    const setup = async () => {
      const o = await open(backend);
      opened.push(o);
      return o;
    };

    test('migrations run once: a second run (another process starting) applies nothing', async () => {
      const { url, dir } = await setup();
      const db = openDb(url, dir);
      assert.deepEqual(await migrate(db, T0), []);
      const versions = await db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      assert.deepEqual(versions.map((v) => Number(v.version)), MIGRATIONS.map((m) => m.version));
      await db.close();
    });

    test('an enrollment token is spent once, and not after it expires', async () => {
      const { storage } = await setup();
      await storage.createToken({ id: 't1', user: 'alice@example.com', profile: 'p', createdBy: 'op', createdAt: T0, expiresAt: T0 + 1000, usedAt: null, requestId: null }, 'hash1');
      const r = await storage.submitRequest(newRequest(), T0 + 10, { id: 't1' });
      assert.equal(r.state, 'pending');
      assert.deepEqual(await storage.getRequest(r.id), r, 'submitRequest returns the row as a read finds it, without reading it back');
      await assert.rejects(storage.submitRequest(newRequest(), T0 + 20, { id: 't1' }), { code: 'TOKEN_INVALID' });
      await storage.createToken({ id: 't2', user: 'bob@example.com', profile: 'p', createdBy: 'op', createdAt: T0, expiresAt: T0 + 1000, usedAt: null, requestId: null }, 'hash2');
      await assert.rejects(storage.submitRequest(newRequest(), T0 + 1000, { id: 't2' }), { code: 'TOKEN_INVALID' });
      const t1 = await storage.tokenByHash('hash1');
      assert.equal(t1?.requestId, r.id);
      assert.equal((await storage.listRequests()).length, 1, 'a refused token leaves no request behind');
    });

    test('a request is decided once; the racer loses', async () => {
      const { storage } = await setup();
      const r = await storage.submitRequest(newRequest(), T0);
      const results = await Promise.all([storage.decide(r.id, 'approved', 'op1', null, T0 + 1), storage.decide(r.id, 'rejected', 'op2', 'no', T0 + 1)]);
      const won = results.filter((d) => d !== undefined);
      assert.equal(won.length, 1);
      assert.deepEqual(await storage.getRequest(r.id), won[0], 'the winner gets the decided request as stored');
    });

    test('issuance is claimed by one issuer; a takeover after the lease keeps serial and validity', async () => {
      const { storage } = await setup();
      const r = await storage.submitRequest(newRequest({ state: 'approved', decidedBy: 'policy' }), T0);
      const proposals = Array.from({ length: 5 }, () => ({ serial: newSerial(), notBefore: T0, notAfter: T0 + 1 }));
      const claims = await Promise.all(proposals.map((p) => storage.claimIssuance(r.id, p, T0, 1000)));
      const won = claims.filter((c) => c !== undefined);
      assert.equal(won.length, 1);
      assert.equal(await storage.claimIssuance(r.id, { serial: newSerial(), notBefore: T0 + 5, notAfter: T0 + 6 }, T0 + 500, 1000), undefined, 'lease still held');
      const takeover = await storage.claimIssuance(r.id, { serial: newSerial(), notBefore: T0 + 5, notAfter: T0 + 6 }, T0 + 2000, 1000);
      assert.deepEqual(takeover, won[0]);
      const cert = { serial: won[0]!.serial, requestId: r.id, subject: 'CN=alice', der: Buffer.from([1, 2]), notBefore: T0, notAfter: T0 + 1, issuedAt: T0 + 2001 };
      const issued = await storage.completeIssuance(r.id, cert, 'ca');
      assert.deepEqual([issued?.state, issued?.serial, issued?.certificate], ['issued', cert.serial, cert.der], 'the issued request as written, with its certificate');
      assert.equal(await storage.completeIssuance(r.id, cert, 'ca'), undefined, 'a second completion changes nothing');
      assert.deepEqual(await storage.getRequest(r.id), issued, 'what completeIssuance returned is what a read finds');
      const logged = await storage.queryAudit({ action: 'request.issued' });
      assert.deepEqual(logged.map((e) => [e.at, e.actor, e.subject, e.details]), [[T0 + 2001, 'ca', `request:${r.id}`, { serial: cert.serial, notAfter: T0 + 1 }]]);
      assert.deepEqual((await storage.certificateHolder(cert.serial))?.der, cert.der, 'the certificate row is stored with the request');
      assert.deepEqual(await storage.allSerials(), [won[0]!.serial]);
    });

    test('a serial is reserved once', async () => {
      const { storage } = await setup();
      const c = { serial: newSerial(), subject: 'CN=x', der: Buffer.from([1]), notBefore: T0, notAfter: T0 + 1, issuedAt: T0 };
      await storage.recordCertificate(c, 'tls', 'test');
      await assert.rejects(storage.recordCertificate(c, 'tls', 'test'), { code: 'CONFLICT' });
    });

    test('the same CSR cannot make two requests', async () => {
      const { storage } = await setup();
      await storage.submitRequest(newRequest({ csrHash: 'same' }), T0);
      await assert.rejects(storage.submitRequest(newRequest({ csrHash: 'same' }), T0), { code: 'CONFLICT' });
    });

    test('a challenge answers once, for its card, before it expires', async () => {
      const { storage } = await setup();
      await storage.createChallenge('n1', 'card-a', T0, T0 + 100);
      assert.equal(await storage.consumeChallenge('n1', 'card-b', T0 + 1), false);
      assert.equal(await storage.consumeChallenge('n1', 'card-a', T0 + 1), true);
      assert.equal(await storage.consumeChallenge('n1', 'card-a', T0 + 2), false);
      await storage.createChallenge('n2', 'card-a', T0, T0 + 100);
      assert.equal(await storage.consumeChallenge('n2', 'card-a', T0 + 100), false);
      await storage.createChallenge('n3', 'card-a', T0, T0 + 300);
      await storage.pruneChallenges(T0 + 200);
      const left = await storage.db.query<{ nonce_hash: string }>('SELECT nonce_hash FROM challenges ORDER BY nonce_hash');
      assert.deepEqual(left.map((r) => r.nonce_hash), ['n3'], 'expired challenges are dropped, live ones kept');
    });

    test('CRL numbers strictly increase, also when published concurrently', async () => {
      const { storage } = await setup();
      const numbers = await Promise.all(Array.from({ length: 8 }, () => storage.publishCrl(T0, async (n) => ({ der: Buffer.from([n]), nextUpdate: T0 + 1 }))));
      const sorted = numbers.map((n) => n.number).sort((a, b) => a - b);
      assert.deepEqual(sorted, [1, 2, 3, 4, 5, 6, 7, 8]);
      assert.equal((await storage.latestCrl())?.number, 8);
    });

    test('an automatic approval claimed with its submission is issuing under a lease, and taken over like any claim once the lease ran out', async () => {
      const { storage } = await setup();
      const serial = newSerial();
      const r = await storage.submitRequest(newRequest({ state: 'approved', decidedBy: 'policy' }), T0, undefined, { serial, notBefore: T0 - 1, notAfter: T0 + 9, leaseUntil: T0 + 1000 });
      assert.deepEqual([r.state, r.serial, r.notBefore, r.notAfter], ['issuing', serial, T0 - 1, T0 + 9]);
      const stored = (await storage.getRequest(r.id))!;
      assert.deepEqual([stored.state, stored.serial, stored.notBefore, stored.notAfter], ['issuing', serial, T0 - 1, T0 + 9]);
      assert.ok((await storage.allSerials()).includes(serial), 'the serial is reserved with the submission');
      // Within the lease nobody else may issue it; after it, a takeover signs the very same serial and validity.
      assert.equal(await storage.claimIssuance(r.id, { serial: newSerial(), notBefore: T0, notAfter: T0 + 1 }, T0 + 999, 1000), undefined);
      assert.deepEqual(await storage.claimIssuance(r.id, { serial: newSerial(), notBefore: T0, notAfter: T0 + 1 }, T0 + 1001, 1000), { serial, notBefore: T0 - 1, notAfter: T0 + 9 });
      assert.deepEqual((await storage.issuanceBacklog(T0 + 5000, T0 + 5000)).includes(r.id), true);
      // A pending request cannot come with a claim.
      await assert.rejects(storage.submitRequest(newRequest(), T0, undefined, { serial: newSerial(), notBefore: T0, notAfter: T0 + 1, leaseUntil: T0 + 1 }), { code: 'INTERNAL' });
    });

    test('revocation needs an issued certificate and is audited with its serial', async () => {
      const { storage } = await setup();
      const r = await storage.submitRequest(newRequest({ state: 'approved', decidedBy: 'policy' }), T0);
      assert.equal(await storage.revoke(r.id, 1, 'op', T0), undefined);
      const claim = (await storage.claimIssuance(r.id, { serial: newSerial(), notBefore: T0, notAfter: T0 + 1 }, T0, 1000))!;
      await storage.completeIssuance(r.id, { serial: claim.serial, requestId: r.id, subject: 'CN=a', der: Buffer.from([1]), notBefore: T0, notAfter: T0 + 1, issuedAt: T0 }, 'ca');
      const revokedRequest = await storage.revoke(r.id, 1, 'op', T0 + 5);
      assert.deepEqual([revokedRequest?.state, revokedRequest?.serial, revokedRequest?.certificate], ['revoked', claim.serial, Buffer.from([1])]);
      const revoked = await storage.revokedCertificates();
      assert.deepEqual(revoked.map((c) => [c.serial, c.revocationReason, c.revokedAt]), [[claim.serial, 1, T0 + 5]]);
      const [entry] = await storage.queryAudit({ action: 'request.revoked' });
      assert.deepEqual(entry?.details, { serial: claim.serial, reason: 1 });
      assert.equal(entry?.actor, 'op');
    });

    test('migration 5 backfills cards from issue 14 card keys and from requests, lower-case, owned by the newest request', async () => {
      const { dbUrl, cleanup } = await backend.open();
      const db = openDb(dbUrl, tempDir());
      opened.push({ close: async () => (await db.close(), await cleanup()) });
      // A database as version 4 left it.
      await db.transaction(async (tx) => {
        await tx.query('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
        for (const m of MIGRATIONS.filter((x) => x.version <= 4)) {
          for (const sql of m.statements(db.dialect)) await tx.query(sql);
          await tx.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [m.version, m.name, T0]);
        }
        await tx.query("INSERT INTO profiles (name, approval, validity_days, updated_at, updated_by) VALUES ('p', 'operator', 30, 0, 't')");
        const request = (id: string, user: string, card: string | null, at: number) =>
          tx.query("INSERT INTO requests (id, kind, user_name, profile, csr, csr_hash, key_hash, subject, card_id, container, state, created_at, created_by, updated_at) VALUES (?, 'enroll', ?, 'p', ?, ?, 'k', 'CN=x', ?, 'c1', 'pending', ?, 't', ?)", [id, user, Buffer.from('x'), `h${id}`, card, at, at]);
        await request('r1', 'old@example.com', 'AA'.repeat(16), T0 + 1);
        await request('r2', 'new@example.com', 'aa'.repeat(16), T0 + 2);
        await request('r3', 'solo@example.com', 'bb'.repeat(16), T0 + 3);
        await request('r4', 'nocard@example.com', null, T0 + 4);
        await tx.query("INSERT INTO card_keys (card_id, user_name, state, key_version, created_at, updated_at) VALUES (?, 'keyed@example.com', 'retired', 1, ?, ?)", ['cc'.repeat(16), T0, T0 + 9]);
        await tx.query("INSERT INTO card_keys (card_id, user_name, state, key_version, pending_version, created_at, updated_at) VALUES (?, 'half@example.com', 'rekeying', 0, 1, ?, ?)", ['dd'.repeat(16), T0, T0]);
      });
      assert.deepEqual(await migrate(db, T0 + 10), MIGRATIONS.filter((m) => m.version > 4).map((m) => m.version));
      const cards = await db.query('SELECT card_id, user_name, state, created_at FROM cards ORDER BY card_id');
      assert.deepEqual(cards.map((c) => [c.card_id, c.user_name, c.state, Number(c.created_at)]), [
        ['aa'.repeat(16), 'new@example.com', 'active', T0 + 1],
        ['bb'.repeat(16), 'solo@example.com', 'active', T0 + 3],
        ['cc'.repeat(16), 'keyed@example.com', 'retired', T0],
      ]);
      assert.deepEqual((await db.query("SELECT card_id FROM requests WHERE id = 'r1'"))[0]!.card_id, 'aa'.repeat(16), 'one case everywhere');
    });

    test('a card move is one conditional transition: of two racing operators one wins, and revocations come with it', async () => {
      const { storage } = await setup();
      const cards = new CardStorage(storage);
      await storage.createToken({ id: 't1', user: 'alice@example.com', profile: 'p', createdBy: 'op', createdAt: T0, expiresAt: T0 + 1000, usedAt: null, requestId: null }, 'hash1');
      const cardId = 'ab'.repeat(16);
      const r = await storage.submitRequest(newRequest({ state: 'approved', decidedBy: 'policy', cardId, container: 'c1' }), T0, { id: 't1' });
      const claim = (await storage.claimIssuance(r.id, { serial: newSerial(), notBefore: T0, notAfter: T0 + 100_000 }, T0, 1000))!;
      await storage.completeIssuance(r.id, { serial: claim.serial, requestId: r.id, subject: 'CN=a', der: Buffer.from([1]), notBefore: T0, notAfter: T0 + 100_000, issuedAt: T0 }, 'ca');
      assert.equal((await cards.get(cardId))?.state, 'active');
      const results = await Promise.all([
        cards.transition(cardId, CARD_MOVES.lost.from, 'lost', { revoke: 1 }, 'op1', T0 + 5),
        cards.transition(cardId, CARD_MOVES.suspend.from, 'suspended', { hold: true }, 'op2', T0 + 5),
      ]);
      const won = results.filter((x) => x !== undefined);
      assert.equal(won.length, 1);
      const revoked = await storage.revokedCertificates();
      assert.deepEqual(revoked.map((c) => c.serial), [claim.serial]);
      assert.equal(revoked[0]!.revocationReason, won[0]!.card.state === 'lost' ? 1 : 6);
      const entries = await storage.queryAudit({ subject: `card:${cardId}` });
      assert.deepEqual(entries.map((e) => e.action), ['card.created', `card.${won[0]!.card.state}`]);
    });

    test('audit queries filter by subject, actor and time (property)', async () => {
      const { storage } = await setup();
      const entries = fc.sample(fc.record({ at: fc.integer({ min: 0, max: 1000 }), actor: fc.constantFrom('a', 'b'), subject: fc.constantFrom('s1', 's2') }), 40);
      for (const e of entries) await storage.recordAudit(T0 + e.at, e.actor, 'x.test', e.subject);
      await fc.assert(
        fc.asyncProperty(fc.constantFrom('a', 'b'), fc.constantFrom('s1', 's2'), fc.integer({ min: 0, max: 1000 }), async (actor, subject, since) => {
          const got = await storage.queryAudit({ actor, subject, since: T0 + since, action: 'x.test' });
          const want = entries.filter((e) => e.actor === actor && e.subject === subject && e.at >= since);
          assert.equal(got.length, want.length);
          assert.ok(got.every((g) => g.actor === actor && g.subject === subject && g.at >= T0 + since));
        }),
        { numRuns: 25 },
      );
    });
  });
}

describe('PostgreSQL durability', () => {
  test('every connection commits synchronously, even on a database whose default is asynchronous commit', async () => {
    const pgBackend = BACKENDS.find((b) => b.name === 'postgres')!;
    const { dbUrl, cleanup } = await pgBackend.open();
    const admin = openDb(dbUrl, tempDir());
    const name = new URL(dbUrl!).pathname.slice(1);
    await admin.query(`ALTER DATABASE ${name} SET synchronous_commit = off`);
    await admin.close();
    const db = openDb(dbUrl, tempDir());
    try {
      const [row] = await db.query<{ synchronous_commit: string }>('SHOW synchronous_commit');
      assert.equal(row?.synchronous_commit, 'on');
      const [inTx] = await db.transaction((tx) => tx.query<{ synchronous_commit: string }>('SHOW synchronous_commit'));
      assert.equal(inTx?.synchronous_commit, 'on');
    } finally {
      await db.close();
      await cleanup();
    }
  });
});

describe('SQLite group commit', () => {
  test('transactions that arrive together are answered only once committed, and a failing one is rolled back alone', async () => {
    const dir = tempDir();
    const file = `${dir}/group.db`;
    const db = new SqliteDb(file);
    // A second connection sees committed rows only: what a restarted process would find.
    const observer = new Database(file, { readonly: true });
    try {
      await db.query('CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)');
      const seenAtAnswer: boolean[] = [];
      const outcomes = await Promise.allSettled(
        Array.from({ length: 40 }, (_, k) =>
          db
            .transaction(async (tx) => {
              await tx.query('INSERT INTO t (k, v) VALUES (?, ?)', [k, `row ${k}`]);
              // Every seventh one inserts a duplicate key after its first row: all of it must go.
              if (k % 7 === 3) await tx.query('INSERT INTO t (k, v) VALUES (?, ?)', [k, 'again']);
              return k;
            })
            .then((v) => {
              seenAtAnswer[k] = observer.prepare('SELECT 1 FROM t WHERE k = ?').get(k) !== undefined;
              return v;
            }),
        ),
      );
      for (const [k, o] of outcomes.entries()) {
        if (k % 7 === 3) {
          assert.equal(o.status, 'rejected', `transaction ${k} failed`);
          assert.equal((o as PromiseRejectedResult).reason.code, 'CONFLICT');
        } else {
          assert.equal(o.status, 'fulfilled', `transaction ${k} succeeded`);
          assert.equal(seenAtAnswer[k], true, `transaction ${k} was committed before it was answered`);
        }
      }
      const keys = (observer.prepare('SELECT k FROM t ORDER BY k').all() as { k: number }[]).map((r) => r.k);
      assert.deepEqual(keys, Array.from({ length: 40 }, (_, k) => k).filter((k) => k % 7 !== 3));
    } finally {
      observer.close();
      await db.close();
    }
  });

  test('a plain read waits for the commit of the batch it reads from', async () => {
    const file = `${tempDir()}/read.db`;
    const db = new SqliteDb(file);
    const observer = new Database(file, { readonly: true });
    try {
      await db.query('CREATE TABLE t (k INTEGER PRIMARY KEY)');
      const write = db.transaction(async (tx) => tx.query('INSERT INTO t (k) VALUES (1)'));
      const rows = await db.query('SELECT k FROM t');
      assert.deepEqual(rows, [{ k: 1 }]);
      assert.ok(observer.prepare('SELECT 1 FROM t WHERE k = 1').get() !== undefined, 'the row the read returned was committed before the read answered');
      await write;
    } finally {
      observer.close();
      await db.close();
    }
  });
});
