import type { FastifyReply, FastifyRequest } from 'fastify';
import type { EnrollmentService } from './enrollment.js';
import { ServiceError } from './errors.js';
import type { App } from './http.js';
import {
  API_PREFIX,
  DEFAULT_PROFILE,
  EST_PREFIX,
  REQUEST_STATES,
  ROUTES,
  type AuditListQuery,
  type ChallengeBody,
  type CollectBody,
  type Credentials,
  type DeliveryReport,
  type NewToken,
  type OperationId,
  type ProfileChange,
  type RejectBody,
  type RequestListQuery,
  type RevokeBody,
  type SubmitBody,
} from './protocol.js';

/** Who may call a route; the OpenAPI document states it and the authorization tests check it. */
export type Access = 'anonymous' | 'operator' | 'user-or-operator' | 'enrollment-token' | 'card-holder';

type Schema = Record<string, unknown>;

/** One JSON API operation; its method and path come from protocol.ts's ROUTES. */
interface Route {
  operationId: Exclude<OperationId, 'openapi'>;
  summary: string;
  access: Access;
  body?: Schema;
  query?: Schema;
  response: { status: number; description: string; schema?: Schema; contentType?: string }[];
  handler(req: FastifyRequest, reply: FastifyReply): Promise<unknown>;
}

const str = { type: 'string' } as const;
const nullableStr = { type: ['string', 'null'] } as const;

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
  properties: { id: str, user: str, profile: str, createdBy: str, createdAt: str, expiresAt: str, usedAt: nullableStr, requestId: nullableStr },
};
const profileSchema: Schema = {
  type: 'object',
  properties: { name: str, approval: { type: 'string', enum: ['automatic', 'operator'] }, validityDays: { type: 'integer' }, updatedAt: { type: 'integer' }, updatedBy: str },
};
const errorSchema: Schema = { type: 'object', properties: { error: { type: 'object', properties: { code: str, message: str } } } };
const idParam = (req: FastifyRequest): string => {
  const id = (req.params as { id: string }).id;
  if (!/^[0-9a-f-]{36}$/.test(id)) throw new ServiceError('NOT_FOUND', `no request ${id}`);
  return id;
};

function pendingStatus(reply: FastifyReply, view: { retryAfter: number | null }): FastifyReply {
  if (view.retryAfter !== null) reply.code(202).header('retry-after', String(view.retryAfter));
  return reply;
}

