/**
 * `card purge`: old certificates off the card (issue 13). Windows offers every certificate on the
 * card at logon, and users pick the expired one; what is expired, revoked or superseded by a newer
 * one of the same user goes, the default container moves to the newest valid one. A dry run
 * (the default) only lists; the card is not written.
 */
import { hex } from '../bytes.js';
import { applyPurge, certificatesOnCard, planPurge, type MinidriverCard, type PurgePlan, type PurgeResult } from '../card/index.js';
import { CardlinkError } from '../errors.js';
import { pemBlock } from '../pem.js';
import type { ServiceClient } from '../service/client.js';
import { certThumbprint } from '../thumbprint.js';
import { proveContainers } from './collect.js';

export interface PurgeOptions {
  expired: boolean;
  revoked: boolean;
  superseded: boolean;
  /** Delete the containers with their keys, not only the certificates. */
  keys: boolean;
  /** Act; without it nothing is written to the card. */
  apply: boolean;
  now: Date;
  /** Needed for `revoked` (the service is asked) and to act. */
  pin?: string;
  client?: ServiceClient;
}

export interface PurgeReport {
  cardId: string;
  plan: PurgePlan;
  applied: boolean;
  result: PurgeResult | null;
}

/**
 * The thumbprints of this card's certificates that the service has revoked, asked the way
 * collect asks: each container's key proves itself, and the service answers with its requests
 * and their state (a revoked request shows the certificate it revoked).
 */
export async function revokedOnCard(card: MinidriverCard, client: ServiceClient, pin: string, containers: string[]): Promise<Set<string>> {
  const cardId = hex(await card.cardId()).toLowerCase();
  if (containers.length === 0) return new Set();
  const answers = await proveContainers(card, client, cardId, containers, pin);
  const out = new Set<string>();
  for (const a of answers) {
    if (a.state !== 'revoked' || a.certificate === null) continue;
    const der = pemBlock(a.certificate, 'CERTIFICATE');
    if (der) out.add(certThumbprint(der));
  }
  return out;
}

export async function purgeOnCard(card: MinidriverCard, o: PurgeOptions): Promise<PurgeReport> {
  const cardId = hex(await card.cardId()).toLowerCase();
  const certs = await certificatesOnCard(card);
  let revoked: Set<string> | undefined;
  if (o.revoked) {
    if (!o.client || o.pin === undefined) throw new CardlinkError('PURGE_NEEDS_SERVICE', '--revoked asks the service which certificates it revoked: give --server (and the PIN, for the card to prove its keys)');
    revoked = await revokedOnCard(card, o.client, o.pin, certs.map((c) => c.container.name));
  }
  const plan = planPurge(certs, { expired: o.expired, revoked: o.revoked, superseded: o.superseded, now: o.now, ...(revoked ? { revokedThumbprints: revoked } : {}) });
  if (!o.apply || (plan.remove.length === 0 && plan.newDefault === null)) return { cardId, plan, applied: false, result: null };
  if (o.pin === undefined) throw new CardlinkError('PURGE_NEEDS_PIN', 'removing certificates needs the PIN');
  await card.verifyPin(o.pin);
  const result = await applyPurge(card, plan, { keys: o.keys, now: o.now });
  return { cardId, plan, applied: true, result };
}
