import type { OperatorRole } from '../auth.js';
import { ServiceError } from '../errors.js';
import type { Approval, ProfileView, RequestKind, RequestListQuery, RequestState } from '../protocol.js';
import type { Db, DbTx, Row } from './db.js';
import { migrate } from './migrations.js';

export interface Operator {
  id: string;
  username: string;
  passwordHash: string;
  createdAt: number;
  role: OperatorRole;
}

function toOperator(r: Row): Operator {
  return { id: String(r.id), username: String(r.username), passwordHash: String(r.password_hash), createdAt: Number(r.created_at), role: String(r.role) as OperatorRole };
}

/** A profile as stored is exactly what the API shows of it. */
export type Profile = ProfileView;

export interface TokenRecord {
  id: string;
  user: string;
  profile: string;
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  usedAt: number | null;
  requestId: string | null;
  revokedAt: number | null;
  /** The user's Windows SID (S-1-5-21-…) for the certificate's strong mapping (KB5014754), when an operator gave it. */
  sid: string | null;
  /** The card this token replaces (it was marked lost), or null. */
  replacesCard: string | null;
}

/** A token as created: the SID and the replaced card are optional. */
export type NewTokenRecord = Omit<TokenRecord, 'revokedAt' | 'sid' | 'replacesCard'> & Partial<Pick<TokenRecord, 'sid' | 'replacesCard'>>;

export interface RequestRecord {
  id: string;
  kind: RequestKind;
  user: string;
  profile: string;
  csr: Buffer;
  csrHash: string;
  keyHash: string;
  subject: string;
  cardId: string | null;
  container: string | null;
  renews: string | null;
  state: RequestState;
  createdAt: number;
  createdBy: string;
  updatedAt: number;
  decidedBy: string | null;
  decidedAt: number | null;
  reason: string | null;
  serial: string | null;
  notBefore: number | null;
  notAfter: number | null;
  issuedAt: number | null;
  deliveredAt: number | null;
  /** The address the request was submitted from, when known. */
  submittedFrom: string | null;
  /** The issued certificate's DER as the CA signed it (joined from `certificates`), once there is one. */
  certificate: Buffer | null;
  /** The user's SID the CA is given for this certificate (from the token, or inherited by a renewal). */
  sid: string | null;
}

export interface CertificateRecord {
  serial: string;
  requestId: string | null;
  subject: string;
  der: Buffer;
  notBefore: number;
  notAfter: number;
  issuedAt: number;
  revokedAt: number | null;
  revocationReason: number | null;
}

export interface AuditEntry {
  id: number;
  at: number;
  actor: string;
  action: string;
  subject: string | null;
  details: Record<string, unknown>;
}

export interface AuditQuery {
  actor?: string;
  action?: string;
  subject?: string;
  since?: number;
  until?: number;
  limit?: number;
  /** Newest entries first (the console); default oldest first. */
  newestFirst?: boolean;
}

/** The API's query, and the container a card holder proves a key for. */
export interface RequestQuery extends Omit<RequestListQuery, 'since' | 'until'> {
  container?: string;
  /** Submitted at or after / before, ms since the epoch. */
  since?: number;
  until?: number;
}

export interface NewRequest {
  id: string;
  kind: RequestKind;
  user: string;
  profile: string;
  csr: Buffer;
  csrHash: string;
  keyHash: string;
  subject: string;
  cardId: string | null;
  container: string | null;
  renews: string | null;
  state: 'pending' | 'approved';
  createdBy: string;
  decidedBy: string | null;
  /** A renewal's SID, inherited from the certificate it renews; a first request takes its token's. */
  sid?: string | null;
  submittedFrom?: string | null;
}

