import type { FastifyReply, FastifyRequest } from 'fastify';
import type { CardAdminService } from './card-admin.js';
import type { EnrollmentService } from './enrollment.js';
import { ServiceError } from './errors.js';
import type { App } from './http.js';
import {
  API_PREFIX,
  DEFAULT_PROFILE,
  EST_PREFIX,
  NEXT_CURSOR_HEADER,
  REQUEST_STATES,
  ROUTES,
  type AuditListQuery,
  type CardAdminKeyBody,
  type ChallengeBody,
  type ConfirmCardAdminKeyBody,
  type NewUnblockTicket,
  type TicketUnblockBody,
  type UnblockResponseBody,
  type CollectBody,
  type Credentials,
  type DeliveryReport,
  type NewToken,
  type OperationId,
  type ProfileChange,
  type RejectBody,
  type RenewalBody,
  type RequestListQuery,
  type RetireBody,
  type RevokeBody,
  type SubmitBody,
} from './protocol.js';

/** Who may call a route; the OpenAPI document states it and the authorization tests check it. */
export type Access = 'anonymous' | 'operator' | 'user-or-operator' | 'enrollment-token' | 'card-holder' | 'unblock-ticket';

type Schema = Record<string, unknown>;

/** One JSON API operation; its method and path come from protocol.ts's ROUTES. */
interface Route {
  operationId: Exclude<OperationId, 'openapi'>;
  summary: string;
  access: Access;
  body?: Schema;
  query?: Schema;
  response: { status: number; description: string; schema?: Schema; contentType?: string }[];
  /** Answers whatever credentials come along (see FastifyContextConfig.public); only for read-only public routes. */
  public?: boolean;
  handler(req: FastifyRequest, reply: FastifyReply): Promise<unknown>;
}

const str = { type: 'string' } as const;
const nullableStr = { type: ['string', 'null'] } as const;
/** Every string the service takes is bounded; NUL is refused before validation (http.ts). */
const text = (maxLength: number, extra: Schema = {}): Schema => ({ type: 'string', maxLength, ...extra });
/** Query values arrive as text (ajv does not coerce): integers are given as digits. */
const digits = (description: string): Schema => ({ type: 'string', pattern: '^[0-9]{1,5}$', description });
const CONTAINER = text(39, { minLength: 1, pattern: '^[A-Za-z0-9{}._-]{1,39}$' });
const CARD_ID = { type: 'string', pattern: '^[0-9a-fA-F]{32}$' } as const;
const UPN = text(256, { minLength: 3, description: 'user principal name, e.g. alice@example.com' });
const intOf = (v: unknown): number | undefined => (typeof v === 'string' ? Number(v) : undefined);

const requestSchema: Schema = {
  type: 'object',
  properties: {
    id: str, kind: str, user: str, profile: str, state: { type: 'string', enum: REQUEST_STATES }, subject: str, cardId: nullableStr, container: nullableStr,
    createdAt: str, decidedBy: nullableStr, decidedAt: nullableStr, reason: nullableStr, serial: nullableStr, notBefore: nullableStr,
    notAfter: nullableStr, issuedAt: nullableStr, deliveredAt: nullableStr, certificate: { type: ['string', 'null'], description: 'PEM, once issued' },
    retryAfter: { type: ['integer', 'null'], description: 'seconds to wait before asking again' },
  },
};
const tokenSchema: Schema = {
  type: 'object',
  properties: { id: str, user: str, profile: str, createdBy: str, createdAt: str, expiresAt: str, usedAt: nullableStr, requestId: nullableStr, revokedAt: nullableStr },
};
const profileSchema: Schema = {
  type: 'object',
  properties: {
    name: str, approval: { type: 'string', enum: ['automatic', 'operator'] }, validityDays: { type: 'integer' },
    renewalWindowDays: { type: 'integer', description: 'a certificate renews only in its last days' },
    supersedeGraceDays: { type: 'integer', description: 'days a renewed certificate stays valid when the renewal is not reported delivered' },
    allowSoftwareKeys: { type: 'boolean', description: 'renewals may bring keys not bound to the card' },
    updatedAt: { type: 'integer' }, updatedBy: str,
  },
};
const errorSchema: Schema = { type: 'object', properties: { error: { type: 'object', properties: { code: str, message: str } } } };
const idParam = (req: FastifyRequest, what = 'request'): string => {
  const id = (req.params as { id: string }).id;
  if (!/^[0-9a-f-]{36}$/.test(id)) throw new ServiceError('NOT_FOUND', `no ${what} with that id`);
  return id;
};

