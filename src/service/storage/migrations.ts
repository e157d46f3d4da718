import type { Db, Dialect } from './db.js';

export interface Migration {
  version: number;
  name: string;
  statements(dialect: Dialect): string[];
}

function types(d: Dialect): { blob: string; autoId: string } {
  return d === 'postgres'
    ? { blob: 'BYTEA', autoId: 'BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY' }
    : { blob: 'BLOB', autoId: 'INTEGER PRIMARY KEY AUTOINCREMENT' };
}

/** Append only: a released migration is never edited, a change is a new version. */
export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'enrollment schema',
    statements: (d) => {
      const { blob, autoId } = types(d);
      return [
        `CREATE TABLE operators (
          id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
          created_at BIGINT NOT NULL, created_by TEXT NOT NULL)`,
        `CREATE TABLE sessions (
          token_hash TEXT PRIMARY KEY, operator_id TEXT NOT NULL REFERENCES operators(id),
          created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, ended_at BIGINT)`,
        `CREATE TABLE profiles (
          name TEXT PRIMARY KEY, approval TEXT NOT NULL CHECK (approval IN ('automatic', 'operator')),
          validity_days INTEGER NOT NULL, updated_at BIGINT NOT NULL, updated_by TEXT NOT NULL)`,
        `CREATE TABLE tokens (
          id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, user_name TEXT NOT NULL,
          profile TEXT NOT NULL REFERENCES profiles(name), created_by TEXT NOT NULL,
          created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT, request_id TEXT)`,
        `CREATE TABLE serials (serial TEXT PRIMARY KEY, reserved_at BIGINT NOT NULL, purpose TEXT NOT NULL)`,
        `CREATE TABLE requests (
          id TEXT PRIMARY KEY, kind TEXT NOT NULL, user_name TEXT NOT NULL,
          profile TEXT NOT NULL REFERENCES profiles(name), csr ${blob} NOT NULL,
          csr_hash TEXT NOT NULL UNIQUE, key_hash TEXT NOT NULL, subject TEXT NOT NULL,
          card_id TEXT, container TEXT, renews TEXT, state TEXT NOT NULL,
          created_at BIGINT NOT NULL, created_by TEXT NOT NULL, updated_at BIGINT NOT NULL,
          decided_by TEXT, decided_at BIGINT, reason TEXT,
          serial TEXT UNIQUE REFERENCES serials(serial), not_before BIGINT, not_after BIGINT,
          lease_until BIGINT, issued_at BIGINT, delivered_at BIGINT,
          ticket_hash TEXT, ticket_expires_at BIGINT)`,
        `CREATE INDEX requests_state ON requests(state)`,
        `CREATE INDEX requests_user ON requests(user_name)`,
        `CREATE INDEX requests_card ON requests(card_id, container)`,
        `CREATE TABLE certificates (
          serial TEXT PRIMARY KEY REFERENCES serials(serial), request_id TEXT UNIQUE REFERENCES requests(id),
          subject TEXT NOT NULL, der ${blob} NOT NULL, not_before BIGINT NOT NULL, not_after BIGINT NOT NULL,
          issued_at BIGINT NOT NULL, revoked_at BIGINT, revocation_reason INTEGER, revoked_by TEXT)`,
        `CREATE TABLE challenges (
          nonce_hash TEXT PRIMARY KEY, card_id TEXT NOT NULL, created_at BIGINT NOT NULL,
          expires_at BIGINT NOT NULL, used_at BIGINT)`,
        `CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)`,
        `INSERT INTO counters (name, value) VALUES ('crl_number', 0)`,
        `CREATE TABLE crls (
          number BIGINT PRIMARY KEY, this_update BIGINT NOT NULL, next_update BIGINT NOT NULL, der ${blob} NOT NULL)`,
        `CREATE TABLE audit (
          id ${autoId}, at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
          subject TEXT, details TEXT NOT NULL)`,
        `CREATE INDEX audit_subject ON audit(subject)`,
        `CREATE INDEX audit_at ON audit(at)`,
      ];
    },
  },
  {
    version: 2,
    name: 'renewal policy, token revocation, login throttling',
    statements: () => [
      // Defaults for profiles that exist already: a 30-day renewal window, a week of overlap, card keys only.
      'ALTER TABLE profiles ADD COLUMN renewal_window_days INTEGER NOT NULL DEFAULT 30',
      'ALTER TABLE profiles ADD COLUMN supersede_grace_days INTEGER NOT NULL DEFAULT 7',
      'ALTER TABLE profiles ADD COLUMN allow_software_keys INTEGER NOT NULL DEFAULT 0',
      'ALTER TABLE tokens ADD COLUMN revoked_at BIGINT',
      'ALTER TABLE tokens ADD COLUMN revoked_by TEXT',
      'CREATE INDEX requests_renews ON requests(renews)',
      'CREATE INDEX requests_created ON requests(created_at, id)',
      `CREATE TABLE login_throttle (
        throttle_key TEXT PRIMARY KEY, failures INTEGER NOT NULL, window_start BIGINT NOT NULL, locked_until BIGINT)`,
    ],
  },
  {
    version: 3,
    name: 'card administrator keys and unblock tickets',
    statements: () => [
      // key_version 0: the card still has the transport key; pending_version: a re-key handed out, not yet confirmed.
      `CREATE TABLE card_keys (
        card_id TEXT PRIMARY KEY, user_name TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ('rekeying', 'active', 'retired')),
        key_version INTEGER NOT NULL, pending_version INTEGER, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)`,
      `CREATE TABLE unblock_tickets (
        ticket_hash TEXT PRIMARY KEY, card_id TEXT NOT NULL, created_by TEXT NOT NULL,
        created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT)`,
    ],
  },
  {
    version: 4,
    name: 'workstations: each agent\'s last contact',
    statements: () => [
      `CREATE TABLE workstations (
        host TEXT PRIMARY KEY, agent_version TEXT, last_contact BIGINT NOT NULL, last_request TEXT)`,
    ],
  },
  {
    version: 5,
    name: 'cards as records, SIDs for strong certificate mapping, replacement tokens',
    statements: () => [
      // One case everywhere: card ids are lower-case hex (submit lowercased them already; this catches any older row).
      'UPDATE requests SET card_id = LOWER(card_id) WHERE card_id IS NOT NULL',
      // A card's history is not a second table: it is the audit log's rows with subject card:<id>,
      // where issue 14 already writes re-keys, unblocks and retirements, so the two cannot disagree.
      `CREATE TABLE cards (
        card_id TEXT PRIMARY KEY, user_name TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active', 'suspended', 'lost', 'retired')),
        created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, replaced_by TEXT, replaces TEXT)`,
      'CREATE INDEX cards_user ON cards(user_name)',
      'CREATE INDEX cards_created ON cards(created_at, card_id)',
      // Expiry reporting reads certificates by their end.
      'CREATE INDEX certificates_not_after ON certificates(not_after)',
      // The user's security identifier (S-1-5-21-…) an operator gave with the token; requests carry it to the CA, renewals inherit it.
      'ALTER TABLE tokens ADD COLUMN sid TEXT',
      // A replacement token (card lost) names the card it replaces: the card it enrolls is recorded as the replacement.
      'ALTER TABLE tokens ADD COLUMN replaces_card TEXT',
      'ALTER TABLE requests ADD COLUMN sid TEXT',
      // Backfill: the cards issue 14 keyed (active or retired) ...
      `INSERT INTO cards (card_id, user_name, state, created_at, updated_at)
       SELECT card_id, user_name, CASE WHEN state = 'retired' THEN 'retired' ELSE 'active' END, created_at, updated_at
       FROM card_keys WHERE state IN ('active', 'retired')`,
      // ... and every other card a request was bound to, owned by the user of its newest request.
      `INSERT INTO cards (card_id, user_name, state, created_at, updated_at)
       SELECT r.card_id, r.user_name, 'active', (SELECT MIN(f.created_at) FROM requests f WHERE f.card_id = r.card_id), r.updated_at
       FROM requests r
       WHERE r.card_id IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM cards k WHERE k.card_id = r.card_id)
         AND NOT EXISTS (SELECT 1 FROM requests n WHERE n.card_id = r.card_id AND (n.created_at > r.created_at OR (n.created_at = r.created_at AND n.id > r.id)))`,
    ],
  },
  {
    version: 6,
    name: 'operator roles and console sessions',
    statements: () => [
      // Operators made before roles existed could do everything: they stay able to.
      "ALTER TABLE operators ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'",
      // A console session also ends after idle_ms without use (API sessions keep NULL: absolute expiry only).
      'ALTER TABLE sessions ADD COLUMN idle_ms BIGINT',
      'ALTER TABLE sessions ADD COLUMN last_seen_at BIGINT',
      'CREATE INDEX sessions_operator ON sessions(operator_id)',
      // Where a request came from (the client's address), for the operator who decides it.
      'ALTER TABLE requests ADD COLUMN submitted_from TEXT',
    ],
  },
];

// Any fixed number: the advisory lock that keeps two starting services from migrating at once.
const MIGRATION_LOCK = 73_060_106;

/** Brings the schema up to date; safe when several processes start against one database. */
export async function migrate(db: Db, now: number): Promise<number[]> {
  return db.transaction(async (tx) => {
    if (db.dialect === 'postgres') await tx.query('SELECT pg_advisory_xact_lock(?)', [MIGRATION_LOCK]);
    await tx.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
    const done = new Set((await tx.query<{ version: number }>('SELECT version FROM schema_migrations')).map((r) => Number(r.version)));
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      for (const sql of m.statements(db.dialect)) await tx.query(sql);
      await tx.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [m.version, m.name, now]);
      applied.push(m.version);
    }
    return applied;
  });
}