export interface Claim {
  serial: string;
  notBefore: number;
  notAfter: number;
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

/** A `requests` row (joined with its certificate's DER as certificate_der) as a record. */
export function toRequest(r: Row): RequestRecord {
  return {
    id: String(r.id),
    kind: r.kind as RequestKind,
    user: String(r.user_name),
    profile: String(r.profile),
    csr: Buffer.from(r.csr as Uint8Array),
    csrHash: String(r.csr_hash),
    keyHash: String(r.key_hash),
    subject: String(r.subject),
    cardId: str(r.card_id),
    container: str(r.container),
    renews: str(r.renews),
    state: r.state as RequestState,
    createdAt: Number(r.created_at),
    createdBy: String(r.created_by),
    updatedAt: Number(r.updated_at),
    decidedBy: str(r.decided_by),
    decidedAt: num(r.decided_at),
    reason: str(r.reason),
    serial: str(r.serial),
    notBefore: num(r.not_before),
    notAfter: num(r.not_after),
    issuedAt: num(r.issued_at),
    deliveredAt: num(r.delivered_at),
    submittedFrom: str(r.submitted_from),
    certificate: r.certificate_der === null || r.certificate_der === undefined ? null : Buffer.from(r.certificate_der as Uint8Array),
    sid: str(r.sid),
  };
}

/** A request row with its certificate's DER: one query where a view needs both. */
const REQUEST = 'SELECT r.*, c.der AS certificate_der FROM requests r LEFT JOIN certificates c ON c.request_id = r.id';

function toToken(r: Row): TokenRecord {
  return {
    id: String(r.id),
    user: String(r.user_name),
    profile: String(r.profile),
    createdBy: String(r.created_by),
    createdAt: Number(r.created_at),
    expiresAt: Number(r.expires_at),
    usedAt: num(r.used_at),
    requestId: str(r.request_id),
    revokedAt: num(r.revoked_at),
    sid: str(r.sid),
    replacesCard: str(r.replaces_card),
  };
}

function toCertificate(r: Row): CertificateRecord {
  return {
    serial: String(r.serial),
    requestId: str(r.request_id),
    subject: String(r.subject),
    der: Buffer.from(r.der as Uint8Array),
    notBefore: Number(r.not_before),
    notAfter: Number(r.not_after),
    issuedAt: Number(r.issued_at),
    revokedAt: num(r.revoked_at),
    revocationReason: num(r.revocation_reason),
  };
}

function toProfile(r: Row): Profile {
  return {
    name: String(r.name),
    approval: r.approval as Approval,
    validityDays: Number(r.validity_days),
    renewalWindowDays: Number(r.renewal_window_days),
    supersedeGraceDays: Number(r.supersede_grace_days),
    allowSoftwareKeys: Number(r.allow_software_keys) === 1,
    updatedAt: Number(r.updated_at),
    updatedBy: String(r.updated_by),
  };
}

/** The longest actor or subject an audit entry keeps: the callers validate lengths, this is the backstop against a log that fills the disk. */
const AUDIT_TEXT_MAX = 300;
const AUDIT_DETAILS_MAX = 4000;
const bounded = (text: string, max: number): string => (text.length <= max ? text : `${text.slice(0, max)}…`);

interface NewAuditEntry {
  at: number;
  actor: string;
  action: string;
  subject: string | null;
  details?: Record<string, unknown>;
}

/** An audit row's values (at, actor, action, subject, details), bounded. */
function auditValues(e: NewAuditEntry): unknown[] {
  const json = JSON.stringify(e.details ?? {});
  return [
    e.at, bounded(e.actor, AUDIT_TEXT_MAX), e.action, e.subject === null ? null : bounded(e.subject, AUDIT_TEXT_MAX),
    json.length <= AUDIT_DETAILS_MAX ? json : JSON.stringify({ truncated: json.slice(0, AUDIT_DETAILS_MAX) }),
  ];
}

export async function audit(tx: DbTx, at: number, actor: string, action: string, subject: string | null, details: Record<string, unknown> = {}): Promise<void> {
  await audits(tx, [{ at, actor, action, subject, details }]);
}

/** Several audit entries in one statement (one round trip to PostgreSQL), in order. */
async function audits(tx: DbTx, entries: NewAuditEntry[]): Promise<void> {
  const params = entries.flatMap(auditValues);
  await tx.query(`INSERT INTO audit (at, actor, action, subject, details) VALUES ${entries.map(() => '(?, ?, ?, ?, ?)').join(', ')}`, params);
}

/** What GET /requests's cursor encodes: where the previous page stopped (newest first). */
function encodeCursor(r: { createdAt: number; id: string }): string {
  return Buffer.from(`${r.createdAt}:${r.id}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: number; id: string } {
  const m = /^(\d{1,16}):([0-9a-f-]{36})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m) throw new ServiceError('BAD_REQUEST', 'cursor: not one this service handed out (use the x-next-cursor of the previous page)');
  return { createdAt: Number(m[1]), id: m[2]! };
}

/** RFC 5280 §5.3.1 CRLReason codes the service acts on. */
export const CRL_REASON = { keyCompromise: 1, superseded: 4, cessationOfOperation: 5, certificateHold: 6 } as const;

/**
 * Everything the enrollment service keeps, over SQLite or PostgreSQL. Every state change is one
 * transaction that also writes its audit entry, and every transition is a conditional UPDATE
 * (`... WHERE state = ?`), so two processes racing on one request cannot both win.
 */
export class Storage {
  private constructor(readonly db: Db) {}

  static async open(db: Db, now: number): Promise<Storage> {
    await migrate(db, now);
    return new Storage(db);
  }

  close(): Promise<void> {
    return this.db.close();
  }

  // Operators and sessions

  async createOperator(op: Operator, actor: string): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('INSERT INTO operators (id, username, password_hash, created_at, created_by, role) VALUES (?, ?, ?, ?, ?, ?)', [
        op.id, op.username, op.passwordHash, op.createdAt, actor, op.role,
      ]);
      await audit(tx, op.createdAt, actor, 'operator.created', `operator:${op.username}`, { role: op.role });
    });
  }

  /** Throws unless the database answers a query on the schema. */
  async ping(): Promise<void> {
    await this.db.query('SELECT version FROM schema_migrations LIMIT 1');
  }

  async findOperator(username: string): Promise<Operator | undefined> {
    const [r] = await this.db.query('SELECT * FROM operators WHERE username = ?', [username]);
    return r ? toOperator(r) : undefined;
  }

  /**
   * A session ends at `expiresAt` whatever happens; with `idleMs` (console sessions) also after
   * that long without use.
   */
  async createSession(tokenHash: string, op: Operator, now: number, expiresAt: number, idleMs?: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('INSERT INTO sessions (token_hash, operator_id, created_at, expires_at, idle_ms, last_seen_at) VALUES (?, ?, ?, ?, ?, ?)', [
        tokenHash, op.id, now, expiresAt, idleMs ?? null, now,
      ]);
      await audit(tx, now, `operator:${op.username}`, 'session.started', `operator:${op.username}`, { expiresAt, ...(idleMs !== undefined ? { idleMs, console: true } : {}) });
    });
  }

  /** The operator of a live session; a use of a session with an idle expiry moves that expiry on. */
  async sessionOperator(tokenHash: string, now: number): Promise<Operator | undefined> {
    const [r] = await this.db.query(
      `SELECT o.*, s.idle_ms FROM sessions s JOIN operators o ON o.id = s.operator_id
       WHERE s.token_hash = ? AND s.expires_at > ? AND s.ended_at IS NULL AND (s.idle_ms IS NULL OR s.last_seen_at + s.idle_ms > ?)`,
      [tokenHash, now, now],
    );
    if (!r) return undefined;
    if (r.idle_ms !== null && r.idle_ms !== undefined) await this.db.query('UPDATE sessions SET last_seen_at = ? WHERE token_hash = ? AND last_seen_at < ?', [now, tokenHash, now]);
    return toOperator(r);
  }

  /** A new password ends every session of the operator, in the same transaction. */
  async changePassword(operatorId: string, passwordHash: string, actor: string, now: number): Promise<number> {
    return this.db.transaction(async (tx) => {
      const [op] = await tx.query('UPDATE operators SET password_hash = ? WHERE id = ? RETURNING username', [passwordHash, operatorId]);
      if (!op) throw new ServiceError('NOT_FOUND', 'no such operator');
      // The sessions still alive: expired ones are dead already and are not counted.
      const ended = await tx.query(
        'UPDATE sessions SET ended_at = ? WHERE operator_id = ? AND ended_at IS NULL AND expires_at > ? AND (idle_ms IS NULL OR last_seen_at + idle_ms > ?) RETURNING token_hash',
        [now, operatorId, now, now],
      );
      await audit(tx, now, actor, 'operator.password-changed', `operator:${String(op.username)}`, { sessionsEnded: ended.length });
      return ended.length;
    });
  }

  async endSession(tokenHash: string, actor: string, now: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('UPDATE sessions SET ended_at = ? WHERE token_hash = ? AND ended_at IS NULL', [now, tokenHash]);
      await audit(tx, now, actor, 'session.ended', actor);
    });
  }

  // Profiles

  async ensureProfile(
    given: Pick<Profile, 'name' | 'approval' | 'validityDays'> & Partial<Pick<Profile, 'renewalWindowDays' | 'supersedeGraceDays' | 'allowSoftwareKeys'>>,
    actor: string,
    now: number,
  ): Promise<void> {
    const p = { renewalWindowDays: 30, supersedeGraceDays: 7, allowSoftwareKeys: false, ...given };
    await this.db.transaction(async (tx) => {
      const existing = await tx.query('SELECT name FROM profiles WHERE name = ?', [p.name]);
      if (existing.length > 0) return;
      await tx.query(
        'INSERT INTO profiles (name, approval, validity_days, renewal_window_days, supersede_grace_days, allow_software_keys, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        [p.name, p.approval, p.validityDays, p.renewalWindowDays, p.supersedeGraceDays, p.allowSoftwareKeys ? 1 : 0, now, actor],
      );
      await audit(tx, now, actor, 'profile.created', `profile:${p.name}`, {
        approval: p.approval, validityDays: p.validityDays, renewalWindowDays: p.renewalWindowDays, supersedeGraceDays: p.supersedeGraceDays, allowSoftwareKeys: p.allowSoftwareKeys,
      });
    }).catch((err) => {
      // Two services starting together both try to seed the defaults; the loser has nothing to do.
      if ((err as { code?: string }).code !== 'CONFLICT') throw err;
    });
  }

  async listProfiles(): Promise<Profile[]> {
    return (await this.db.query('SELECT * FROM profiles ORDER BY name')).map(toProfile);
  }

  async getProfile(name: string): Promise<Profile | undefined> {
    const [r] = await this.db.query('SELECT * FROM profiles WHERE name = ?', [name]);
    return r ? toProfile(r) : undefined;
  }

  async updateProfile(name: string, change: Partial<Pick<Profile, 'approval' | 'validityDays' | 'renewalWindowDays' | 'supersedeGraceDays' | 'allowSoftwareKeys'>>, actor: string, now: number): Promise<Profile> {
    return this.db.transaction(async (tx) => {
      const [before] = await tx.query('SELECT * FROM profiles WHERE name = ?', [name]);
      if (!before) throw new ServiceError('NOT_FOUND', `no profile '${name}'`);
      const p = toProfile(before);
      const next = {
        approval: change.approval ?? p.approval,
        validityDays: change.validityDays ?? p.validityDays,
        renewalWindowDays: change.renewalWindowDays ?? p.renewalWindowDays,
        supersedeGraceDays: change.supersedeGraceDays ?? p.supersedeGraceDays,
        allowSoftwareKeys: change.allowSoftwareKeys ?? p.allowSoftwareKeys,
      };
      await tx.query(
        'UPDATE profiles SET approval = ?, validity_days = ?, renewal_window_days = ?, supersede_grace_days = ?, allow_software_keys = ?, updated_at = ?, updated_by = ? WHERE name = ?',
        [next.approval, next.validityDays, next.renewalWindowDays, next.supersedeGraceDays, next.allowSoftwareKeys ? 1 : 0, now, actor, name],
      );
      const from = { approval: p.approval, validityDays: p.validityDays, renewalWindowDays: p.renewalWindowDays, supersedeGraceDays: p.supersedeGraceDays, allowSoftwareKeys: p.allowSoftwareKeys };
      await audit(tx, now, actor, 'profile.updated', `profile:${name}`, { from, to: next });
      return { ...p, ...next, updatedAt: now, updatedBy: actor };
    });
  }

  // Enrollment tokens

  async createToken(t: NewTokenRecord, tokenHash: string): Promise<void> {
    await this.db.transaction((tx) => insertTokenIn(tx, t, tokenHash));
  }

  async tokenByHash(tokenHash: string): Promise<TokenRecord | undefined> {
    const [r] = await this.db.query('SELECT * FROM tokens WHERE token_hash = ?', [tokenHash]);
    return r ? toToken(r) : undefined;
  }

  async listTokens(): Promise<TokenRecord[]> {
    return (await this.db.query('SELECT * FROM tokens ORDER BY created_at, id')).map(toToken);
  }

  /**
   * An unused token can no longer enroll: returns it revoked, or undefined when there is no such
   * token. A token that was used or revoked already comes back as it is (the caller tells which).
   */
  async revokeToken(id: string, actor: string, now: number): Promise<{ token: TokenRecord; changed: boolean } | undefined> {
    return this.db.transaction(async (tx) => {
      const [row] = await tx.query('UPDATE tokens SET revoked_at = ?, revoked_by = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL RETURNING *', [now, actor, id]);
      if (row) {
        await audit(tx, now, actor, 'token.revoked', `token:${id}`, { user: String(row.user_name) });
        return { token: toToken(row), changed: true };
      }
      const [before] = await tx.query('SELECT * FROM tokens WHERE id = ?', [id]);
      return before ? { token: toToken(before), changed: false } : undefined;
    });
  }

  // Requests

  /**
   * Records a request and, when it came with an enrollment token, spends the token in the same
   * transaction: a token that was spent (or expired) meanwhile makes the whole insert fail.
   * An automatically approved request may come with its issuance claim (`claimIssuance`'s, made
   * in the same transaction: the serial reserved, the request `issuing` under a lease), which
   * saves a transaction per enrollment. Returns the row as written, without reading it back.
   */
  async submitRequest(req: NewRequest, now: number, token?: { id: string }, claim?: Claim & { leaseUntil: number }): Promise<RequestRecord> {
    if (claim && req.state !== 'approved') throw new ServiceError('INTERNAL', 'only an approved request is claimed for issuance when it is submitted');
    return this.db.transaction(async (tx) => {
      let sid = req.sid ?? null;
      if (token) {
        const spent = await tx.query(
          'UPDATE tokens SET used_at = ?, request_id = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ? RETURNING id, sid, replaces_card',
          [now, req.id, token.id, now],
        );
        if (spent.length === 0) throw new ServiceError('TOKEN_INVALID', 'the enrollment token was already used, revoked or has expired: ask an operator for a new one');
        sid = str(spent[0]!.sid) ?? sid;
        // A first enrollment with a card makes (or takes over) the card's record, in the same transaction.
        if (req.kind === 'enroll' && req.cardId !== null) await enrollCardIn(tx, req.cardId, req.user, str(spent[0]!.replaces_card), req.createdBy, now);
      }
      if (claim) await tx.query('INSERT INTO serials (serial, reserved_at, purpose) VALUES (?, ?, ?)', [claim.serial, now, `request:${req.id}`]);
      const state = claim ? 'issuing' : req.state;
      await tx.query(
        `INSERT INTO requests (id, kind, user_name, profile, csr, csr_hash, key_hash, subject, card_id, container, renews,
           state, created_at, created_by, updated_at, decided_by, decided_at, serial, not_before, not_after, lease_until, sid, submitted_from)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          req.id, req.kind, req.user, req.profile, req.csr, req.csrHash, req.keyHash, req.subject, req.cardId, req.container,
          req.renews, state, now, req.createdBy, now, req.decidedBy, req.decidedBy === null ? null : now,
          claim?.serial ?? null, claim?.notBefore ?? null, claim?.notAfter ?? null, claim?.leaseUntil ?? null, sid, req.submittedFrom ?? null,
        ],
      );
      await audits(tx, [
        {
          at: now, actor: req.createdBy, action: 'request.submitted', subject: `request:${req.id}`,
          details: { user: req.user, profile: req.profile, kind: req.kind, cardId: req.cardId, container: req.container, renews: req.renews, ...(token ? { token: token.id } : {}) },
        },
        ...(token ? [{ at: now, actor: req.createdBy, action: 'token.used', subject: `token:${token.id}`, details: { request: req.id } }] : []),
        ...(req.state === 'approved' ? [{ at: now, actor: req.decidedBy ?? 'policy', action: 'request.approved', subject: `request:${req.id}`, details: { policy: 'automatic' } }] : []),
      ]);
      return {
        ...req, state, createdAt: now, updatedAt: now, decidedAt: req.decidedBy === null ? null : now, reason: null,
        serial: claim?.serial ?? null, notBefore: claim?.notBefore ?? null, notAfter: claim?.notAfter ?? null, issuedAt: null, deliveredAt: null, certificate: null, sid,
        submittedFrom: req.submittedFrom ?? null,
      };
    });
  }

  async getRequest(id: string): Promise<RequestRecord | undefined> {
    const [r] = await this.db.query(`${REQUEST} WHERE r.id = ?`, [id]);
    return r ? toRequest(r) : undefined;
  }

  async requestByCsrHash(csrHash: string): Promise<RequestRecord | undefined> {
    const [r] = await this.db.query(`${REQUEST} WHERE r.csr_hash = ?`, [csrHash]);
    return r ? toRequest(r) : undefined;
  }

  /**
   * Requests matching the query, newest first, one page: `next` is the cursor of the page after
   * it, or null when this is the last one.
   */
  async listRequests(q: RequestQuery = {}): Promise<RequestRecord[]> {
    return (await this.requestPage(q)).requests;
  }

  async requestPage(q: RequestQuery = {}): Promise<{ requests: RequestRecord[]; next: string | null }> {
    const limit = Math.min(Math.max(q.limit ?? 1000, 1), 10_000);
    const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
    const { sql, params } = selectWhere(
      REQUEST,
      [
        ['r.state = ?', q.state], ['r.user_name = ?', q.user], ['r.card_id = ?', q.cardId], ['r.container = ?', q.container],
        ['r.created_at >= ?', q.since], ['r.created_at < ?', q.until],
        ['(r.created_at < ? OR (r.created_at = ? AND r.id < ?))', after && [after.createdAt, after.createdAt, after.id]],
      ],
      'r.created_at DESC, r.id DESC',
      limit + 1,
    );
    const rows = (await this.db.query(sql, params)).map(toRequest);
    const requests = rows.slice(0, limit);
    return { requests, next: rows.length > limit ? encodeCursor(requests[requests.length - 1]!) : null };
  }

  /** Every request made to renew the certificate with this serial (none, normally one). */
  async renewalsOf(serial: string): Promise<RequestRecord[]> {
    return (await this.db.query(`${REQUEST} WHERE r.renews = ? ORDER BY r.created_at, r.id`, [serial])).map(toRequest);
  }

  /** pending -> approved or rejected, returning the decided request; undefined when it was not pending (someone decided first). */
  async decide(id: string, decision: 'approved' | 'rejected', actor: string, reason: string | null, now: number): Promise<RequestRecord | undefined> {
    return this.db.transaction(async (tx) => {
      const [row] = await tx.query(
        "UPDATE requests SET state = ?, decided_by = ?, decided_at = ?, reason = ?, updated_at = ? WHERE id = ? AND state = 'pending' RETURNING *",
        [decision, actor, now, reason, now, id],
      );
      if (!row) return undefined;
      await audit(tx, now, actor, decision === 'approved' ? 'request.approved' : 'request.rejected', `request:${id}`, reason === null ? {} : { reason });
      // A pending request has no certificate yet.
      return toRequest(row);
    });
  }

  /**
   * Takes the right to issue: approved -> issuing, or an `issuing` whose lease ran out (its issuer
   * died). The serial and validity are fixed at the first claim and kept by every later one, so an
   * issuer that takes over signs the very same certificate instead of a second one.
   */
  async claimIssuance(id: string, proposal: Claim, now: number, leaseMs: number): Promise<Claim | undefined> {
    return this.db.transaction(async (tx) => {
      const [row] = await tx.query(
        "SELECT serial, not_before, not_after, state, lease_until FROM requests WHERE id = ? AND (state = 'approved' OR (state = 'issuing' AND lease_until < ?))",
        [id, now],
      );
      if (!row) return undefined;
      let claim: Claim = proposal;
      if (row.serial === null || row.serial === undefined) {
        await tx.query('INSERT INTO serials (serial, reserved_at, purpose) VALUES (?, ?, ?)', [proposal.serial, now, `request:${id}`]);
      } else {
        claim = { serial: String(row.serial), notBefore: Number(row.not_before), notAfter: Number(row.not_after) };
      }
      const won = await tx.query(
        `UPDATE requests SET state = 'issuing', serial = ?, not_before = ?, not_after = ?, lease_until = ?, updated_at = ?
         WHERE id = ? AND state = ? AND (lease_until IS NULL OR lease_until = ?) RETURNING id`,
        [claim.serial, claim.notBefore, claim.notAfter, now + leaseMs, now, id, row.state, row.lease_until ?? null],
      );
      if (won.length === 0) throw new ServiceError('CONFLICT', `request ${id} was claimed by another issuer`);
      return claim;
    }).catch((err) => {
      if ((err as { code?: string }).code === 'CONFLICT') return undefined;
      throw err;
    });
  }

  /**
   * issuing -> issued with the certificate, returning the issued request; undefined when another
   * issuer completed it first (a takeover that signed the same serial).
   */
  async completeIssuance(id: string, cert: Omit<CertificateRecord, 'revokedAt' | 'revocationReason'>, actor: string): Promise<RequestRecord | undefined> {
    if (this.db.dialect === 'postgres') {
      // The same three writes as one statement (data-modifying WITH, atomic on its own): one round
      // trip to the server instead of five (BEGIN, three statements, COMMIT).
      const [row] = await this.db.query(
        `WITH done AS (
           UPDATE requests SET state = 'issued', issued_at = CAST(? AS BIGINT), lease_until = NULL, updated_at = CAST(? AS BIGINT)
           WHERE id = ? AND state = 'issuing' AND serial = ? RETURNING *
         ), stored AS (
           INSERT INTO certificates (serial, request_id, subject, der, not_before, not_after, issued_at)
           SELECT serial, id, CAST(? AS TEXT), CAST(? AS BYTEA), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT) FROM done
         ), logged AS (
           INSERT INTO audit (at, actor, action, subject, details)
           SELECT CAST(? AS BIGINT), CAST(? AS TEXT), 'request.issued', CAST(? AS TEXT), CAST(? AS TEXT) FROM done
         )
         SELECT * FROM done`,
        [
          cert.issuedAt, cert.issuedAt, id, cert.serial,
          cert.subject, cert.der, cert.notBefore, cert.notAfter, cert.issuedAt,
          ...auditValues({ at: cert.issuedAt, actor, action: 'request.issued', subject: `request:${id}`, details: { serial: cert.serial, notAfter: cert.notAfter } }).filter((_, i) => i !== 2),
        ],
      );
      return row ? { ...toRequest(row), certificate: cert.der } : undefined;
    }
    return this.db.transaction(async (tx) => {
      const [row] = await tx.query(
        "UPDATE requests SET state = 'issued', issued_at = ?, lease_until = NULL, updated_at = ? WHERE id = ? AND state = 'issuing' AND serial = ? RETURNING *",
        [cert.issuedAt, cert.issuedAt, id, cert.serial],
      );
      if (!row) return undefined;
      await tx.query(
        'INSERT INTO certificates (serial, request_id, subject, der, not_before, not_after, issued_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
        [cert.serial, id, cert.subject, cert.der, cert.notBefore, cert.notAfter, cert.issuedAt],
      );
      await audit(tx, cert.issuedAt, actor, 'request.issued', `request:${id}`, { serial: cert.serial, notAfter: cert.notAfter });
      return { ...toRequest(row), certificate: cert.der };
    });
  }

  /**
   * Requests an issuer should finish: ones approved before `approvedBefore` (younger ones are being
   * issued by whoever approved them), and issuing ones whose issuer died.
   */
  async issuanceBacklog(now: number, approvedBefore: number, limit = 100): Promise<string[]> {
    const rows = await this.db.query<{ id: string }>(
      "SELECT id FROM requests WHERE (state = 'approved' AND updated_at < ?) OR (state = 'issuing' AND lease_until < ?) ORDER BY updated_at LIMIT ?",
      [approvedBefore, now, limit],
    );
    return rows.map((r) => String(r.id));
  }

  async setDeliveryTicket(id: string, ticketHash: string, expiresAt: number): Promise<void> {
    await this.db.query('UPDATE requests SET ticket_hash = ?, ticket_expires_at = ? WHERE id = ?', [ticketHash, expiresAt, id]);
  }

  /**
   * issued -> delivered, allowed to whoever holds the ticket handed out with the certificate. A
   * repeated report with the same ticket is accepted (the agent may not have heard the answer).
   * Returns when it was delivered; undefined when the ticket does not match or expired.
   */
  async markDelivered(id: string, ticketHash: string, actor: string, now: number, details: Record<string, unknown>): Promise<number | undefined> {
    return this.db.transaction(async (tx) => {
      const [row] = await tx.query(
        "UPDATE requests SET state = 'delivered', delivered_at = ?, updated_at = ? WHERE id = ? AND state = 'issued' AND ticket_hash = ? AND ticket_expires_at > ? RETURNING delivered_at, renews",
        [now, now, id, ticketHash, now],
      );
      if (!row) {
        const [before] = await tx.query("SELECT delivered_at FROM requests WHERE id = ? AND state = 'delivered' AND ticket_hash = ?", [id, ticketHash]);
        return before ? Number(before.delivered_at) : undefined;
      }
      await audit(tx, now, actor, 'request.delivered', `request:${id}`, details);
      // A renewal in place supersedes the certificate it renews, in the same transaction.
      if (row.renews !== null && row.renews !== undefined) {
        const [old] = await tx.query('SELECT id FROM requests WHERE serial = ?', [String(row.renews)]);
        if (old && (await revokeIn(tx, String(old.id), CRL_REASON.superseded, 'system', now, { supersededBy: `request:${id}` }))) {
          await audit(tx, now, 'system', 'certificate.superseded', `serial:${String(row.renews)}`, { by: `request:${id}` });
        }
      }
      if (typeof details.host === 'string') {
        // The workstation's last contact: what operators look at to find agents that went quiet.
        await tx.query(
          'INSERT INTO workstations (host, agent_version, last_contact, last_request) VALUES (?, ?, ?, ?) ' +
            'ON CONFLICT (host) DO UPDATE SET agent_version = excluded.agent_version, last_contact = excluded.last_contact, last_request = excluded.last_request',
          [details.host, typeof details.agentVersion === 'string' ? details.agentVersion : null, now, id],
        );
      }
      return Number(row.delivered_at);
    });
  }

  // Certificates, revocation, CRL

  /** Reserves a serial for a certificate outside any request (the service's own TLS certificate). */
  async recordCertificate(cert: Omit<CertificateRecord, 'revokedAt' | 'revocationReason' | 'requestId'>, purpose: string, actor: string): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('INSERT INTO serials (serial, reserved_at, purpose) VALUES (?, ?, ?)', [cert.serial, cert.issuedAt, purpose]);
      await tx.query(
        'INSERT INTO certificates (serial, subject, der, not_before, not_after, issued_at) VALUES (?, ?, ?, ?, ?, ?)',
        [cert.serial, cert.subject, cert.der, cert.notBefore, cert.notAfter, cert.issuedAt],
      );
      await audit(tx, cert.issuedAt, actor, 'certificate.issued', `serial:${cert.serial}`, { purpose, subject: cert.subject });
    });
  }

  /** A certificate issued for a request, with the request's user: who a TLS client certificate names. */
  async certificateHolder(serial: string): Promise<(CertificateRecord & { user: string }) | undefined> {
    const [r] = await this.db.query('SELECT c.*, r.user_name FROM certificates c JOIN requests r ON r.id = c.request_id WHERE c.serial = ?', [serial]);
    return r ? { ...toCertificate(r), user: String(r.user_name) } : undefined;
  }

  async revokedCertificates(): Promise<CertificateRecord[]> {
    return (await this.db.query('SELECT * FROM certificates WHERE revoked_at IS NOT NULL ORDER BY revoked_at, serial')).map(toCertificate);
  }

  /**
   * What an OCSP responder needs to know of a serial (RFC 6960 §2.2): whether this CA issued it,
   * and whether and why it is revoked; undefined when it never issued it.
   */
  async certificateStatus(serial: string): Promise<{ revokedAt: number | null; reason: number | null; notAfter: number } | undefined> {
    const [r] = await this.db.query('SELECT revoked_at, revocation_reason, not_after FROM certificates WHERE serial = ?', [serial]);
    return r ? { revokedAt: num(r.revoked_at), reason: num(r.revocation_reason), notAfter: Number(r.not_after) } : undefined;
  }

  /**
   * Revokes a certificate by serial (revocation.ts). certificateHold (6) marks the certificate
   * only and leaves its request as it is, since a hold can be released; a permanent reason
   * revokes the request too where there is one, and may replace a hold (RFC 5280 §5.3.1).
   * Returns 'unknown' for a serial never issued, 'unchanged' when it was revoked already.
   */
  async revokeCertificate(serial: string, reason: number, actor: string, now: number): Promise<'revoked' | 'unchanged' | 'unknown'> {
    return this.db.transaction(async (tx) => {
      const [cert] = await tx.query('SELECT revoked_at, revocation_reason FROM certificates WHERE serial = ?', [serial]);
      if (!cert) return 'unknown';
      const held = cert.revoked_at !== null && Number(cert.revocation_reason) === CRL_REASON.certificateHold;
      if (cert.revoked_at !== null && !(held && reason !== CRL_REASON.certificateHold)) return 'unchanged';
      if (reason === CRL_REASON.certificateHold) {
        await tx.query('UPDATE certificates SET revoked_at = ?, revocation_reason = ?, revoked_by = ? WHERE serial = ? AND revoked_at IS NULL', [now, reason, actor, serial]);
        await audit(tx, now, actor, 'certificate.held', `serial:${serial}`, {});
        return 'revoked';
      }
      const [req] = await tx.query("SELECT id FROM requests WHERE serial = ? AND state IN ('issued', 'delivered')", [serial]);
      if (req) await revokeIn(tx, String(req.id), reason, actor, now, { byCertificate: true, ...(held ? { wasHeld: true } : {}) });
      else await tx.query('UPDATE certificates SET revoked_at = ?, revocation_reason = ?, revoked_by = ? WHERE serial = ?', [now, reason, actor, serial]);
      await audit(tx, now, actor, 'certificate.revoked', `serial:${serial}`, { reason, ...(held ? { wasHeld: true } : {}) });
      return 'revoked';
    });
  }

  /** Releases a certificateHold: the certificate is valid again (its entry leaves the next CRL). False when it was not on hold. */
  async unholdCertificate(serial: string, actor: string, now: number): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const rows = await tx.query(
        'UPDATE certificates SET revoked_at = NULL, revocation_reason = NULL, revoked_by = NULL WHERE serial = ? AND revoked_at IS NOT NULL AND revocation_reason = ? RETURNING serial',
        [serial, CRL_REASON.certificateHold],
      );
      if (rows.length === 0) return false;
      await audit(tx, now, actor, 'certificate.released', `serial:${serial}`, {});
      return true;
    });
  }

  async allSerials(): Promise<string[]> {
    return (await this.db.query<{ serial: string }>('SELECT serial FROM serials ORDER BY serial')).map((r) => String(r.serial));
  }

  /**
   * issued/delivered -> revoked, with the certificate marked for the CRL; returns the revoked
   * request. With `cascade` (key compromise: whoever held the key may have renewed with it), every
   * renewal made from the certificate, and from those in turn, is revoked with the same reason,
   * and renewals still waiting are rejected, in the same transaction.
   */
  async revoke(requestId: string, reason: number, actor: string, now: number, cascade = false): Promise<RequestRecord | undefined> {
    return this.db.transaction(async (tx) => {
      const revoked = await revokeIn(tx, requestId, reason, actor, now, {});
      if (!revoked || !cascade) return revoked;
      const queue = [revoked.serial!];
      while (queue.length > 0) {
        const from = queue.shift()!;
        for (const r of (await tx.query(`${REQUEST} WHERE r.renews = ?`, [from])).map(toRequest)) {
          if (r.state === 'issued' || r.state === 'delivered') {
            const child = await revokeIn(tx, r.id, reason, actor, now, { renews: from, cascadeFrom: `request:${requestId}` });
            if (child?.serial) queue.push(child.serial);
          } else if (r.state === 'pending' || r.state === 'approved' || r.state === 'issuing') {
            const why = `the certificate it renews (${from}) was revoked for key compromise`;
            await tx.query("UPDATE requests SET state = 'rejected', reason = ?, decided_by = ?, decided_at = ?, lease_until = NULL, updated_at = ? WHERE id = ?", [why, actor, now, now, r.id]);
            await audit(tx, now, actor, 'request.rejected', `request:${r.id}`, { reason: why, cascadeFrom: `request:${requestId}` });
          }
        }
      }
      return revoked;
    });
  }

  /**
   * The certificate with `oldSerial` is superseded by the renewal `renewalId`: revoked with reason
   * superseded (RFC 5280 §5.3.1), its request `revoked`. Nothing happens when it was revoked
   * already; returns whether it was revoked now.
   */
  async supersede(oldSerial: string, renewalId: string, actor: string, now: number): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const [old] = await tx.query('SELECT id FROM requests WHERE serial = ?', [oldSerial]);
      if (!old) return false;
      const revoked = await revokeIn(tx, String(old.id), CRL_REASON.superseded, actor, now, { supersededBy: `request:${renewalId}` });
      if (revoked) await audit(tx, now, actor, 'certificate.superseded', `serial:${oldSerial}`, { by: `request:${renewalId}` });
      return revoked !== undefined;
    });
  }

  /**
   * Renewals whose predecessor is still valid although their grace period (the profile's
   * `supersede_grace_days` after issuance) is over: the sweep supersedes them.
   */
  async supersessionsDue(now: number, limit = 100): Promise<{ renewalId: string; oldSerial: string }[]> {
    const rows = await this.db.query(
      `SELECT r.id, r.renews FROM requests r
         JOIN profiles p ON p.name = r.profile
         JOIN certificates c ON c.serial = r.renews
       WHERE r.renews IS NOT NULL AND r.state IN ('issued', 'delivered') AND c.revoked_at IS NULL
         AND r.issued_at + CAST(p.supersede_grace_days AS BIGINT) * 86400000 <= ?
       ORDER BY r.issued_at LIMIT ?`,
      [now, limit],
    );
    return rows.map((r) => ({ renewalId: String(r.id), oldSerial: String(r.renews) }));
  }

  // Login throttling

  /** The latest end of a lockout among `keys` that is still running, or undefined. */
  async lockedUntil(keys: string[], now: number): Promise<number | undefined> {
    if (keys.length === 0) return undefined;
    const rows = await this.db.query(`SELECT locked_until FROM login_throttle WHERE throttle_key IN (${keys.map(() => '?').join(', ')}) AND locked_until > ?`, [...keys, now]);
    const ends = rows.map((r) => Number(r.locked_until));
    return ends.length > 0 ? Math.max(...ends) : undefined;
  }

  /**
   * Counts a failed login against `key` (an operator or a source address). The `max`-th failure
   * within `windowMs` locks the key for `lockMs` and writes one audit entry; returns the end of
   * the lockout it started, if any.
   */
  async loginFailed(key: string, now: number, limits: { max: number; windowMs: number; lockMs: number }): Promise<number | undefined> {
    return this.db.transaction(async (tx) => {
      await tx.query('INSERT INTO login_throttle (throttle_key, failures, window_start) VALUES (?, 0, ?) ON CONFLICT (throttle_key) DO NOTHING', [key, now]);
      const [row] = await tx.query('SELECT failures, window_start FROM login_throttle WHERE throttle_key = ?', [key]);
      const fresh = Number(row!.window_start) + limits.windowMs <= now;
      const failures = (fresh ? 0 : Number(row!.failures)) + 1;
      if (failures >= limits.max) {
        const until = now + limits.lockMs;
        await tx.query('UPDATE login_throttle SET failures = 0, window_start = ?, locked_until = ? WHERE throttle_key = ?', [now, until, key]);
        await audit(tx, now, 'system', 'session.locked', key, { failures, until });
        return until;
      }
      await tx.query('UPDATE login_throttle SET failures = ?, window_start = ? WHERE throttle_key = ?', [failures, fresh ? now : Number(row!.window_start), key]);
      return undefined;
    });
  }

  /** A good password clears the failures counted against `key` (a running lockout stays). */
  async loginSucceeded(key: string, now: number): Promise<void> {
    await this.db.query('DELETE FROM login_throttle WHERE throttle_key = ? AND (locked_until IS NULL OR locked_until <= ?)', [key, now]);
  }

  /** Forgets failure counts and lockouts that ended before `before`. */
  async pruneLoginThrottle(before: number): Promise<void> {
    await this.db.query('DELETE FROM login_throttle WHERE window_start < ? AND (locked_until IS NULL OR locked_until < ?)', [before, before]);
  }

  /** Hands out the next CRL number and stores the CRL signed with it, in one transaction. */
  async publishCrl(now: number, sign: (crlNumber: number) => Promise<{ der: Buffer; nextUpdate: number }>): Promise<{ number: number; der: Buffer }> {
    return this.db.transaction(async (tx) => {
      const [row] = await tx.query("UPDATE counters SET value = value + 1 WHERE name = 'crl_number' RETURNING value");
      const number = Number(row!.value);
      const { der, nextUpdate } = await sign(number);
      await tx.query('INSERT INTO crls (number, this_update, next_update, der) VALUES (?, ?, ?, ?)', [number, now, nextUpdate, der]);
      await audit(tx, now, 'system', 'crl.published', `crl:${number}`, { nextUpdate });
      return { number, der };
    });
  }

  /** The latest CRL's number and times, without its bytes: what an OCSP answer is made under. */
  async latestCrlInfo(): Promise<{ number: number; thisUpdate: number; nextUpdate: number } | undefined> {
    const [r] = await this.db.query('SELECT number, this_update, next_update FROM crls ORDER BY number DESC LIMIT 1');
    return r ? { number: Number(r.number), thisUpdate: Number(r.this_update), nextUpdate: Number(r.next_update) } : undefined;
  }

  async latestCrl(): Promise<{ number: number; thisUpdate: number; nextUpdate: number; der: Buffer } | undefined> {
    const [r] = await this.db.query('SELECT * FROM crls ORDER BY number DESC LIMIT 1');
    return r ? { number: Number(r.number), thisUpdate: Number(r.this_update), nextUpdate: Number(r.next_update), der: Buffer.from(r.der as Uint8Array) } : undefined;
  }

  // Card possession challenges

  async createChallenge(nonceHash: string, cardId: string, now: number, expiresAt: number): Promise<void> {
    await this.db.query('INSERT INTO challenges (nonce_hash, card_id, created_at, expires_at) VALUES (?, ?, ?, ?)', [nonceHash, cardId, now, expiresAt]);
  }

  /** One use only: true for the first caller within the expiry, false for every later one. */
  async consumeChallenge(nonceHash: string, cardId: string, now: number): Promise<boolean> {
    const rows = await this.db.query(
      'UPDATE challenges SET used_at = ? WHERE nonce_hash = ? AND card_id = ? AND used_at IS NULL AND expires_at > ? RETURNING nonce_hash',
      [now, nonceHash, cardId, now],
    );
    return rows.length > 0;
  }

  /** Forgets challenges that ended before `before`: anyone may ask for one, so they must not pile up. */
  async pruneChallenges(before: number): Promise<void> {
    await this.db.query('DELETE FROM challenges WHERE expires_at < ?', [before]);
  }

  // Audit

  async recordAudit(at: number, actor: string, action: string, subject: string | null, details: Record<string, unknown> = {}): Promise<void> {
    await this.db.transaction((tx) => audit(tx, at, actor, action, subject, details));
  }

  /** Every workstation that reported a delivery, most recent contact first. */
  async workstations(): Promise<{ host: string; agentVersion: string | null; lastContact: number; lastRequest: string | null }[]> {
    const rows = await this.db.query('SELECT * FROM workstations ORDER BY last_contact DESC, host');
    return rows.map((r) => ({
      host: String(r.host),
      agentVersion: r.agent_version === null ? null : String(r.agent_version),
      lastContact: Number(r.last_contact),
      lastRequest: r.last_request === null ? null : String(r.last_request),
    }));
  }

  async queryAudit(q: AuditQuery = {}): Promise<AuditEntry[]> {
    const { sql, params } = selectWhere('SELECT * FROM audit', [['actor = ?', q.actor], ['action = ?', q.action], ['subject = ?', q.subject], ['at >= ?', q.since], ['at < ?', q.until]], q.newestFirst ? 'id DESC' : 'id', q.limit);
    return (await this.db.query(sql, params)).map((r) => ({
      id: Number(r.id),
      at: Number(r.at),
      actor: String(r.actor),
      action: String(r.action),
      subject: str(r.subject),
      details: JSON.parse(String(r.details)) as Record<string, unknown>,
    }));
  }
}

