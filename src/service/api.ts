import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { requireOperator } from './auth.js';
import { MALFORMED, type OcspResponder } from './ca/ocsp.js';
import type { CardAdminService } from './card-admin.js';
import type { CardService } from './cards.js';
import type { EnrollmentService } from './enrollment.js';
import { ServiceError } from './errors.js';
import type { App } from './http.js';
import {
  API_PREFIX,
  DEFAULT_PROFILE,
  OPERATOR_ROLES,
  type NewOperator,
  type OperatorRole,
  EST_PREFIX,
  NEXT_CURSOR_HEADER,
  OCSP_BODY_LIMIT,
  OCSP_REQUEST_TYPE,
  OCSP_RESPONSE_TYPE,
  REQUEST_STATES,
  REVOCATION_PATHS,
  ROUTES,
  type AuditListQuery,
  type CardAdminKeyBody,
  type CardListQuery,
  type CardTransitionBody,
  CARD_ACTIONS,
  CARD_STATES,
  LOST_REASONS,
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
  /** For operator routes: the least role that may call it (the use case checks it; this documents it). */
  role?: OperatorRole;
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
    notAfter: nullableStr, issuedAt: nullableStr, deliveredAt: nullableStr, submittedFrom: { type: ['string', 'null'], description: 'client address the request came from' }, certificate: { type: ['string', 'null'], description: 'PEM, once issued' },
    retryAfter: { type: ['integer', 'null'], description: 'seconds to wait before asking again' },
  },
};
const tokenSchema: Schema = {
  type: 'object',
  properties: {
    id: str, user: str, profile: str, createdBy: str, createdAt: str, expiresAt: str, usedAt: nullableStr, requestId: nullableStr, revokedAt: nullableStr,
    sid: nullableStr, replacesCard: nullableStr,
  },
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
      operationId: 'unblockResponse', summary: "The response to a card's unblock challenge (help desk): active cards only, each challenge once, a few per card per hour, audited.", access: 'operator', role: 'approver',
      body: { type: 'object', required: ['cardId', 'challenge'], additionalProperties: false, properties: { cardId: cardIdProp, challenge: challengeProp } },
      response: [{ status: 200, description: 'response', schema: unblockResponseSchema }, { status: 409, description: 'card not active, or challenge answered already' }, { status: 429, description: 'too many responses for this card' }],
      handler: async (req) => {
        const b = req.body as UnblockResponseBody;
        return cards.unblockResponse(req.principal, b.cardId, b.challenge);
      },
    },
    {
      operationId: 'createUnblockTicket', summary: 'A one-time ticket (shown once) with which the user unblocks this card online.', access: 'operator', role: 'approver',
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
      operationId: 'rotateAdminMasterKey', summary: 'A new administrator master key version; every card is re-keyed to it on its next enrollment.', access: 'operator', role: 'admin',
      response: [{ status: 200, description: 'rotated', schema: { type: 'object', properties: { keyVersion: { type: 'integer' } } } }],
      handler: async (req) => cards.rotateMasterKey(req.principal),
    },
    {
      operationId: 'retireCard', summary: "Retires a card whose user left: no more unblock; the response to the card's challenge and the transport key, so the operator's workstation wipes it. Audited.", access: 'operator', role: 'admin',
      body: { type: 'object', required: ['cardId', 'challenge'], additionalProperties: false, properties: { cardId: cardIdProp, challenge: challengeProp } },
      response: [{ status: 200, description: 'retired', schema: { type: 'object', properties: { cardId: str, response: str, keyVersion: { type: 'integer' }, transportKey: str, state: str, revoked: { type: 'array', items: str } } } }, { status: 409, description: 'not active, or challenge answered already' }],
      handler: async (req) => {
        const b = req.body as RetireBody;
        return cards.retireCard(req.principal, b.cardId, b.challenge);
      },
    },
  ];
}

