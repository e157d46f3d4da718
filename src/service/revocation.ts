/**
 * Revocation as relying parties see it: the CRL (RFC 5280 §5), published after every change and
 * re-signed before it goes stale, and the certificate status the OCSP responder (ca/ocsp.ts)
 * answers from. The one place a certificate is revoked by serial, held (certificateHold) and
 * released: the enrollment use cases (revoke a request, supersede on renewal) and the card life
 * cycle (lost, suspend, resume) all end here, so the CRL and the OCSP answers never disagree.
 */
import type { UpstreamCa } from './ca/upstream.js';
import type { CertificateStatus, StatusSource } from './ca/ocsp.js';
import type { Clock } from './clock.js';
import { ServiceError } from './errors.js';
import { CRL_REASON, type Storage } from './storage/storage.js';

export { CRL_REASON };

/** RFC 5280 §5.3.1 CRLReason codes by name (7 is unused; removeFromCRL, 8, belongs to delta CRLs only). */
export const CRL_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
  aACompromise: 10,
} as const;
export type CrlReasonName = keyof typeof CRL_REASONS;

/** A reason code a revocation may carry: RFC 5280 §5.3.1's, without 7 (unused) and 8 (delta CRLs only). */
export function isRevocationReason(reason: number): boolean {
  return Number.isInteger(reason) && reason >= 0 && reason <= 10 && reason !== 7 && reason !== 8;
}

const SERIAL_RE = /^[0-9a-f]{1,40}$/;

export interface RevocationOptions {
  storage: Storage;
  ca: UpstreamCa;
  clock: Clock;
  /** How long a CRL is valid (nextUpdate - thisUpdate); it is re-signed once half of that has passed. Default 7 days. */
  crlValidityMs?: number;
}

export class Revocation implements StatusSource {
  private readonly storage: Storage;
  private readonly ca: UpstreamCa;
  private readonly clock: Clock;
  readonly crlValidityMs: number;
  private publishing: Promise<Buffer> | undefined;

  constructor(o: RevocationOptions) {
    this.storage = o.storage;
    this.ca = o.ca;
    this.clock = o.clock;
    this.crlValidityMs = o.crlValidityMs ?? 7 * 24 * 3_600_000;
  }

  private now(): number {
    return this.clock.now().getTime();
  }

  /** The current CRL, re-signed (with the next number) when it is about to go stale. */
  async crl(): Promise<Buffer> {
    const latest = await this.storage.latestCrl();
    if (latest && !this.due(latest.nextUpdate)) return latest.der;
    return this.publishCrl();
  }

  /** Past half its validity: a relying party that cached it should find a newer one by then. */
  private due(nextUpdate: number): boolean {
    return nextUpdate - this.now() <= this.crlValidityMs / 2;
  }

  /** Signs and stores a new CRL of every revoked (or held) certificate; what each change ends with. */
  async publishCrl(): Promise<Buffer> {
    const now = this.now();
    const revoked = await this.storage.revokedCertificates();
    const { der } = await this.storage.publishCrl(now, async (number) => ({
      der: await this.ca.signCrl({
        number,
        thisUpdate: new Date(now),
        nextUpdate: new Date(now + this.crlValidityMs),
        entries: revoked.map((c) => ({ serial: c.serial, revokedAt: new Date(c.revokedAt!), reason: c.revocationReason ?? 0 })),
      }),
      nextUpdate: now + this.crlValidityMs,
    }));
    return der;
  }

  /** StatusSource: the CRL in force, a new one first when it is due (concurrent callers share one signing). */
  async current(): Promise<{ number: number; thisUpdate: Date; nextUpdate: Date }> {
    let info = await this.storage.latestCrlInfo();
    if (!info || this.due(info.nextUpdate)) {
      this.publishing ??= this.publishCrl().finally(() => (this.publishing = undefined));
      await this.publishing;
      info = await this.storage.latestCrlInfo();
    }
    return { number: info!.number, thisUpdate: new Date(info!.thisUpdate), nextUpdate: new Date(info!.nextUpdate) };
  }

  /** StatusSource: good, revoked (time and reason) or unknown (never issued by this CA). */
  async status(serial: string): Promise<CertificateStatus> {
    const s = await this.storage.certificateStatus(serial);
    if (!s) return { status: 'unknown' };
    if (s.revokedAt === null) return { status: 'good' };
    return { status: 'revoked', revokedAt: new Date(s.revokedAt), reason: s.reason ?? 0 };
  }

  /**
   * Revokes the certificate with `serial` (lowercase hex) for `reason` and publishes a new CRL.
   * certificateHold suspends it (release it with `unhold`); any other reason is final and also
   * replaces a hold. Returns false when it was revoked already (nothing changes).
   */
  async revoke(actor: string, serial: string, reason: number): Promise<boolean> {
    const s = checkSerial(serial);
    if (!isRevocationReason(reason)) throw new ServiceError('BAD_REQUEST', 'reason is an RFC 5280 CRLReason code (0-6, 9, 10)');
    const outcome = await this.storage.revokeCertificate(s, reason, actor, this.now());
    if (outcome === 'unknown') throw new ServiceError('NOT_FOUND', `no certificate with serial ${s}`);
    if (outcome === 'unchanged') return false;
    await this.publishCrl();
    return true;
  }

  /**
   * Releases a certificateHold: the certificate is good again and its entry leaves the new CRL
   * (full CRLs simply drop it; removeFromCRL is for delta CRLs, RFC 5280 §5.3.1). A certificate
   * not on hold is refused: a final revocation cannot be undone.
   */
  async unhold(actor: string, serial: string): Promise<void> {
    const s = checkSerial(serial);
    if (!(await this.storage.unholdCertificate(s, actor, this.now()))) {
      const status = await this.storage.certificateStatus(s);
      if (!status) throw new ServiceError('NOT_FOUND', `no certificate with serial ${s}`);
      throw new ServiceError('CONFLICT', `certificate ${s} is not on hold${status.revokedAt !== null ? ': it is revoked for good' : ''}`);
    }
    await this.publishCrl();
  }
}

function checkSerial(serial: string): string {
  const s = serial.toLowerCase().replace(/^(?:00)+(?=.)/, '');
  if (!SERIAL_RE.test(s)) throw new ServiceError('BAD_REQUEST', `'${serial.slice(0, 60)}' is not a certificate serial number (hex)`);
  return s;
}
