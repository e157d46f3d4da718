/**
 * The wire contract between the enrollment service and everyone who talks to it (agents, the
 * admin CLI, the demo, the benches): the paths, the JSON shapes both sides read and write, and
 * the message a card signs to prove it holds a container's key. One definition of each: the
 * service's routes (api.ts) and the typed client (client.ts) are both written against this file,
 * which imports nothing of the service's implementation.
 */

export const API_PREFIX = '/api/v1';
/** RFC 7030 §3.2.2: EST lives under this well-known prefix. */
export const EST_PREFIX = '/.well-known/est';

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** Every JSON API operation by its OpenAPI operationId: method and path under API_PREFIX. */
export const ROUTES = {
  health: { method: 'GET', path: '/health' },
  login: { method: 'POST', path: '/sessions' },
  logout: { method: 'DELETE', path: '/sessions/current' },
  createOperator: { method: 'POST', path: '/operators' },
  listProfiles: { method: 'GET', path: '/profiles' },
  updateProfile: { method: 'PUT', path: '/profiles/:name' },
  createToken: { method: 'POST', path: '/tokens' },
  listTokens: { method: 'GET', path: '/tokens' },
  revokeToken: { method: 'DELETE', path: '/tokens/:id' },
  submitRequest: { method: 'POST', path: '/requests' },
  listRequests: { method: 'GET', path: '/requests' },
  getRequest: { method: 'GET', path: '/requests/:id' },
  approveRequest: { method: 'POST', path: '/requests/:id/approve' },
  rejectRequest: { method: 'POST', path: '/requests/:id/reject' },
  revokeRequest: { method: 'POST', path: '/requests/:id/revoke' },
  reportDelivery: { method: 'POST', path: '/requests/:id/delivered' },
  collectChallenge: { method: 'POST', path: '/collect/challenge' },
  collect: { method: 'POST', path: '/collect' },
  queryAudit: { method: 'GET', path: '/audit' },
  listWorkstations: { method: 'GET', path: '/workstations' },
  caCertificates: { method: 'GET', path: '/ca/certificates' },
  crl: { method: 'GET', path: '/crl' },
  openapi: { method: 'GET', path: '/openapi.json' },
  // Card administrator keys and PIN unblock (issue 14)
  cardAdminKey: { method: 'POST', path: '/cards/admin-key' },
  confirmCardAdminKey: { method: 'POST', path: '/cards/admin-key/confirm' },
  unblockResponse: { method: 'POST', path: '/cards/unblock-response' },
  createUnblockTicket: { method: 'POST', path: '/cards/unblock-tickets' },
  unblockResponseWithTicket: { method: 'POST', path: '/cards/unblock-response/ticket' },
  rotateAdminMasterKey: { method: 'POST', path: '/admin-keys/rotate' },
  retireCard: { method: 'POST', path: '/cards/retire' },
  // Cards as records and their life cycle (issue 13)
  listCards: { method: 'GET', path: '/cards' },
  getCard: { method: 'GET', path: '/cards/:id' },
  transitionCard: { method: 'POST', path: '/cards/:id/transitions' },
  expiringCertificates: { method: 'GET', path: '/certificates/expiring' },
  // Card life cycle (issue 13)
  renewCertificate: { method: 'POST', path: '/renewals' },
} as const satisfies Record<string, { method: Method; path: string }>;

export type OperationId = keyof typeof ROUTES;

/**
 * Where relying parties fetch revocation information, at the root of the service and of its
 * plain-HTTP revocation listener (RFC 5280 §4.2.1.13 and §4.2.2.1 expect http URIs; RFC 6960
 * Appendix A has OCSP over HTTP): the CRL (DER, application/pkix-crl), the OCSP responder (POST
 * application/ocsp-request, or GET /ocsp/<base64 of the DER request>), and the CA certificate
 * (DER, application/pkix-cert) that certificates name as caIssuers.
 */
export const REVOCATION_PATHS = { crl: '/crl', ocsp: '/ocsp', caCertificate: '/ca.crt' } as const;
export const OCSP_REQUEST_TYPE = 'application/ocsp-request';
export const OCSP_RESPONSE_TYPE = 'application/ocsp-response';
/** The largest OCSP request accepted: one for MAX_REQUESTS certificates with a nonce and a signature is well under it. */
export const OCSP_BODY_LIMIT = 4096;