function pendingStatus(reply: FastifyReply, view: { retryAfter: number | null }): FastifyReply {
  if (view.retryAfter !== null) reply.code(202).header('retry-after', String(view.retryAfter));
  return reply;
}

const cardIdProp = { type: 'string', pattern: '^[0-9a-fA-F]{32}$' } as const;
const challengeProp = { type: 'string', maxLength: 40, description: '16 hex digits, spaces allowed' } as const;
const unblockResponseSchema: Schema = { type: 'object', properties: { cardId: str, challenge: str, response: str, keyVersion: { type: 'integer' } } };

/** Issue 14: card administrator keys and PIN unblock by challenge/response. */
function cardAdminRoutes(cards: CardAdminService): Route[] {
  return [
    {
      operationId: 'cardAdminKey',
      summary: "The card's own administrator key for the enrolling agent to write (with the key it may have now), or upToDate. Only with the user's unspent enrollment token, only for a card new to the service or already the user's.",
      access: 'enrollment-token',
      body: { type: 'object', required: ['cardId'], additionalProperties: false, properties: { cardId: cardIdProp } },
      response: [{ status: 200, description: 'keys', schema: { type: 'object', properties: { cardId: str, keyVersion: { type: 'integer' }, upToDate: { type: 'boolean' }, newKey: nullableStr, currentKeys: { type: 'array', items: { type: 'object', properties: { version: { type: 'integer' }, key: str } } } } } }],
      handler: async (req) => cards.cardAdminKey(req.principal, (req.body as CardAdminKeyBody).cardId),
    },
    {
      operationId: 'confirmCardAdminKey', summary: 'The agent reports the card now authenticates with the new key: the card is recorded active under that key version.', access: 'enrollment-token',
      body: { type: 'object', required: ['cardId', 'keyVersion'], additionalProperties: false, properties: { cardId: cardIdProp, keyVersion: { type: 'integer', minimum: 1 } } },
      response: [{ status: 200, description: 'recorded', schema: { type: 'object', properties: { cardId: str, keyVersion: { type: 'integer' }, state: str } } }, { status: 409, description: 'no such re-key waiting' }],
      handler: async (req) => {
        const b = req.body as ConfirmCardAdminKeyBody;
        return cards.confirmCardAdminKey(req.principal, b.cardId, b.keyVersion);
      },
    },
    {
      operationId: 'unblockResponse', summary: "The response to a card's unblock challenge (help desk): active cards only, each challenge once, a few per card per hour, audited.", access: 'operator',
      body: { type: 'object', required: ['cardId', 'challenge'], additionalProperties: false, properties: { cardId: cardIdProp, challenge: challengeProp } },
      response: [{ status: 200, description: 'response', schema: unblockResponseSchema }, { status: 409, description: 'card not active, or challenge answered already' }, { status: 429, description: 'too many responses for this card' }],
      handler: async (req) => {
        const b = req.body as UnblockResponseBody;
        return cards.unblockResponse(req.principal, b.cardId, b.challenge);
      },
    },
    {
      operationId: 'createUnblockTicket', summary: 'A one-time ticket (shown once) with which the user unblocks this card online.', access: 'operator',
      body: { type: 'object', required: ['cardId'], additionalProperties: false, properties: { cardId: cardIdProp, ttlSeconds: { type: 'integer' } } },
      response: [{ status: 201, description: 'created', schema: { type: 'object', properties: { cardId: str, ticket: str, expiresAt: str } } }],
      handler: async (req, reply) => {
        const b = req.body as NewUnblockTicket;
        return reply.code(201).send(await cards.createUnblockTicket(req.principal, b.cardId, b.ttlSeconds));
      },
    },
    {
      operationId: 'unblockResponseWithTicket', summary: "The response to the card's challenge, for `card unblock --online`: spends the user's one-time unblock ticket.", access: 'unblock-ticket',
      body: { type: 'object', required: ['cardId', 'challenge', 'ticket'], additionalProperties: false, properties: { cardId: cardIdProp, challenge: challengeProp, ticket: { type: 'string', maxLength: 100 } } },
      response: [{ status: 200, description: 'response', schema: unblockResponseSchema }],
      handler: async (req) => {
        const b = req.body as TicketUnblockBody;
        return cards.unblockResponseWithTicket(b.cardId, b.challenge, b.ticket);
      },
    },
    {
      operationId: 'rotateAdminMasterKey', summary: 'A new administrator master key version; every card is re-keyed to it on its next enrollment.', access: 'operator',
      response: [{ status: 200, description: 'rotated', schema: { type: 'object', properties: { keyVersion: { type: 'integer' } } } }],
      handler: async (req) => cards.rotateMasterKey(req.principal),
    },
    {
      operationId: 'retireCard', summary: "Retires a card whose user left: no more unblock; the response to the card's challenge and the transport key, so the operator's workstation wipes it. Audited.", access: 'operator',
      body: { type: 'object', required: ['cardId', 'challenge'], additionalProperties: false, properties: { cardId: cardIdProp, challenge: challengeProp } },
      response: [{ status: 200, description: 'retired', schema: { type: 'object', properties: { cardId: str, response: str, keyVersion: { type: 'integer' }, transportKey: str, state: str } } }, { status: 409, description: 'not active, or challenge answered already' }],
      handler: async (req) => {
        const b = req.body as RetireBody;
        return cards.retireCard(req.principal, b.cardId, b.challenge);
      },
    },
  ];
}

