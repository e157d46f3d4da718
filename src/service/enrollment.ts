import { createPublicKey, randomUUID, verify } from 'node:crypto';
import { toPem } from '../pem.js';
import { x509 } from '../x509.js';
import { actorName, hashPassword, newSecret, PREFIX, secretHash, verifyPassword, type Principal } from './auth.js';
import { newSerial, parseCsr } from './ca/pki.js';
import type { UpstreamCa } from './ca/upstream.js';
import type { Clock } from './clock.js';
import { ServiceError } from './errors.js';
import {
  collectMessage,
  type Approval,
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
  type RequestListQuery,
  type RequestState,
  type RequestView,
  type Session,
  type TokenView,
} from './protocol.js';
import type { CertificateRecord, Profile, RequestRecord, Storage, TokenRecord } from './storage/storage.js';
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
}

/** The default profiles made on first start; operators change their policy through the API. */
const DEFAULT_PROFILES: { name: string; approval: Approval; validityDays: number }[] = [
  { name: 'smartcard-logon', approval: 'operator', validityDays: 365 },
  { name: 'smartcard-logon-auto', approval: 'automatic', validityDays: 365 },
];

/** What EST answers a request with: the certificate's DER as stored, never re-read from a view. */
export interface EnrollmentOutcome {
  id: string;
  state: RequestState;
  reason: string | null;
  retryAfter: number | null;
  certificate: Uint8Array | null;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

const USER_RE = /^[^\s@]+@[^\s@]+$/;
const CARD_ID_RE = /^[0-9a-fA-F]{32}$/;

function requireOperator(p: Principal): asserts p is Extract<Principal, { kind: 'operator' }> {
  if (p.kind === 'anonymous') throw new ServiceError('UNAUTHENTICATED', 'log in as an operator first');
  if (p.kind !== 'operator') throw new ServiceError('FORBIDDEN', 'only operators may do this');
}

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
  private readonly ca: UpstreamCa;
  private readonly clock: Clock;
  private readonly retryAfterSeconds: number;
  private readonly sessionTtlMs: number;
  private readonly challengeTtlMs: number;
  private readonly ticketTtlMs: number;
  private readonly issueLeaseMs: number;
  private readonly crlValidityMs: number;

