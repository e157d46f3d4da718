/**
 * The card administrator key use cases: which key a card should have (and handing it to the
 * agent that writes it during enrollment), the cardid → key version record, master key rotation,
 * and the help desk's answer to a card's unblock challenge. Like enrollment.ts, independent of
 * HTTP; it alone uses the card key tables.
 */
import { createHash } from 'node:crypto';
import { adminChallengeResponse, parseChallengeHex } from '../admin-challenge.js';
import { hex } from '../bytes.js';
import type { AdminKeyVault } from './admin-keys.js';
import { actorName, newSecret, requireOperator, secretHash, type Principal } from './auth.js';
import type { Clock } from './clock.js';
import { ServiceError } from './errors.js';
import type { CardAdminKey, MasterKeyRotation, RetireAnswer, UnblockResponse, UnblockTicket } from './protocol.js';
import { CardKeyStorage, type CardKeyRecord } from './storage/card-keys.js';
import { CardStorage } from './storage/cards.js';
import type { Storage } from './storage/storage.js';

const HOUR = 3_600_000;
const CARD_ID_RE = /^[0-9a-fA-F]{32}$/;

export interface CardAdminOptions {
  storage: Storage;
  vault: AdminKeyVault;
  clock: Clock;
  /** Called after a retirement revoked certificates: publishes the CRL (EnrollmentService.publishCrl). */
  revocationsChanged?: () => Promise<unknown>;
  /** Unblock responses per card per hour (operator and ticket together); default 5. */
  unblockLimitPerHour?: number;
  /** Default lifetime of an unblock ticket; default 1 hour. */
  unblockTicketTtlMs?: number;
}

function cardIdOf(text: string): string {
  if (!CARD_ID_RE.test(text)) throw new ServiceError('BAD_REQUEST', 'a cardid is 32 hex digits');
  return text.toLowerCase();
}


/** The enrolling user's own token, still unspent: the only caller that may write a card's key. */
function requireEnrollingUser(p: Principal): asserts p is Extract<Principal, { kind: 'enrollment-token' }> {
  if (p.kind === 'anonymous') throw new ServiceError('UNAUTHENTICATED', 'an enrollment token is needed');
  if (p.kind !== 'enrollment-token') throw new ServiceError('FORBIDDEN', "only the agent enrolling a card, with the user's enrollment token, may do this");
  if (!p.usable) throw new ServiceError('FORBIDDEN', 'this enrollment token was used already');
}

export class CardAdminService {
  private readonly cards: CardKeyStorage;
  private readonly records: CardStorage;
  private readonly vault: AdminKeyVault;
  private readonly clock: Clock;
  private readonly limitPerHour: number;
  private readonly ticketTtlMs: number;
  private readonly revocationsChanged: () => Promise<unknown>;

  constructor(o: CardAdminOptions) {
    this.revocationsChanged = o.revocationsChanged ?? (async () => undefined);
    this.cards = new CardKeyStorage(o.storage);
    this.records = new CardStorage(o.storage);
    this.vault = o.vault;
    this.clock = o.clock;
    this.limitPerHour = o.unblockLimitPerHour ?? 5;
    this.ticketTtlMs = o.unblockTicketTtlMs ?? HOUR;
  }

  private now(): number {
    return this.clock.now().getTime();
  }