function apiRoutes(service: EnrollmentService): Route[] {
  return [
    {
      operationId: 'health', summary: 'Liveness: the service answers and reaches its storage.', access: 'anonymous', public: true,
      response: [{ status: 200, description: 'up', schema: { type: 'object', properties: { ok: { type: 'boolean' } } } }],
      handler: async () => service.health(),
    },
    {
      operationId: 'login', summary: 'Operator login: a session token for the Authorization: Bearer header.', access: 'anonymous',
      body: { type: 'object', required: ['username', 'password'], additionalProperties: false, properties: { username: text(64, { minLength: 1 }), password: text(1024) } },
      response: [
        { status: 200, description: 'session', schema: { type: 'object', properties: { token: str, expiresAt: str } } },
        { status: 401, description: 'wrong name or password' },
        { status: 429, description: 'too many failed logins for this operator or from this address: locked until Retry-After' },
      ],
      handler: async (req) => {
        const b = req.body as Credentials;
        return service.login(b.username, b.password, req.ip);
      },
    },
    {
      operationId: 'logout', summary: 'Ends the calling operator session.', access: 'operator',
      response: [{ status: 204, description: 'ended' }],
      handler: async (req, reply) => {
        await service.logout(req.principal);
        return reply.code(204).send();
      },
    },
    {
      operationId: 'createOperator', summary: 'Adds an operator account.', access: 'operator',
      body: { type: 'object', required: ['username', 'password'], additionalProperties: false, properties: { username: text(64, { minLength: 1 }), password: text(1024, { minLength: 12 }) } },
      response: [{ status: 201, description: 'created', schema: { type: 'object', properties: { username: str } } }],
      handler: async (req, reply) => {
        const b = req.body as Credentials;
        return reply.code(201).send(await service.createOperator(req.principal, b.username, b.password));
      },
    },
    {
      operationId: 'listProfiles', summary: 'Certificate profiles and their approval policy.', access: 'operator',
      response: [{ status: 200, description: 'profiles', schema: { type: 'array', items: profileSchema } }],
      handler: async (req) => service.profiles(req.principal),
    },
    {
      operationId: 'updateProfile', summary: "Changes a profile's approval policy (automatic or operator) or validity.", access: 'operator',
      body: {
        type: 'object', additionalProperties: false,
        properties: {
          approval: { type: 'string', enum: ['automatic', 'operator'] }, validityDays: { type: 'integer' }, renewalWindowDays: { type: 'integer' },
          supersedeGraceDays: { type: 'integer' }, allowSoftwareKeys: { type: 'boolean' },
        },
      },
      response: [{ status: 200, description: 'updated', schema: profileSchema }],
      handler: async (req) => service.updateProfile(req.principal, (req.params as { name: string }).name, req.body as ProfileChange),
    },
    {
      operationId: 'createToken', summary: 'A one-time, expiring enrollment token for a user (shown once).', access: 'operator',
      body: {
        type: 'object', required: ['user'], additionalProperties: false,
        properties: { user: UPN, profile: text(64, { default: DEFAULT_PROFILE }), ttlSeconds: { type: 'integer' } },
      },
      response: [{ status: 201, description: 'created', schema: { type: 'object', properties: { ...(tokenSchema.properties as object), token: str } } }],
      handler: async (req, reply) => {
        const b = req.body as NewToken;
        return reply.code(201).send(await service.createToken(req.principal, { ...b, profile: b.profile ?? DEFAULT_PROFILE }));
      },
    },
    {
      operationId: 'listTokens', summary: 'Enrollment tokens (never their secrets).', access: 'operator',
      response: [{ status: 200, description: 'tokens', schema: { type: 'array', items: tokenSchema } }],
      handler: async (req) => service.listTokens(req.principal),
    },
    {
      operationId: 'revokeToken', summary: 'Revokes an unused enrollment token: it can no longer enroll (409 when it was used already).', access: 'operator',
      response: [{ status: 200, description: 'revoked', schema: tokenSchema }, { status: 404, description: 'no such token' }, { status: 409, description: 'used already' }],
      handler: async (req) => service.revokeToken(req.principal, idParam(req, 'token')),
    },
    {
      operationId: 'submitRequest',
      summary: "Submits a PKCS#10 request with an enrollment token, bound to the card's cardid and container. Sending the same request again returns its state.",
      access: 'enrollment-token',
      body: {
        type: 'object', required: ['csr'], additionalProperties: false,
        properties: { csr: text(64 * 1024, { description: 'PEM or base64 DER' }), cardId: CARD_ID, container: CONTAINER },
      },
      response: [{ status: 200, description: 'issued', schema: requestSchema }, { status: 202, description: 'waiting (see Retry-After)', schema: requestSchema }],
      handler: async (req, reply) => {
        const view = await service.submit(req.principal, req.body as SubmitBody);
        return pendingStatus(reply, view).send(view);
      },
    },
    {
      operationId: 'listRequests',
      summary: `Requests, newest first, one page (limit, default 1000): all of them for operators, only their own for users. When more follow, the ${NEXT_CURSOR_HEADER} header holds the cursor of the next page.`,
      access: 'user-or-operator',
      query: {
        type: 'object', additionalProperties: false,
        properties: {
          state: { type: 'string', enum: REQUEST_STATES }, user: text(256), cardId: CARD_ID, limit: digits('1 to 10000, default 1000'),
          cursor: text(200, { pattern: '^[A-Za-z0-9_-]+$', description: `the ${NEXT_CURSOR_HEADER} of the previous page` }),
        },
      },
      response: [{ status: 200, description: 'requests', schema: { type: 'array', items: requestSchema } }],
      handler: async (req, reply) => {
        const q = req.query as Record<string, string | undefined>;
        const limit = intOf(q.limit);
        if (limit !== undefined && (limit < 1 || limit > 10_000)) throw new ServiceError('BAD_REQUEST', 'limit is between 1 and 10000');
        const page = await service.page(req.principal, { ...(q as RequestListQuery), limit });
        if (page.next !== null) reply.header(NEXT_CURSOR_HEADER, page.next);
        return page.requests;
      },
    },
    {
      operationId: 'getRequest', summary: 'One request (404 for a request of another user).', access: 'user-or-operator',
      response: [{ status: 200, description: 'issued or final', schema: requestSchema }, { status: 202, description: 'waiting (see Retry-After)', schema: requestSchema }],
      handler: async (req, reply) => {
        const view = await service.get(req.principal, idParam(req));
        return pendingStatus(reply, view).send(view);
      },
    },
    {
      operationId: 'approveRequest', summary: 'Approves a pending request; the CA issues at once.', access: 'operator',
      response: [{ status: 200, description: 'approved and issued', schema: requestSchema }, { status: 409, description: 'not pending' }],
      handler: async (req) => service.approve(req.principal, idParam(req)),
    },
    {
      operationId: 'rejectRequest', summary: 'Rejects a pending request.', access: 'operator',
      body: { type: 'object', required: ['reason'], additionalProperties: false, properties: { reason: text(500, { minLength: 1 }) } },
      response: [{ status: 200, description: 'rejected', schema: requestSchema }, { status: 409, description: 'not pending' }],
      handler: async (req) => service.reject(req.principal, idParam(req), (req.body as RejectBody).reason),
    },
    {
      operationId: 'revokeRequest', summary: "Revokes a request's certificate and publishes a new CRL.", access: 'operator',
      body: { type: 'object', additionalProperties: false, properties: { reason: { type: 'integer', default: 0, description: 'RFC 5280 CRLReason' } } },
      response: [{ status: 200, description: 'revoked', schema: requestSchema }, { status: 409, description: 'nothing issued to revoke' }],
      handler: async (req) => service.revoke(req.principal, idParam(req), (req.body as RevokeBody | undefined)?.reason ?? 0),
    },
    {
      operationId: 'renewCertificate',
      summary: "Renews a certificate whose key is on a card: a PKCS#10 request bound to the card (challengePassword renewalBinding), submitted with a signature by the current certificate's key over renewalProof(serial, csr). The same rules as EST simplereenroll (renewal window, once per certificate, same card); 202 while an operator decides.",
      access: 'card-holder',
      body: {
        type: 'object', required: ['serial', 'csr', 'signature'], additionalProperties: false,
        properties: { serial: text(64, { pattern: '^[0-9a-fA-F]{1,64}$' }), csr: text(64 * 1024, { description: 'PEM or base64 DER' }), signature: text(2048, { description: 'base64' }) },
      },
      response: [{ status: 200, description: 'issued', schema: requestSchema }, { status: 202, description: 'waiting (see Retry-After)', schema: requestSchema }, { status: 403, description: 'refused by the renewal rules (the message says why)' }],
      handler: async (req, reply) => {
        const view = await service.renewWithProof(req.body as RenewalBody);
        return pendingStatus(reply, view).send(view);
      },
    },
    {
      operationId: 'reportDelivery', summary: 'The agent installed and linked the certificate (needs the delivery ticket from collect).', access: 'card-holder',
      body: { type: 'object', required: ['ticket'], additionalProperties: false, properties: { ticket: text(100), host: text(255), thumbprint: text(128), agentVersion: text(64) } },
      response: [{ status: 200, description: 'delivered', schema: requestSchema }],
      handler: async (req) => service.delivered(idParam(req), req.body as DeliveryReport),
    },
    {
      operationId: 'collectChallenge', summary: 'A one-time nonce for the card to sign with its container keys.', access: 'anonymous',
      body: { type: 'object', required: ['cardId'], additionalProperties: false, properties: { cardId: CARD_ID } },
      response: [{ status: 200, description: 'challenge', schema: { type: 'object', properties: { nonce: str, expiresAt: str } } }],
      handler: async (req) => service.challenge((req.body as ChallengeBody).cardId),
    },
    {
      operationId: 'collect',
      summary: "What was requested with this card's keys. Each proof is a container key's signature (RSA PKCS#1 v1.5, or ECDSA as r||s; SHA-256) over \"cardlink collect v1\\n<nonce>\\n<cardid hex>\\n<container>\".",
      access: 'card-holder',
      body: {
        type: 'object', required: ['cardId', 'nonce', 'proofs'], additionalProperties: false,
        properties: {
          cardId: CARD_ID, nonce: text(100),
          proofs: { type: 'array', maxItems: 32, items: { type: 'object', required: ['container', 'signature'], additionalProperties: false, properties: { container: CONTAINER, signature: text(2048, { description: 'base64' }) } } },
        },
      },
      response: [{ status: 200, description: 'requests of the proven keys', schema: { type: 'array', items: { type: 'object', properties: { ...(requestSchema.properties as object), deliveryTicket: nullableStr } } } }],
      handler: async (req) => service.collect(req.body as CollectBody),
    },
    {
      operationId: 'queryAudit', summary: 'The audit log of every state change: who, when, what.', access: 'operator',
      query: {
        type: 'object', additionalProperties: false,
        properties: {
          actor: text(300), action: text(64), subject: text(300), since: { type: 'string', format: 'date-time', maxLength: 40 }, until: { type: 'string', format: 'date-time', maxLength: 40 },
          limit: digits('1 to 10000, default 1000'),
        },
      },
      response: [{ status: 200, description: 'entries, oldest first', schema: { type: 'array', items: { type: 'object', properties: { id: { type: 'integer' }, at: str, actor: str, action: str, subject: nullableStr, details: { type: 'object', additionalProperties: true } } } } }],
      handler: async (req) => {
        const q = req.query as Record<string, string | undefined>;
        const limit = intOf(q.limit);
        if (limit !== undefined && (limit < 1 || limit > 10_000)) throw new ServiceError('BAD_REQUEST', 'limit is between 1 and 10000');
        return service.audit(req.principal, { ...(q as AuditListQuery), limit });
      },
    },
    {
      operationId: 'listWorkstations', summary: "Each workstation's agent: its version and last contact (from delivery reports).", access: 'operator',
      response: [{ status: 200, description: 'workstations, most recent contact first', schema: { type: 'array', items: { type: 'object', properties: { host: str, agentVersion: nullableStr, lastContact: str, lastRequest: nullableStr } } } }],
      handler: async (req) => service.workstations(req.principal),
    },
    {
      operationId: 'caCertificates', summary: 'The CA chain, PEM.', access: 'anonymous', public: true,
      response: [{ status: 200, description: 'chain', schema: { type: 'object', properties: { certificates: { type: 'array', items: str } } } }],
      handler: async () => ({ certificates: service.caCertificates().map((c) => c.toString('pem')) }),
    },
    {
      operationId: 'crl', summary: 'The current CRL (DER).', access: 'anonymous', public: true,
      response: [{ status: 200, description: 'CRL', contentType: 'application/pkix-crl' }],
      handler: async (_req, reply) => reply.type('application/pkix-crl').send(await service.crl()),
    },
  ];
}

