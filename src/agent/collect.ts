import { hostname } from 'node:os';
import { equalBytes, hex } from '../bytes.js';
import type { MinidriverCard } from '../card/index.js';
import { pemBlock } from '../pem.js';
import { collectMessage, ServiceClientError, type ServiceClient } from '../service/client.js';
import { certThumbprint } from '../thumbprint.js';

export type CollectAction = 'installed' | 'already-on-card' | 'waiting' | 'rejected' | 'revoked' | 'delivered-before';

export interface CollectedItem {
  id: string;
  container: string;
  state: string;
  action: CollectAction;
  thumbprint: string | null;
  /** The certificate is in the Windows store, linked to its key (only when a linker was given). */
  linked: boolean;
  /** The service recorded the delivery. */
  reported: boolean;
  retryAfter: number | null;
  /** Why an operator rejected or revoked it, when they said. */
  reason: string | null;
  /** A revoked certificate that the card still holds (`card rm-cert` removes it). */
  revokedOnCard: boolean;
}

export interface CollectReport {
  cardId: string;
  items: CollectedItem[];
  /** The shortest wait the service asked for, while something is still waiting; else null. */
  retryAfter: number | null;
}

export interface CollectOptions {
  pin: string;
  /** Links the card's certificates into the Windows store (and proves the links); optional. */
  link?: (card: MinidriverCard) => Promise<{ linked: { container: string; thumbprint: string }[] }>;
  /** Reported to the service with each delivery. */
  host?: string;
  /**
   * The workstation's time, which an issued certificate's validity is judged at (default: the
   * system clock). The demo's workstations live in the service's simulated days.
   */
  now?: () => Date;
}

/**
 * For the inserted card: prove each container key to the service (one signature per container
 * over a fresh challenge), install what was issued into its container, link, and report the
 * delivery. Nothing here depends on the workstation that enrolled.
 */
export async function collect(card: MinidriverCard, client: ServiceClient, o: CollectOptions): Promise<CollectReport> {
  const cardId = hex(await card.cardId()).toLowerCase();
  const containers = await card.containers();
  if (containers.length === 0) return { cardId, items: [], retryAfter: null };
  const challenge = await client.challenge(cardId);
  await card.verifyPin(o.pin);
  const proofs = [];
  for (const c of containers) {
    const signature = await card.sign(c.name, collectMessage(challenge.nonce, cardId, c.name), 'sha256');
    proofs.push({ container: c.name, signature: Buffer.from(signature).toString('base64') });
  }
  const found = await client.collect({ cardId, nonce: challenge.nonce, proofs });

  const items: CollectedItem[] = [];
  const toReport: { item: CollectedItem; ticket: string }[] = [];
  for (const r of found) {
    const item: CollectedItem = { id: r.id, container: r.container ?? '', state: r.state, action: 'waiting', thumbprint: null, linked: false, reported: false, retryAfter: r.retryAfter, reason: r.reason, revokedOnCard: false };
    items.push(item);
    if (r.state === 'rejected' || r.state === 'revoked') {
      item.action = r.state;
      const revoked = r.state === 'revoked' && r.certificate !== null ? pemBlock(r.certificate, 'CERTIFICATE') : undefined;
      if (revoked) {
        item.thumbprint = certThumbprint(revoked);
        const onCard = await card.readCertificate(item.container).catch(() => undefined);
        item.revokedOnCard = onCard !== undefined && equalBytes(onCard, revoked);
      }
      continue;
    }
    if (r.certificate === null) continue;
    // The DER as the CA signed it; installCertificate parses it and checks it against the card's key.
    const der = pemBlock(r.certificate, 'CERTIFICATE');
    if (der === undefined) throw new ServiceClientError('SERVICE_BAD_ANSWER', `request ${r.id}: the service's certificate is not PEM`);
    item.thumbprint = certThumbprint(der);
    const onCard = await card.readCertificate(item.container);
    if (onCard && equalBytes(onCard, der)) item.action = r.state === 'delivered' ? 'delivered-before' : 'already-on-card';
    else {
      await card.installCertificate(der, { container: item.container, ...(o.now ? { now: o.now() } : {}) });
      item.action = 'installed';
    }
    if (r.deliveryTicket !== null) toReport.push({ item, ticket: r.deliveryTicket });
  }
  if (o.link && items.some((i) => i.thumbprint !== null && i.action !== 'revoked')) {
    const report = await o.link(card);
    const linked = new Set(report.linked.map((l) => `${l.container}/${l.thumbprint.toUpperCase()}`));
    for (const i of items) i.linked = i.thumbprint !== null && linked.has(`${i.container}/${i.thumbprint}`);
  }
  for (const { item, ticket } of toReport) {
    // Delivered means on the card and, where a store was given, linked there too.
    if (o.link && !item.linked) continue;
    await client.delivered(item.id, { ticket, host: o.host ?? hostname(), thumbprint: item.thumbprint! });
    item.reported = true;
    item.state = 'delivered';
  }
  const waits = items.filter((i) => i.action === 'waiting' && i.retryAfter !== null).map((i) => i.retryAfter!);
  return { cardId, items, retryAfter: waits.length > 0 ? Math.min(...waits) : null };
}
