import { randomUUID, webcrypto } from 'node:crypto';
import { x509 } from '../x509.js';
import { actorName, hashPassword, newSecret, PREFIX, secretHash, verifyPassword, type Principal } from './auth.js';
import { newSerial, parseCsr, toPem } from './ca/pki.js';
import type { UpstreamCa } from './ca/upstream.js';
import type { Clock } from './clock.js';
import { ServiceError } from './errors.js';
import { collectMessage, type CollectedRequest, type RequestView } from './protocol.js';
import type { AuditEntry, AuditQuery, Approval, Profile, RequestQuery, RequestRecord, Storage, TokenRecord } from './storage/storage.js';

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
export const DEFAULT_PROFILES: { name: string; approval: Approval; validityDays: number }[] = [
  { name: 'smartcard-logon', approval: 'operator', validityDays: 365 },
  { name: 'smartcard-logon-auto', approval: 'automatic', validityDays: 365 },
];

export interface TokenView {
  id: string;
  user: string;
  profile: string;
  createdBy: string;
  createdAt: string;
  expiresAt: string;
  usedAt: string | null;
  requestId: string | null;
}

export interface CollectProof {
  container: string;
  /** base64 signature by the container's key over `collectMessage(nonce, cardId, container)`. */
  signature: string;
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

async function verifyWithKey(spki: ArrayBuffer, signature: Uint8Array, data: Uint8Array): Promise<boolean> {
  const pk = new x509.PublicKey(spki);
  const alg = pk.algorithm as { name: string; namedCurve?: string };
  const isRsa = alg.name.startsWith('RSA');
  const params = isRsa ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } : { name: 'ECDSA', namedCurve: alg.namedCurve, hash: 'SHA-256' };
  try {
    const key = await webcrypto.subtle.importKey('spki', spki, isRsa ? params : { name: 'ECDSA', namedCurve: alg.namedCurve! }, false, ['verify']);
    return await webcrypto.subtle.verify(params, key, signature, data);
  } catch {
    return false;
  }
}

/**
 * The enrollment use cases, independent of HTTP: who may do what, the request life cycle, and
 * exactly-once issuance on top of Storage's conditional transitions.
 */
export class EnrollmentService {
  readonly storage: Storage;
  readonly ca: UpstreamCa;
  readonly clock: Clock;
  readonly retryAfterSeconds: number;
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

  async login(username: string, password: string): Promise<{ token: string; expiresAt: string }> {
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
    const cert = await this.storage.certificate(serialHex.toLowerCase());
    if (!cert || cert.requestId === null || cert.revokedAt !== null) return undefined;
    const now = this.now();
    if (now < cert.notBefore || now > cert.notAfter) return undefined;
    const req = await this.storage.getRequest(cert.requestId);
    if (!req) return undefined;
    return { kind: 'certificate', serial: cert.serial, user: req.user, requestId: req.id };
  }

  async createOperator(p: Principal, username: string, password: string): Promise<{ username: string }> {
    requireOperator(p);
    if (!/^[A-Za-z0-9._@-]{1,64}$/.test(username)) throw new ServiceError('BAD_REQUEST', 'an operator name is 1 to 64 letters, digits, or . _ @ -');
    await this.storage.createOperator({ id: randomUUID(), username, passwordHash: await hashPassword(password), createdAt: this.now() }, actorName(p));
    return { username };
  }

  // Profiles and tokens

  async profiles(p: Principal): Promise<Profile[]> {
    requireOperator(p);
    return this.storage.listProfiles();
  }

  async updateProfile(p: Principal, name: string, change: { approval?: Approval; validityDays?: number }): Promise<Profile> {
    requireOperator(p);
    if (change.validityDays !== undefined && (change.validityDays < 1 || change.validityDays > 3650)) {
      throw new ServiceError('BAD_REQUEST', 'validityDays must be between 1 and 3650');
    }
    return this.storage.updateProfile(name, change, actorName(p), this.now());
  }