/** The absolute path of an operation, its `:name` parameters filled in (URL-encoded). */
export function apiPath(op: OperationId, params: Record<string, string> = {}): string {
  return API_PREFIX + ROUTES[op].path.replace(/:([A-Za-z]+)/g, (_, name: string) => {
    const value = params[name];
    if (value === undefined) throw new TypeError(`${op}: missing path parameter ${name}`);
    return encodeURIComponent(value);
  });
}

// Requests

/**
 * pending -> approved -> issuing -> issued -> delivered, or pending -> rejected; an issued or
 * delivered request becomes revoked. `issuing` holds a lease so a crashed issuer is taken over.
 */
export type RequestState = 'pending' | 'approved' | 'issuing' | 'issued' | 'delivered' | 'rejected' | 'revoked';
export const REQUEST_STATES: readonly RequestState[] = ['pending', 'approved', 'issuing', 'issued', 'delivered', 'rejected', 'revoked'];
/** A first request (enrollment token) or a renewal (EST simplereenroll with the current certificate). */
export type RequestKind = 'enroll' | 'reenroll';

export interface RequestView {
  id: string;
  kind: RequestKind;
  user: string;
  profile: string;
  state: RequestState;
  subject: string;
  cardId: string | null;
  container: string | null;
  createdAt: string;
  decidedBy: string | null;
  decidedAt: string | null;
  reason: string | null;
  serial: string | null;
  notBefore: string | null;
  notAfter: string | null;
  issuedAt: string | null;
  deliveredAt: string | null;
  /** The client address the request came from, when the service knows it (requests from before migration 6 have none). */
  submittedFrom?: string | null;
  /** PEM, once issued. */
  certificate: string | null;
  /** Seconds to wait before asking again, while the request waits for a decision or the CA. */
  retryAfter: number | null;
}

/** POST /requests: a PKCS#10 request (PEM or base64 DER), bound to a card's container when given. */
export interface SubmitBody {
  csr: string;
  /** The card's 16-byte cardid as 32 hex digits; given together with `container`. */
  cardId?: string;
  container?: string;
}

/** GET /requests query: newest first, one page of at most `limit` (default 1000) requests. */
export interface RequestListQuery {
  state?: RequestState;
  user?: string;
  cardId?: string;
  /** Submitted at or after `since` and before `until` (ISO 8601 date-times). */
  since?: string;
  until?: string;
  limit?: number;
  /** Where the previous page stopped: the `next` of a RequestPage. */
  cursor?: string;
}

/**
 * The header of a GET /requests answer when more requests follow: the cursor of the next page.
 * Absent on the last page, so a list is never cut short silently.
 */
export const NEXT_CURSOR_HEADER = 'x-next-cursor';

/** One page of requests, newest first; `next` is null on the last page. */
export interface RequestPage {
  requests: RequestView[];
  next: string | null;
}

export interface RejectBody {
  reason: string;
}

export interface RevokeBody {
  /** RFC 5280 §5.3.1 CRLReason code (0-6, 8-10); default 0, unspecified. */
  reason?: number;
}

/** POST /requests/:id/delivered: the agent installed (and linked) the certificate. */
export interface DeliveryReport {
  /** The delivery ticket `collect` handed out with the certificate. */
  ticket: string;
  /** The workstation's host name and the agent's version: the service keeps each one's last contact. */
  host?: string;
  thumbprint?: string;
  agentVersion?: string;
}

// Collection by the card's holder

export interface ChallengeBody {
  cardId: string;
}

export interface Challenge {
  nonce: string;
  expiresAt: string;
}

export interface CollectProof {
  container: string;
  /** base64 signature by the container's key over `collectMessage(nonce, cardId, container)`. */
  signature: string;
}

export interface CollectBody {
  cardId: string;
  nonce: string;
  proofs: CollectProof[];
}

export interface CollectedRequest extends RequestView {
  /** Present with an issued certificate: proves the delivery report comes from the card's holder. */
  deliveryTicket: string | null;
}

