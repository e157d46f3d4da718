/**
 * What the service records about each card: its user and life-cycle state (the `cards` table),
 * its credentials (the requests bound to it, with their certificates) and its history (the audit
 * entries about `card:<id>`). Same rules as Storage: a transition is one conditional UPDATE
 * (`... WHERE state IN (...)`) in one transaction with its revocations and its audit entry, so two
 * operators racing on one card cannot both move it.
 */
import { ServiceError } from '../errors.js';
import type { CardAction, CardState } from '../protocol.js';
import type { DbTx, Row } from './db.js';
import { audit, insertTokenIn, revokeIn, toRequest, type NewTokenRecord, type RequestRecord, type Storage } from './storage.js';

export interface CardRecord {
  cardId: string;
  user: string;
  state: CardState;
  createdAt: number;
  updatedAt: number;
  replacedBy: string | null;
  replaces: string | null;
}

/** A request bound to a card, with its certificate's revocation status. */
export interface CardCredentialRecord extends RequestRecord {
  revokedAt: number | null;
  revocationReason: number | null;
}

export interface CardQuery {
  user?: string;
  state?: CardState;
  limit?: number;
  cursor?: string;
}

/** RFC 5280 §5.3.1 CRLReason codes the card life cycle uses. certificateHold is the one a revocation may be undone from. */
export const KEY_COMPROMISE = 1;
export const CESSATION_OF_OPERATION = 5;
export const CERTIFICATE_HOLD = 6;

/**
 * The card state machine: every allowed move, from which states, to which. This is cardlink's
 * own model (the public documents of MIM CM and Dogtag TPS name similar states but give no
 * transition table to follow): suspend/resume is the reversible hold for a card left at home;
 * lost and retired are final for the card's certificates (a retired card may be enrolled again,
 * by anyone, which makes it active).
 */
export const CARD_MOVES = {
  lost: { from: ['active', 'suspended'], to: 'lost' },
  suspend: { from: ['active'], to: 'suspended' },
  resume: { from: ['suspended'], to: 'active' },
  retire: { from: ['active', 'suspended', 'lost'], to: 'retired' },
} as const satisfies Record<CardAction, { from: readonly CardState[]; to: CardState }>;

/** What retiring a card does to its credentials, whichever way it is retired (the card action, or the wipe with its challenge). */
export const RETIREMENT_EFFECTS: TransitionEffects = { revoke: CESSATION_OF_OPERATION, rejectWaiting: 'the card was retired' };

const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function toCard(r: Row): CardRecord {
  return {
    cardId: String(r.card_id),
    user: String(r.user_name),
    state: r.state as CardState,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    replacedBy: str(r.replaced_by),
    replaces: str(r.replaces),
  };
}

