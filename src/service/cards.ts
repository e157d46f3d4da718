/**
 * The card use cases (issue 13): cards as records with their credentials and history, the life
 * cycle moves (lost, suspend, resume, retire) and expiry reporting. Independent of HTTP like
 * enrollment.ts; every method takes the Principal asking. Users see their own cards only (another
 * user's card is "not found"); only operators move cards or list expiring certificates.
 */
import { randomUUID } from 'node:crypto';
import { actorName, newSecret, requireOperator, secretHash, type Principal } from './auth.js';
import { sidOfCertificate, strongMappingString } from './ca/strong-mapping.js';
import type { Clock } from './clock.js';
import { tokenView } from './enrollment.js';
import { ServiceError } from './errors.js';
import {
  CARD_ACTIONS,
  CARD_STATES,
  DEFAULT_PROFILE,
  TEMPORARY_PROFILE,
  type CardAction,
  type CardCredential,
  type CardDetail,
  type CardListQuery,
  type CardPage,
  type CardState,
  type CardTransition,
  type CardTransitionBody,
  type CardView,
  type CertificateStatus,
  type ExpiringCertificate,
  type LostReason,
} from './protocol.js';
import {
  CARD_MOVES,
  CardStorage,
  CERTIFICATE_HOLD,
  CESSATION_OF_OPERATION,
  KEY_COMPROMISE,
  RETIREMENT_EFFECTS,
  type CardCredentialRecord,
  type CardRecord,
  type TransitionEffects,
} from './storage/cards.js';
import type { Storage, TokenRecord } from './storage/storage.js';

