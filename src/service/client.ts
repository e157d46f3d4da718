/**
 * The typed client of the enrollment service: one method per operation of the JSON API, each
 * with the request and answer types of protocol.ts. The agent, the admin CLI, the demo and the
 * benches speak to the service through this class only; it loads no server code (no Fastify,
 * no storage), just node:https.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { CardlinkError } from '../errors.js';
import {
  apiPath,
  NEXT_CURSOR_HEADER,
  ROUTES,
  type AuditEntryView,
  type WorkstationView,
  type AuditListQuery,
  type CaCertificates,
  type CardAdminKey,
  type CardDetail,
  type CardListQuery,
  type CardPage,
  type CardTransition,
  type CardTransitionBody,
  type CardView,
  type ExpiringCertificate,
  type Challenge,
  type CollectBody,
  type CollectedRequest,
  type CreatedToken,
  type Credentials,
  type DeliveryReport,
  type ErrorBody,
  type Health,
  type MasterKeyRotation,
  type NewToken,
  type OperationId,
  type NewOperator,
  type OperatorView,
  type ProfileChange,
  type ProfileView,
  type RequestListQuery,
  type RequestPage,
  type RenewalBody,
  type RequestView,
  type RetireAnswer,
  type Session,
  type SubmitBody,
  type TokenView,
  type UnblockResponse,
  type UnblockTicket,
} from './protocol.js';

export * from './protocol.js';

/**
 * The service answered with an error (`status` and the service's own `serviceCode` say which),
 * could not be reached, did not answer in time, or answered with something unusable. Codes are prefixed so they never collide with
 * the card or transport layers' (a transport TIMEOUT is a card reader's, not the service's).
 */
export type ServiceClientErrorCode = 'SERVICE_REFUSED' | 'SERVICE_UNREACHABLE' | 'SERVICE_TIMEOUT' | 'SERVICE_BAD_ANSWER';

export class ServiceClientError extends CardlinkError {
  declare readonly code: ServiceClientErrorCode;
  /** The HTTP status when the service answered, with the service's own error code. */
  readonly status: number | undefined;
  readonly serviceCode: string | undefined;
  constructor(code: ServiceClientErrorCode, message: string, extra: { status?: number; serviceCode?: string; cause?: unknown } = {}) {
    super(code, message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.status = extra.status;
    this.serviceCode = extra.serviceCode;
  }
}

export interface ClientOptions {
  /** https://host:port of the service. */
  server: string;
  /** PEM of the CA that issued the service's TLS certificate; default: the system's trust store. */
  ca?: string;
  /** TLS client certificate and key (PEM), for EST re-enrollment. */
  cert?: string;
  key?: string;
  /** How many connections to keep open (load tests and benchmarks use more than one). */
  maxSockets?: number;
  /** How long to wait for an answer; default 60 s. */
  timeoutMs?: number;
}

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface RawOptions {
  json?: unknown;
  body?: string | Buffer;
  contentType?: string;
  bearer?: string;
  basic?: { user: string; password: string };
}

/** An answer whose status means something: 200 issued or final, 202 waiting (see `retryAfter`). */
export interface Answer<T> {
  status: number;
  headers: IncomingHttpHeaders;
  /** Seconds from the Retry-After header, when there is one. */
  retryAfter: number | undefined;
  value: T;
}

/** Seconds from a Retry-After header (delta-seconds or an HTTP date), or undefined. */
export function retryAfterSeconds(headers: IncomingHttpHeaders, now = Date.now()): number | undefined {
  const v = headers['retry-after'];
  if (v === undefined) return undefined;
  if (/^\d+$/.test(v)) return Number(v);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

function queryString(q: object): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined) params.set(k, String(v));
  const s = params.toString();
  return s.length > 0 ? `?${s}` : '';
}

interface CallOptions {
  params?: Record<string, string>;
  query?: object;
  bearer?: string;
  json?: unknown;
}

