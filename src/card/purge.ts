import { X509Certificate } from 'node:crypto';
import { CardlinkError } from '../errors.js';
import { certThumbprint } from '../thumbprint.js';
import type { ContainerInfo } from './card-files.js';
import type { MinidriverCard } from './minidriver-card.js';

/** A container's certificate as the card holds it now. */
export interface CardCertificate {
  container: ContainerInfo;
  der: Uint8Array;
  cert: X509Certificate;
  /** SHA-1, upper-case hex (what certutil and the Windows store show). */
  thumbprint: string;
}

/** Every container that holds a certificate, with it parsed; containers without one are left out. */
export async function certificatesOnCard(card: MinidriverCard): Promise<CardCertificate[]> {
  const out: CardCertificate[] = [];
  for (const container of await card.containers()) {
    if (!container.certificateFile) continue;
    let der: Uint8Array | undefined;
    try {
      der = await card.readCertificate(container.name);
    } catch (err) {
      // A certificate file left empty by a deletion cut short holds no certificate ('card check' names it).
      if (err instanceof CardlinkError && err.code === 'CARD_FORMAT') continue;
      throw err;
    }
    if (!der) continue;
    out.push({ container, der, cert: new X509Certificate(der), thumbprint: certThumbprint(der) });
  }
  return out;
}

/**
 * Whether `newer` replaces `older`: the same subject from the same issuer, issued later. The CA
 * gives every certificate of one user and profile the same subject, so this is "the same profile
 * and user"; a renewal on the card is exactly such a pair until the old one is removed.
 */
export function supersedes(newer: X509Certificate, older: X509Certificate): boolean {
  if (newer.fingerprint256 === older.fingerprint256) return false;
  if (newer.subject !== older.subject || newer.issuer !== older.issuer) return false;
  return Date.parse(newer.validFrom) > Date.parse(older.validFrom);
}

export type PurgeReason = 'expired' | 'revoked' | 'superseded';

export interface PurgeCandidate {
  container: string;
  thumbprint: string;
  subject: string;
  notAfter: string;
  /** Why it goes (every reason that applies among those asked for). */
  reasons: PurgeReason[];
}

export interface PurgePlan {
  remove: PurgeCandidate[];
  keep: { container: string; thumbprint: string; notAfter: string }[];
  /** The container that will be the default afterwards (the newest valid kept certificate), or null to leave it. */
  newDefault: string | null;
}

export interface PurgeCriteria {
  expired: boolean;
  revoked: boolean;
  superseded: boolean;
  /** Thumbprints the service says are revoked (only consulted with `revoked`). */
  revokedThumbprints?: ReadonlySet<string>;
  now: Date;
}

/** What a purge would remove and why; it touches nothing. */
export function planPurge(certs: readonly CardCertificate[], c: PurgeCriteria): PurgePlan {
  const remove: PurgeCandidate[] = [];
  const keep: PurgePlan['keep'] = [];
  const now = c.now.getTime();
  for (const x of certs) {
    const reasons: PurgeReason[] = [];
    if (c.expired && Date.parse(x.cert.validTo) < now) reasons.push('expired');
    if (c.revoked && c.revokedThumbprints?.has(x.thumbprint)) reasons.push('revoked');
    if (c.superseded && certs.some((y) => supersedes(y.cert, x.cert))) reasons.push('superseded');
    const notAfter = new Date(x.cert.validTo).toISOString();
    if (reasons.length > 0) remove.push({ container: x.container.name, thumbprint: x.thumbprint, subject: x.cert.subject, notAfter, reasons });
    else keep.push({ container: x.container.name, thumbprint: x.thumbprint, notAfter });
  }
  const going = new Set(remove.map((r) => r.container));
  // The default goes to the newest certificate that stays and is valid now, as Windows offers the
  // default container's certificate first.
  const valid = certs
    .filter((x) => !going.has(x.container.name) && Date.parse(x.cert.validFrom) <= now && Date.parse(x.cert.validTo) >= now)
    .sort((a, b) => Date.parse(b.cert.validFrom) - Date.parse(a.cert.validFrom));
  const newest = valid[0];
  const newDefault = newest && !newest.container.isDefault ? newest.container.name : null;
  return { remove, keep, newDefault };
}

export interface PurgeResult {
  removed: PurgeCandidate[];
  /** Containers deleted with their keys (`keys`), else only their certificates went. */
  keysDeleted: boolean;
  defaultContainer: string | null;
}

/**
 * Carries out a plan. The default moves first, so the card never has a default container whose
 * certificate is gone; then each certificate is removed (its file deleted, Base CSP style), or
 * with `keys` its whole container with its key (MinidriverCard.deleteContainer: the minidriver's
 * CardDeleteContainer deletes the key material [CDC]). Needs the PIN verified.
 */
export async function applyPurge(card: MinidriverCard, plan: PurgePlan, o: { keys: boolean; now: Date }): Promise<PurgeResult> {
  const certs = await certificatesOnCard(card);
  if (plan.newDefault !== null) {
    const target = certs.find((x) => x.container.name === plan.newDefault);
    if (target) await card.installCertificate(target.der, { container: target.container.name, makeDefault: true, now: o.now });
  }
  for (const r of plan.remove) {
    // Removed only when the container still holds the very certificate planned for removal.
    const now = certs.find((x) => x.container.name === r.container);
    if (!now || now.thumbprint !== r.thumbprint) continue;
    if (o.keys) await card.deleteContainer(r.container);
    else await card.removeCertificate(r.container);
  }
  const after = await card.containers();
  return { removed: plan.remove, keysDeleted: o.keys, defaultContainer: after.find((c) => c.isDefault)?.name ?? null };
}