const cardSchema: Schema = {
  type: 'object',
  properties: { cardId: str, user: str, state: { type: 'string', enum: CARD_STATES }, createdAt: str, updatedAt: str, replacedBy: nullableStr, replaces: nullableStr },
};
const cardDetailSchema: Schema = {
  type: 'object',
  properties: {
    ...(cardSchema.properties as object),
    credentials: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          requestId: str, kind: str, requestState: str, profile: str, container: nullableStr, subject: str, serial: nullableStr,
          status: { type: ['string', 'null'], enum: ['good', 'on-hold', 'revoked', 'expired', 'not-yet-valid', null] }, revocationReason: nullableStr,
          notBefore: nullableStr, notAfter: nullableStr, sidExtension: { type: ['string', 'null'], description: 'the SID in the certificate (1.3.6.1.4.1.311.25.2)' },
          strongMapping: { type: ['string', 'null'], description: 'X509:<I>issuer<SR>serial for altSecurityIdentities (KB5014754)' },
        },
      },
    },
    history: { type: 'array', items: { type: 'object', properties: { at: str, actor: str, action: str, details: { type: 'object', additionalProperties: true } } } },
  },
};
const cardParam = (req: FastifyRequest): string => (req.params as { id: string }).id;

/** Issue 13: cards as records, their life cycle, expiry reporting. */
function cardRoutes(cards: CardService): Route[] {
  return [
    {
      operationId: 'listCards',
      summary: `Cards, newest first, one page (limit, default 1000): all of them for operators, their own for users. When more follow, the ${NEXT_CURSOR_HEADER} header holds the cursor of the next page.`,
      access: 'user-or-operator',
      query: {
        type: 'object', additionalProperties: false,
        properties: {
          user: text(256), state: { type: 'string', enum: CARD_STATES }, limit: digits('1 to 10000, default 1000'),
          cursor: text(200, { pattern: '^[A-Za-z0-9_-]+$', description: `the ${NEXT_CURSOR_HEADER} of the previous page` }),
        },
      },
      response: [{ status: 200, description: 'cards', schema: { type: 'array', items: cardSchema } }],
      handler: async (req, reply) => {
        const q = req.query as Record<string, string | undefined>;
        const limit = intOf(q.limit);
        if (limit !== undefined && (limit < 1 || limit > 10_000)) throw new ServiceError('BAD_REQUEST', 'limit is between 1 and 10000');
        const page = await cards.list(req.principal, { ...(q as CardListQuery), limit });
        if (page.next !== null) reply.header(NEXT_CURSOR_HEADER, page.next);
        return page.cards;
      },
    },
    {
      operationId: 'getCard', summary: 'One card: its record, its credentials (requests and certificates, with status and the strong mapping) and its history (404 for a card of another user).', access: 'user-or-operator',
      response: [{ status: 200, description: 'card', schema: cardDetailSchema }, { status: 404, description: 'no such card (or not yours)' }],
      handler: async (req) => cards.show(req.principal, cardParam(req)),
    },
    {
      operationId: 'transitionCard',
      summary: "Moves a card through its life cycle: lost (revokes its certificates, keyCompromise or cessationOfOperation, and makes the user's replacement enrollment token, shown once), suspend (certificateHold), resume (hold removed), retire (revoked, cessationOfOperation; admin only). Audited.",
      access: 'operator', role: 'approver',
      body: {
        type: 'object', required: ['action'], additionalProperties: false,
        properties: {
          action: { type: 'string', enum: CARD_ACTIONS }, reason: { type: 'string', enum: LOST_REASONS, description: 'lost only; default keyCompromise' },
          temporary: { type: 'boolean', description: 'lost only: the replacement token is for the temporary-card profile' }, ttlSeconds: { type: 'integer', description: 'lost only: the replacement token\'s lifetime' },
        },
      },
      response: [
        { status: 200, description: 'moved', schema: { type: 'object', properties: { card: cardDetailSchema, from: str, to: str, revoked: { type: 'array', items: str }, held: { type: 'array', items: str }, released: { type: 'array', items: str }, replacementToken: { type: ['object', 'null'], properties: { ...(tokenSchema.properties as object), token: str } } } } },
        { status: 409, description: 'the move does not apply to the card in its state' },
      ],
      handler: async (req) => cards.transition(req.principal, cardParam(req), req.body as CardTransitionBody),
    },
    {
      operationId: 'expiringCertificates', summary: 'Certificates valid now that expire within `days` days, soonest first: card, user, profile, days left, and whether a renewal is waiting or issued.', access: 'operator', role: 'viewer',
      query: { type: 'object', required: ['days'], additionalProperties: false, properties: { days: digits('0 to 3650') } },
      response: [{
        status: 200, description: 'certificates',
        schema: { type: 'array', items: { type: 'object', properties: { serial: str, requestId: str, cardId: nullableStr, container: nullableStr, user: str, profile: str, notAfter: str, daysLeft: { type: 'integer' }, renewal: { type: 'string', enum: ['none', 'waiting', 'issued'] }, renewalRequestId: nullableStr } } },
      }],
      handler: async (req) => cards.expiring(req.principal, Number((req.query as { days: string }).days)),
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
      operationId: 'logout', summary: 'Ends the calling operator session.', access: 'operator', role: 'viewer',
      response: [{ status: 204, description: 'ended' }],
      handler: async (req, reply) => {
        await service.logout(req.principal);
        return reply.code(204).send();
      },
    },
    {
      operationId: 'createOperator', summary: 'Adds an operator account.', access: 'operator', role: 'admin',
      body: {
        type: 'object', required: ['username', 'password'], additionalProperties: false,
        properties: { username: text(64, { minLength: 1 }), password: text(1024, { minLength: 12 }), role: { type: 'string', enum: OPERATOR_ROLES, description: 'default viewer' } },
      },
      response: [{ status: 201, description: 'created', schema: { type: 'object', properties: { username: str, role: str } } }],
      handler: async (req, reply) => {
        const b = req.body as NewOperator;
        return reply.code(201).send(await service.createOperator(req.principal, b.username, b.password, b.role));
      },
    },
    {
      operationId: 'listProfiles', summary: 'Certificate profiles and their approval policy.', access: 'operator', role: 'viewer',
      response: [{ status: 200, description: 'profiles', schema: { type: 'array', items: profileSchema } }],
      handler: async (req) => service.profiles(req.principal),
    },
    {
      operationId: 'updateProfile', summary: "Changes a profile's approval policy (automatic or operator) or validity.", access: 'operator', role: 'admin',
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
      operationId: 'createToken', summary: 'A one-time, expiring enrollment token for a user (shown once).', access: 'operator', role: 'approver',
      body: {
        type: 'object', required: ['user'], additionalProperties: false,
        properties: {
          user: UPN, profile: text(64, { default: DEFAULT_PROFILE }), ttlSeconds: { type: 'integer' },
          sid: text(100, { description: "the user's SID, S-1-5-21-…: the certificates carry it in the SID extension (KB5014754 strong mapping)" }),
        },
      },
      response: [{ status: 201, description: 'created', schema: { type: 'object', properties: { ...(tokenSchema.properties as object), token: str } } }],
      handler: async (req, reply) => {
        const b = req.body as NewToken;
        return reply.code(201).send(await service.createToken(req.principal, { ...b, profile: b.profile ?? DEFAULT_PROFILE }));
      },
    },
    {
      operationId: 'listTokens', summary: 'Enrollment tokens (never their secrets).', access: 'operator', role: 'viewer',
      response: [{ status: 200, description: 'tokens', schema: { type: 'array', items: tokenSchema } }],
      handler: async (req) => service.listTokens(req.principal),
    },
    {
      operationId: 'revokeToken', summary: 'Revokes an unused enrollment token: it can no longer enroll (409 when it was used already).', access: 'operator', role: 'approver',
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
        const view = await service.submit(req.principal, req.body as SubmitBody, req.ip);
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
          since: { type: 'string', format: 'date-time', maxLength: 40, description: 'submitted at or after' }, until: { type: 'string', format: 'date-time', maxLength: 40, description: 'submitted before' },
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
      operationId: 'approveRequest', summary: 'Approves a pending request; the CA issues at once.', access: 'operator', role: 'approver',
      response: [{ status: 200, description: 'approved and issued', schema: requestSchema }, { status: 409, description: 'not pending' }],
      handler: async (req) => service.approve(req.principal, idParam(req)),
    },
    {
      operationId: 'rejectRequest', summary: 'Rejects a pending request.', access: 'operator', role: 'approver',
      body: { type: 'object', required: ['reason'], additionalProperties: false, properties: { reason: text(500, { minLength: 1 }) } },
      response: [{ status: 200, description: 'rejected', schema: requestSchema }, { status: 409, description: 'not pending' }],
      handler: async (req) => service.reject(req.principal, idParam(req), (req.body as RejectBody).reason),
    },
    {
      operationId: 'revokeRequest', summary: "Revokes a request's certificate and publishes a new CRL.", access: 'operator', role: 'approver',
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
      operationId: 'queryAudit', summary: 'The audit log of every state change: who, when, what.', access: 'operator', role: 'viewer',
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
      operationId: 'listWorkstations', summary: "Each workstation's agent: its version and last contact (from delivery reports).", access: 'operator', role: 'viewer',
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

/** The revocation routes (registerRevocation), anonymous, at the root of the service and of the revocation listener. */
const REVOCATION_OPERATIONS = {
  [REVOCATION_PATHS.crl]: { get: { operationId: 'crlStable', summary: 'The current CRL (DER) at the path certificates name as their CRL distribution point.', 'x-access': 'anonymous', responses: { 200: { description: 'CRL', content: { 'application/pkix-crl': {} } } } } },
  [REVOCATION_PATHS.caCertificate]: { get: { operationId: 'caCertificateDer', summary: 'The issuing CA certificate (DER): the caIssuers of authority information access.', 'x-access': 'anonymous', responses: { 200: { description: 'certificate', content: { 'application/pkix-cert': {} } } } } },
  [REVOCATION_PATHS.ocsp]: {
    post: {
      operationId: 'ocspPost', summary: `OCSP (RFC 6960): a DER OCSPRequest of up to ${OCSP_BODY_LIMIT} bytes; the answer is an OCSPResponse, malformedRequest for anything unreadable.`, 'x-access': 'anonymous',
      requestBody: { content: { [OCSP_REQUEST_TYPE]: {} } }, responses: { 200: { description: 'OCSPResponse', content: { [OCSP_RESPONSE_TYPE]: {} } } },
    },
  },
  [`${REVOCATION_PATHS.ocsp}/{request}`]: {
    get: {
      operationId: 'ocspGet', summary: 'OCSP (RFC 6960 Appendix A.1): the DER OCSPRequest base64 (or base64url), URL-encoded, as the last path segment.', 'x-access': 'anonymous',
      parameters: [{ name: 'request', in: 'path', required: true, schema: str }], responses: { 200: { description: 'OCSPResponse', content: { [OCSP_RESPONSE_TYPE]: {} } } },
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
    if (r.access === 'operator') responses[403] = { description: `not an operator, or one below the ${r.role ?? 'viewer'} role`, content: { 'application/json': { schema: errorSchema } } };
    (paths[path] ??= {})[method.toLowerCase()] = {
      operationId: r.operationId,
      summary: r.summary,
      description: `Access: ${ACCESS_TEXT[r.access]}${r.role ? `, role ${r.role} or above` : ''}.`,
      'x-access': r.access,
      ...(r.role ? { 'x-role': r.role } : {}),
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
    paths: { ...paths, ...EST_PATHS, ...REVOCATION_OPERATIONS },
  };
}

export function registerApi(app: App, service: EnrollmentService, cards: CardAdminService, cardRecords: CardService): Record<string, unknown> {
  const routes = [...apiRoutes(service), ...cardAdminRoutes(cards), ...cardRoutes(cardRecords)];
  // Every operator route says which role it needs, so the console, the API and the tests agree.
  const unroled = routes.filter((r) => r.access === 'operator' && r.role === undefined).map((r) => r.operationId);
  if (unroled.length > 0) throw new ServiceError('INTERNAL', `operator routes without a minimum role: ${unroled.join(', ')}`);
  const doc = openApiDocument(routes);
  for (const r of routes) {
    app.route({
      method: ROUTES[r.operationId].method,
      url: API_PREFIX + ROUTES[r.operationId].path,
      schema: { ...(r.body ? { body: r.body } : {}), ...(r.query ? { querystring: r.query } : {}) },
      config: { public: r.public === true },
      // The route's role is checked here as well as in its use case: a use case that forgot its role cannot open a route.
      handler: r.access === 'operator'
        ? async (req: FastifyRequest, reply: FastifyReply) => {
            requireOperator(req.principal, r.role);
            return r.handler(req, reply);
          }
        : r.handler,
    });
  }
  app.get(API_PREFIX + ROUTES.openapi.path, { config: { public: true } }, async () => doc);
  return doc;
}

/** What the revocation routes serve. */
export interface RevocationEndpoints {
  crl(): Promise<Buffer>;
  /** The issuing CA's certificate, DER. */
  caCertificate: Uint8Array;
  /** Absent with an upstream CA: its own responder answers for it. */
  ocsp?: OcspResponder;
}

/** A GET request's path segment: the DER request, base64 (RFC 6960 Appendix A.1) or base64url, URL-encoded. */
const OCSP_GET_RE = /^[A-Za-z0-9+/_-]+={0,2}$/;

function ocspFromPath(url: string): Uint8Array | undefined {
  const path = url.split('?')[0]!.slice(REVOCATION_PATHS.ocsp.length + 1);
  let text: string;
  try {
    text = decodeURIComponent(path);
  } catch {
    return undefined;
  }
  if (text.length > Math.ceil((OCSP_BODY_LIMIT * 4) / 3) + 4 || !OCSP_GET_RE.test(text)) return undefined;
  return Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

/**
 * The routes relying parties use, anonymous and read-only: the CRL at a stable path, the CA
 * certificate, and the OCSP responder. Registered on the HTTPS service and on the plain-HTTP
 * revocation listener alike. Whatever goes wrong with an OCSP request, the answer is an
 * OCSPResponse (malformedRequest), never a JSON error or a 500 (RFC 6960 §2.3).
 */
export function registerRevocation(app: FastifyInstance | App, r: RevocationEndpoints): void {
  const a = app as FastifyInstance;
  const crl = async (_req: FastifyRequest, reply: FastifyReply): Promise<unknown> => reply.type('application/pkix-crl').send(await r.crl());
  a.get(REVOCATION_PATHS.crl, { config: { public: true } }, crl);
  a.get(REVOCATION_PATHS.caCertificate, { config: { public: true } }, async (_req, reply) => reply.type('application/pkix-cert').send(Buffer.from(r.caCertificate)));
  if (!r.ocsp) return;
  const ocsp = r.ocsp;
  const malformed = (_err: unknown, _req: FastifyRequest, reply: FastifyReply): FastifyReply => reply.code(200).type(OCSP_RESPONSE_TYPE).send(MALFORMED);
  a.addContentTypeParser(OCSP_REQUEST_TYPE, { parseAs: 'buffer', bodyLimit: OCSP_BODY_LIMIT }, (_req, body, done) => done(null, body));
  a.post(REVOCATION_PATHS.ocsp, { config: { public: true }, bodyLimit: OCSP_BODY_LIMIT, errorHandler: malformed }, async (req, reply) => {
    const body = Buffer.isBuffer(req.body) ? req.body : undefined;
    return reply.type(OCSP_RESPONSE_TYPE).send(body ? await ocsp.respond(body) : MALFORMED);
  });
  a.get(`${REVOCATION_PATHS.ocsp}/*`, { config: { public: true }, errorHandler: malformed }, async (req, reply) => {
    const der = ocspFromPath(req.url);
    return reply.type(OCSP_RESPONSE_TYPE).send(der ? await ocsp.respond(der) : MALFORMED);
  });
}