/**
 * A container name as the service accepts it: printable ASCII without spaces (Windows' container
 * names are GUIDs, often in braces, and cardlink's are `lr-<uuid>`), at most 39 characters as a
 * GIDS container name allows. Nothing an operator's terminal would interpret.
 */
export const CONTAINER_NAME_RE = /^[A-Za-z0-9{}._-]{1,39}$/;

/**
 * The challengePassword attribute (PKCS#9, RFC 2985 §5.4.1) a renewal request carries to bind its
 * new key to the card of the certificate it renews: a fresh collect challenge for that card's
 * cardid, the card, and the container the new key lives in. The request's own signature, made by
 * the new key, is the proof, the way a collect proof is a signature over the challenge.
 */
export function renewalBinding(nonce: string, cardId: string, container: string): string {
  return `cardlink-renew v1 ${nonce} ${cardId.toLowerCase()} ${container}`;
}

/**
 * POST /renewals: a renewal request (PKCS#10 with the card binding `renewalBinding`, signed by the
 * new key) submitted by the holder of the current certificate `serial`, who proves it by signing
 * `renewalProof(serial, csr)` with the current key on the card. EST simplereenroll proves the
 * same with TLS client authentication, which needs the private key in the TLS stack; a key that
 * lives on a card can sign this message instead: like RFC 7030 §3.5's linking of identity and
 * proof of possession, the signature covers the request itself (docs/sources.md#rfc7030).
 */
export interface RenewalBody {
  /** The current certificate's serial number, hex. */
  serial: string;
  /** The renewal request, PEM or base64 DER; it must carry the card binding. */
  csr: string;
  /** base64 signature by the current certificate's key over `renewalProof(serial, csrDer)` (SHA-256; RSA PKCS#1 v1.5 or ECDSA r||s). */
  signature: string;
}

/**
 * The bytes the current key signs to submit a renewal: the serial it renews and the request's DER
 * whole, so the signature covers the new key, the subject and the card binding with its one-time
 * nonce (which the service consumes: a proof cannot be replayed for another request).
 */
export function renewalProof(serial: string, csrDer: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(`cardlink renew v1\n${serial.toLowerCase()}\n`);
  const out = new Uint8Array(head.length + csrDer.length);
  out.set(head);
  out.set(csrDer, head.length);
  return out;
}

/** The bytes a card signs to prove it holds a container's key: bound to the nonce, card and container. */
export function collectMessage(nonce: string, cardId: string, container: string): Uint8Array {
  return new TextEncoder().encode(`cardlink collect v1\n${nonce}\n${cardId.toLowerCase()}\n${container}`);
}

// Operators, profiles, tokens

export interface Credentials {
  username: string;
  password: string;
}

export interface Session {
  token: string;
  expiresAt: string;
}

/** viewer < approver < admin; each role may do what the ones before it may (auth.ts requireOperator). */
export const OPERATOR_ROLES = ['viewer', 'approver', 'admin'] as const;
export type OperatorRole = (typeof OPERATOR_ROLES)[number];

export interface OperatorView {
  username: string;
  role: OperatorRole;
}

/** POST /operators: a new operator, `viewer` unless a role is given. */
export interface NewOperator extends Credentials {
  role?: OperatorRole;
}

export type Approval = 'automatic' | 'operator';

export interface ProfileView {
  name: string;
  approval: Approval;
  validityDays: number;
  /** A certificate may be renewed only in its last `renewalWindowDays` days. */
  renewalWindowDays: number;
  /**
   * How long a renewed certificate stays valid next to its successor when the successor is not
   * reported delivered: then it is revoked as superseded. Delivery revokes it at once.
   */
  supersedeGraceDays: number;
  /** Whether a renewal may bring a key that is not proven to sit on the same card (EST clients with software keys). */
  allowSoftwareKeys: boolean;
  /** Milliseconds since the epoch. */
  updatedAt: number;
  updatedBy: string;
}

export interface ProfileChange {
  approval?: Approval;
  validityDays?: number;
  renewalWindowDays?: number;
  supersedeGraceDays?: number;
  allowSoftwareKeys?: boolean;
}