function encodeCursor(c: CardRecord): string {
  return Buffer.from(`${c.createdAt}:${c.cardId}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: number; cardId: string } {
  const m = /^(\d{1,16}):([0-9a-f]{32})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m) throw new ServiceError('BAD_REQUEST', 'cursor: not one this service handed out (use the x-next-cursor of the previous page)');
  return { createdAt: Number(m[1]), cardId: m[2]! };
}

/** What a transition does besides moving the state, all in its transaction. */
export interface TransitionEffects {
  /** Revoke every issued or delivered certificate of the card with this RFC 5280 reason. */
  revoke?: number;
  /** Put every valid certificate on hold (certificateHold). */
  hold?: boolean;
  /** Take the card's held certificates off hold: they are good again. */
  release?: boolean;
  /** Reject the card's requests still waiting for a decision or the CA, with this reason. */
  rejectWaiting?: string;
  /** Make this enrollment token (the replacement of a lost card). */
  token?: { record: NewTokenRecord; hash: string };
}

export interface TransitionResult {
  card: CardRecord;
  from: CardState;
  revoked: string[];
  held: string[];
  released: string[];
}

/**
 * Moves a card from one of `from` to `to` with its effects, inside `tx`. Undefined when the card
 * is not in one of `from` (nothing changed). Used by the card use cases and, for the retirement
 * with the card's challenge, by the card key storage in its own transaction.
 */
export async function transitionIn(
  tx: DbTx, cardId: string, from: readonly CardState[], to: CardState, effects: TransitionEffects, actor: string, now: number, details: Record<string, unknown> = {},
): Promise<TransitionResult | undefined> {
  const [before] = await tx.query('SELECT * FROM cards WHERE card_id = ?', [cardId]);
  if (!before || !from.includes(before.state as CardState)) return undefined;
  const [row] = await tx.query(`UPDATE cards SET state = ?, updated_at = ? WHERE card_id = ? AND state = ? RETURNING *`, [to, now, cardId, before.state]);
  if (!row) return undefined;
  const result: TransitionResult = { card: toCard(row), from: before.state as CardState, revoked: [], held: [], released: [] };
  if (effects.revoke !== undefined) {
    const live = await tx.query("SELECT id FROM requests WHERE card_id = ? AND state IN ('issued', 'delivered') ORDER BY created_at, id", [cardId]);
    for (const r of live) {
      const revoked = await revokeIn(tx, String(r.id), effects.revoke, actor, now, { card: cardId, cardState: to });
      if (revoked?.serial) result.revoked.push(revoked.serial);
    }
  }
  if (effects.hold) {
    // Valid ones only: an expired certificate is not put on a CRL.
    const held = await tx.query(
      `UPDATE certificates SET revoked_at = ?, revocation_reason = ?, revoked_by = ?
       WHERE revoked_at IS NULL AND not_after > ? AND serial IN (SELECT serial FROM requests WHERE card_id = ? AND state IN ('issued', 'delivered'))
       RETURNING serial`,
      [now, CERTIFICATE_HOLD, actor, now, cardId],
    );
    result.held = held.map((r) => String(r.serial)).sort();
  }
  if (effects.release) {
    // RFC 5280 §5.3.1: a certificateHold entry may be removed; the next full CRL simply leaves it out.
    const released = await tx.query(
      `UPDATE certificates SET revoked_at = NULL, revocation_reason = NULL, revoked_by = NULL
       WHERE revocation_reason = ? AND serial IN (SELECT serial FROM requests WHERE card_id = ? AND state IN ('issued', 'delivered'))
       RETURNING serial`,
      [CERTIFICATE_HOLD, cardId],
    );
    result.released = released.map((r) => String(r.serial)).sort();
  }
  if (effects.rejectWaiting !== undefined) {
    const rejected = await tx.query(
      "UPDATE requests SET state = 'rejected', reason = ?, decided_by = ?, decided_at = ?, lease_until = NULL, updated_at = ? WHERE card_id = ? AND state IN ('pending', 'approved', 'issuing') RETURNING id",
      [effects.rejectWaiting, actor, now, now, cardId],
    );
    for (const r of rejected) await audit(tx, now, actor, 'request.rejected', `request:${String(r.id)}`, { reason: effects.rejectWaiting, card: cardId });
  }
  if (effects.token) await insertTokenIn(tx, effects.token.record, effects.token.hash);
  await audit(tx, now, actor, `card.${to}`, `card:${cardId}`, {
    from: result.from, to, ...details,
    ...(result.revoked.length > 0 ? { revoked: result.revoked } : {}),
    ...(result.held.length > 0 ? { held: result.held } : {}),
    ...(result.released.length > 0 ? { released: result.released } : {}),
    ...(effects.token ? { replacementToken: effects.token.record.id } : {}),
  });
  return result;
}

export class CardStorage {
  private readonly storage: Storage;
  constructor(storage: Storage) {
    this.storage = storage;
  }

  async get(cardId: string): Promise<CardRecord | undefined> {
    const [r] = await this.storage.db.query('SELECT * FROM cards WHERE card_id = ?', [cardId]);
    return r ? toCard(r) : undefined;
  }

  /** Cards matching the query, newest first, one page; `next` is the cursor of the page after it. */
  async page(q: CardQuery = {}): Promise<{ cards: CardRecord[]; next: string | null }> {
    const limit = Math.min(Math.max(q.limit ?? 1000, 1), 10_000);
    const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
    const conditions: Array<[string, unknown[] | undefined]> = [
      ['user_name = ?', q.user === undefined ? undefined : [q.user]],
      ['state = ?', q.state === undefined ? undefined : [q.state]],
      ['(created_at < ? OR (created_at = ? AND card_id < ?))', after && [after.createdAt, after.createdAt, after.cardId]],
    ];
    const present = conditions.filter((c): c is [string, unknown[]] => c[1] !== undefined);
    const where = present.length > 0 ? `WHERE ${present.map(([c]) => c).join(' AND ')}` : '';
    const rows = (await this.storage.db.query(`SELECT * FROM cards ${where} ORDER BY created_at DESC, card_id DESC LIMIT ?`, [...present.flatMap(([, v]) => v), limit + 1])).map(toCard);
    const cards = rows.slice(0, limit);
    return { cards, next: rows.length > limit ? encodeCursor(cards[cards.length - 1]!) : null };
  }

  /** The requests bound to the card, oldest first, with their certificates and revocation status. */
  async credentials(cardId: string): Promise<CardCredentialRecord[]> {
    const rows = await this.storage.db.query(
      `SELECT r.*, c.der AS certificate_der, c.revoked_at AS cert_revoked_at, c.revocation_reason AS cert_revocation_reason
       FROM requests r LEFT JOIN certificates c ON c.request_id = r.id WHERE r.card_id = ? ORDER BY r.created_at, r.id`,
      [cardId],
    );
    return rows.map((r) => ({ ...toRequest(r), revokedAt: num(r.cert_revoked_at), revocationReason: num(r.cert_revocation_reason) }));
  }

  /** The card's history: every audit entry about it, oldest first. */
  async history(cardId: string): Promise<{ at: number; actor: string; action: string; details: Record<string, unknown> }[]> {
    return (await this.storage.queryAudit({ subject: `card:${cardId}`, limit: 10_000 })).map((e) => ({ at: e.at, actor: e.actor, action: e.action, details: e.details }));
  }

  async transition(cardId: string, from: readonly CardState[], to: CardState, effects: TransitionEffects, actor: string, now: number, details: Record<string, unknown> = {}): Promise<TransitionResult | undefined> {
    return this.storage.db.transaction((tx) => transitionIn(tx, cardId, from, to, effects, actor, now, details));
  }

  /**
   * Certificates valid at `now` whose end is before `until`, soonest first, with their request and
   * the state of the newest renewal made from them (rejected ones do not count).
   */
  async expiring(now: number, until: number, limit = 10_000): Promise<(RequestRecord & { renewalId: string | null; renewalState: string | null })[]> {
    const rows = await this.storage.db.query(
      `SELECT r.*, c.not_before AS cert_not_before, c.not_after AS cert_not_after,
         (SELECT n.id FROM requests n WHERE n.renews = c.serial AND n.state <> 'rejected' ORDER BY n.created_at DESC, n.id DESC LIMIT 1) AS renewal_id,
         (SELECT n.state FROM requests n WHERE n.renews = c.serial AND n.state <> 'rejected' ORDER BY n.created_at DESC, n.id DESC LIMIT 1) AS renewal_state
       FROM certificates c JOIN requests r ON r.id = c.request_id
       WHERE c.revoked_at IS NULL AND c.not_before <= ? AND c.not_after > ? AND c.not_after <= ?
       ORDER BY c.not_after, c.serial LIMIT ?`,
      [now, now, until, limit],
    );
    return rows.map((r) => ({ ...toRequest(r), renewalId: str(r.renewal_id), renewalState: str(r.renewal_state) }));
  }
}
