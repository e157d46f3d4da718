import type { FastifyReply } from 'fastify';
import { x509 } from '../x509.js';
import { base64Lines, certsOnly, csrAttrs, OID } from './ca/pki.js';
import type { EnrollmentService } from './enrollment.js';
import type { RequestView } from './protocol.js';
import { ServiceError } from './errors.js';
import type { App } from './http.js';

export const EST_PREFIX = '/.well-known/est';
const PKCS7 = 'application/pkcs7-mime; smime-type=certs-only';

function sendCerts(reply: FastifyReply, certs: x509.X509Certificate[]): FastifyReply {
  return reply.code(200).header('content-transfer-encoding', 'base64').type(PKCS7).send(base64Lines(certsOnly(certs)));
}

/** RFC 7030 §4.2.3: a certificate when there is one, 202 + Retry-After while it waits, an error otherwise. */
function answer(reply: FastifyReply, view: RequestView): FastifyReply {
  if (view.certificate !== null && (view.state === 'issued' || view.state === 'delivered')) {
    return sendCerts(reply, [new x509.X509Certificate(view.certificate)]);
  }
  if (view.retryAfter !== null) {
    return reply.code(202).header('retry-after', String(view.retryAfter)).type('text/plain; charset=utf-8').send(`request ${view.id} is ${view.state}; ask again with the same request later\n`);
  }
  if (view.state === 'rejected') throw new ServiceError('FORBIDDEN', `request ${view.id} was rejected${view.reason ? `: ${view.reason}` : ''}`);
  throw new ServiceError('FORBIDDEN', `request ${view.id} is ${view.state}: its certificate is no longer valid`);
}

export function registerEst(app: App, service: EnrollmentService): void {
  app.addContentTypeParser(['application/pkcs10', 'application/pkcs10-base64'], { parseAs: 'string' }, (_req, body, done) => done(null, body));

  app.get(`${EST_PREFIX}/cacerts`, async (_req, reply) => sendCerts(reply, service.caCertificates()));

  app.get(`${EST_PREFIX}/csrattrs`, async (_req, reply) =>
    reply.code(200).header('content-transfer-encoding', 'base64').type('application/csrattrs').send(base64Lines(csrAttrs([OID.sha256WithRSA, OID.ecdsaWithSha256]))),
  );

  app.post(`${EST_PREFIX}/simpleenroll`, async (req, reply) => {
    if (typeof req.body !== 'string') throw new ServiceError('BAD_REQUEST', 'send the PKCS#10 request base64-encoded as application/pkcs10');
    return answer(reply, await service.submit(req.principal, { csr: req.body }));
  });

  app.post(`${EST_PREFIX}/simplereenroll`, async (req, reply) => {
    if (typeof req.body !== 'string') throw new ServiceError('BAD_REQUEST', 'send the PKCS#10 request base64-encoded as application/pkcs10');
    return answer(reply, await service.reenroll(req.principal, req.body));
  });
}
