import { createHash, randomBytes } from 'node:crypto';
import { x509 } from '../../x509.js';
import { ServiceError } from '../errors.js';

export const OID = {
  clientAuth: '1.3.6.1.5.5.7.3.2',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  smartcardLogon: '1.3.6.1.4.1.311.20.2.2',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  crlNumber: '2.5.29.20',
} as const;

export function sha256Hex(data: Uint8Array | ArrayBuffer): string {
  return createHash('sha256').update(data instanceof ArrayBuffer ? new Uint8Array(data) : data).digest('hex');
}

/** A fresh serial: 16 random bytes, positive and without a leading zero byte, as lowercase hex. */
export function newSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x40;
  return b.toString('hex');
}

/** Accepts PEM, base64 (EST bodies, line breaks allowed) or DER. */
export function decodeDerOrText(input: Uint8Array | string, what: string): Buffer {
  if (typeof input !== 'string') {
    const buf = Buffer.from(input);
    if (buf[0] === 0x30) return buf;
    return decodeDerOrText(buf.toString('latin1'), what);
  }
  const body = input.replace(/-----(BEGIN|END) [A-Z0-9 ]+-----/g, '').replace(/\s+/g, '');
  if (body.length === 0 || !/^[A-Za-z0-9+/]+=*$/.test(body)) throw new ServiceError('BAD_REQUEST', `${what}: not PEM, base64 or DER`);
  return Buffer.from(body, 'base64');
}

export interface ParsedCsr {
  der: Buffer;
  csr: x509.Pkcs10CertificateRequest;
  csrHash: string;
  keyHash: string;
  subject: string;
}

/** Parses a PKCS#10 request and checks its self-signature and key: proof the sender holds the key. */
export async function parseCsr(input: Uint8Array | string): Promise<ParsedCsr> {
  const der = decodeDerOrText(input, 'certificate request');
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(der);
  } catch (err) {
    throw new ServiceError('CSR_INVALID', `not a PKCS#10 certificate request: ${(err as Error).message}`, { cause: err });
  }
  const alg = csr.publicKey.algorithm as { name: string; modulusLength?: number; namedCurve?: string };
  const rsaOk = alg.name === 'RSASSA-PKCS1-v1_5' || alg.name === 'RSA-PSS' || alg.name === 'RSA-OAEP';
  const ecOk = alg.name === 'ECDSA' || alg.name === 'ECDH';
  if (!rsaOk && !ecOk) throw new ServiceError('CSR_INVALID', `key algorithm ${alg.name} is not accepted (use RSA of 2048 bits or more, or ECDSA P-256/P-384)`);
  let ok = false;
  try {
    ok = await csr.verify();
  } catch (err) {
    throw new ServiceError('CSR_INVALID', `cannot check the request's signature: ${(err as Error).message}`, { cause: err });
  }
  if (!ok) throw new ServiceError('CSR_INVALID', "the request's signature does not match its public key");
  const key = await csr.publicKey.export();
  const kalg = key.algorithm as { modulusLength?: number; namedCurve?: string };
  if (rsaOk && (kalg.modulusLength ?? 0) < 2048) throw new ServiceError('CSR_INVALID', `RSA key of ${kalg.modulusLength} bits: 2048 at least`);
  if (ecOk && kalg.namedCurve !== 'P-256' && kalg.namedCurve !== 'P-384') throw new ServiceError('CSR_INVALID', `curve ${kalg.namedCurve}: use P-256 or P-384`);
  return { der, csr, csrHash: sha256Hex(der), keyHash: sha256Hex(csr.publicKey.rawData), subject: csr.subject };
}

/** The challengePassword attribute of a request, if any. */
export function challengePassword(csr: x509.Pkcs10CertificateRequest): string | undefined {
  const attr = csr.getAttribute('1.2.840.113549.1.9.7');
  return attr instanceof x509.ChallengePasswordAttribute ? attr.password : undefined;
}

/** A certs-only PKCS#7 (CMS SignedData without signers): EST's answer format. */
export function certsOnly(certs: x509.X509Certificate[]): Buffer {
  return Buffer.from(new x509.X509Certificates(certs).export('raw'));
}

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function derTlv(tag: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(value.length), value]);
}

function derOid(oid: string): Buffer {
  const arcs = oid.split('.').map(Number);
  const out: number[] = [40 * arcs[0]! + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const chunk: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return derTlv(0x06, Buffer.from(out));
}

/** RFC 7030 §4.5.2 CsrAttrs: here a plain SEQUENCE of OIDs telling the client what to use. */
export function csrAttrs(oids: string[]): Buffer {
  return derTlv(0x30, Buffer.concat(oids.map(derOid)));
}

/** DER INTEGER for a non-negative number (the CRL number extension). */
export function derInteger(value: number): Buffer {
  let digits = value.toString(16);
  if (digits.length % 2) digits = '0' + digits;
  let bytes = Buffer.from(digits, 'hex');
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return derTlv(0x02, bytes);
}

/** Splits base64 into 64-column lines, as EST clients and PEM readers expect. */
export function base64Lines(data: Uint8Array): string {
  return (Buffer.from(data).toString('base64').match(/.{1,64}/g) ?? []).join('\n') + '\n';
}

export function toPem(der: Uint8Array, label: string): string {
  return `-----BEGIN ${label}-----\n${base64Lines(der)}-----END ${label}-----\n`;
}
