import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Server } from 'node:https';
import type { Server as PlainServer } from 'node:http';
import type { Principal } from './auth.js';
import type { EnrollmentService } from './enrollment.js';
import { ServiceError } from './errors.js';
import type { TlsMaterial } from './tls.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
  interface FastifyContextConfig {
    /**
     * Answers anyone, and ignores credentials that do not check out instead of refusing them
     * (RFC 7030 §4.1.1: /cacerts needs no authentication, whatever a client sends along).
     */
    public?: boolean;
  }
}

export type App = FastifyInstance<Server>;

const ANONYMOUS: Principal = { kind: 'anonymous' };

function unauthenticated(message: string): ServiceError {
  return new ServiceError('UNAUTHENTICATED', message);
}

/**
 * Who sent the request: an operator session or enrollment token (Bearer), an enrollment token as
 * HTTP Basic password (what EST clients send), or a TLS client certificate from our CA. Presented
 * credentials that do not check out are refused outright rather than treated as anonymous.
 */
async function authenticate(service: EnrollmentService, req: FastifyRequest, purpose: 'renewal' | 'other'): Promise<Principal> {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const [scheme, value = ''] = header.split(/\s+/, 2);
    if (/^bearer$/i.test(scheme ?? '')) {
      const p = await service.fromBearer(value.trim());
      if (!p) throw unauthenticated('the session or token is unknown or expired');
      return p;
    }
    if (/^basic$/i.test(scheme ?? '')) {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const user = colon < 0 ? '' : decoded.slice(0, colon);
      const p = await service.fromBearer(colon < 0 ? decoded : decoded.slice(colon + 1));
      if (!p || p.kind !== 'enrollment-token' || (user !== '' && user !== p.user)) throw unauthenticated('wrong user name or enrollment token');
      return p;
    }
    throw unauthenticated(`authorization scheme '${scheme}' is not supported: use Bearer or Basic`);
  }
  const socket = req.raw.socket as TLSSocket;
  if (typeof socket.getPeerCertificate === 'function' && socket.authorized) {
    const peer = socket.getPeerCertificate();
    if (peer && peer.serialNumber) {
      const p = await service.fromClientCertificate(peer.serialNumber, purpose);
      if ('refused' in p) throw unauthenticated(p.refused);
      return p;
    }
  }
  return ANONYMOUS;
}

/**
 * Limits against slow or greedy clients. The defaults are judgement calls: an enrollment request
 * is a few kilobytes and every answer is quick, so a client that needs more than 30 s to send one
 * is either broken or holding a connection on purpose.
 */
export interface HttpLimits {
  /** Whole request, headers and body, in ms (Node's requestTimeout). Default 30 s. */
  requestTimeoutMs: number;
  /** Headers alone, in ms (Node's headersTimeout). Default 10 s. */
  headersTimeoutMs: number;
  /** A connection with no traffic at all, and a TLS handshake, in ms. Default 30 s. */
  idleTimeoutMs: number;
  /** Open connections at most; more are closed at once. Default 1000. */
  maxConnections: number;
  /** The largest request body, bytes. Default 256 KiB (a PKCS#10 request of RSA 8192 is under 3 KiB). */
  bodyLimit: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = { requestTimeoutMs: 30_000, headersTimeoutMs: 10_000, idleTimeoutMs: 30_000, maxConnections: 1000, bodyLimit: 256 * 1024 };

/**
 * TLS 1.2 with forward secrecy and AEAD only: Mozilla's "intermediate" configuration without the
 * DHE suites (no CBC, no SHA-1 MACs). TLS 1.3's suites are all AEAD.
 */
const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
];
const TLS13_CIPHERS = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];

export interface HttpOptions {
  tls: TlsMaterial;
  /** PEM of the CAs whose client certificates are accepted (ours). */
  clientCa: string;
  log?: (line: string) => void;
  limits?: Partial<HttpLimits>;
}

/** True when a string anywhere in a parsed JSON value holds a NUL: refused everywhere, before any lookup or write. */
function hasNul(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (depth > 16 || value === null || typeof value !== 'object') return false;
  if (Buffer.isBuffer(value)) return false;
  return Object.entries(value as Record<string, unknown>).some(([k, v]) => k.includes('\u0000') || hasNul(v, depth + 1));
}

function sendError(reply: FastifyReply, err: ServiceError, asText: boolean): FastifyReply {
  if (err.status === 401) reply.header('www-authenticate', 'Basic realm="cardlink", charset="UTF-8"');
  if (err.retryAfter !== undefined) reply.header('retry-after', String(err.retryAfter));
  if (asText) return reply.code(err.status).type('text/plain; charset=utf-8').send(`${err.code}: ${err.message}\n`);
  return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
}