  constructor(o: EnrollmentOptions) {
    this.storage = o.storage;
    this.ca = o.ca;
    this.clock = o.clock;
    this.retryAfterSeconds = o.retryAfterSeconds ?? 3600;
    this.sessionTtlMs = o.sessionTtlMs ?? 8 * HOUR;
    this.challengeTtlMs = o.challengeTtlMs ?? 5 * 60_000;
    this.ticketTtlMs = o.ticketTtlMs ?? 30 * DAY;
    this.issueLeaseMs = o.issueLeaseMs ?? 30_000;
    this.crlValidityMs = o.crlValidityMs ?? 7 * DAY;
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

  /** First start: makes the named operator unless it exists (the password is never logged). */
  async ensureOperator(username: string, password: string): Promise<boolean> {
    if (await this.storage.findOperator(username)) return false;
    try {
      await this.storage.createOperator({ id: randomUUID(), username, passwordHash: await hashPassword(password), createdAt: this.now() }, 'system');
      return true;
    } catch (err) {
      // Another process starting on the same database made it first.
      if (err instanceof ServiceError && err.code === 'CONFLICT') return false;
      throw err;
    }
  }

  // Authentication

  async login(username: string, password: string): Promise<Session> {
    const op = await this.storage.findOperator(username);
    // Hash even for an unknown name, so the answer's timing does not tell which names exist.
    const ok = await verifyPassword(password, op?.passwordHash ?? 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');
    if (!op || !ok) {
      await this.storage.recordAudit(this.now(), 'anonymous', 'session.refused', `operator:${username}`);
      throw new ServiceError('UNAUTHENTICATED', 'wrong operator name or password');
    }
    const token = newSecret('session');
    const now = this.now();
    await this.storage.createSession(secretHash(token), op, now, now + this.sessionTtlMs);
    return { token, expiresAt: new Date(now + this.sessionTtlMs).toISOString() };
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
      return op ? { kind: 'operator', username: op.username, sessionHash: hash } : undefined;
    }
    if (secret.startsWith(PREFIX.enrollment)) {
      const t = await this.storage.tokenByHash(secretHash(secret));
      if (!t) return undefined;
      const usable = t.usedAt === null && t.expiresAt > this.now();
      // A spent token stays the key to the one request it made, so its owner can poll it later.
      if (!usable && t.requestId === null) return undefined;
      return { kind: 'enrollment-token', tokenId: t.id, user: t.user, profile: t.profile, requestId: t.requestId, usable };
    }
    return undefined;
  }

  /** A TLS client certificate (already chain-checked by the caller) to a principal. */
  async fromClientCertificate(serialHex: string): Promise<Principal | undefined> {
    const cert = await this.storage.certificateHolder(serialHex.toLowerCase());
    if (!cert || cert.requestId === null || cert.revokedAt !== null) return undefined;
    const now = this.now();
    if (now < cert.notBefore || now > cert.notAfter) return undefined;
    return { kind: 'certificate', serial: cert.serial, user: cert.user, requestId: cert.requestId };
  }

  async createOperator(p: Principal, username: string, password: string): Promise<OperatorView> {
    requireOperator(p);
    if (!/^[A-Za-z0-9._@-]{1,64}$/.test(username)) throw new ServiceError('BAD_REQUEST', 'an operator name is 1 to 64 letters, digits, or . _ @ -');
    await this.storage.createOperator({ id: randomUUID(), username, passwordHash: await hashPassword(password), createdAt: this.now() }, actorName(p));
    return { username };
  }

  // Profiles and tokens

  async profiles(p: Principal): Promise<ProfileView[]> {
    requireOperator(p);
    return (await this.storage.listProfiles()).map(profileView);
  }

  async updateProfile(p: Principal, name: string, change: ProfileChange): Promise<ProfileView> {
    requireOperator(p);
    if (change.validityDays !== undefined && (change.validityDays < 1 || change.validityDays > 3650)) {
      throw new ServiceError('BAD_REQUEST', 'validityDays must be between 1 and 3650');
    }
    return profileView(await this.storage.updateProfile(name, change, actorName(p), this.now()));
  }

  async createToken(p: Principal, o: Required<Pick<NewToken, 'user' | 'profile'>> & NewToken): Promise<CreatedToken> {
    requireOperator(p);
    if (!USER_RE.test(o.user)) throw new ServiceError('BAD_REQUEST', `user '${o.user}' is not a user principal name like alice@example.com`);
    if (!(await this.storage.getProfile(o.profile))) throw new ServiceError('BAD_REQUEST', `no profile '${o.profile}'`);
    const ttl = o.ttlSeconds ?? 86_400;
    if (ttl < 60 || ttl > 30 * 86_400) throw new ServiceError('BAD_REQUEST', 'ttlSeconds must be between 60 and 2592000 (30 days)');
    const token = newSecret('enrollment');
    const now = this.now();
    const rec: TokenRecord = { id: randomUUID(), user: o.user, profile: o.profile, createdBy: actorName(p), createdAt: now, expiresAt: now + ttl * 1000, usedAt: null, requestId: null };
    await this.storage.createToken(rec, secretHash(token));
    return { ...this.tokenView(rec), token };
  }

  async listTokens(p: Principal): Promise<TokenView[]> {
    requireOperator(p);
    return (await this.storage.listTokens()).map((t) => this.tokenView(t));
  }

  private tokenView(t: TokenRecord): TokenView {
    return { id: t.id, user: t.user, profile: t.profile, createdBy: t.createdBy, createdAt: iso(t.createdAt)!, expiresAt: iso(t.expiresAt)!, usedAt: iso(t.usedAt), requestId: t.requestId };
  }

  // Requests

  /** The JSON API's submit: a new request with an enrollment token, or the same request again. */
  async submit(p: Principal, o: { csr: Uint8Array | string; cardId?: string; container?: string }): Promise<RequestView> {
    return this.view(await this.submitRecord(p, o));
  }

  /** EST simpleenroll (RFC 7030 §4.2.1): the same use case, answered with the stored DER. */
  async simpleEnroll(p: Principal, csr: Uint8Array | string): Promise<EnrollmentOutcome> {
    return this.outcome(await this.submitRecord(p, { csr }));
  }

  /**
   * A new request with an enrollment token, or the same request again: sending the identical CSR
   * returns the request it made, with its certificate once there is one.
   */
  private async submitRecord(p: Principal, o: { csr: Uint8Array | string; cardId?: string; container?: string }): Promise<RequestRecord> {
    if (p.kind === 'anonymous') throw new ServiceError('UNAUTHENTICATED', 'an enrollment token is needed to submit a request');
    if (p.kind !== 'enrollment-token') throw new ServiceError('FORBIDDEN', 'requests are submitted with an enrollment token');
    const parsed = await parseCsr(o.csr);
    const existing = await this.storage.requestByCsrHash(parsed.csrHash);
    if (existing) {
      if (!canSee(p, existing)) throw new ServiceError('CONFLICT', 'this certificate request was already submitted with another token');
      return this.settle(existing);
    }
    if (!p.usable) throw new ServiceError('TOKEN_INVALID', 'the enrollment token was already used or has expired: ask an operator for a new one');
    if ((o.cardId === undefined) !== (o.container === undefined)) throw new ServiceError('BAD_REQUEST', 'give both cardId and container, or neither');
    if (o.cardId !== undefined && !CARD_ID_RE.test(o.cardId)) throw new ServiceError('BAD_REQUEST', 'cardId is the card\'s 16-byte cardid as 32 hex digits');
    if (o.container !== undefined && (o.container.length === 0 || o.container.length > 39)) throw new ServiceError('BAD_REQUEST', 'a container name has 1 to 39 characters');
    const profile = await this.storage.getProfile(p.profile);
    if (!profile) throw new ServiceError('CONFIG', `the token's profile '${p.profile}' no longer exists`);
    const auto = profile.approval === 'automatic';
    const rec = await this.storage.submitRequest(
      {
        id: randomUUID(), kind: 'enroll', user: p.user, profile: profile.name, csr: parsed.der, csrHash: parsed.csrHash, keyHash: parsed.keyHash,
        subject: `CN=${p.user}`, cardId: o.cardId?.toLowerCase() ?? null, container: o.container ?? null, renews: null,
        state: auto ? 'approved' : 'pending', createdBy: actorName(p), decidedBy: auto ? `policy:${profile.name}` : null,
      },
      this.now(),
      { id: p.tokenId },
    );
    return this.settle(rec, profile);
  }

  /** EST simplereenroll (RFC 7030 §4.2.2): a holder of a valid certificate asks for its successor. */
  async simpleReenroll(p: Principal, csrInput: Uint8Array | string): Promise<EnrollmentOutcome> {
    if (p.kind === 'anonymous') throw new ServiceError('UNAUTHENTICATED', 're-enrollment needs the current certificate as TLS client certificate');
    if (p.kind !== 'certificate') throw new ServiceError('FORBIDDEN', 're-enrollment needs the current certificate as TLS client certificate');
    const parsed = await parseCsr(csrInput);
    const existing = await this.storage.requestByCsrHash(parsed.csrHash);
    if (existing) {
      if (!canSee(p, existing)) throw new ServiceError('CONFLICT', 'this certificate request was already submitted by someone else');
      return this.outcome(await this.settle(existing));
    }
    const current = await this.storage.getRequest(p.requestId);
    if (!current) throw new ServiceError('NOT_FOUND', 'the certificate being renewed has no request');
    // RFC 7030 §4.2.2: the subject stays that of the certificate being renewed (which the CA
    // issued with its request's subject).
    if (new x509.Name(parsed.subject).toString() !== new x509.Name(current.subject).toString()) {
      throw new ServiceError('CSR_INVALID', `the request's subject '${parsed.subject}' differs from the current certificate's '${current.subject}'`);
    }
    const profile = await this.storage.getProfile(current.profile);
    if (!profile) throw new ServiceError('CONFIG', `profile '${current.profile}' no longer exists`);
    const auto = profile.approval === 'automatic';
    const rec = await this.storage.submitRequest(
      {
        id: randomUUID(), kind: 'reenroll', user: p.user, profile: profile.name, csr: parsed.der, csrHash: parsed.csrHash, keyHash: parsed.keyHash,
        subject: current.subject, cardId: current.cardId, container: current.container, renews: p.serial,
        state: auto ? 'approved' : 'pending', createdBy: actorName(p), decidedBy: auto ? `policy:${profile.name}` : null,
      },
      this.now(),
    );
    return this.outcome(await this.settle(rec, profile));
  }

  async get(p: Principal, id: string): Promise<RequestView> {
    if (p.kind === 'anonymous') throw new ServiceError('UNAUTHENTICATED', 'authentication needed');
    const r = await this.storage.getRequest(id);
    if (!r || !canSee(p, r)) throw new ServiceError('NOT_FOUND', `no request ${id}`);
    return this.view(await this.settle(r));
  }

  async list(p: Principal, q: RequestListQuery = {}): Promise<RequestView[]> {
    if (p.kind === 'anonymous') throw new ServiceError('UNAUTHENTICATED', 'authentication needed');
    if (p.kind === 'operator') return (await this.storage.listRequests(q)).map((r) => this.view(r));
    const mine = await this.storage.listRequests({ ...q, user: p.user });
    return mine.filter((r) => canSee(p, r)).map((r) => this.view(r));
  }

  async approve(p: Principal, id: string): Promise<RequestView> {
    requireOperator(p);
    return this.view(await this.settle(await this.decide(p, id, 'approved', null)));
  }

  async reject(p: Principal, id: string, reason: string): Promise<RequestView> {
    requireOperator(p);
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
    requireOperator(p);
    if (!Number.isInteger(reason) || reason < 0 || reason > 10 || reason === 7) throw new ServiceError('BAD_REQUEST', 'reason is an RFC 5280 CRLReason code (0-6, 8-10)');
    const revoked = await this.storage.revoke(id, reason, actorName(p), this.now());
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
    const csr = new x509.Pkcs10CertificateRequest(r.csr);
    const cert = await this.ca.issue({
      serial: claim.serial,
      notBefore: new Date(claim.notBefore),
      notAfter: new Date(claim.notAfter),
      subject: r.subject,
      publicKey: csr.publicKey,
      template: { kind: 'smartcard-logon', userPrincipalName: r.user },
    });
    const record: Omit<CertificateRecord, 'revokedAt' | 'revocationReason'> = {
      serial: claim.serial, requestId: r.id, subject: r.subject, der: Buffer.from(cert.rawData), notBefore: claim.notBefore, notAfter: claim.notAfter, issuedAt: this.now(),
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
    return n;
  }

  private view(r: RequestRecord): RequestView {
    const cert = HAS_CERTIFICATE.has(r.state) ? r.certificate : null;
    return {
      id: r.id, kind: r.kind, user: r.user, profile: r.profile, state: r.state, subject: r.subject, cardId: r.cardId, container: r.container,
      createdAt: iso(r.createdAt)!, decidedBy: r.decidedBy, decidedAt: iso(r.decidedAt), reason: r.reason, serial: cert ? r.serial : null,
      notBefore: cert ? iso(r.notBefore) : null, notAfter: cert ? iso(r.notAfter) : null, issuedAt: iso(r.issuedAt), deliveredAt: iso(r.deliveredAt),
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
    return this.view({ ...r, state: 'delivered', deliveredAt });
  }

  // CA material

  caCertificates(): x509.X509Certificate[] {
    return this.ca.chain();
  }

  /** The current CRL, re-signed (with the next number) when it is about to go stale. */
  async crl(): Promise<Buffer> {
    const latest = await this.storage.latestCrl();
    if (latest && latest.nextUpdate - this.now() > this.crlValidityMs / 2) return latest.der;
    return this.publishCrl();
  }

  private async publishCrl(): Promise<Buffer> {
    const now = this.now();
    const revoked = await this.storage.revokedCertificates();
    const { der } = await this.storage.publishCrl(now, async (number) => ({
      der: await this.ca.signCrl({
        number,
        thisUpdate: new Date(now),
        nextUpdate: new Date(now + this.crlValidityMs),
        entries: revoked.map((c) => ({ serial: c.serial, revokedAt: new Date(c.revokedAt!), reason: c.revocationReason ?? 0 })),
      }),
      nextUpdate: now + this.crlValidityMs,
    }));
    return der;
  }

  async workstations(p: Principal): Promise<WorkstationView[]> {
    requireOperator(p);
    return (await this.storage.workstations()).map((w) => ({ ...w, lastContact: new Date(w.lastContact).toISOString() }));
  }

  async audit(p: Principal, q: AuditListQuery): Promise<AuditEntryView[]> {
    requireOperator(p);
    const time = (iso: string | undefined, name: string): number | undefined => {
      if (iso === undefined) return undefined;
      const ms = Date.parse(iso);
      if (Number.isNaN(ms)) throw new ServiceError('BAD_REQUEST', `${name} is an ISO 8601 date-time`);
      return ms;
    };
    const entries = await this.storage.queryAudit({ ...q, since: time(q.since, 'since'), until: time(q.until, 'until') });
    return entries.map((e) => ({ ...e, at: new Date(e.at).toISOString() }));
  }
}

function profileView(p: Profile): ProfileView {
  return { name: p.name, approval: p.approval, validityDays: p.validityDays, updatedAt: p.updatedAt, updatedBy: p.updatedBy };
}
