/**
 * A certificate revocation list as a relying party reads it (RFC 5280 §5): parsed with the
 * maintained ASN.1 schema, its signature checked against the issuer's certificate with
 * node:crypto, and asked whether a certificate is on it. The host side (doctor, collect) uses
 * it to say that a certificate still on a card or in the store has been revoked; the service
 * writes CRLs with its own CA code.
 */
import type { X509Certificate } from 'node:crypto';
import { verify } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificateList, CRLReason, id_ce_cRLReasons } from '@peculiar/asn1-x509';
import { CardlinkError } from './errors.js';
import { pemBlocks } from './pem.js';

export class CrlError extends CardlinkError {
  constructor(message: string) {
    super('CRL_INVALID', message);
  }
}

/** RFC 5280 §5.3.1 CRLReason names, by value (7 is unused). */
const REASONS: Record<number, string> = {
  0: 'unspecified',
  1: 'keyCompromise',
  2: 'cACompromise',
  3: 'affiliationChanged',
  4: 'superseded',
  5: 'cessationOfOperation',
  6: 'certificateHold',
  8: 'removeFromCRL',
  9: 'privilegeWithdrawn',
  10: 'aACompromise',
};

/** Signature algorithms a CRL may use here, by OID (RFC 4055 §5, RFC 5758 §3.2): the hash to verify with. */
const SIGNATURE_HASH: Record<string, string> = {
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
};

export interface Revocation {
  revokedAt: Date;
  /** The CRLReason name, when the entry carries one. */
  reason?: string;
}

export interface RevocationList {
  /** The issuer certificate whose key signed the list. */
  issuer: X509Certificate;
  thisUpdate: Date;
  nextUpdate: Date | undefined;
  /** Serial (upper-case hex, no leading zeros, as node:crypto prints it) → entry. */
  entries: Map<string, Revocation>;
  /** Whether a certificate of this issuer is on the list. */
  revocationOf(cert: X509Certificate): Revocation | undefined;
}

function serialKey(serial: string | ArrayBuffer): string {
  const hexText = typeof serial === 'string' ? serial : Buffer.from(serial).toString('hex');
  return hexText.toUpperCase().replace(/^0+(?=.)/, '');
}

/** The DER of a CRL given as DER or PEM (`X509 CRL`). */
function crlDer(input: Uint8Array): Uint8Array {
  if (input[0] === 0x30) return input;
  const block = pemBlocks(Buffer.from(input).toString('latin1')).find((b) => b.label === 'X509 CRL');
  if (!block) throw new CrlError('not a CRL (neither DER nor a PEM "X509 CRL" block)');
  return block.der;
}

/**
 * Parses a CRL and checks it was signed by one of `issuers` (the CA certificates the caller
 * trusts); an unsigned, foreign or unparsable list is refused, never half-used.
 */
export function readRevocationList(input: Uint8Array, issuers: readonly X509Certificate[]): RevocationList {
  let list: CertificateList;
  try {
    list = AsnConvert.parse(crlDer(input), CertificateList);
  } catch (err) {
    if (err instanceof CrlError) throw err;
    throw new CrlError(`the CRL cannot be parsed: ${(err as Error).message}`);
  }
  const hash = SIGNATURE_HASH[list.signatureAlgorithm.algorithm];
  if (!hash) throw new CrlError(`the CRL is signed with an algorithm cardlink does not check (${list.signatureAlgorithm.algorithm})`);
  const tbs = Buffer.from(AsnConvert.serialize(list.tbsCertList));
  const signature = Buffer.from(list.signature);
  const issuer = issuers.find((ca) => {
    try {
      return verify(hash, tbs, ca.publicKey, signature);
    } catch {
      return false;
    }
  });
  if (!issuer) throw new CrlError('the CRL is not signed by the CA that issued the certificates');
  const entries = new Map<string, Revocation>();
  for (const entry of list.tbsCertList.revokedCertificates ?? []) {
    const reasonExt = entry.crlEntryExtensions?.find((e) => e.extnID === id_ce_cRLReasons);
    let reason: string | undefined;
    if (reasonExt) reason = REASONS[AsnConvert.parse(reasonExt.extnValue, CRLReason).reason] ?? 'unknown';
    entries.set(serialKey(entry.userCertificate), { revokedAt: entry.revocationDate.getTime(), ...(reason ? { reason } : {}) });
  }
  const nextUpdate = list.tbsCertList.nextUpdate?.getTime();
  return {
    issuer,
    thisUpdate: list.tbsCertList.thisUpdate.getTime(),
    nextUpdate,
    entries,
    revocationOf(cert) {
      if (!cert.checkIssued(issuer)) return undefined;
      return entries.get(serialKey(cert.serialNumber));
    },
  };
}