/** POST /tokens. */
export interface NewToken {
  /** User principal name, e.g. alice@example.com (local@domain, at most 256 characters, no spaces, commas or controls). */
  user: string;
  /** Default `DEFAULT_PROFILE`. */
  profile?: string;
  ttlSeconds?: number;
  /**
   * The user's security identifier in the directory, S-1-5-21-<domain>-<RID>: the CA puts it in the
   * SID extension, the strong mapping domain controllers enforce (KB5014754). Renewals keep it.
   */
  sid?: string;
}

export const DEFAULT_PROFILE = 'smartcard-logon';
/** The built-in profile of a lost card's stand-in: short-lived, issued at once, never renewed. */
export const TEMPORARY_PROFILE = 'temporary-card';

export interface TokenView {
  id: string;
  user: string;
  profile: string;
  createdBy: string;
  createdAt: string;
  expiresAt: string;
  usedAt: string | null;
  requestId: string | null;
  /** When an operator revoked it (it can no longer enroll), or null. */
  revokedAt: string | null;
  /** The SID its certificates carry, or null. */
  sid: string | null;
  /** The lost card this token replaces, or null. */
  replacesCard: string | null;
}

/** A new token: its secret is in the answer once and nowhere else. */
export interface CreatedToken extends TokenView {
  token: string;
}

// Audit, CA, health

export interface AuditListQuery {
  actor?: string;
  action?: string;
  subject?: string;
  /** ISO 8601 date-times. */
  since?: string;
  until?: string;
  limit?: number;
}

/** GET /workstations: each workstation's agent as the service last heard from it (a delivery report). */
export interface WorkstationView {
  host: string;
  agentVersion: string | null;
  lastContact: string;
  lastRequest: string | null;
}

export interface AuditEntryView {
  id: number;
  at: string;
  actor: string;
  action: string;
  subject: string | null;
  details: Record<string, unknown>;
}

export interface CaCertificates {
  /** PEM, issuing CA first. */
  certificates: string[];
}

export interface Health {
  ok: boolean;
}

/** The body of every JSON error answer. */
export interface ErrorBody {
  error: { code: string; message: string };
}

// Card administrator keys and PIN unblock

/** POST /cards/admin-key: the agent asks, with the enrollment token, what key the card should have. */
export interface CardAdminKeyBody {
  /** 32 hex digits. */
  cardId: string;
}

/**
 * The card's own administrator key (hex, 48 digits) under the current master key version, and
 * the keys it may have now (the transport key is version 0), newest first. `upToDate`: the card
 * already has the current key, and no key is sent at all.
 */
export interface CardAdminKey {
  cardId: string;
  keyVersion: number;
  upToDate: boolean;
  newKey: string | null;
  currentKeys: { version: number; key: string }[];
}

/** POST /cards/admin-key/confirm: the card now authenticates with `keyVersion`'s key. */
export interface ConfirmCardAdminKeyBody {
  cardId: string;
  keyVersion: number;
}

export type CardKeyState = 'rekeying' | 'active' | 'retired';

export interface CardKeyView {
  cardId: string;
  user: string;
  state: CardKeyState;
  keyVersion: number;
  pendingVersion: number | null;
  updatedAt: string;
}

/** POST /cards/unblock-response: the 8-byte challenge the card showed, as 16 hex digits. */
export interface UnblockResponseBody {
  cardId: string;
  challenge: string;
}

/** The response to type into the card (16 hex digits); it opens this card for this challenge only. */
export interface UnblockResponse {
  cardId: string;
  challenge: string;
  response: string;
  keyVersion: number;
}

/** POST /cards/unblock-tickets: a one-time ticket an operator gives the user for `card unblock --online`. */
export interface NewUnblockTicket {
  cardId: string;
  ttlSeconds?: number;
}

export interface UnblockTicket {
  cardId: string;
  /** Shown once. */
  ticket: string;
  expiresAt: string;
}

/** POST /cards/unblock-response/ticket: the card's workstation asks itself, with the user's ticket. */
export interface TicketUnblockBody {
  cardId: string;
  challenge: string;
  ticket: string;
}

export interface MasterKeyRotation {
  keyVersion: number;
}

/** POST /cards/retire: the card's challenge, from the operator's workstation where the card is. */
export interface RetireBody {
  cardId: string;
  challenge: string;
}

