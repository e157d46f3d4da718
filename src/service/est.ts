import type { FastifyReply, FastifyRequest } from 'fastify';
import { base64Lines } from '../pem.js';
import { x509 } from '../x509.js';
import { certsOnly, csrAttrs, OID } from './ca/pki.js';
import type { EnrollmentOutcome, EnrollmentService } from './enrollment.js';
import { ServiceError } from './errors.js';
import type { App } from './http.js';
import { EST_PREFIX } from './protocol.js';

const PKCS7 = 'application/pkcs7-mime; smime-type=certs-only';

// RFC 8951 §3 deprecates Content-Transfer-Encoding: EST bodies are base64 without it.
function sendCerts(reply: FastifyReply, certs: x509.X509Certificate[]): FastifyReply {
  return reply.code(200).type(PKCS7).send(base64Lines(certsOnly(certs)));
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

/**
 * The body of simpleenroll and simplereenroll: base64 (RFC 7030 §4.2.1, RFC 8951 §3). A binary
 * DER body is recognised and refused by name rather than read as mangled text.
 */
function csrBody(body: unknown): string {
  if (!Buffer.isBuffer(body)) throw new ServiceError('BAD_REQUEST', 'send the PKCS#10 request base64-encoded as application/pkcs10');
  if (body.length > 0 && body[0] === 0x30 && /[^A-Za-z0-9+/=\s]/.test(body.toString('latin1'))) {
    throw new ServiceError('BAD_REQUEST', 'the body is binary DER: EST wants the PKCS#10 request base64-encoded (RFC 7030 §4.2.1, RFC 8951 §3), e.g. base64 -w0 req.der');
  }
  const text = body.toString('latin1');
  if (!/^[A-Za-z0-9+/=\s]*$/.test(text) && !text.includes('-----BEGIN')) throw new ServiceError('BAD_REQUEST', 'the body is not base64: send the PKCS#10 request base64-encoded as application/pkcs10');
  return text;
}

/** The CA label of a request under /.well-known/est/<label>/ (RFC 7030 §3.2.2): a profile name, checked. */
async function labelOf(service: EnrollmentService, req: FastifyRequest): Promise<string | undefined> {
  const label = (req.params as { label?: string }).label;
  if (label === undefined) return undefined;
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(label) || !(await service.isLabel(label))) throw new ServiceError('NOT_FOUND', `no CA label '${label.slice(0, 64)}': labels are profile names`);
  return label;
}

export function registerEst(app: App, service: EnrollmentService): void {
  app.addContentTypeParser(['application/pkcs10', 'application/pkcs10-base64'], { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  // With and without a CA label (RFC 7030 §3.2.2): the label names the profile to enroll in.
  for (const base of [EST_PREFIX, `${EST_PREFIX}/:label`]) {
    // RFC 7030 §4.1.1: the CA certificates need no authentication, whatever credentials come along.
    app.get(`${base}/cacerts`, { config: { public: true } }, async (req, reply) => {
      await labelOf(service, req);
      return sendCerts(reply, service.caCertificates());
    });

    app.get(`${base}/csrattrs`, { config: { public: true } }, async (req, reply) => {
      await labelOf(service, req);
      return reply.code(200).type('application/csrattrs').send(base64Lines(csrAttrs([OID.sha256WithRSA, OID.ecdsaWithSha256])));
    });

    app.post(`${base}/simpleenroll`, async (req, reply) => answer(reply, await service.simpleEnroll(req.principal, csrBody(req.body), await labelOf(service, req), req.ip)));

    app.post(`${base}/simplereenroll`, async (req, reply) => answer(reply, await service.simpleReenroll(req.principal, csrBody(req.body), await labelOf(service, req), req.ip)));
  }
}
