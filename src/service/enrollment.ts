import { createPublicKey, randomUUID, verify } from 'node:crypto';
import { toPem } from '../pem.js';
import { x509 } from '../x509.js';
import { actorName, hashPassword, isOperatorRole, newSecret, PREFIX, requireOperator, secretHash, verifyPassword, type OperatorRole, type Principal } from './auth.js';
import { isDomainSid, isUserPrincipalName, newSerial, parseCsr, userSubject, type ParsedCsr } from './ca/pki.js';
import type { UpstreamCa } from './ca/upstream.js';
import type { Clock } from './clock.js';
import { ServiceError } from './errors.js';
import {
  collectMessage,
  renewalProof,
  CONTAINER_NAME_RE,
  type AuditEntryView,
  type AuditListQuery,
  type CollectBody,
  type CollectedRequest,
  type CreatedToken,
  type DeliveryReport,
  type WorkstationView,
  type Health,
  type NewToken,
  type OperatorView,
  type ProfileChange,
  type ProfileView,
  type RenewalBody,
  type RequestListQuery,
  type RequestPage,
  type RequestState,
  type RequestView,
  type Session,
  type TokenView,
  TEMPORARY_PROFILE,
} from './protocol.js';
import { CardStorage } from './storage/cards.js';
import { CRL_REASON, type CertificateRecord, type Claim, type Profile, type RequestRecord, type Storage, type TokenRecord } from './storage/storage.js';
import { Revocation } from './revocation.js';
import type { OwnCertificate } from './tls.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export interface EnrollmentOptions {
  storage: Storage;
  ca: UpstreamCa;
  clock: Clock;
  /** What a 202 tells the client to wait before asking again. */
  retryAfterSeconds?: number;
  sessionTtlMs?: number;
  challengeTtlMs?: number;
  ticketTtlMs?: number;
  /** How long an issuer holds a request before another process may take it over. */
  issueLeaseMs?: number;
  crlValidityMs?: number;
  loginThrottle?: Partial<LoginThrottle>;
}

/**
 * Failed operator logins: `perOperator` failures of one operator's password within `windowMs`
 * lock that operator for `lockMs`; `perAddress` failures from one source address (any names)
 * lock that address. Defaults: 5 and 20 in 15 minutes, 15 minutes locked (NIST SP 800-63B
 * §5.2.2 allows up to 100 before a lockout; a smaller number costs an operator little and leaves
 * a guesser 20 tries an hour).
 */
export interface LoginThrottle {
  perOperator: number;
  perAddress: number;
  windowMs: number;
  lockMs: number;
}

const DEFAULT_THROTTLE: LoginThrottle = { perOperator: 5, perAddress: 20, windowMs: 15 * 60_000, lockMs: 15 * 60_000 };

/** The default profiles made on first start; operators change their policy through the API. */
const RENEWAL = { renewalWindowDays: 30, supersedeGraceDays: 7, allowSoftwareKeys: false };
const DEFAULT_PROFILES: Omit<Profile, 'updatedAt' | 'updatedBy'>[] = [
  { name: 'smartcard-logon', approval: 'operator', validityDays: 365, ...RENEWAL },
  { name: 'smartcard-logon-auto', approval: 'automatic', validityDays: 365, ...RENEWAL },
  // A lost card's stand-in (issue 13): its tokens are made only by an operator marking a card lost,
  // an act that already checked the user, so issuance is automatic; 14 days covers the wait for
  // a permanent card, and a renewal window of 0 means it is replaced, never renewed.
  { name: TEMPORARY_PROFILE, approval: 'automatic', validityDays: 14, renewalWindowDays: 0, supersedeGraceDays: 0, allowSoftwareKeys: false },
];