function apiRoutes(service: EnrollmentService): Route[] {
  return [
    {
      operationId: 'health', summary: 'Liveness: the service answers and reaches its storage.', access: 'anonymous',
      response: [{ status: 200, description: 'up', schema: { type: 'object', properties: { ok: { type: 'boolean' } } } }],
      handler: async () => service.health(),
    },
    {
      operationId: 'login', summary: 'Operator login: a session token for the Authorization: Bearer header.', access: 'anonymous',
      body: { type: 'object', required: ['username', 'password'], additionalProperties: false, properties: { username: str, password: str } },
      response: [{ status: 200, description: 'session', schema: { type: 'object', properties: { token: str, expiresAt: str } } }, { status: 401, description: 'wrong name or password' }],
      handler: async (req) => {
        const b = req.body as Credentials;
        return service.login(b.username, b.password);
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
      body: { type: 'object', required: ['username', 'password'], additionalProperties: false, properties: { username: str, password: { type: 'string', minLength: 12 } } },
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
      body: { type: 'object', additionalProperties: false, properties: { approval: { type: 'string', enum: ['automatic', 'operator'] }, validityDays: { type: 'integer' } } },
      response: [{ status: 200, description: 'updated', schema: profileSchema }],
      handler: async (req) => service.updateProfile(req.principal, (req.params as { name: string }).name, req.body as ProfileChange),
    },
    {
      operationId: 'createToken', summary: 'A one-time, expiring enrollment token for a user (shown once).', access: 'operator',
      body: {
        type: 'object', required: ['user'], additionalProperties: false,
        properties: { user: { type: 'string', description: 'user principal name, e.g. alice@example.com' }, profile: { type: 'string', default: DEFAULT_PROFILE }, ttlSeconds: { type: 'integer' } },
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
      operationId: 'submitRequest',
      summary: "Submits a PKCS#10 request with an enrollment token, bound to the card's cardid and container. Sending the same request again returns its state.",
      access: 'enrollment-token',
      body: {
        type: 'object', required: ['csr'], additionalProperties: false,
        properties: { csr: { type: 'string', description: 'PEM or base64 DER' }, cardId: { type: 'string', pattern: '^[0-9a-fA-F]{32}$' }, container: { type: 'string', minLength: 1, maxLength: 39 } },
      },
      response: [{ status: 200, description: 'issued', schema: requestSchema }, { status: 202, description: 'waiting (see Retry-After)', schema: requestSchema }],
      handler: async (req, reply) => {
        const view = await service.submit(req.principal, req.body as SubmitBody);
        return pendingStatus(reply, view).send(view);
      },
    },
    {
      operationId: 'listRequests', summary: 'Requests: all of them for operators, only their own for users.', access: 'user-or-operator',
      query: { type: 'object', additionalProperties: false, properties: { state: { type: 'string', enum: REQUEST_STATES }, user: str, cardId: str, limit: { type: 'integer', minimum: 1, maximum: 10000 } } },
      response: [{ status: 200, description: 'requests', schema: { type: 'array', items: requestSchema } }],
      handler: async (req) => service.list(req.principal, req.query as RequestListQuery),
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
      body: { type: 'object', required: ['reason'], additionalProperties: false, properties: { reason: { type: 'string', minLength: 1, maxLength: 500 } } },
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
      operationId: 'reportDelivery', summary: 'The agent installed and linked the certificate (needs the delivery ticket from collect).', access: 'card-holder',
      body: { type: 'object', required: ['ticket'], additionalProperties: false, properties: { ticket: str, host: { type: 'string', maxLength: 255 }, thumbprint: { type: 'string', maxLength: 128 }, agentVersion: { type: 'string', maxLength: 64 } } },
      response: [{ status: 200, description: 'delivered', schema: requestSchema }],
      handler: async (req) => service.delivered(idParam(req), req.body as DeliveryReport),
    },
    {
      operationId: 'collectChallenge', summary: 'A one-time nonce for the card to sign with its container keys.', access: 'anonymous',
      body: { type: 'object', required: ['cardId'], additionalProperties: false, properties: { cardId: { type: 'string', pattern: '^[0-9a-fA-F]{32}$' } } },
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
          cardId: { type: 'string', pattern: '^[0-9a-fA-F]{32}$' }, nonce: str,
          proofs: { type: 'array', maxItems: 32, items: { type: 'object', required: ['container', 'signature'], additionalProperties: false, properties: { container: str, signature: { type: 'string', description: 'base64' } } } },
        },
      },
      response: [{ status: 200, description: 'requests of the proven keys', schema: { type: 'array', items: { type: 'object', properties: { ...(requestSchema.properties as object), deliveryTicket: nullableStr } } } }],
      handler: async (req) => service.collect(req.body as CollectBody),
    },
    {
      operationId: 'queryAudit', summary: 'The audit log of every state change: who, when, what.', access: 'operator',
      query: {
        type: 'object', additionalProperties: false,
        properties: { actor: str, action: str, subject: str, since: { type: 'string', format: 'date-time' }, until: { type: 'string', format: 'date-time' }, limit: { type: 'integer', minimum: 1, maximum: 10000 } },
      },
      response: [{ status: 200, description: 'entries, oldest first', schema: { type: 'array', items: { type: 'object', properties: { id: { type: 'integer' }, at: str, actor: str, action: str, subject: nullableStr, details: { type: 'object', additionalProperties: true } } } } }],
      handler: async (req) => service.audit(req.principal, req.query as AuditListQuery),
    },
    {
      operationId: 'listWorkstations', summary: "Each workstation's agent: its version and last contact (from delivery reports).", access: 'operator',
      response: [{ status: 200, description: 'workstations, most recent contact first', schema: { type: 'array', items: { type: 'object', properties: { host: str, agentVersion: nullableStr, lastContact: str, lastRequest: nullableStr } } } }],
      handler: async (req) => service.workstations(req.principal),
    },
    {
      operationId: 'caCertificates', summary: 'The CA chain, PEM.', access: 'anonymous',
      response: [{ status: 200, description: 'chain', schema: { type: 'object', properties: { certificates: { type: 'array', items: str } } } }],
      handler: async () => ({ certificates: service.caCertificates().map((c) => c.toString('pem')) }),
    },
    {
      operationId: 'crl', summary: 'The current CRL (DER).', access: 'anonymous',
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
};

const EST_PATHS = {
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

export function registerApi(app: App, service: EnrollmentService): Record<string, unknown> {
  const routes = apiRoutes(service);
  const doc = openApiDocument(routes);
  for (const r of routes) {
    app.route({
      method: ROUTES[r.operationId].method,
      url: API_PREFIX + ROUTES[r.operationId].path,
      schema: { ...(r.body ? { body: r.body } : {}), ...(r.query ? { querystring: r.query } : {}) },
      handler: r.handler,
    });
  }
  app.get(API_PREFIX + ROUTES.openapi.path, async () => doc);
  return doc;
}