/** The Fastify instance over HTTPS with authentication and error mapping; routes come from est.ts and api.ts. */
export function createApp(service: EnrollmentService, o: HttpOptions): App {
  const limits = { ...DEFAULT_HTTP_LIMITS, ...o.limits };
  const app = Fastify({
    https: {
      key: o.tls.key, cert: o.tls.cert, ca: [o.clientCa], requestCert: true, rejectUnauthorized: false,
      minVersion: 'TLSv1.2', ciphers: [...TLS13_CIPHERS, ...TLS12_CIPHERS].join(':'), honorCipherOrder: true,
      handshakeTimeout: limits.idleTimeoutMs,
      // Node checks running requests against the timeouts at this interval (default 30 s): at most a quarter of the timeout late.
      headersTimeout: limits.headersTimeoutMs, requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4))),
    } as never,
    logger: false,
    bodyLimit: limits.bodyLimit,
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.idleTimeoutMs,
    keepAliveTimeout: Math.min(5000, limits.idleTimeoutMs),
    // Unknown keys are refused, not silently dropped, and a number is not a string (or the reverse).
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  }) as unknown as App;
  app.server.maxConnections = limits.maxConnections;
  app.server.headersTimeout = limits.headersTimeoutMs;
  // Fastify wants a null initial value for decorations that hold objects; the hook sets every request's.
  app.decorateRequest('principal', null as never);
  app.addHook('onRequest', async (req, reply) => {
    // Secrets and personal data in answers must not stay in caches (RFC 9111 §5.2.2.5).
    reply.header('cache-control', 'no-store');
    if (/%00/.test(req.url) || req.url.includes('\u0000')) throw new ServiceError('BAD_REQUEST', 'NUL characters are not accepted');
    const purpose = req.routeOptions.url?.endsWith('/simplereenroll') ? 'renewal' : 'other';
    try {
      req.principal = await authenticate(service, req, purpose);
    } catch (err) {
      if (!(err instanceof ServiceError && err.code === 'UNAUTHENTICATED' && req.routeOptions.config?.public)) throw err;
      req.principal = ANONYMOUS;
    }
  });
  app.addHook('preValidation', async (req) => {
    if (hasNul(req.body) || hasNul(req.query) || hasNul(req.params)) throw new ServiceError('BAD_REQUEST', 'NUL characters are not accepted');
  });
  app.setErrorHandler((err, req, reply) => {
    const asText = req.url.startsWith('/.well-known/est/');
    if (err instanceof ServiceError) {
      if (err.code === 'STORAGE') {
        // The driver's message stays in the service's log: it can echo the caller's input and names the database's internals.
        o.log?.(`storage error on ${req.method} ${req.url.split('?')[0]}: ${err.message}`);
        return sendError(reply, new ServiceError('STORAGE', 'the database could not complete this request; try again later'), asText);
      }
      return sendError(reply, err, asText);
    }
    const e = err as { validation?: unknown; statusCode?: number; message?: string; code?: string };
    if (e.statusCode === 413) return sendError(reply, new ServiceError('TOO_LARGE', `the request body is larger than ${limits.bodyLimit} bytes`), asText);
    if (e.validation !== undefined || (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500)) {
      return sendError(reply, new ServiceError('BAD_REQUEST', e.message ?? 'bad request'), asText);
    }
    o.log?.(`internal error on ${req.method} ${req.url.split('?')[0]}: ${(err as Error).stack ?? String(err)}`);
    return sendError(reply, new ServiceError('INTERNAL', 'internal error: the service could not complete this request; try again'), asText);
  });
  return app;
}

/**
 * The plain-HTTP listener for relying parties: CRL, CA certificate and OCSP only (api.ts
 * registerRevocation), no credentials, small bodies. Revocation information travels over HTTP
 * because it is signed, and because a client checking the service's own TLS certificate could
 * not fetch it over that TLS (RFC 5280 §4.2.1.13, RFC 6960 Appendix A; Microsoft's PKI guidance
 * likewise publishes CDP and AIA over HTTP).
 */
export function createRevocationApp(o: { limits?: Partial<HttpLimits>; log?: (line: string) => void; ocspPath: string; malformedOcsp: Buffer }): FastifyInstance<PlainServer> {
  const limits = { ...DEFAULT_HTTP_LIMITS, ...o.limits };
  const app = Fastify({
    logger: false,
    // A URL the router cannot even decode: on the OCSP path still an OCSPResponse (malformedRequest).
    frameworkErrors: (err, req, res) => {
      const reply = res as unknown as FastifyReply;
      if (req.url.startsWith(o.ocspPath)) return reply.code(200).type('application/ocsp-response').send(o.malformedOcsp);
      return reply.code(400).type('text/plain; charset=utf-8').send(`${err.message}\n`);
    },
    bodyLimit: 4096,
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.idleTimeoutMs,
    keepAliveTimeout: Math.min(5000, limits.idleTimeoutMs),
  });
  app.server.maxConnections = limits.maxConnections;
  app.server.headersTimeout = limits.headersTimeoutMs;
  app.setErrorHandler((err, req, reply) => {
    const e = err as { statusCode?: number; message?: string };
    if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) return reply.code(e.statusCode).type('text/plain; charset=utf-8').send(`${e.message ?? 'bad request'}\n`);
    o.log?.(`internal error on ${req.method} ${req.url.split('?')[0]}: ${(err as Error).stack ?? String(err)}`);
    return reply.code(500).type('text/plain; charset=utf-8').send('internal error\n');
  });
  return app;
}
