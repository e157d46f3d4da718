import { hostname } from 'node:os';
import { equalBytes, hex } from '../bytes.js';
import type { MinidriverCard } from '../card/index.js';
import { pemBlock } from '../pem.js';
import { collectMessage, ServiceClientError, type CollectedRequest, type RequestKind, type ServiceClient } from '../service/client.js';
import { certThumbprint } from '../thumbprint.js';
import { readCardFresh, type CardView } from '../windows/card-view.js';

export type CollectAction = 'installed' | 'already-on-card' | 'waiting' | 'rejected' | 'revoked' | 'delivered-before';

export interface CollectedItem {
  id: string;
  /** A first enrollment, or a renewal (its certificate replaces an older one on the card). */
  kind: RequestKind;
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
  /** Every certificate on the card afterwards, with the days it has left (renew.ts). */
  certificates?: CertificateDays[];
  /** Renewals started, waiting or refused in this pass (renew.ts). */
  renewals?: RenewalItem[];
  /** Certificates replaced by their renewal: removed from the card with their keys, and unlinked. */
  removed?: RemovedCredential[];
}

/** A certificate on the card and how long it has left. */
export interface CertificateDays {
  container: string;
  thumbprint: string;
  serial: string;
  subject: string;
  notAfter: string;
  /** Whole days until notAfter (negative once expired). */
  daysLeft: number;
  isDefault: boolean;
}

export type RenewalAction = 'requested' | 'issued' | 'waiting' | 'refused';

export interface RenewalItem {
  /** The container and certificate being renewed. */
  container: string;
  serial: string;
  thumbprint: string;
  notAfter: string;
  action: RenewalAction;
  /** Where the new key lives. */
  newContainer: string | null;
  requestId: string | null;
  /** The service's words when it refused. */
  reason: string | null;
}

export interface RemovedCredential {
  container: string;
  thumbprint: string;
  /** Its store entry was removed too (only when a store was given). */
  unlinked: boolean;
}

export interface CollectOptions {
  pin: string;
  /**
   * Links the card's certificates into the Windows store (and proves the links); optional. It is
   * given the card as read at the end of the card phase, and is called after the card was
   * released: Windows' providers open their own connection to the card, which fails
   * (SCARD_E_SHARING_VIOLATION) while the agent holds it exclusively.
   */
  link?: (view: CardView) => Promise<{ linked: { container: string; thumbprint: string }[] }>;
  /** Reported to the service with each delivery. */
  host?: string;
  /**
   * The workstation's time, which an issued certificate's validity is judged at (default: the
   * system clock). The demo's workstations live in the service's simulated days.
   */
  now?: () => Date;
  /** The agent's version, reported with each delivery. */
  agentVersion?: string;
  /** Filled in with where the time went (ms), for the agent's pass records and the benchmark. */
  timings?: CollectTimings;
}

export interface CollectTimings {
  /** Round trips to the service (challenge, collect, delivery reports). */
  serviceMs: number;
  /** Writing certificates to the card. */
  installMs: number;
  /** Linking into the store, with its proofs. */
  linkMs: number;
}

async function timed<T>(t: CollectTimings | undefined, key: keyof CollectTimings, work: () => Promise<T>): Promise<T> {
  const start = performance.now();
  try {
    return await work();
  } finally {
    if (t) t[key] += performance.now() - start;
  }
}

/** What the card phase of a collection leaves for the phase after the card was released. */
export interface CollectedOnCard {
  cardId: string;
  items: CollectedItem[];
  /** Deliveries to report (once linked, where a linker was given). */
  toReport: { item: CollectedItem; ticket: string }[];
  /** The card as it is after the installs, for the linker; undefined when there is nothing to link. */
  view: CardView | undefined;
  /** The service's answers as they came, one per request proven (renew.ts reads kinds, users and certificates). */
  answers: CollectedRequest[];
  /** What renew.ts added to the pass (see CollectReport). */
  certificates?: CertificateDays[];
  renewals?: RenewalItem[];
  removed?: RemovedCredential[];
}

/**
 * For the inserted card: prove each container key to the service (one signature per container
 * over a fresh challenge), install what was issued into its container, link, and report the
 * delivery. Nothing here depends on the workstation that enrolled. Only for callers whose linker
 * does not need the card released (it shares this connection); the others run `collectOnCard`,
 * release the card, then `finishCollect`.
 */
export async function collect(card: MinidriverCard, client: ServiceClient, o: CollectOptions): Promise<CollectReport> {
  return finishCollect(await collectOnCard(card, client, o), client, o);
}

/**
 * What the service holds for the keys in these containers: one signature per container over a
 * fresh challenge (needs the PIN), answered with the requests each key proves. Also how the
 * status of the card's certificates is asked (purge: revoked ones).
 */