/** A new enrollment token, audited, inside a transaction (operators' tokens and a lost card's replacement). */
export async function insertTokenIn(tx: DbTx, t: NewTokenRecord, tokenHash: string): Promise<void> {
  await tx.query(
    'INSERT INTO tokens (id, token_hash, user_name, profile, created_by, created_at, expires_at, sid, replaces_card) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    [t.id, tokenHash, t.user, t.profile, t.createdBy, t.createdAt, t.expiresAt, t.sid ?? null, t.replacesCard ?? null],
  );
  await audit(tx, t.createdAt, t.createdBy, 'token.created', `token:${t.id}`, {
    user: t.user, profile: t.profile, expiresAt: t.expiresAt, ...(t.sid ? { sid: t.sid } : {}), ...(t.replacesCard ? { replacesCard: t.replacesCard } : {}),
  });
}

/**
 * The card record of a first enrollment: made for a card new to the service, handed to the new
 * user when it was retired, kept when it is already this user's. Another user's card, a lost card
 * and a suspended one are refused (the whole submission rolls back).
 */
async function enrollCardIn(tx: DbTx, cardId: string, user: string, replaces: string | null, actor: string, now: number): Promise<void> {
  const made = await tx.query(
    "INSERT INTO cards (card_id, user_name, state, created_at, updated_at, replaces) VALUES (?, ?, 'active', ?, ?, ?) ON CONFLICT (card_id) DO NOTHING RETURNING card_id",
    [cardId, user, now, now, replaces],
  );
  if (made.length > 0) {
    await audit(tx, now, actor, 'card.created', `card:${cardId}`, { user, ...(replaces ? { replaces } : {}) });
  } else {
    const [card] = await tx.query('SELECT * FROM cards WHERE card_id = ?', [cardId]);
    const state = String(card!.state);
    if (state === 'retired') {
      await tx.query("UPDATE cards SET user_name = ?, state = 'active', replaces = ?, replaced_by = NULL, updated_at = ? WHERE card_id = ? AND state = 'retired'", [user, replaces, now, cardId]);
      await audit(tx, now, actor, 'card.reissued', `card:${cardId}`, { from: 'retired', to: 'active', user, previousUser: String(card!.user_name), ...(replaces ? { replaces } : {}) });
    } else if (String(card!.user_name) !== user) {
      throw new ServiceError('FORBIDDEN', `card ${cardId} belongs to another user: an operator must retire it before it is enrolled again`);
    } else if (state !== 'active') {
      throw new ServiceError('CONFLICT', `card ${cardId} is ${state}: ${state === 'lost' ? 'a lost card is not enrolled again; retire it first if it was found' : 'resume it before enrolling on it'}`);
    }
  }
  if (replaces !== null && replaces !== cardId) {
    await tx.query('UPDATE cards SET replaced_by = ?, updated_at = ? WHERE card_id = ?', [cardId, now, replaces]);
    await audit(tx, now, actor, 'card.replaced', `card:${replaces}`, { by: cardId });
  }
}