/**
 * HTTPS to the enrollment service with keep-alive. Typed methods turn a non-2xx answer into a
 * ServiceClientError carrying the service's message; `raw` returns status, headers and body as
 * they are (for tests that probe the routes themselves).
 */
export class ServiceClient {
  readonly server: URL;
  private readonly agent: Agent;
  private readonly timeoutMs: number;

  constructor(o: ClientOptions) {
    this.server = new URL(o.server);
    if (this.server.protocol !== 'https:') throw new ServiceClientError('SERVICE_UNREACHABLE', `${o.server}: the service is only spoken to over https://`);
    this.agent = new Agent({ keepAlive: true, maxSockets: o.maxSockets ?? 4, ...(o.ca ? { ca: o.ca } : {}), ...(o.cert ? { cert: o.cert } : {}), ...(o.key ? { key: o.key } : {}) });
    this.timeoutMs = o.timeoutMs ?? 60_000;
  }

  // Operators

  health(): Promise<Health> {
    return this.value('health');
  }

  login(credentials: Credentials): Promise<Session> {
    return this.value('login', { json: credentials });
  }

  async logout(session: string): Promise<void> {
    await this.call('logout', { bearer: session });
  }

  /** A new operator (a viewer unless `role` says otherwise; admin only). */
  createOperator(session: string, credentials: NewOperator): Promise<OperatorView> {
    return this.value('createOperator', { bearer: session, json: credentials });
  }

  profiles(session: string): Promise<ProfileView[]> {
    return this.value('listProfiles', { bearer: session });
  }

  updateProfile(session: string, name: string, change: ProfileChange): Promise<ProfileView> {
    return this.value('updateProfile', { bearer: session, params: { name }, json: change });
  }

  createToken(session: string, token: NewToken): Promise<CreatedToken> {
    return this.value('createToken', { bearer: session, json: token });
  }

  tokens(session: string): Promise<TokenView[]> {
    return this.value('listTokens', { bearer: session });
  }

  /** Withdraws an unused enrollment token (by its id, not its secret): it can no longer enroll. */
  revokeToken(session: string, id: string): Promise<TokenView> {
    return this.value('revokeToken', { bearer: session, params: { id } });
  }

  // Requests

  /** Sends a request with an enrollment token; sending the same CSR again returns its state. */
  submit(token: string, body: SubmitBody): Promise<Answer<RequestView>> {
    return this.call('submitRequest', { bearer: token, json: body });
  }

  /**
   * The first page of requests, newest first (at most `limit`, default 1000): all of them for an
   * operator session, a user's own with their token. `requestPage` says whether more follow.
   */
  async requests(bearer: string, query: RequestListQuery = {}): Promise<RequestView[]> {
    return (await this.requestPage(bearer, query)).requests;
  }

  /** One page of requests, newest first; pass `next` as `cursor` for the page after it (null: the last page). */
  async requestPage(bearer: string, query: RequestListQuery = {}): Promise<RequestPage> {
    const res = await this.call<RequestView[]>('listRequests', { bearer, query });
    const next = res.headers[NEXT_CURSOR_HEADER];
    return { requests: res.value, next: typeof next === 'string' && next.length > 0 ? next : null };
  }

  request(bearer: string, id: string): Promise<Answer<RequestView>> {
    return this.call('getRequest', { bearer, params: { id } });
  }

  approve(session: string, id: string): Promise<RequestView> {
    return this.value('approveRequest', { bearer: session, params: { id } });
  }

  reject(session: string, id: string, reason: string): Promise<RequestView> {
    return this.value('rejectRequest', { bearer: session, params: { id }, json: { reason } });
  }

  /** `reason`: RFC 5280 CRLReason, default 0 (unspecified). */
  revoke(session: string, id: string, reason = 0): Promise<RequestView> {
    return this.value('revokeRequest', { bearer: session, params: { id }, json: { reason } });
  }

  // Collection by the card's holder

