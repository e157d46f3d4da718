import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Server } from 'node:https';
import type { Principal } from './auth.js';
import type { EnrollmentService } from './enrollment.js';
import { ServiceError } from './errors.js';
import type { TlsMaterial } from './tls.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
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
async function authenticate(service: EnrollmentService, req: FastifyRequest): Promise<Principal> {
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
      const p = await service.fromClientCertificate(peer.serialNumber);
      if (!p) throw unauthenticated('the client certificate is revoked, expired or unknown');
      return p;
    }
  }
  return ANONYMOUS;
}

export interface HttpOptions {
  tls: TlsMaterial;
  /** PEM of the CAs whose client certificates are accepted (ours). */
  clientCa: string;
  log?: (line: string) => void;
}

function sendError(reply: FastifyReply, err: ServiceError, asText: boolean): FastifyReply {
  if (err.status === 401) reply.header('www-authenticate', 'Basic realm="cardlink", charset="UTF-8"');
  if (asText) return reply.code(err.status).type('text/plain; charset=utf-8').send(`${err.code}: ${err.message}\n`);
  return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
}

/** The Fastify instance over HTTPS with authentication and error mapping; routes come from est.ts and api.ts. */
export function createApp(service: EnrollmentService, o: HttpOptions): App {
  const app = Fastify({
    https: { key: o.tls.key, passphrase: o.tls.passphrase, cert: o.tls.cert, ca: [o.clientCa], requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
    logger: false,
    bodyLimit: 256 * 1024,
  }) as unknown as App;
  // Fastify wants a null initial value for decorations that hold objects; the hook sets every request's.
  app.decorateRequest('principal', null as never);
  app.addHook('onRequest', async (req) => {
    req.principal = await authenticate(service, req);
  });
  app.setErrorHandler((err, req, reply) => {
    const asText = req.url.startsWith('/.well-known/est/');
    if (err instanceof ServiceError) return sendError(reply, err, asText);
    const e = err as { validation?: unknown; statusCode?: number; message?: string };
    if (e.validation !== undefined || (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500)) {
      return sendError(reply, new ServiceError('BAD_REQUEST', e.message ?? 'bad request'), asText);
    }
    o.log?.(`internal error on ${req.method} ${req.url.split('?')[0]}: ${(err as Error).stack ?? String(err)}`);
    return sendError(reply, new ServiceError('INTERNAL', 'internal error: the service could not complete this request; try again'), asText);
  });
  return app;
}