const ACCESS_TEXT: Record<Access, string> = {
  anonymous: 'no authentication',
  operator: 'operator session (Bearer)',
  'user-or-operator': "operator session, or a user's enrollment token / client certificate (own requests only)",
  'enrollment-token': 'enrollment token (Bearer, or Basic with the token as password)',
  'card-holder': "proof of a card key (challenge signature) or the delivery ticket it earned",
  'unblock-ticket': 'a one-time unblock ticket an operator made for this card (in the body)',
};

const EST_OPERATIONS = {
  [`${EST_PREFIX}/cacerts`]: { get: { operationId: 'estCacerts', summary: 'EST: the CA certificates (base64 certs-only PKCS#7).', 'x-access': 'anonymous', responses: { 200: { description: 'certs-only', content: { 'application/pkcs7-mime': {} } } } } },
  [`${EST_PREFIX}/csrattrs`]: { get: { operationId: 'estCsrattrs', summary: 'EST: attributes a request should carry (base64 CsrAttrs).', 'x-access': 'anonymous', responses: { 200: { description: 'CsrAttrs', content: { 'application/csrattrs': {} } } } } },
  [`${EST_PREFIX}/simpleenroll`]: {
    post: {
      operationId: 'estSimpleenroll', summary: 'EST: enroll with a base64 PKCS#10 and an enrollment token (Basic password or Bearer).', 'x-access': 'enrollment-token',
      requestBody: { content: { 'application/pkcs10': {} } },
      responses: { 200: { description: 'certs-only', content: { 'application/pkcs7-mime': {} } }, 202: { description: 'waiting for approval: send the same request again after Retry-After' } },
    },
  },
  [`${EST_PREFIX}/simplereenroll`]: {
    post: {
      operationId: 'estSimplereenroll', summary: 'EST: renew, authenticated by the current certificate as TLS client certificate.', 'x-access': 'client-certificate',
      requestBody: { content: { 'application/pkcs10': {} } },
      responses: { 200: { description: 'certs-only', content: { 'application/pkcs7-mime': {} } }, 202: { description: 'waiting for approval' } },
    },
  },
};

