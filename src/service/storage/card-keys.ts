/**
 * What the service records about each card's administrator key: which master key version the
 * card's key comes from (never the key itself, which is derived when needed), a re-key in
 * progress, the card's state, and the one-time unblock tickets. Same rules as Storage: every
 * change is one transaction with its audit entry, transitions are conditional UPDATEs.
 */
import type { Db } from './db.js';
import { CARD_MOVES, RETIREMENT_EFFECTS, transitionIn } from './cards.js';
import { audit, type Storage } from './storage.js';

export type CardKeyState = 'rekeying' | 'active' | 'retired';

export interface CardKeyRecord {
  cardId: string;
  user: string;
  state: CardKeyState;
  /** 0: the transport key. */
  keyVersion: number;
  pendingVersion: number | null;
  createdAt: number;
  updatedAt: number;
}

function toRecord(r: Record<string, unknown>): CardKeyRecord {
  return {
    cardId: String(r.card_id),
    user: String(r.user_name),
    state: r.state as CardKeyState,
    keyVersion: Number(r.key_version),
    pendingVersion: r.pending_version === null || r.pending_version === undefined ? null : Number(r.pending_version),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

export class CardKeyStorage {
  private readonly db: Db;
  constructor(storage: Storage) {
    this.db = storage.db;
  }

  async get(cardId: string): Promise<CardKeyRecord | undefined> {
    const [r] = await this.db.query('SELECT * FROM card_keys WHERE card_id = ?', [cardId]);
    return r ? toRecord(r) : undefined;
  }

  /** Hands out a re-key to `version`: a new card is recorded with the transport key (version 0). */
  async startRekey(cardId: string, user: string, version: number, actor: string, now: number): Promise<CardKeyRecord> {
    return this.db.transaction(async (tx) => {
      const [existing] = await tx.query('SELECT * FROM card_keys WHERE card_id = ?', [cardId]);
      if (existing && existing.state === 'retired') {
        // A retired card goes to its next user: it keeps its key version until the re-key is confirmed.
        await tx.query("UPDATE card_keys SET user_name = ?, state = 'rekeying', pending_version = ?, updated_at = ? WHERE card_id = ?", [user, version, now, cardId]);
      } else if (!existing) {
        await tx.query('INSERT INTO card_keys (card_id, user_name, state, key_version, pending_version, created_at, updated_at) VALUES (?, ?, ?, 0, ?, ?, ?)', [cardId, user, 'rekeying', version, now, now]);
      } else {
        await tx.query('UPDATE card_keys SET pending_version = ?, updated_at = ? WHERE card_id = ?', [version, now, cardId]);
      }
      await audit(tx, now, actor, 'card.rekey-started', `card:${cardId}`, { from: existing ? Number(existing.key_version) : 0, to: version });
      const [r] = await tx.query('SELECT * FROM card_keys WHERE card_id = ?', [cardId]);
      return toRecord(r!);
    });
  }

  /** The cards whose key this actor (one enrollment token) was handed. */
  async cardsClaimedBy(actor: string): Promise<string[]> {
    const rows = await this.db.query("SELECT DISTINCT subject FROM audit WHERE actor = ? AND action = 'card.rekey-started'", [actor]);
    return rows.map((r) => String(r.subject).replace(/^card:/, ''));
  }

  /** The card took the new key: it is `active` under `version`. False if that re-key was not pending. */
  async confirmRekey(cardId: string, version: number, actor: string, now: number): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const rows = await tx.query(
        "UPDATE card_keys SET key_version = ?, pending_version = NULL, state = 'active', updated_at = ? WHERE card_id = ? AND pending_version = ? RETURNING card_id",
        [version, now, cardId, version],
      );
      if (rows.length === 0) return false;
      await audit(tx, now, actor, 'card.rekeyed', `card:${cardId}`, { keyVersion: version });
      return true;
    });
  }

  /**
   * The card leaves its user: no more unblock responses; any user may enroll it again. Its card
   * record moves to `retired` in the same transaction, its certificates revoked (cardRetirement);
   * `revoked` lists their serials, for the caller to publish a CRL.
   */
  async retire(cardId: string, challengeHash: string, actor: string, now: number): Promise<{ revoked: string[] } | undefined> {
    return this.db.transaction(async (tx) => {
      const rows = await tx.query("UPDATE card_keys SET state = 'retired', pending_version = NULL, updated_at = ? WHERE card_id = ? AND state IN ('active', 'retired') RETURNING key_version", [now, cardId]);
      if (rows.length === 0) return undefined;
      const details = { challengeHash, keyVersion: Number(rows[0]!.key_version) };
      // One card.retired entry either way: the record's move when there is one to move, else the key's.
      const moved = await transitionIn(tx, cardId, CARD_MOVES.retire.from, CARD_MOVES.retire.to, RETIREMENT_EFFECTS, actor, now, details);
      if (!moved) await audit(tx, now, actor, 'card.retired', `card:${cardId}`, details);
      return { revoked: moved?.revoked ?? [] };
    });
  }

  /** Audits an unblock response handed out; the response itself is never stored. */
  async recordUnblockResponse(cardId: string, challengeHash: string, keyVersion: number, via: 'operator' | 'ticket', actor: string, now: number): Promise<void> {
    await this.db.transaction((tx) => audit(tx, now, actor, 'card.unblock-response', `card:${cardId}`, { challengeHash, keyVersion, via }));
  }

  /** Unblock responses given for this card since `since`, for the per-card limit and the no-second-answer rule. */
  async unblockResponsesSince(cardId: string, since: number): Promise<{ at: number; challengeHash: string }[]> {
    const rows = await this.db.query("SELECT at, details FROM audit WHERE subject = ? AND action = 'card.unblock-response' AND at >= ? ORDER BY id", [`card:${cardId}`, since]);
    return rows.map((r) => ({ at: Number(r.at), challengeHash: String((JSON.parse(String(r.details)) as { challengeHash?: string }).challengeHash ?? '') }));
  }

  async recordAudit(actor: string, action: string, details: Record<string, unknown>, now: number): Promise<void> {
    await this.db.transaction((tx) => audit(tx, now, actor, action, null, details));
  }

  async createUnblockTicket(ticketHash: string, cardId: string, actor: string, now: number, expiresAt: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('INSERT INTO unblock_tickets (ticket_hash, card_id, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?)', [ticketHash, cardId, actor, now, expiresAt]);
      await audit(tx, now, actor, 'card.unblock-ticket-created', `card:${cardId}`, { expiresAt });
    });
  }

  /** One use: true for the first caller before expiry with the right card, false otherwise. */
  async consumeUnblockTicket(ticketHash: string, cardId: string, now: number): Promise<boolean> {
    const rows = await this.db.query('UPDATE unblock_tickets SET used_at = ? WHERE ticket_hash = ? AND card_id = ? AND used_at IS NULL AND expires_at > ? RETURNING ticket_hash', [now, ticketHash, cardId, now]);
    return rows.length > 0;
  }
}
