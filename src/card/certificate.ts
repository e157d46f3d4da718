import { X509Certificate, type KeyObject } from 'node:crypto';
import { toDer } from '../pem.js';
import { certThumbprint, keyId } from '../thumbprint.js';
import { CardError } from './errors.js';

/**
 * A certificate parsed once (node:crypto's X509Certificate: the host side's one X.509 parser),
 * with what the card and Windows layers ask of it. Pass this object along instead of its DER.
 */
export interface ParsedCertificate {
  der: Uint8Array;
  cert: X509Certificate;
  publicKey: KeyObject;
  /** SHA-256 of the SubjectPublicKeyInfo, hex: how cardlink names a key (src/thumbprint.ts). */
  keyId: string;
  /** SHA-1 of the DER, upper-case hex: the name Windows files the certificate under. */
  thumbprint: string;
  /** The subject DN, RDNs joined by ", " (node separates them by newlines). */
  subject: string;
}

/** Accepts DER, or PEM (a CERTIFICATE block) as bytes or text. */
export function parseCertificate(input: Uint8Array | string): ParsedCertificate {
  const found = toDer(input, 'CERTIFICATE');
  if (!found) throw new CardError('BAD_CERTIFICATE', 'neither DER nor a PEM CERTIFICATE block');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(found.der);
  } catch (err) {
    throw new CardError('BAD_CERTIFICATE', `not an X.509 certificate: ${(err as Error).message}`, { cause: err });
  }
  const der = new Uint8Array(cert.raw);
  return {
    der,
    cert,
    publicKey: cert.publicKey,
    keyId: keyId(cert.publicKey),
    thumbprint: certThumbprint(der),
    subject: cert.subject.split('\n').join(', '),
  };
}