  /**
   * What key the card should have, for the agent that enrolls it: nothing when it has the
   * current one; else the new key and the keys it may have now (a re-key left half done, the
   * recorded version, the transport key for a card new to the service). A card already recorded
   * for another user is refused: a token opens its own user's cards only.
   */
  async cardAdminKey(p: Principal, cardIdText: string): Promise<CardAdminKey> {
    requireEnrollingUser(p);
    const cardId = cardIdOf(cardIdText);
    const existing = await this.cards.get(cardId);
    if (existing && existing.state !== 'retired' && existing.user !== p.user) throw new ServiceError('FORBIDDEN', `card ${cardId} belongs to another user: an operator must retire it first`);
    // One card per token: a token cannot be used to collect the keys of many card ids.
    const other = (await this.cards.cardsClaimedBy(actorName(p))).find((c) => c !== cardId);
    if (other !== undefined) throw new ServiceError('FORBIDDEN', `this enrollment token was used for card ${other} already: one token, one card`);
    const target = this.vault.currentVersion();
    if (existing && existing.state === 'active' && existing.keyVersion === target && existing.pendingVersion === null) {
      return { cardId, keyVersion: target, upToDate: true, newKey: null, currentKeys: [] };
    }
    const record = await this.cards.startRekey(cardId, p.user, target, actorName(p), this.now());
    // A retired card was given the transport key back (unless the wipe did not finish).
    const versions = [...new Set([...(existing?.state === 'retired' ? [0] : []), ...(existing?.pendingVersion != null ? [existing.pendingVersion] : []), record.keyVersion])].filter((v) => v !== target);
    return {
      cardId,
      keyVersion: target,
      upToDate: false,
      newKey: hex(this.vault.cardKey(cardId, target)),
      currentKeys: versions.map((version) => ({ version, key: hex(this.vault.cardKey(cardId, version)) })),
    };
  }

  /** The agent proved the card authenticates with `keyVersion`'s key: record it, the card is active. */
  async confirmCardAdminKey(p: Principal, cardIdText: string, keyVersion: number): Promise<{ cardId: string; keyVersion: number; state: 'active' }> {
    requireEnrollingUser(p);
    const cardId = cardIdOf(cardIdText);
    const existing = await this.cards.get(cardId);
    if (!existing || existing.user !== p.user) throw new ServiceError('NOT_FOUND', `no re-key of card ${cardId} is waiting`);
    if (!(await this.cards.confirmRekey(cardId, keyVersion, actorName(p), this.now()))) {
      throw new ServiceError('CONFLICT', `card ${cardId}: no re-key to version ${keyVersion} is waiting`);
    }
    return { cardId, keyVersion, state: 'active' };
  }

  /** The help desk's answer to a card's challenge: operators only, active cards only, limited, audited. */
  async unblockResponse(p: Principal, cardIdText: string, challengeText: string): Promise<UnblockResponse> {
    requireOperator(p, 'approver');
    return this.respond(cardIdText, challengeText, 'operator', actorName(p));
  }

  /** An operator hands a user a one-time ticket to unblock this card online. */
  async createUnblockTicket(p: Principal, cardIdText: string, ttlSeconds?: number): Promise<UnblockTicket> {
    requireOperator(p, 'approver');
    const cardId = cardIdOf(cardIdText);
    await this.activeCard(cardId);
    const ttl = ttlSeconds === undefined ? this.ticketTtlMs : ttlSeconds * 1000;
    if (!(ttl >= 60_000 && ttl <= 7 * 24 * HOUR)) throw new ServiceError('BAD_REQUEST', 'an unblock ticket lives 60 seconds to 7 days');
    const ticket = newSecret('unblock');
    const now = this.now();
    await this.cards.createUnblockTicket(secretHash(ticket), cardId, actorName(p), now, now + ttl);
    return { cardId, ticket, expiresAt: new Date(now + ttl).toISOString() };
  }

  /** `card unblock --online`: the user's ticket, spent by this one answer. */
  async unblockResponseWithTicket(cardIdText: string, challengeText: string, ticket: string): Promise<UnblockResponse> {
    const cardId = cardIdOf(cardIdText);
    parseChallenge(challengeText);
    if (!(await this.cards.consumeUnblockTicket(secretHash(ticket), cardId, this.now()))) {
      throw new ServiceError('UNAUTHENTICATED', 'the unblock ticket is unknown, expired, used, or for another card');
    }
    return this.respond(cardId, challengeText, 'ticket', `ticket for card:${cardId}`);
  }