/** issued/delivered -> revoked inside a transaction, the certificate marked for the CRL. */
export async function revokeIn(tx: DbTx, requestId: string, reason: number, actor: string, now: number, details: Record<string, unknown>): Promise<RequestRecord | undefined> {
  const [row] = await tx.query("UPDATE requests SET state = 'revoked', updated_at = ? WHERE id = ? AND state IN ('issued', 'delivered') RETURNING *", [now, requestId]);
  if (!row) return undefined;
  const serial = String(row.serial);
  const [cert] = await tx.query('UPDATE certificates SET revoked_at = ?, revocation_reason = ?, revoked_by = ? WHERE serial = ? RETURNING der', [now, reason, actor, serial]);
  await audit(tx, now, actor, 'request.revoked', `request:${requestId}`, { serial, reason, ...details });
  return { ...toRequest(row), certificate: cert ? Buffer.from(cert.der as Uint8Array) : null };
}

/** `select` with an AND of the conditions whose value is given, ordered, at most 10,000 rows. */
function selectWhere(select: string, conditions: Array<[string, unknown]>, orderBy: string, limit: number | undefined): { sql: string; params: unknown[] } {
  const present = conditions.filter(([, value]) => value !== undefined);
  const where = present.length > 0 ? `WHERE ${present.map(([condition]) => condition).join(' AND ')}` : '';
  return {
    sql: `${select} ${where} ORDER BY ${orderBy} LIMIT ?`,
    // A condition with several placeholders takes its values as an array.
    params: [...present.flatMap(([, value]) => (Array.isArray(value) ? value : [value])), Math.min(Math.max(limit ?? 1000, 1), 10_001)],
  };
}