const DAY = 86_400_000;
const CARD_ID_RE = /^[0-9a-fA-F]{32}$/;
const LOST_REASON_CODES: Record<LostReason, number> = { keyCompromise: KEY_COMPROMISE, cessationOfOperation: CESSATION_OF_OPERATION };
/** RFC 5280 §5.3.1 names, for the credentials' revocation reasons. */
const CRL_REASON_NAMES = ['unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'certificateHold', '', 'removeFromCRL', 'privilegeWithdrawn', 'aACompromise'];
const REPLACEMENT_TOKEN_TTL_S = 7 * 86_400;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export interface CardServiceOptions {
  storage: Storage;
  clock: Clock;
  /**
   * Publishes a CRL from the revocations as they now stand (EnrollmentService.publishCrl): called
   * once after every move that revoked, held or released certificates, so CRL and OCSP see it.
   */
  revocationsChanged: () => Promise<unknown>;
}

function cardIdOf(text: string): string {
  if (!CARD_ID_RE.test(text)) throw new ServiceError('NOT_FOUND', 'no card with that id (a card id is 32 hex digits)');
  return text.toLowerCase();
}

/** Operators see every card; a user (enrollment token or client certificate) only their own. */
function canSee(p: Principal, card: CardRecord): boolean {
  if (p.kind === 'operator') return true;
  if (p.kind === 'enrollment-token' || p.kind === 'certificate') return card.user === p.user;
  return false;
}

function cardView(c: CardRecord): CardView {
  return { cardId: c.cardId, user: c.user, state: c.state, createdAt: iso(c.createdAt)!, updatedAt: iso(c.updatedAt)!, replacedBy: c.replacedBy, replaces: c.replaces };
}

function statusOf(c: CardCredentialRecord, now: number): CertificateStatus | null {
  if (c.certificate === null || c.notBefore === null || c.notAfter === null) return null;
  if (c.revokedAt !== null) return c.revocationReason === CERTIFICATE_HOLD ? 'on-hold' : 'revoked';
  if (now >= c.notAfter) return 'expired';
  if (now < c.notBefore) return 'not-yet-valid';
  return 'good';
}

function credentialView(c: CardCredentialRecord, now: number): CardCredential {
  const cert = c.certificate;
  return {
    requestId: c.id, kind: c.kind, requestState: c.state, profile: c.profile, container: c.container, subject: c.subject,
    serial: cert ? c.serial : null, status: statusOf(c, now),
    revocationReason: c.revokedAt !== null && c.revocationReason !== null ? (CRL_REASON_NAMES[c.revocationReason] ?? String(c.revocationReason)) : null,
    notBefore: cert ? iso(c.notBefore) : null, notAfter: cert ? iso(c.notAfter) : null,
    sidExtension: cert ? (sidOfCertificate(cert) ?? null) : null,
    strongMapping: cert ? strongMappingString(cert) : null,
  };
}

export class CardService {
  private readonly cards: CardStorage;
  private readonly storage: Storage;
  private readonly clock: Clock;
  private readonly revocationsChanged: () => Promise<unknown>;

  constructor(o: CardServiceOptions) {
    this.storage = o.storage;
    this.cards = new CardStorage(o.storage);
    this.clock = o.clock;
    this.revocationsChanged = o.revocationsChanged;
  }

  private now(): number {
    return this.clock.now().getTime();
  }

  /** One page of cards, newest first: every card for an operator, the user's own otherwise. */
  async list(p: Principal, q: CardListQuery = {}): Promise<CardPage> {
    if (p.kind === 'anonymous') throw new ServiceError('UNAUTHENTICATED', 'authentication needed');
    if (q.state !== undefined && !CARD_STATES.includes(q.state)) throw new ServiceError('BAD_REQUEST', `state is one of ${CARD_STATES.join(', ')}`);
    const mine = p.kind === 'operator' ? q : { ...q, user: p.user };
    // A user asking for someone else's cards gets none rather than theirs.
    if (p.kind !== 'operator' && q.user !== undefined && q.user !== p.user) return { cards: [], next: null };
    const page = await this.cards.page(mine);
    return { cards: page.cards.filter((c) => canSee(p, c)).map(cardView), next: page.next };
  }

  /** The card, its credentials and its history; "not found" for a card the caller may not see. */
  async show(p: Principal, cardIdText: string): Promise<CardDetail> {
    if (p.kind === 'anonymous') throw new ServiceError('UNAUTHENTICATED', 'authentication needed');
    const cardId = cardIdOf(cardIdText);
    const card = await this.cards.get(cardId);
    if (!card || !canSee(p, card)) throw new ServiceError('NOT_FOUND', `no card ${cardId}`);
    return this.detail(card);
  }

  private async detail(card: CardRecord): Promise<CardDetail> {
    const now = this.now();
    const [credentials, history] = await Promise.all([this.cards.credentials(card.cardId), this.cards.history(card.cardId)]);
    return {
      ...cardView(card),
      credentials: credentials.map((c) => credentialView(c, now)),
      history: history.map((h) => ({ at: iso(h.at)!, actor: h.actor, action: h.action, details: h.details })),
    };
  }

  /**
   * Moves a card as CARD_MOVES allows, with what the move does to its credentials, audited with
   * who, when, from, to and why. A move the table does not allow is refused, saying why.
   */
  async transition(p: Principal, cardIdText: string, body: CardTransitionBody): Promise<CardTransition> {
    // The help desk (approver) marks cards lost, suspends and resumes them; retiring one ends it for good, like the card wipe (retireCard): admin.
    requireOperator(p, body.action === 'retire' ? 'admin' : 'approver');
    const cardId = cardIdOf(cardIdText);
    const move = CARD_MOVES[body.action as CardAction] as (typeof CARD_MOVES)[CardAction] | undefined;
    if (!move) throw new ServiceError('BAD_REQUEST', `action is one of ${Object.keys(CARD_MOVES).join(', ')}`);
    if (body.action !== 'lost' && (body.reason !== undefined || body.temporary !== undefined || body.ttlSeconds !== undefined)) {
      throw new ServiceError('BAD_REQUEST', 'reason, temporary and ttlSeconds go with the action lost only');
    }
    const card = await this.cards.get(cardId);
    if (!card) throw new ServiceError('NOT_FOUND', `no card ${cardId}`);
    const actor = actorName(p);
    const now = this.now();
    const { effects, details, token } = await this.effectsOf(body, card, actor, now);
    const moved = await this.cards.transition(cardId, move.from, move.to, effects, actor, now, details);
    if (!moved) {
      const current = (await this.cards.get(cardId))?.state ?? card.state;
      throw new ServiceError('CONFLICT', cardMoveRefusal(body.action, cardId, current));
    }
    if (moved.revoked.length + moved.held.length + moved.released.length > 0) await this.revocationsChanged();
    return {
      card: await this.detail(moved.card), from: moved.from, to: moved.card.state, revoked: moved.revoked, held: moved.held, released: moved.released,
      replacementToken: token ? { ...tokenView(token.record), token: token.secret } : null,
    };
  }

  private async effectsOf(body: CardTransitionBody, card: CardRecord, actor: string, now: number): Promise<{ effects: TransitionEffects; details: Record<string, unknown>; token?: { record: TokenRecord; secret: string } }> {
    switch (body.action) {
      case 'suspend':
        return { effects: { hold: true }, details: { reason: 'certificateHold' } };
      case 'resume':
        return { effects: { release: true }, details: {} };
      case 'retire':
        return { effects: RETIREMENT_EFFECTS, details: { reason: 'cessationOfOperation' } };
      case 'lost': {
        const reason = body.reason ?? 'keyCompromise';
        if (!(reason in LOST_REASON_CODES)) throw new ServiceError('BAD_REQUEST', 'reason is keyCompromise or cessationOfOperation');
        const ttl = body.ttlSeconds ?? REPLACEMENT_TOKEN_TTL_S;
        if (!Number.isInteger(ttl) || ttl < 60 || ttl > 30 * 86_400) throw new ServiceError('BAD_REQUEST', 'ttlSeconds must be between 60 and 2592000 (30 days)');
        // The replacement names the same account: same profile and SID as the card's newest certificate (or request, when none was issued).
        const credentials = await this.cards.credentials(card.cardId);
        const newest = credentials.filter((c) => c.certificate !== null).pop() ?? credentials.pop();
        const profile = body.temporary === true ? TEMPORARY_PROFILE : newest?.profile === TEMPORARY_PROFILE ? DEFAULT_PROFILE : (newest?.profile ?? DEFAULT_PROFILE);
        if (!(await this.storage.getProfile(profile))) throw new ServiceError('CONFIG', `the replacement's profile '${profile}' does not exist`);
        const secret = newSecret('enrollment');
        const record: TokenRecord = {
          id: randomUUID(), user: card.user, profile, createdBy: actor, createdAt: now, expiresAt: now + ttl * 1000, usedAt: null, requestId: null, revokedAt: null,
          sid: newest?.sid ?? null, replacesCard: card.cardId,
        };
        return {
          effects: { revoke: LOST_REASON_CODES[reason], rejectWaiting: 'the card was reported lost', token: { record, hash: secretHash(secret) } },
          details: { reason, temporary: body.temporary === true },
          token: { record, secret },
        };
      }
    }
  }

  /**
   * Certificates valid now whose end is within `days` days, soonest first, with card, user,
   * profile, whole days left, and whether a renewal is already waiting or issued.
   */
  async expiring(p: Principal, days: number): Promise<ExpiringCertificate[]> {
    requireOperator(p);
    if (!Number.isInteger(days) || days < 0 || days > 3650) throw new ServiceError('BAD_REQUEST', 'days is a whole number from 0 to 3650');
    const now = this.now();
    return (await this.cards.expiring(now, now + days * DAY)).map((r) => ({
      serial: r.serial!, requestId: r.id, cardId: r.cardId, container: r.container, user: r.user, profile: r.profile,
      notAfter: iso(r.notAfter)!, daysLeft: Math.floor((r.notAfter! - now) / DAY),
      renewal: r.renewalState === null ? 'none' : ['issued', 'delivered'].includes(r.renewalState) ? 'issued' : r.renewalState === 'revoked' ? 'none' : 'waiting',
      renewalRequestId: r.renewalId,
    }));
  }
}

/** The moves CARD_MOVES allows from a state: what the console offers for a card. */
export function cardActionsFrom(state: CardState): CardAction[] {
  return CARD_ACTIONS.filter((a) => (CARD_MOVES[a].from as readonly CardState[]).includes(state));
}

/** Why a move is refused, in the operator's terms. */
export function cardMoveRefusal(action: CardAction, cardId: string, state: string): string {
  const allowed = CARD_MOVES[action].from.join(' or ');
  const hint: Record<string, string> = {
    lost: 'a lost card stays lost: its certificates are revoked for good; retire it if it was found',
    retired: 'a retired card is enrolled again to become active',
    active: 'the card is already active',
    suspended: 'the card is already suspended',
  };
  return `card ${cardId} is ${state}: '${action}' applies to a card that is ${allowed} (${hint[state] ?? ''})`;
}