  /**
   * An operator retires a card (its user left): the card is no longer active (no unblock), and
   * the answer authenticates this one challenge so the operator's workstation can put the
   * transport key back and wipe the card. Audited; the same challenge is never answered twice.
   */
  async retireCard(p: Principal, cardIdText: string, challengeText: string): Promise<RetireAnswer> {
    requireOperator(p, 'admin');
    const cardId = cardIdOf(cardIdText);
    const challenge = parseChallenge(challengeText);
    const card = await this.cards.get(cardId);
    if (!card || card.keyVersion === 0) throw new ServiceError('NOT_FOUND', `card ${cardId} has no key of this service`);
    const challengeHash = createHash('sha256').update(challenge).digest('hex');
    if ((await this.cards.unblockResponsesSince(cardId, 0)).some((r) => r.challengeHash === challengeHash)) throw new ServiceError('CONFLICT', 'this challenge was answered already');
    const retired = await this.cards.retire(cardId, challengeHash, actorName(p), this.now());
    if (!retired) throw new ServiceError('CONFLICT', `card ${cardId} is ${card.state}: only an active or retired card can be retired`);
    if (retired.revoked.length > 0) await this.revocationsChanged();
    await this.cards.recordUnblockResponse(cardId, challengeHash, card.keyVersion, 'operator', actorName(p), this.now());
    const key = this.vault.cardKey(cardId, card.keyVersion);
    const response = adminChallengeResponse(key, challenge);
    key.fill(0);
    return { cardId, response: hex(response), keyVersion: card.keyVersion, transportKey: hex(this.vault.transportKey), state: 'retired', revoked: retired.revoked };
  }

  async rotateMasterKey(p: Principal): Promise<MasterKeyRotation> {
    requireOperator(p, 'admin');
    const from = this.vault.currentVersion();
    const keyVersion = this.vault.rotate();
    await this.cardsAudit(actorName(p), 'admin-key.rotated', { from, to: keyVersion });
    return { keyVersion };
  }

  private async cardsAudit(actor: string, action: string, details: Record<string, unknown>): Promise<void> {
    await this.cards.recordAudit(actor, action, details, this.now());
  }

  private async activeCard(cardId: string): Promise<CardKeyRecord> {
    const card = await this.cards.get(cardId);
    if (!card) throw new ServiceError('NOT_FOUND', `card ${cardId} is not managed by this service`);
    if (card.state !== 'active') throw new ServiceError('CONFLICT', `card ${cardId} is ${card.state}, not active: no unblock`);
    // The card's life cycle record (issue 13) too: a lost, suspended or retired card is not unblocked.
    const record = await this.records.get(cardId);
    if (record && record.state !== 'active') throw new ServiceError('CONFLICT', `card ${cardId} is ${record.state}, not active: no unblock`);
    return card;
  }

  private async respond(cardIdText: string, challengeText: string, via: 'operator' | 'ticket', actor: string): Promise<UnblockResponse> {
    const cardId = cardIdOf(cardIdText);
    const challenge = parseChallenge(challengeText);
    const card = await this.activeCard(cardId);
    const now = this.now();
    const challengeHash = createHash('sha256').update(challenge).digest('hex');
    const recent = await this.cards.unblockResponsesSince(cardId, now - HOUR);
    // The card forgets a challenge after one answer; the service does not answer one twice either.
    const all = await this.cards.unblockResponsesSince(cardId, 0);
    if (all.some((r) => r.challengeHash === challengeHash)) {
      throw new ServiceError('CONFLICT', 'this challenge was answered already: a response works once; ask the user to start again for a new challenge');
    }
    if (recent.length >= this.limitPerHour) {
      throw new ServiceError('RATE_LIMITED', `card ${cardId} had ${recent.length} unblock responses in the last hour (at most ${this.limitPerHour}): try again later`);
    }
    const key = this.vault.cardKey(cardId, card.keyVersion);
    const response = adminChallengeResponse(key, challenge);
    key.fill(0);
    await this.cards.recordUnblockResponse(cardId, challengeHash, card.keyVersion, via, actor, now);
    return { cardId, challenge: hex(challenge), response: hex(response), keyVersion: card.keyVersion };
  }
}

function parseChallenge(text: string): Uint8Array {
  try {
    return parseChallengeHex(text, 'challenge');
  } catch (err) {
    throw new ServiceError('BAD_REQUEST', (err as Error).message, { cause: err });
  }
}