  challenge(cardId: string): Promise<Challenge> {
    return this.value('collectChallenge', { json: { cardId } });
  }

  collect(body: CollectBody): Promise<CollectedRequest[]> {
    return this.value('collect', { json: body });
  }

  /** A renewal proven by the current certificate's key (protocol.ts renewalProof); 202 while it waits for an operator. */
  renew(body: RenewalBody): Promise<Answer<RequestView>> {
    return this.call('renewCertificate', { json: body });
  }

  delivered(id: string, report: DeliveryReport): Promise<RequestView> {
    return this.value('reportDelivery', { params: { id }, json: report });
  }

  // Audit and CA

  audit(session: string, query: AuditListQuery = {}): Promise<AuditEntryView[]> {
    return this.value('queryAudit', { bearer: session, query });
  }

  workstations(session: string): Promise<WorkstationView[]> {
    return this.value('listWorkstations', { bearer: session });
  }

  async caCertificates(): Promise<string[]> {
    return (await this.value<CaCertificates>('caCertificates')).certificates;
  }

  /** The current CRL, DER. */
  async crl(): Promise<Buffer> {
    const res = await this.raw(ROUTES.crl.method, apiPath('crl'));
    if (res.status !== 200) throw refused(ROUTES.crl.method, apiPath('crl'), res);
    return res.body;
  }

  openapi(): Promise<Record<string, unknown>> {
    return this.value('openapi');
  }

  // Card administrator keys and PIN unblock

  /** With the user's unspent enrollment token: the key the card should have, and the keys it may have now. */
  cardAdminKey(token: string, cardId: string): Promise<CardAdminKey> {
    return this.value('cardAdminKey', { bearer: token, json: { cardId } });
  }

  confirmCardAdminKey(token: string, cardId: string, keyVersion: number): Promise<{ cardId: string; keyVersion: number; state: string }> {
    return this.value('confirmCardAdminKey', { bearer: token, json: { cardId, keyVersion } });
  }

  /** Operator: the response to a card's unblock challenge (16 hex digits). */
  unblockResponse(session: string, cardId: string, challenge: string): Promise<UnblockResponse> {
    return this.value('unblockResponse', { bearer: session, json: { cardId, challenge } });
  }

  createUnblockTicket(session: string, cardId: string, ttlSeconds?: number): Promise<UnblockTicket> {
    return this.value('createUnblockTicket', { bearer: session, json: { cardId, ...(ttlSeconds !== undefined ? { ttlSeconds } : {}) } });
  }

  /** The user's workstation, with the one-time unblock ticket an operator gave. */
  unblockResponseWithTicket(cardId: string, challenge: string, ticket: string): Promise<UnblockResponse> {
    return this.value('unblockResponseWithTicket', { json: { cardId, challenge, ticket } });
  }

  /** Operator: retire a card (no more unblock) and get what the workstation needs to wipe it. */
  retireCard(session: string, cardId: string, challenge: string): Promise<RetireAnswer> {
    return this.value('retireCard', { bearer: session, json: { cardId, challenge } });
  }

  rotateAdminMasterKey(session: string): Promise<MasterKeyRotation> {
    return this.value('rotateAdminMasterKey', { bearer: session });
  }

  // Cards as records and their life cycle

  /** One page of cards, newest first (all for an operator, the user's own with a token); pass `next` as `cursor` for the page after it. */
  async cardPage(bearer: string, query: CardListQuery = {}): Promise<CardPage> {
    const res = await this.call<CardView[]>('listCards', { bearer, query });
    const next = res.headers[NEXT_CURSOR_HEADER];
    return { cards: res.value, next: typeof next === 'string' && next.length > 0 ? next : null };
  }

  card(bearer: string, cardId: string): Promise<CardDetail> {
    return this.value('getCard', { bearer, params: { id: cardId } });
  }

  /** Operator: lost, suspend, resume or retire a card; lost answers with the user's replacement token. */
  transitionCard(session: string, cardId: string, body: CardTransitionBody): Promise<CardTransition> {
    return this.value('transitionCard', { bearer: session, params: { id: cardId }, json: body });
  }

