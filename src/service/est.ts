import type { FastifyReply } from 'fastify';
import { base64Lines } from '../pem.js';
import { x509 } from '../x509.js';
import { certsOnly, csrAttrs, OID } from './ca/pki.js';
import type { EnrollmentOutcome, EnrollmentService } from './enrollment.js';
import { ServiceError } from './errors.js';
import type { App } from './http.js';
import { EST_PREFIX } from './protocol.js';

const PKCS7 = 'application/pkcs7-mime; smime-type=certs-only';

function sendCerts(reply: FastifyReply, certs: x509.X509Certificate[]): FastifyReply {
  return reply.code(200).header('content-transfer-encoding', 'base64').type(PKCS7).send(base64Lines(certsOnly(certs)));
}

/** RFC 7030 §4.2.3: a certificate when there is one, 202 + Retry-After while it waits, an error otherwise. */
function answer(reply: FastifyReply, o: EnrollmentOutcome): FastifyReply {
  if (o.certificate !== null && (o.state === 'issued' || o.state === 'delivered')) {
    // The DER as the CA signed it and storage kept it.
    return sendCerts(reply, [new x509.X509Certificate(o.certificate)]);
  }
  if (o.retryAfter !== null) {
    return reply.code(202).header('retry-after', String(o.retryAfter)).type('text/plain; charset=utf-8').send(`request ${o.id} is ${o.state}; ask again with the same request later\n`);
  }
  if (o.state === 'rejected') throw new ServiceError('FORBIDDEN', `request ${o.id} was rejected${o.reason ? `: ${o.reason}` : ''}`);
  throw new ServiceError('FORBIDDEN', `request ${o.id} is ${o.state}: its certificate is no longer valid`);
}

function csrBody(body: unknown): string {
  if (typeof body !== 'string') throw new ServiceError('BAD_REQUEST', 'send the PKCS#10 request base64-encoded as application/pkcs10');
  return body;
}

export function registerEst(app: App, service: EnrollmentService): void {
  app.addContentTypeParser(['application/pkcs10', 'application/pkcs10-base64'], { parseAs: 'string' }, (_req, body, done) => done(null, body));

  app.get(`${EST_PREFIX}/cacerts`, async (_req, reply) => sendCerts(reply, service.caCertificates()));

  app.get(`${EST_PREFIX}/csrattrs`, async (_req, reply) =>
    reply.code(200).header('content-transfer-encoding', 'base64').type('application/csrattrs').send(base64Lines(csrAttrs([OID.sha256WithRSA, OID.ecdsaWithSha256]))),
  );

  app.post(`${EST_PREFIX}/simpleenroll`, async (req, reply) => answer(reply, await service.simpleEnroll(req.principal, csrBody(req.body))));

  app.post(`${EST_PREFIX}/simplereenroll`, async (req, reply) => answer(reply, await service.simpleReenroll(req.principal, csrBody(req.body))));
}