/** RFC 5280 §5.3.1 names of the CRLReason codes, for messages. */
const CRL_REASON_NAMES = ['unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'certificateHold', '', 'removeFromCRL', 'privilegeWithdrawn', 'aACompromise'];

/** PKCS#9 challengePassword (RFC 2985 §5.4.1): where a renewal request carries its card binding (protocol.ts renewalBinding). */
const CHALLENGE_PASSWORD = '1.2.840.113549.1.9.7';
const RENEWAL_BINDING_RE = /^cardlink-renew v1 (clc_[A-Za-z0-9_-]{43}) ([0-9a-f]{32}) ([A-Za-z0-9{}._-]{1,39})$/;

/** The card binding of a renewal request, or undefined when it carries none. */
function renewalBindingOf(parsed: ParsedCsr): { nonce: string; cardId: string; container: string } | undefined | 'malformed' {
  const attr = parsed.csr.getAttribute(CHALLENGE_PASSWORD);
  if (!attr) return undefined;
  const password = (attr as x509.ChallengePasswordAttribute).password;
  const m = typeof password === 'string' ? RENEWAL_BINDING_RE.exec(password) : null;
  return m ? { nonce: m[1]!, cardId: m[2]!, container: m[3]! } : 'malformed';
}

/** What EST answers a request with: the certificate's DER as stored, never re-read from a view. */
export interface EnrollmentOutcome {
  id: string;
  state: RequestState;
  reason: string | null;
  retryAfter: number | null;
  certificate: Uint8Array | null;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** An ISO 8601 date-time of a query to milliseconds; undefined stays undefined. */
function isoTime(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new ServiceError('BAD_REQUEST', `${name} is an ISO 8601 date-time`);
  return ms;
}

/** How long a console (browser) session lives: `absoluteMs` at most, `idleMs` without use. */
export interface ConsoleSessionLimits {
  absoluteMs: number;
  idleMs: number;
}

const CARD_ID_RE = /^[0-9a-fA-F]{32}$/;
/** Operator names as createOperator allows them; a login with anything else is refused before it is looked up or written. */
const OPERATOR_NAME_RE = /^[A-Za-z0-9._@-]{1,64}$/;


/** Users see their own requests only, and a foreign request is "not found" rather than "forbidden". */
function canSee(p: Principal, r: RequestRecord): boolean {
  switch (p.kind) {
    case 'operator':
      return true;
    case 'enrollment-token':
      return r.user === p.user && r.id === p.requestId;
    case 'certificate':
      return r.user === p.user && (r.id === p.requestId || r.renews === p.serial);
    case 'anonymous':
      return false;
  }
}

/** A collect proof: RSA PKCS#1 v1.5 or ECDSA as r||s (IEEE P1363, what cards and WebCrypto give), SHA-256. */
function verifyWithKey(spki: Uint8Array, signature: Uint8Array, data: Uint8Array): boolean {
  try {
    const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType === 'rsa') return verify('sha256', data, key, signature);
    if (key.asymmetricKeyType === 'ec') return verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
    return false;
  } catch {
    return false;
  }
}

/** Issued, delivered and revoked requests show their certificate; the rest have none. */
const HAS_CERTIFICATE: ReadonlySet<RequestState> = new Set(['issued', 'delivered', 'revoked']);

/**
 * The enrollment use cases, independent of HTTP: who may do what, the request life cycle, and
 * exactly-once issuance on top of Storage's conditional transitions.
 */
export class EnrollmentService {
  private readonly storage: Storage;
  private readonly cards: CardStorage;
  private readonly ca: UpstreamCa;
  private readonly clock: Clock;
  private readonly retryAfterSeconds: number;
  private readonly sessionTtlMs: number;
  private readonly challengeTtlMs: number;
  private readonly ticketTtlMs: number;
  private readonly issueLeaseMs: number;
  private readonly throttle: LoginThrottle;
  /** CRL and certificate status: every revocation this service makes is published through it. */
  readonly revocation: Revocation;

  constructor(o: EnrollmentOptions) {
    this.throttle = { ...DEFAULT_THROTTLE, ...o.loginThrottle };
    this.storage = o.storage;
    this.cards = new CardStorage(o.storage);
    this.ca = o.ca;
    this.clock = o.clock;
    this.retryAfterSeconds = o.retryAfterSeconds ?? 3600;
    this.sessionTtlMs = o.sessionTtlMs ?? 8 * HOUR;
    this.challengeTtlMs = o.challengeTtlMs ?? 5 * 60_000;
    this.ticketTtlMs = o.ticketTtlMs ?? 30 * DAY;
    this.issueLeaseMs = o.issueLeaseMs ?? 30_000;
    this.revocation = new Revocation({ storage: o.storage, ca: o.ca, clock: o.clock, ...(o.crlValidityMs !== undefined ? { crlValidityMs: o.crlValidityMs } : {}) });
  }

  private now(): number {
    return this.clock.now().getTime();
  }

  /** Liveness: the service answers and reaches its storage. */
  async health(): Promise<Health> {
    await this.storage.ping();
    return { ok: true };
  }

  /** Closes the storage; the service is not used afterwards. */
  close(): Promise<void> {
    return this.storage.close();
  }

  /** Books a certificate the service issued to itself (its TLS certificate): the serial is reserved like any other. */
  async recordOwnCertificate(cert: OwnCertificate, purpose: string): Promise<void> {
    const rec = { serial: cert.serial, subject: cert.subject, der: Buffer.from(cert.der), notBefore: cert.notBefore.getTime(), notAfter: cert.notAfter.getTime(), issuedAt: this.now() };
    await this.storage.recordCertificate(rec, purpose, 'system');
  }

  async ensureDefaults(): Promise<void> {
    for (const p of DEFAULT_PROFILES) await this.storage.ensureProfile(p, 'system', this.now());
  }

  /** Does an operator of that name exist? (serve warns on a first start that has none.) */
  async operatorExists(username: string): Promise<boolean> {
    return (await this.storage.findOperator(username)) !== undefined;
  }

  /** First start: makes the named operator unless it exists (the password is never logged). */
  async ensureOperator(username: string, password: string): Promise<boolean> {
    if (await this.storage.findOperator(username)) return false;
    try {
      // The operator made at first start sets everything else up: an admin.
      await this.storage.createOperator({ id: randomUUID(), username, passwordHash: await hashPassword(password), createdAt: this.now(), role: 'admin' }, 'system');
      return true;
    } catch (err) {
      // Another process starting on the same database made it first.
      if (err instanceof ServiceError && err.code === 'CONFLICT') return false;
      throw err;
    }
  }

  // Authentication

  /**
   * An operator session for the right name and password. Failed attempts are counted per
   * operator and per source address; a locked operator or address is refused (429) without the
   * password being checked, until the lockout ends, even with the right password.
   */
  async login(username: string, password: string, source = 'unknown', console?: ConsoleSessionLimits): Promise<Session> {
    // Nothing that could not be an operator's name reaches storage or the audit log.
    if (!OPERATOR_NAME_RE.test(username)) throw new ServiceError('BAD_REQUEST', 'an operator name is 1 to 64 letters, digits, or . _ @ -');
    if (password.length > 1024) throw new ServiceError('BAD_REQUEST', 'a password has at most 1024 characters');
    const started = this.now();
    const op = await this.storage.findOperator(username);
    const keys = [`address:${source.slice(0, 64)}`, ...(op ? [`operator:${op.username}`] : [])];
    const locked = await this.storage.lockedUntil(keys, started);
    if (locked !== undefined) {
      throw new ServiceError('TOO_MANY_ATTEMPTS', `too many failed logins: try again after ${new Date(locked).toISOString()}`, { retryAfter: Math.ceil((locked - started) / 1000) });
    }
    // Hash even for an unknown name, so the answer's timing does not tell which names exist.
    const ok = await verifyPassword(password, op?.passwordHash ?? 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');
    if (!op || !ok) {
      const at = this.now();
      await this.storage.recordAudit(at, 'anonymous', 'session.refused', `operator:${username}`, { source: source.slice(0, 64) });
      await this.storage.loginFailed(keys[0]!, at, { max: this.throttle.perAddress, windowMs: this.throttle.windowMs, lockMs: this.throttle.lockMs });
      if (op) await this.storage.loginFailed(keys[1]!, at, { max: this.throttle.perOperator, windowMs: this.throttle.windowMs, lockMs: this.throttle.lockMs });
      throw new ServiceError('UNAUTHENTICATED', 'wrong operator name or password');
    }
    const token = newSecret('session');
    const now = this.now();
    const ttl = console?.absoluteMs ?? this.sessionTtlMs;
    await this.storage.loginSucceeded(`operator:${op.username}`, now);
    await this.storage.createSession(secretHash(token), op, now, now + ttl, console?.idleMs);
    return { token, expiresAt: new Date(now + ttl).toISOString() };
  }

  async logout(p: Principal): Promise<void> {
    requireOperator(p);
    await this.storage.endSession(p.sessionHash, actorName(p), this.now());
  }

  /** A bearer secret to a principal; undefined when it is unknown or expired. */
  async fromBearer(secret: string): Promise<Principal | undefined> {
    if (secret.startsWith(PREFIX.session)) {
      const hash = secretHash(secret);
      const op = await this.storage.sessionOperator(hash, this.now());
      return op ? { kind: 'operator', username: op.username, role: op.role, sessionHash: hash } : undefined;
    }
    if (secret.startsWith(PREFIX.enrollment)) {
      const t = await this.storage.tokenByHash(secretHash(secret));
      if (!t) return undefined;
      const usable = t.usedAt === null && t.revokedAt === null && t.expiresAt > this.now();
      // A spent token stays the key to the one request it made, so its owner can poll it later.
      if (!usable && t.requestId === null) return undefined;
      return { kind: 'enrollment-token', tokenId: t.id, user: t.user, profile: t.profile, requestId: t.requestId, usable };
    }
    return undefined;
  }

  /**
   * A TLS client certificate (already chain-checked by the caller) to a principal, or the reason
   * it is refused. A refusal on a renewal is written to the audit log with its reason.
   */
  async fromClientCertificate(serialHex: string, purpose: 'renewal' | 'other' = 'other'): Promise<Principal | { refused: string }> {
    const serial = serialHex.toLowerCase();
    const cert = await this.storage.certificateHolder(serial);
    const now = this.now();
    let refused: string | undefined;
    if (!cert || cert.requestId === null) refused = `the client certificate ${serial} is not one this service issued to a user`;
    else if (cert.revokedAt !== null) {
      const reason = CRL_REASON_NAMES[cert.revocationReason ?? 0] ?? String(cert.revocationReason);
      refused = `the client certificate ${serial} is revoked (${reason})`;
    } else if (now < cert.notBefore || now > cert.notAfter) refused = `the client certificate ${serial} is expired or not yet valid`;
    if (refused === undefined) return { kind: 'certificate', serial: cert!.serial, user: cert!.user, requestId: cert!.requestId! };
    if (purpose === 'renewal' && cert) await this.storage.recordAudit(now, `certificate:${serial}`, 'renewal.refused', `serial:${serial}`, { reason: refused });
    return { refused };
  }

  /** A new operator; least privilege unless asked: a `viewer`. */
  async createOperator(p: Principal, username: string, password: string, role: OperatorRole = 'viewer'): Promise<OperatorView> {
    requireOperator(p, 'admin');
    if (!OPERATOR_NAME_RE.test(username)) throw new ServiceError('BAD_REQUEST', 'an operator name is 1 to 64 letters, digits, or . _ @ -');
    if (!isOperatorRole(role)) throw new ServiceError('BAD_REQUEST', 'an operator role is viewer, approver or admin');
    await this.storage.createOperator({ id: randomUUID(), username, passwordHash: await hashPassword(password), createdAt: this.now(), role }, actorName(p));
    return { username, role };
  }

  /**
   * The calling operator's new password, after the current one is proven; every session of the
   * operator ends (OWASP Session Management: renew/invalidate sessions on a password change),
   * the calling one too.
   */
  async changePassword(p: Principal, current: string, next: string): Promise<void> {
    requireOperator(p);
    const op = await this.storage.findOperator(p.username);
    if (!op || current.length > 1024 || !(await verifyPassword(current, op.passwordHash))) {
      await this.storage.recordAudit(this.now(), actorName(p), 'operator.password-refused', `operator:${p.username}`);
      throw new ServiceError('UNAUTHENTICATED', 'the current password is not right');
    }
    if (next.length > 1024) throw new ServiceError('BAD_REQUEST', 'a password has at most 1024 characters');
    await this.storage.changePassword(op.id, await hashPassword(next), actorName(p), this.now());
  }

  // Profiles and tokens

  async profiles(p: Principal): Promise<ProfileView[]> {
    requireOperator(p);
    return (await this.storage.listProfiles()).map(profileView);
  }

  async updateProfile(p: Principal, name: string, change: ProfileChange): Promise<ProfileView> {
    requireOperator(p, 'admin');
    if (change.validityDays !== undefined && (change.validityDays < 1 || change.validityDays > 3650)) {
      throw new ServiceError('BAD_REQUEST', 'validityDays must be between 1 and 3650');
    }
    if (change.supersedeGraceDays !== undefined && (change.supersedeGraceDays < 0 || change.supersedeGraceDays > 90)) {
      throw new ServiceError('BAD_REQUEST', 'supersedeGraceDays must be between 0 and 90');
    }
    if (change.renewalWindowDays !== undefined) {
      const validity = change.validityDays ?? (await this.storage.getProfile(name))?.validityDays ?? 3650;
      // A window as long as the validity lets every new certificate renew at once: the chain would not end.
      if (change.renewalWindowDays < 0 || change.renewalWindowDays > validity) throw new ServiceError('BAD_REQUEST', `renewalWindowDays must be between 0 and the validity (${validity} days)`);
    }
    return profileView(await this.storage.updateProfile(name, change, actorName(p), this.now()));
  }

  async createToken(p: Principal, o: Required<Pick<NewToken, 'user' | 'profile'>> & NewToken): Promise<CreatedToken> {
    requireOperator(p, 'approver');
    if (!isUserPrincipalName(o.user)) {
      throw new ServiceError('BAD_REQUEST', 'user is not a user principal name like alice@example.com (local@domain, at most 256 characters, no spaces, commas, quotes or control characters)');
    }
    if (!(await this.storage.getProfile(o.profile))) throw new ServiceError('BAD_REQUEST', `no profile '${o.profile}'`);
    if (o.sid !== undefined && !isDomainSid(o.sid)) {
      throw new ServiceError('BAD_REQUEST', "sid is a domain account's security identifier, S-1-5-21-<three domain numbers>-<RID> (as Get-ADUser shows it), e.g. S-1-5-21-1004336348-1177238915-682003330-1105");
    }
    const ttl = o.ttlSeconds ?? 86_400;
    if (ttl < 60 || ttl > 30 * 86_400) throw new ServiceError('BAD_REQUEST', 'ttlSeconds must be between 60 and 2592000 (30 days)');
    const token = newSecret('enrollment');
    const now = this.now();
    const rec: TokenRecord = {
      id: randomUUID(), user: o.user, profile: o.profile, createdBy: actorName(p), createdAt: now, expiresAt: now + ttl * 1000, usedAt: null, requestId: null, revokedAt: null,
      sid: o.sid ?? null, replacesCard: null,
    };
    await this.storage.createToken(rec, secretHash(token));
    return { ...tokenView(rec), token };
  }

  async listTokens(p: Principal): Promise<TokenView[]> {
    requireOperator(p);
    return (await this.storage.listTokens()).map(tokenView);
  }

  /** An operator withdraws an unused enrollment token: it can no longer enroll. */
  async revokeToken(p: Principal, id: string): Promise<TokenView> {
    requireOperator(p, 'approver');
    const r = await this.storage.revokeToken(id, actorName(p), this.now());
    if (!r) throw new ServiceError('NOT_FOUND', `no token ${id}`);
    if (!r.changed && r.token.revokedAt === null) {
      throw new ServiceError('CONFLICT', `token ${id} was already used for request ${r.token.requestId}: reject or revoke that request instead`);
    }
    return tokenView(r.token);
  }

  // Requests

  /** The JSON API's submit: a new request with an enrollment token, or the same request again. */
  async submit(p: Principal, o: { csr: Uint8Array | string; cardId?: string; container?: string }, source?: string): Promise<RequestView> {
    return this.view(await this.submitRecord(p, o, source));
  }

  /** EST simpleenroll (RFC 7030 §4.2.1): the same use case, answered with the stored DER. */
  async simpleEnroll(p: Principal, csr: Uint8Array | string, label?: string, source?: string): Promise<EnrollmentOutcome> {
    if (label !== undefined && p.kind === 'enrollment-token' && label !== p.profile) {
      throw new ServiceError('FORBIDDEN', `the enrollment token is for profile '${p.profile}', not for CA label '${label}'`);
    }
    return this.outcome(await this.submitRecord(p, { csr }, source));
  }

  /** Whether an EST CA label (RFC 7030 §3.2.2) names a profile: labels are profile names. */
  async isLabel(label: string): Promise<boolean> {
    return (await this.storage.getProfile(label)) !== undefined;
  }

  /**
   * A new request with an enrollment token, or the same request again: sending the identical CSR
   * returns the request it made, with its certificate once there is one.
   */
  private async submitRecord(p: Principal, o: { csr: Uint8Array | string; cardId?: string; container?: string }, source?: string): Promise<RequestRecord> {
    if (p.kind === 'anonymous') throw new ServiceError('UNAUTHENTICATED', 'an enrollment token is needed to submit a request');
    if (p.kind !== 'enrollment-token') throw new ServiceError('FORBIDDEN', 'requests are submitted with an enrollment token');
    const parsed = await parseCsr(o.csr);
    const existing = await this.storage.requestByCsrHash(parsed.csrHash);
    if (existing) {
      if (!canSee(p, existing)) throw new ServiceError('CONFLICT', 'this certificate request was already submitted with another token');
      return this.settle(existing);
    }
    if (!p.usable) throw new ServiceError('TOKEN_INVALID', 'the enrollment token was already used, revoked or has expired: ask an operator for a new one');
    if ((o.cardId === undefined) !== (o.container === undefined)) throw new ServiceError('BAD_REQUEST', 'give both cardId and container, or neither');
    if (o.cardId !== undefined && !CARD_ID_RE.test(o.cardId)) throw new ServiceError('BAD_REQUEST', 'cardId is the card\'s 16-byte cardid as 32 hex digits');
    if (o.container !== undefined && !CONTAINER_NAME_RE.test(o.container)) throw new ServiceError('BAD_REQUEST', 'a container name has 1 to 39 characters: letters, digits, { } . _ -');
    const profile = await this.storage.getProfile(p.profile);
    if (!profile) throw new ServiceError('CONFIG', `the token's profile '${p.profile}' no longer exists`);
    const auto = profile.approval === 'automatic';
    const now = this.now();
    const claim = auto ? this.proposeClaim(profile, now) : undefined;
    const rec = await this.storage.submitRequest(
      {
        id: randomUUID(), kind: 'enroll', user: p.user, profile: profile.name, csr: parsed.der, csrHash: parsed.csrHash, keyHash: parsed.keyHash,
        subject: userSubject(p.user).toString(), cardId: o.cardId?.toLowerCase() ?? null, container: o.container ?? null, renews: null,
        state: auto ? 'approved' : 'pending', createdBy: actorName(p), decidedBy: auto ? `policy:${profile.name}` : null,
        submittedFrom: source?.slice(0, 64) ?? null,
      },
      now,
      { id: p.tokenId },
      claim,
    );
    return claim ? this.finishClaimed(rec, claim, parsed.csr.publicKey) : this.settle(rec, profile);
  }

  /** An automatic approval's issuance claim, made with the submission (Storage.submitRequest). */
  private proposeClaim(profile: Profile, now: number): Claim & { leaseUntil: number } {
    return { serial: newSerial(), notBefore: now - 5 * 60_000, notAfter: now + profile.validityDays * DAY, leaseUntil: now + this.issueLeaseMs };
  }

  /** Signs and completes a request this process claimed with its submission; returns it as it now stands. */
  private async finishClaimed(r: RequestRecord, claim: Claim, publicKey: x509.PublicKey): Promise<RequestRecord> {
    return (await this.signAndComplete(r, claim, publicKey)) ?? (await this.storage.getRequest(r.id)) ?? r;
  }

  /**
   * EST simplereenroll (RFC 7030 §4.2.2): a holder of a valid certificate asks for its successor.
   * A renewal ends the chain it extends: allowed only in the profile's renewal window, only once
   * per certificate (a renewed certificate is superseded), and, unless the profile allows software
   * keys, only for a new key bound to the same card (renewalBinding in protocol.ts). Every refusal
   * says why, in the answer and in the audit log.
   */
  async simpleReenroll(p: Principal, csrInput: Uint8Array | string, label?: string, source?: string): Promise<EnrollmentOutcome> {
    if (p.kind === 'anonymous') throw new ServiceError('UNAUTHENTICATED', 're-enrollment needs the current certificate as TLS client certificate');
    if (p.kind !== 'certificate') throw new ServiceError('FORBIDDEN', 're-enrollment needs the current certificate as TLS client certificate');
    const parsed = await parseCsr(csrInput);
    const existing = await this.storage.requestByCsrHash(parsed.csrHash);
    if (existing) {
      if (!canSee(p, existing)) throw new ServiceError('CONFLICT', 'this certificate request was already submitted by someone else');
      return this.outcome(await this.settle(existing));
    }
    const current = await this.storage.getRequest(p.requestId);
    if (!current || current.notAfter === null) throw new ServiceError('NOT_FOUND', 'the certificate being renewed has no request');
    if (label !== undefined && label !== current.profile) throw new ServiceError('FORBIDDEN', `certificate ${p.serial} belongs to profile '${current.profile}', not to CA label '${label}'`);
    // RFC 7030 §4.2.2: the subject stays that of the certificate being renewed (which the CA
    // issued with its request's subject).
    if (new x509.Name(parsed.subject).toString() !== new x509.Name(current.subject).toString()) {
      throw new ServiceError('CSR_INVALID', `the request's subject '${parsed.subject}' differs from the current certificate's '${current.subject}'`);
    }
    const profile = await this.storage.getProfile(current.profile);
    if (!profile) throw new ServiceError('CONFIG', `profile '${current.profile}' no longer exists`);
    const refuse = async (reason: string): Promise<never> => {
      await this.storage.recordAudit(this.now(), actorName(p), 'renewal.refused', `serial:${p.serial}`, { reason, request: current.id });
      throw new ServiceError('FORBIDDEN', reason);
    };
    for (const r of await this.storage.renewalsOf(p.serial)) {
      if (r.state === 'rejected') continue;
      if (r.state === 'pending' || r.state === 'approved' || r.state === 'issuing') await refuse(`certificate ${p.serial} is already being renewed (request ${r.id}, ${r.state}): one renewal per certificate`);
      await refuse(`certificate ${p.serial} is superseded: it was renewed by request ${r.id}; renew from the newest certificate`);
    }
    const now = this.now();
    const opens = current.notAfter - profile.renewalWindowDays * DAY;
    if (now < opens) {
      await refuse(`certificate ${p.serial} can be renewed from ${new Date(opens).toISOString()}, ${profile.renewalWindowDays} days before it expires (profile '${profile.name}')`);
    }
    let cardId: string | null = null;
    let container: string | null = null;
    const binding = renewalBindingOf(parsed);
    if (binding === 'malformed') await refuse("the request's challengePassword is not a card binding 'cardlink-renew v1 <nonce> <cardid> <container>'");
    if (binding === undefined && !profile.allowSoftwareKeys) {
      await refuse(`the renewal request is not bound to a card: profile '${profile.name}' renews only keys on the card of the certificate, proven by a challengePassword 'cardlink-renew v1 <nonce> <cardid> <container>'`);
    }
    if (binding !== undefined && binding !== 'malformed') {
      if (current.cardId === null) await refuse(`certificate ${p.serial} is not bound to a card, so a renewal cannot be bound to its card`);
      if (binding.cardId !== current.cardId) await refuse(`the renewal request is bound to card ${binding.cardId}, but certificate ${p.serial} was issued for card ${current.cardId}: a renewal stays on the same card`);
      if (!(await this.storage.consumeChallenge(secretHash(binding.nonce), binding.cardId, this.now()))) {
        await refuse('the card binding\'s challenge is unknown, used or expired: ask for a new one (POST /api/v1/collect/challenge) and sign a new request');
      }
      cardId = binding.cardId;
      container = binding.container;
    }
    if (current.cardId !== null) {
      const card = await this.cards.get(current.cardId);
      if (card && card.state !== 'active') await refuse(`card ${current.cardId} is ${card.state}: its certificates are not renewed${card.state === 'suspended' ? ' until an operator resumes it' : ''}`);
    }
    const auto = profile.approval === 'automatic';
    const submittedAt = this.now();
    const claim = auto ? this.proposeClaim(profile, submittedAt) : undefined;
    const rec = await this.storage.submitRequest(
      {
        id: randomUUID(), kind: 'reenroll', user: p.user, profile: profile.name, csr: parsed.der, csrHash: parsed.csrHash, keyHash: parsed.keyHash,
        subject: current.subject, cardId, container, renews: p.serial,
        state: auto ? 'approved' : 'pending', createdBy: actorName(p), decidedBy: auto ? `policy:${profile.name}` : null,
        // The renewal names the same account: it keeps the SID of the certificate it renews.
        sid: current.sid,
        submittedFrom: source?.slice(0, 64) ?? null,
      },
      submittedAt,
      undefined,
      claim,
    );
    return this.outcome(claim ? await this.finishClaimed(rec, claim, parsed.csr.publicKey) : await this.settle(rec, profile));
  }

  /** The PKCS#10 request as submitted (PEM), for an operator to inspect its subject and extensions. */
  async csr(p: Principal, id: string): Promise<string> {
    requireOperator(p);
    const r = await this.storage.getRequest(id);
    if (!r) throw new ServiceError('NOT_FOUND', `no request ${id}`);
    return toPem(r.csr, 'CERTIFICATE REQUEST');
  }

  /**
   * POST /renewals: simplereenroll for a key on a card. The current certificate's holder is
   * authenticated by a signature of its key over the request (protocol.ts renewalProof) instead
   * of TLS client authentication; then the very rules of simpleReenroll apply. Only requests
   * bound to their card come this way: the binding's one-time nonce keeps a proof from being
   * replayed for another request.
   */
  async renewWithProof(o: RenewalBody): Promise<RequestView> {
    const serial = o.serial.toLowerCase();
    const p = await this.fromClientCertificate(serial, 'renewal');
    if ('refused' in p) throw new ServiceError('UNAUTHENTICATED', p.refused);
    const holder = await this.storage.certificateHolder(serial);
    const parsed = await parseCsr(o.csr);
    const spki = new Uint8Array(new x509.X509Certificate(holder!.der).publicKey.rawData);
    if (!verifyWithKey(spki, Buffer.from(o.signature, 'base64'), renewalProof(serial, parsed.der))) {
      await this.storage.recordAudit(this.now(), `certificate:${serial}`, 'renewal.refused', `serial:${serial}`, { reason: 'proof of possession does not verify' });
      throw new ServiceError('UNAUTHENTICATED', `the signature does not verify with the key of certificate ${serial}: sign renewalProof(serial, csr) with that certificate's key`);
    }
    const binding = renewalBindingOf(parsed);
    if (binding === undefined || binding === 'malformed') {
      throw new ServiceError('FORBIDDEN', "this route renews keys on cards: the request must carry the card binding 'cardlink-renew v1 <nonce> <cardid> <container>' (keys outside a card renew with EST simplereenroll)");
    }
    const outcome = await this.simpleReenroll(p, parsed.der);
    const r = await this.storage.getRequest(outcome.id);
    if (!r) throw new ServiceError('NOT_FOUND', `no request ${outcome.id}`);
    return this.view(r);
  }

  async get(p: Principal, id: string): Promise<RequestView> {
    if (p.kind === 'anonymous') throw new ServiceError('UNAUTHENTICATED', 'authentication needed');
    const r = await this.storage.getRequest(id);
    if (!r || !canSee(p, r)) throw new ServiceError('NOT_FOUND', `no request ${id}`);
    return this.view(await this.settle(r));
  }

  /** One page of requests, newest first: all of them for an operator, a user's own otherwise. */
  async list(p: Principal, q: RequestListQuery = {}): Promise<RequestView[]> {
    return (await this.page(p, q)).requests;
  }

  async page(p: Principal, q: RequestListQuery = {}): Promise<RequestPage> {
    if (p.kind === 'anonymous') throw new ServiceError('UNAUTHENTICATED', 'authentication needed');
    const dated = { ...q, since: isoTime(q.since, 'since'), until: isoTime(q.until, 'until') };
    const page = await this.storage.requestPage(p.kind === 'operator' ? dated : { ...dated, user: p.user });
    return { requests: page.requests.filter((r) => canSee(p, r)).map((r) => this.view(r)), next: page.next };
  }

  async approve(p: Principal, id: string): Promise<RequestView> {
    requireOperator(p, 'approver');
    return this.view(await this.settle(await this.decide(p, id, 'approved', null)));
  }

  async reject(p: Principal, id: string, reason: string): Promise<RequestView> {
    requireOperator(p, 'approver');
    return this.view(await this.decide(p, id, 'rejected', reason));
  }

  private async decide(p: Principal, id: string, decision: 'approved' | 'rejected', reason: string | null): Promise<RequestRecord> {
    const decided = await this.storage.decide(id, decision, actorName(p), reason, this.now());
    if (decided) return decided;
    const r = await this.storage.getRequest(id);
    if (!r) throw new ServiceError('NOT_FOUND', `no request ${id}`);
    throw new ServiceError('CONFLICT', `request ${id} is ${r.state}, not pending: it was decided already`);
  }

  async revoke(p: Principal, id: string, reason: number): Promise<RequestView> {
    requireOperator(p, 'approver');
    if (!Number.isInteger(reason) || reason < 0 || reason > 10 || reason === 7) throw new ServiceError('BAD_REQUEST', 'reason is an RFC 5280 CRLReason code (0-6, 8-10)');
    // Key compromise: whoever held the key may have renewed with it, so its renewals go too.
    const revoked = await this.storage.revoke(id, reason, actorName(p), this.now(), reason === CRL_REASON.keyCompromise);
    if (!revoked) {
      const r = await this.storage.getRequest(id);
      if (!r) throw new ServiceError('NOT_FOUND', `no request ${id}`);
      throw new ServiceError('CONFLICT', `request ${id} is ${r.state}: only an issued certificate can be revoked`);
    }
    await this.publishCrl();
    return this.view(revoked);
  }

  /** Finishes an approved request's issuance if it is still due; returns the request as it now stands. */
  private async settle(r: RequestRecord, profile?: Profile): Promise<RequestRecord> {
    if (r.state === 'approved' || (r.state === 'issuing' && r.updatedAt + this.issueLeaseMs < this.now())) {
      const issued = await this.issue(r, profile);
      if (issued) return issued;
      // Another issuer holds or finished it: show what it did.
      return (await this.storage.getRequest(r.id)) ?? r;
    }
    return r;
  }

  /**
   * Exactly-once issuance: claim (reserves the serial), sign, complete. A crash after the claim
   * leaves the request `issuing`; once the lease runs out any process signs the same serial again.
   * Returns the issued request, or undefined when another issuer has it.
   */
  private async issue(r: RequestRecord, profile?: Profile): Promise<RequestRecord | undefined> {
    const validityDays = (profile ?? (await this.storage.getProfile(r.profile)))?.validityDays ?? 365;
    const now = this.now();
    const notBefore = now - 5 * 60_000;
    const claim = await this.storage.claimIssuance(r.id, { serial: newSerial(), notBefore, notAfter: now + validityDays * DAY }, now, this.issueLeaseMs);
    if (!claim) return undefined;
    return this.signAndComplete(r, claim, new x509.Pkcs10CertificateRequest(r.csr).publicKey);
  }

  /** Signs the claimed certificate and stores it: `issuing -> issued`; undefined when another issuer completed it first. */
  private async signAndComplete(r: RequestRecord, claim: Claim, publicKey: x509.PublicKey): Promise<RequestRecord | undefined> {
    const der = await this.ca.issueDer({
      serial: claim.serial,
      notBefore: new Date(claim.notBefore),
      notAfter: new Date(claim.notAfter),
      // Built from the user's name as one attribute, never parsed back from a DN string.
      subject: userSubject(r.user),
      publicKey,
      template: { kind: 'smartcard-logon', userPrincipalName: r.user, ...(r.sid !== null ? { sid: r.sid } : {}) },
    });
    const record: Omit<CertificateRecord, 'revokedAt' | 'revocationReason'> = {
      serial: claim.serial, requestId: r.id, subject: r.subject, der: Buffer.from(der), notBefore: claim.notBefore, notAfter: claim.notAfter, issuedAt: this.now(),
    };
    return this.storage.completeIssuance(r.id, record, `ca:${this.ca.name}`);
  }

  /** Finishes what crashed or was approved elsewhere (returns how many it issued) and drops stale challenges. */
  async sweep(): Promise<number> {
    let n = 0;
    const now = this.now();
    for (const id of await this.storage.issuanceBacklog(now, now - this.issueLeaseMs)) {
      const r = await this.storage.getRequest(id);
      if (r && (await this.issue(r))) n++;
    }
    await this.storage.pruneChallenges(now - this.challengeTtlMs);
    await this.storage.pruneLoginThrottle(now - Math.max(this.throttle.windowMs, this.throttle.lockMs));
    let superseded = 0;
    for (const due of await this.storage.supersessionsDue(now)) {
      if (await this.storage.supersede(due.oldSerial, due.renewalId, 'system', now)) superseded++;
    }
    if (superseded > 0) await this.publishCrl();
    return n;
  }

  private view(r: RequestRecord): RequestView {
    const cert = HAS_CERTIFICATE.has(r.state) ? r.certificate : null;
    return {
      id: r.id, kind: r.kind, user: r.user, profile: r.profile, state: r.state, subject: r.subject, cardId: r.cardId, container: r.container,
      createdAt: iso(r.createdAt)!, decidedBy: r.decidedBy, decidedAt: iso(r.decidedAt), reason: r.reason, serial: cert ? r.serial : null,
      notBefore: cert ? iso(r.notBefore) : null, notAfter: cert ? iso(r.notAfter) : null, issuedAt: iso(r.issuedAt), deliveredAt: iso(r.deliveredAt),
      submittedFrom: r.submittedFrom,
      certificate: cert ? toPem(cert, 'CERTIFICATE') : null,
      retryAfter: this.retryAfter(r.state),
    };
  }

  private outcome(r: RequestRecord): EnrollmentOutcome {
    return { id: r.id, state: r.state, reason: r.reason, retryAfter: this.retryAfter(r.state), certificate: HAS_CERTIFICATE.has(r.state) ? r.certificate : null };
  }

  /** Seconds a client should wait before asking again, while the request waits; else null. */
  private retryAfter(state: RequestState): number | null {
    if (state === 'pending') return this.retryAfterSeconds;
    if (state === 'approved' || state === 'issuing') return Math.ceil(this.issueLeaseMs / 1000);
    return null;
  }

  // Collection by the card's holder

  async challenge(cardId: string): Promise<{ nonce: string; expiresAt: string }> {
    if (!CARD_ID_RE.test(cardId)) throw new ServiceError('BAD_REQUEST', "cardId is the card's 16-byte cardid as 32 hex digits");
    const nonce = newSecret('challenge');
    const now = this.now();
    await this.storage.createChallenge(secretHash(nonce), cardId.toLowerCase(), now, now + this.challengeTtlMs);
    return { nonce, expiresAt: new Date(now + this.challengeTtlMs).toISOString() };
  }

  /**
   * What was asked for with the keys on this card: each proof is a signature by one container's
   * key over the challenge, checked against the public key of the requests bound to that
   * container; a request is returned only to whoever proves its key.
   */
  async collect(o: CollectBody): Promise<CollectedRequest[]> {
    const cardId = o.cardId.toLowerCase();
    if (!CARD_ID_RE.test(cardId)) throw new ServiceError('BAD_REQUEST', "cardId is the card's 16-byte cardid as 32 hex digits");
    if (!(await this.storage.consumeChallenge(secretHash(o.nonce), cardId, this.now()))) {
      throw new ServiceError('UNAUTHENTICATED', 'the challenge is unknown, used or expired: ask for a new one');
    }
    const card = await this.cards.get(cardId);
    if (card && (card.state === 'suspended' || card.state === 'lost')) {
      throw new ServiceError('FORBIDDEN', `card ${cardId} is ${card.state}: nothing is handed out for it${card.state === 'suspended' ? ' until an operator resumes it' : ''}`);
    }
    const out: CollectedRequest[] = [];
    for (const proof of o.proofs) {
      const signature = Buffer.from(proof.signature, 'base64');
      const message = collectMessage(o.nonce, cardId, proof.container);
      for (const candidate of await this.storage.listRequests({ cardId, container: proof.container })) {
        const spki = new Uint8Array(new x509.Pkcs10CertificateRequest(candidate.csr).publicKey.rawData);
        if (!verifyWithKey(spki, signature, message)) continue;
        const r = await this.settle(candidate);
        let deliveryTicket: string | null = null;
        if (r.state === 'issued') {
          deliveryTicket = newSecret('ticket');
          await this.storage.setDeliveryTicket(r.id, secretHash(deliveryTicket), this.now() + this.ticketTtlMs);
        }
        out.push({ ...this.view(r), deliveryTicket });
      }
    }
    return out;
  }

  /** The agent installed and linked the certificate: issued -> delivered. */
  async delivered(id: string, report: DeliveryReport): Promise<RequestView> {
    const r = await this.storage.getRequest(id);
    if (!r) throw new ServiceError('NOT_FOUND', `no request ${id}`);
    const details = { ...(report.host ? { host: report.host } : {}), ...(report.thumbprint ? { thumbprint: report.thumbprint } : {}), ...(report.agentVersion ? { agentVersion: report.agentVersion } : {}) };
    const deliveredAt = await this.storage.markDelivered(id, secretHash(report.ticket), `card-holder:${r.user}`, this.now(), details);
    if (deliveredAt === undefined) throw new ServiceError('UNAUTHENTICATED', 'the delivery ticket does not match this request, or it expired: collect again');
    // A delivered renewal superseded its predecessor (storage did it with the delivery): the CRL says so.
    if (r.renews !== null) await this.publishCrl();
    return this.view({ ...r, state: 'delivered', deliveredAt });
  }

  // CA material

  caCertificates(): x509.X509Certificate[] {
    return this.ca.chain();
  }

  /** The current CRL (revocation.ts). */
  crl(): Promise<Buffer> {
    return this.revocation.crl();
  }

  /** Signs and stores a new CRL from the revocations as they now stand (holds included, released holds left out). */
  publishCrl(): Promise<Buffer> {
    return this.revocation.publishCrl();
  }

  async workstations(p: Principal): Promise<WorkstationView[]> {
    requireOperator(p);
    return (await this.storage.workstations()).map((w) => ({ ...w, lastContact: new Date(w.lastContact).toISOString() }));
  }

  /** The audit log, oldest first (the API) or `newestFirst` (the console). */
  async audit(p: Principal, q: AuditListQuery & { newestFirst?: boolean }): Promise<AuditEntryView[]> {
    requireOperator(p);
    const entries = await this.storage.queryAudit({ ...q, since: isoTime(q.since, 'since'), until: isoTime(q.until, 'until') });
    return entries.map((e) => ({ ...e, at: new Date(e.at).toISOString() }));
  }
}

export function tokenView(t: TokenRecord): TokenView {
  return {
    id: t.id, user: t.user, profile: t.profile, createdBy: t.createdBy, createdAt: iso(t.createdAt)!, expiresAt: iso(t.expiresAt)!, usedAt: iso(t.usedAt),
    requestId: t.requestId, revokedAt: iso(t.revokedAt), sid: t.sid, replacesCard: t.replacesCard,
  };
}

function profileView(p: Profile): ProfileView {
  return {
    name: p.name, approval: p.approval, validityDays: p.validityDays, renewalWindowDays: p.renewalWindowDays, supersedeGraceDays: p.supersedeGraceDays,
    allowSoftwareKeys: p.allowSoftwareKeys, updatedAt: p.updatedAt, updatedBy: p.updatedBy,
  };
}