  async createToken(p: Principal, o: { user: string; profile: string; ttlSeconds?: number }): Promise<TokenView & { token: string }> {
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

  /**
   * A new request with an enrollment token (EST simpleenroll and the JSON API), or the same
   * request again: sending the identical CSR returns the request it made, with its certificate
   * once there is one.
   */
  async submit(p: Principal, o: { csr: Uint8Array | string; cardId?: string; container?: string }): Promise<RequestView> {
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
    return this.settle(rec);
  }

  /** EST simplereenroll: a holder of a valid certificate asks for its successor. */
  async reenroll(p: Principal, csrInput: Uint8Array | string): Promise<RequestView> {
    if (p.kind === 'anonymous') throw new ServiceError('UNAUTHENTICATED', 're-enrollment needs the current certificate as TLS client certificate');
    if (p.kind !== 'certificate') throw new ServiceError('FORBIDDEN', 're-enrollment needs the current certificate as TLS client certificate');
    const parsed = await parseCsr(csrInput);
    const existing = await this.storage.requestByCsrHash(parsed.csrHash);
    if (existing) {
      if (!canSee(p, existing)) throw new ServiceError('CONFLICT', 'this certificate request was already submitted by someone else');
      return this.settle(existing);
    }
    const current = await this.storage.getRequest(p.requestId);
    if (!current) throw new ServiceError('NOT_FOUND', 'the certificate being renewed has no request');
    const cert = await this.storage.certificate(p.serial);
    // RFC 7030 §4.2.2: the subject stays that of the certificate being renewed.
    if (cert && new x509.Name(parsed.subject).toString() !== new x509.Name(cert.subject).toString()) {
      throw new ServiceError('CSR_INVALID', `the request's subject '${parsed.subject}' differs from the current certificate's '${cert.subject}'`);
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
    return this.settle(rec);
  }

  async get(p: Principal, id: string): Promise<RequestView> {
    if (p.kind === 'anonymous') throw new ServiceError('UNAUTHENTICATED', 'authentication needed');
    const r = await this.storage.getRequest(id);
    if (!r || !canSee(p, r)) throw new ServiceError('NOT_FOUND', `no request ${id}`);
    return this.settle(r);
  }

  async list(p: Principal, q: RequestQuery = {}): Promise<RequestView[]> {
    if (p.kind === 'anonymous') throw new ServiceError('UNAUTHENTICATED', 'authentication needed');
    if (p.kind === 'operator') return Promise.all((await this.storage.listRequests(q)).map((r) => this.view(r)));
    const mine = await this.storage.listRequests({ ...q, user: p.user });
    return Promise.all(mine.filter((r) => canSee(p, r)).map((r) => this.view(r)));
  }

  async approve(p: Principal, id: string): Promise<RequestView> {
    requireOperator(p);
    await this.decide(p, id, 'approved', null);
    const r = await this.storage.getRequest(id);
    return this.settle(r!);
  }

  async reject(p: Principal, id: string, reason: string): Promise<RequestView> {
    requireOperator(p);
    await this.decide(p, id, 'rejected', reason);
    return this.view((await this.storage.getRequest(id))!);
  }

  private async decide(p: Principal, id: string, decision: 'approved' | 'rejected', reason: string | null): Promise<void> {
    const r = await this.storage.getRequest(id);
    if (!r) throw new ServiceError('NOT_FOUND', `no request ${id}`);
    if (!(await this.storage.decide(id, decision, actorName(p), reason, this.now()))) {
      const now = await this.storage.getRequest(id);
      throw new ServiceError('CONFLICT', `request ${id} is ${now?.state ?? r.state}, not pending: it was decided already`);
    }
  }

  async revoke(p: Principal, id: string, reason: number): Promise<RequestView> {
    requireOperator(p);
    if (!Number.isInteger(reason) || reason < 0 || reason > 10 || reason === 7) throw new ServiceError('BAD_REQUEST', 'reason is an RFC 5280 CRLReason code (0-6, 8-10)');
    const r = await this.storage.getRequest(id);
    if (!r) throw new ServiceError('NOT_FOUND', `no request ${id}`);
    const serial = await this.storage.revoke(id, reason, actorName(p), this.now());
    if (serial === undefined) throw new ServiceError('CONFLICT', `request ${id} is ${r.state}: only an issued certificate can be revoked`);
    await this.publishCrl();
    return this.view((await this.storage.getRequest(id))!);
  }

  /** Finishes an approved request's issuance if it is still due, then returns its view. */
  private async settle(r: RequestRecord): Promise<RequestView> {
    if (r.state === 'approved' || (r.state === 'issuing' && r.updatedAt + this.issueLeaseMs < this.now())) {
      await this.issue(r.id);
      r = (await this.storage.getRequest(r.id))!;
    }
    return this.view(r);
  }

  /**
   * Exactly-once issuance: claim (reserves the serial), sign, complete. A crash after the claim
   * leaves the request `issuing`; once the lease runs out any process signs the same serial again.
   */
  async issue(id: string): Promise<boolean> {
    const r = await this.storage.getRequest(id);
    if (!r) return false;
    const profile = await this.storage.getProfile(r.profile);
    const now = this.now();
    const notBefore = now - 5 * 60_000;
    const claim = await this.storage.claimIssuance(id, { serial: newSerial(), notBefore, notAfter: now + (profile?.validityDays ?? 365) * DAY }, now, this.issueLeaseMs);
    if (!claim) return false;
    const csr = new x509.Pkcs10CertificateRequest(r.csr);
    const cert = await this.ca.issue({
      serial: claim.serial,
      notBefore: new Date(claim.notBefore),
      notAfter: new Date(claim.notAfter),
      subject: r.subject,
      publicKey: csr.publicKey,
      template: { kind: 'smartcard-logon', userPrincipalName: r.user },
    });
    return this.storage.completeIssuance(
      id,
      { serial: claim.serial, requestId: id, subject: r.subject, der: Buffer.from(cert.rawData), notBefore: claim.notBefore, notAfter: claim.notAfter, issuedAt: this.now() },
      `ca:${this.ca.name}`,
    );
  }

  /** Finishes what crashed or was approved elsewhere (returns how many it issued) and drops stale challenges. */
  async sweep(): Promise<number> {
    let n = 0;
    const now = this.now();
    for (const id of await this.storage.issuanceBacklog(now, now - this.issueLeaseMs)) if (await this.issue(id)) n++;
    await this.storage.pruneChallenges(now - this.challengeTtlMs);
    return n;
  }

  async view(r: RequestRecord): Promise<RequestView> {
    const cert = r.serial !== null && (r.state === 'issued' || r.state === 'delivered' || r.state === 'revoked') ? await this.storage.certificate(r.serial) : undefined;
    const waiting = r.state === 'pending' || r.state === 'approved' || r.state === 'issuing';
    return {
      id: r.id, kind: r.kind, user: r.user, profile: r.profile, state: r.state, subject: r.subject, cardId: r.cardId, container: r.container,
      createdAt: iso(r.createdAt)!, decidedBy: r.decidedBy, decidedAt: iso(r.decidedAt), reason: r.reason, serial: cert ? r.serial : null,
      notBefore: cert ? iso(r.notBefore) : null, notAfter: cert ? iso(r.notAfter) : null, issuedAt: iso(r.issuedAt), deliveredAt: iso(r.deliveredAt),
      certificate: cert ? toPem(cert.der, 'CERTIFICATE') : null,
      retryAfter: waiting ? (r.state === 'pending' ? this.retryAfterSeconds : Math.ceil(this.issueLeaseMs / 1000)) : null,
    };
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
  async collect(o: { cardId: string; nonce: string; proofs: CollectProof[] }): Promise<CollectedRequest[]> {
    const cardId = o.cardId.toLowerCase();
    if (!CARD_ID_RE.test(cardId)) throw new ServiceError('BAD_REQUEST', "cardId is the card's 16-byte cardid as 32 hex digits");
    if (!(await this.storage.consumeChallenge(secretHash(o.nonce), cardId, this.now()))) {
      throw new ServiceError('UNAUTHENTICATED', 'the challenge is unknown, used or expired: ask for a new one');
    }
    const out: CollectedRequest[] = [];
    for (const proof of o.proofs) {
      const signature = Buffer.from(proof.signature, 'base64');
      const message = collectMessage(o.nonce, cardId, proof.container);
      const candidates = (await this.storage.listRequests({ cardId })).filter((r) => r.container === proof.container);
      for (const r of candidates) {
        const spki = new x509.Pkcs10CertificateRequest(r.csr).publicKey.rawData;
        if (!(await verifyWithKey(spki, signature, message))) continue;
        const view = await this.settle(r);
        let deliveryTicket: string | null = null;
        if (view.state === 'issued') {
          deliveryTicket = newSecret('ticket');
          await this.storage.setDeliveryTicket(r.id, secretHash(deliveryTicket), this.now() + this.ticketTtlMs);
        }
        out.push({ ...view, deliveryTicket });
      }
    }
    return out;
  }

  /** The agent installed and linked the certificate: issued -> delivered. */
  async delivered(id: string, ticket: string, details: { host?: string; thumbprint?: string }): Promise<RequestView> {
    const r = await this.storage.getRequest(id);
    if (!r) throw new ServiceError('NOT_FOUND', `no request ${id}`);
    const ok = await this.storage.markDelivered(id, secretHash(ticket), `card-holder:${r.user}`, this.now(), details);
    if (!ok) throw new ServiceError('UNAUTHENTICATED', 'the delivery ticket does not match this request, or it expired: collect again');
    return this.view((await this.storage.getRequest(id))!);
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

  async audit(p: Principal, q: AuditQuery): Promise<AuditEntry[]> {
    requireOperator(p);
    return this.storage.queryAudit(q);
  }
}
