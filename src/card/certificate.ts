import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { x509 } from '../x509.js';
import { CardError } from './errors.js';

/** A certificate parsed once: its DER, its public key and what a user needs to recognise it. */
export interface ParsedCertificate {
  der: Uint8Array;
  cert: x509.X509Certificate;
  publicKey: KeyObject;
  /** SHA-256 of the SubjectPublicKeyInfo, hex: how errors name a key. */
  keyId: string;
  subject: string;
}

/** Accepts DER or PEM bytes. */
export function parseCertificate(input: Uint8Array | string): ParsedCertificate {
  let der: Uint8Array;
  const text = typeof input === 'string' ? input : looksLikePem(input) ? Buffer.from(input).toString('latin1') : undefined;
  if (text !== undefined) {
    const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(text);
    if (!m) throw new CardError('BAD_CERTIFICATE', 'no PEM CERTIFICATE block found');
    der = new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
  } else {
    der = input as Uint8Array;
  }
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(der);
  } catch (err) {
    throw new CardError('BAD_CERTIFICATE', `not an X.509 certificate: ${(err as Error).message}`, { cause: err });
  }
  const spki = new Uint8Array(cert.publicKey.rawData);
  return {
    der: new Uint8Array(cert.rawData),
    cert,
    publicKey: createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }),
    keyId: spkiId(spki),
    subject: cert.subject,
  };
}

export function spkiId(spkiDer: Uint8Array): string {
  return createHash('sha256').update(spkiDer).digest('hex');
}

export function keyIdOf(key: KeyObject): string {
  return spkiId(new Uint8Array(key.export({ type: 'spki', format: 'der' })));
}

function looksLikePem(b: Uint8Array): boolean {
  return Buffer.from(b.subarray(0, 64)).toString('latin1').includes('-----BEGIN');
}