export async function proveContainers(card: MinidriverCard, client: ServiceClient, cardId: string, containers: string[], pin: string, t?: CollectTimings): Promise<CollectedRequest[]> {
  const challenge = await timed(t, 'serviceMs', () => client.challenge(cardId));
  await card.verifyPin(pin);
  const proofs: { container: string; signature: string }[] = [];
  for (const name of containers) {
    const signature = await card.sign(name, collectMessage(challenge.nonce, cardId, name), 'sha256');
    proofs.push({ container: name, signature: Buffer.from(signature).toString('base64') });
  }
  return timed(t, 'serviceMs', () => client.collect({ cardId, nonce: challenge.nonce, proofs }));
}

/**
 * The card phase: prove the keys, install what was issued, and (with a linker) read the card for
 * linking. Everything after it — linking through Windows' providers, reporting deliveries — runs in
 * `finishCollect` without the card.
 */
export async function collectOnCard(card: MinidriverCard, client: ServiceClient, o: CollectOptions): Promise<CollectedOnCard> {
  const cardId = hex(await card.cardId()).toLowerCase();
  const containers = await card.containers();
  if (containers.length === 0) return { cardId, items: [], toReport: [], view: undefined, answers: [] };
  const t = o.timings;
  const found = await proveContainers(card, client, cardId, containers.map((c) => c.name), o.pin, t);
  // Every certificate is checked before the first is written: a malformed answer writes nothing.
  const issued = new Map<string, Uint8Array>();
  for (const r of found) {
    if (r.certificate === null || r.state === 'rejected' || r.state === 'revoked') continue;
    const der = pemBlock(r.certificate, 'CERTIFICATE');
    if (der === undefined) throw new ServiceClientError('SERVICE_BAD_ANSWER', `request ${r.id}: the service's certificate is not PEM; nothing was written to the card`);
    issued.set(r.id, der);
  }

  const items: CollectedItem[] = [];
  const toReport: { item: CollectedItem; ticket: string }[] = [];
  for (const r of found) {
    const item: CollectedItem = { id: r.id, kind: r.kind, container: r.container ?? '', state: r.state, action: 'waiting', thumbprint: null, linked: false, reported: false, retryAfter: r.retryAfter, reason: r.reason, revokedOnCard: false };
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
    // The DER as the CA signed it; installCertificate parses it and checks it against the card's key.
    const der = issued.get(r.id);
    if (der === undefined) continue;
    item.thumbprint = certThumbprint(der);
    const onCard = await card.readCertificate(item.container);
    if (onCard && equalBytes(onCard, der)) item.action = r.state === 'delivered' ? 'delivered-before' : 'already-on-card';
    else {
      await timed(t, 'installMs', () => card.installCertificate(der, { container: item.container, ...(o.now ? { now: o.now() } : {}) }));
      item.action = 'installed';
    }
    if (r.deliveryTicket !== null) toReport.push({ item, ticket: r.deliveryTicket });
  }
  const view = o.link && items.some((i) => i.thumbprint !== null && i.action !== 'revoked') ? await readCardFresh(card.minidriver()) : undefined;
  return { cardId, items, toReport, view, answers: found };
}

/** After the card phase, with the card released: link (where a linker was given) and report the deliveries. */
export async function finishCollect(phase: CollectedOnCard, client: ServiceClient, o: CollectOptions): Promise<CollectReport> {
  const { cardId, items, toReport, view } = phase;
  const extra = { ...(phase.certificates ? { certificates: phase.certificates } : {}), ...(phase.renewals ? { renewals: phase.renewals } : {}), ...(phase.removed ? { removed: phase.removed } : {}) };
  const t = o.timings;
  if (o.link && view) {
    const report = await timed(t, 'linkMs', () => o.link!(view));
    const linked = new Set(report.linked.map((l) => `${l.container}/${l.thumbprint.toUpperCase()}`));
    for (const i of items) i.linked = i.thumbprint !== null && linked.has(`${i.container}/${i.thumbprint}`);
  }
  // Delivered means on the card and, where a store was given, linked there too. The reports go
  // out together: one round trip of waiting instead of one per certificate.
  const due = toReport.filter(({ item }) => !o.link || item.linked);
  await timed(t, 'serviceMs', () =>
    Promise.all(
      due.map(async ({ item, ticket }) => {
        await client.delivered(item.id, { ticket, host: o.host ?? hostname(), thumbprint: item.thumbprint!, ...(o.agentVersion ? { agentVersion: o.agentVersion } : {}) });
        item.reported = true;
        item.state = 'delivered';
      }),
    ),
  );
  const waits = items.filter((i) => i.action === 'waiting' && i.retryAfter !== null).map((i) => i.retryAfter!);
  return { cardId, items, retryAfter: waits.length > 0 ? Math.min(...waits) : null, ...extra };
}