/** The EST operations, each also under a CA label (RFC 7030 §3.2.2), which names a profile. */
const EST_PATHS: Record<string, unknown> = Object.fromEntries(
  Object.entries(EST_OPERATIONS).flatMap(([path, ops]) => {
    const name = path.slice(EST_PREFIX.length + 1);
    const labelled = Object.fromEntries(
      Object.entries(ops as Record<string, { operationId: string; summary: string }>).map(([method, op]) => [
        method,
        {
          ...op, operationId: op.operationId.replace(/^est/, 'estLabel'), summary: `${op.summary} Under a CA label: the profile of that name (404 for no such profile).`,
          parameters: [{ name: 'label', in: 'path', required: true, schema: str }],
        },
      ]),
    );
    return [[path, ops], [`${EST_PREFIX}/{label}/${name}`, labelled]];
  }),
);

/** The OpenAPI 3.1 document, generated from the same table the routes are registered from. */
function openApiDocument(routes: Route[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const { method, path: url } = ROUTES[r.operationId];
    const path = API_PREFIX + url.replace(/:([A-Za-z]+)/g, '{$1}');
    const params = [...url.matchAll(/:([A-Za-z]+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: str }));
    const query = r.query ? Object.entries((r.query.properties ?? {}) as Record<string, Schema>).map(([name, schema]) => ({ name, in: 'query', required: false, schema })) : [];
    const responses: Record<string, unknown> = {};
    for (const res of r.response) {
      responses[res.status] = res.schema
        ? { description: res.description, content: { [res.contentType ?? 'application/json']: { schema: res.schema } } }
        : { description: res.description, ...(res.contentType ? { content: { [res.contentType]: {} } } : {}) };
    }
    if (r.access !== 'anonymous') responses[401] = { description: 'not authenticated', content: { 'application/json': { schema: errorSchema } } };
    if (r.access === 'operator') responses[403] = { description: 'not an operator', content: { 'application/json': { schema: errorSchema } } };
    (paths[path] ??= {})[method.toLowerCase()] = {
      operationId: r.operationId,
      summary: r.summary,
      description: `Access: ${ACCESS_TEXT[r.access]}.`,
      'x-access': r.access,
      ...(r.access === 'operator' || r.access === 'user-or-operator' || r.access === 'enrollment-token' ? { security: [{ bearer: [] }] } : {}),
      ...(params.length + query.length > 0 ? { parameters: [...params, ...query] } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: r.body } } } } : {}),
      responses,
    };
  }
  paths[API_PREFIX + ROUTES.openapi.path] = { get: { operationId: 'openapi', summary: 'This document.', 'x-access': 'anonymous', responses: { 200: { description: 'OpenAPI 3.1' } } } };
  return {
    openapi: '3.1.0',
    info: { title: 'cardlink enrollment service', version: '1', description: 'EST (RFC 7030) and a JSON API to request smart card logon certificates, approve them, and collect them on any workstation where the card is inserted.' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, basic: { type: 'http', scheme: 'basic' } } },
    paths: { ...paths, ...EST_PATHS },
  };
}

export function registerApi(app: App, service: EnrollmentService, cards: CardAdminService): Record<string, unknown> {
  const routes = [...apiRoutes(service), ...cardAdminRoutes(cards)];
  const doc = openApiDocument(routes);
  for (const r of routes) {
    app.route({
      method: ROUTES[r.operationId].method,
      url: API_PREFIX + ROUTES[r.operationId].path,
      schema: { ...(r.body ? { body: r.body } : {}), ...(r.query ? { querystring: r.query } : {}) },
      config: { public: r.public === true },
      handler: r.handler,
    });
  }
  app.get(API_PREFIX + ROUTES.openapi.path, { config: { public: true } }, async () => doc);
  return doc;
}