  /** Operator: certificates valid now that expire within `days` days. */
  expiringCertificates(session: string, days: number): Promise<ExpiringCertificate[]> {
    return this.value('expiringCertificates', { bearer: session, query: { days } });
  }

  // Plumbing

  raw(method: string, path: string, o: RawOptions = {}): Promise<HttpResult> {
    const headers: Record<string, string> = {};
    let body: Buffer | undefined;
    if (o.json !== undefined) {
      body = Buffer.from(JSON.stringify(o.json));
      headers['content-type'] = 'application/json';
    } else if (o.body !== undefined) {
      body = Buffer.isBuffer(o.body) ? o.body : Buffer.from(o.body);
      headers['content-type'] = o.contentType ?? 'application/octet-stream';
    }
    if (body) headers['content-length'] = String(body.length);
    if (o.bearer !== undefined) headers.authorization = `Bearer ${o.bearer}`;
    if (o.basic) headers.authorization = `Basic ${Buffer.from(`${o.basic.user}:${o.basic.password}`).toString('base64')}`;
    return this.send(method, new URL(path, this.server), headers, body, true);
  }

  private send(method: string, url: URL, headers: Record<string, string>, body: Buffer | undefined, mayResend: boolean): Promise<HttpResult> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest(url, { method, headers, agent: this.agent, timeout: this.timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new ServiceClientError('SERVICE_TIMEOUT', `${method} ${url.pathname}: no answer from ${this.server.origin}`)));
      req.on('error', (err) => {
        // A kept-alive connection the service closed (its keep-alive timeout) just as this request
        // went out on it: the request never reached the service, so it goes once more on a new
        // connection (Node's http docs: request.reusedSocket). A card operation between two
        // requests (key generation: seconds) easily outlasts the service's keep-alive.
        if (mayResend && req.reusedSocket && (err as NodeJS.ErrnoException).code === 'ECONNRESET') {
          resolve(this.send(method, url, headers, body, false));
          return;
        }
        reject(err instanceof ServiceClientError ? err : new ServiceClientError('SERVICE_UNREACHABLE', `cannot reach ${this.server.origin}: ${err.message}`, { cause: err }));
      });
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }

  private async value<T>(op: OperationId, o: CallOptions = {}): Promise<T> {
    return (await this.call<T>(op, o)).value;
  }

  /** One JSON operation; 2xx gives the parsed body and status, anything else throws. */
  private async call<T>(op: OperationId, o: CallOptions = {}): Promise<Answer<T>> {
    const path = apiPath(op, o.params) + (o.query ? queryString(o.query) : '');
    const res = await this.raw(ROUTES[op].method, path, { ...(o.bearer !== undefined ? { bearer: o.bearer } : {}), ...(o.json !== undefined ? { json: o.json } : {}) });
    if (res.status < 200 || res.status > 299) throw refused(ROUTES[op].method, path.split('?')[0]!, res);
    const text = res.body.toString('utf8');
    return { status: res.status, headers: res.headers, value: (text.length > 0 ? JSON.parse(text) : undefined) as T, retryAfter: retryAfterSeconds(res.headers) };
  }
}

/** A non-2xx answer as an error carrying the service's own message and code. */
function refused(method: string, path: string, res: HttpResult): ServiceClientError {
  const text = res.body.toString('utf8');
  let message = text.trim();
  let serviceCode: string | undefined;
  try {
    const parsed = JSON.parse(text) as Partial<ErrorBody>;
    if (parsed.error?.message) message = parsed.error.message;
    serviceCode = parsed.error?.code;
  } catch {
    // not JSON: keep the text
  }
  return new ServiceClientError('SERVICE_REFUSED', `${method} ${path}: ${res.status} ${message}`, { status: res.status, ...(serviceCode ? { serviceCode } : {}) });
}