/** The response for that challenge, and the transport key the card goes back to. */
export interface RetireAnswer {
  cardId: string;
  response: string;
  keyVersion: number;
  transportKey: string;
  state: 'retired';
  /** Serials of the certificates the retirement revoked (cessationOfOperation), in the same transaction. */
  revoked: string[];
}

// Cards as records and their life cycle (issue 13)

/**
 * active -> suspended -> active (certificateHold and its removal), active/suspended -> lost
 * (revoked, a replacement token issued), any -> retired (revoked, the card handed back). The
 * allowed moves are one table, CARD_MOVES in cards.ts.
 */
export type CardState = 'active' | 'suspended' | 'lost' | 'retired';
export const CARD_STATES: readonly CardState[] = ['active', 'suspended', 'lost', 'retired'];
export type CardAction = 'lost' | 'suspend' | 'resume' | 'retire';
export const CARD_ACTIONS: readonly CardAction[] = ['lost', 'suspend', 'resume', 'retire'];
/** The RFC 5280 §5.3.1 reasons a lost card's certificates may be revoked with. */
export type LostReason = 'keyCompromise' | 'cessationOfOperation';
export const LOST_REASONS: readonly LostReason[] = ['keyCompromise', 'cessationOfOperation'];

export interface CardView {
  /** The card's 16-byte cardid, lower-case hex. */
  cardId: string;
  user: string;
  state: CardState;
  createdAt: string;
  updatedAt: string;
  /** The card that replaced this lost one, and the one this card replaces. */
  replacedBy: string | null;
  replaces: string | null;
}

/** GET /cards query: newest first, one page (the next page's cursor in the x-next-cursor header). */
export interface CardListQuery {
  user?: string;
  state?: CardState;
  limit?: number;
  cursor?: string;
}

export interface CardPage {
  cards: CardView[];
  next: string | null;
}

/** good; on-hold (certificateHold, the card is suspended); revoked; expired; not yet valid. */
export type CertificateStatus = 'good' | 'on-hold' | 'revoked' | 'expired' | 'not-yet-valid';

/** One credential of a card: a request bound to it, with its certificate once issued. */
export interface CardCredential {
  requestId: string;
  kind: RequestKind;
  requestState: RequestState;
  profile: string;
  container: string | null;
  subject: string;
  serial: string | null;
  status: CertificateStatus | null;
  /** RFC 5280 reason name, for a revoked or held certificate. */
  revocationReason: string | null;
  notBefore: string | null;
  notAfter: string | null;
  /** The SID the certificate's SID extension (1.3.6.1.4.1.311.25.2) carries, or null when it has none. */
  sidExtension: string | null;
  /** The explicit mapping for the user's altSecurityIdentities (KB5014754): X509:<I>issuer<SR>serial, bytes reversed. */
  strongMapping: string | null;
}

export interface CardHistoryEntry {
  at: string;
  actor: string;
  action: string;
  details: Record<string, unknown>;
}

/** GET /cards/:id: the record, its credentials (oldest first) and its history (the audit entries about it, oldest first). */
export interface CardDetail extends CardView {
  credentials: CardCredential[];
  history: CardHistoryEntry[];
}

/** POST /cards/:id/transitions. */
export interface CardTransitionBody {
  action: CardAction;
  /** lost only: the revocation reason, default keyCompromise. */
  reason?: LostReason;
  /** lost only: the replacement token is for the temporary-card profile. */
  temporary?: boolean;
  /** lost only: how long the replacement token is valid; default 7 days. */
  ttlSeconds?: number;
}

export interface CardTransition {
  card: CardDetail;
  from: CardState;
  to: CardState;
  /** Serials revoked (lost, retire), put on hold (suspend) or released from hold (resume) by this move. */
  revoked: string[];
  held: string[];
  released: string[];
  /** lost: the user's replacement enrollment token, its secret shown once. */
  replacementToken: CreatedToken | null;
}

/** GET /certificates/expiring?days=N: valid certificates whose end is within N days, soonest first. */
export interface ExpiringCertificate {
  serial: string;
  requestId: string;
  cardId: string | null;
  container: string | null;
  user: string;
  profile: string;
  notAfter: string;
  daysLeft: number;
  /** none; waiting (a renewal request is pending or being issued); issued (the successor exists). */
  renewal: 'none' | 'waiting' | 'issued';
  renewalRequestId: string | null;
}
