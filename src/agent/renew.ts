/**
 * Renewal on the card (issue 13): a certificate in its last days gets a successor with a new key
 * in a new container, and the old one goes once the new one is in place. The order keeps one
 * working credential at every moment: new key → request → certificate installed → new container
 * made the default → old certificate, container and key deleted → store: new linked, old unlinked
 * → delivery reported (which supersedes the old certificate at the service).
 *
 * Nothing is kept between passes except on the card and at the service: a new container whose
 * request was sent is found again by the collect proof of its key (the service bound the request
 * to the card and container), a new key whose request never left is used again, and an installed
 * renewal whose predecessor is still on the card is finished. So a card pulled at any point is
 * finished by the next pass.
 */
import { randomUUID, X509Certificate } from 'node:crypto';
import { hex } from '../bytes.js';
import { certificatesOnCard, supersedes, type CardCertificate, type MinidriverCard } from '../card/index.js';
import { CardlinkError } from '../errors.js';
import { pemBlock } from '../pem.js';
import { renewalBinding, renewalProof, ServiceClientError, type CollectedRequest, type ServiceClient } from '../service/client.js';
import { certThumbprint } from '../thumbprint.js';
import { readCardFresh } from '../windows/card-view.js';
import { collectOnCard, finishCollect, type CertificateDays, type CollectedOnCard, type CollectOptions, type CollectReport, type RemovedCredential, type RenewalItem } from './collect.js';

const DAY = 86_400_000;
/** The name enroll gives a new container, as Windows enrollment does: `lr-` and a GUID. */
const NEW_CONTAINER_RE = /^lr-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const WAITING = new Set(['pending', 'approved', 'issuing']);

export interface RenewOptions {
  /**
   * From how many days before its end a certificate is put up for renewal; default 30, the
   * profiles' default renewal window. The service is the judge: outside its window it refuses,
   * and the refusal is reported in its words.
   */
  windowDays?: number;
  /**
   * Asked once before the first step that generates a key or deletes one, with what is about to
   * happen; answering false stops the pass there (nothing done). Default: go ahead (the agent).
   */
  confirm?: (plan: string[]) => Promise<boolean>;
}

export interface RenewPassOptions extends CollectOptions {
  renew?: RenewOptions;
  /**
   * Removes the store entries of these certificates (the ones a renewal replaced). Called with
   * the card released, after the new certificates were linked.
   */
  unlink?: (thumbprints: string[]) => Promise<string[]>;
}

/** The answer with a certificate for this request, DER, or undefined. */
function certificateOf(r: CollectedRequest): Uint8Array | undefined {
  return r.certificate === null ? undefined : pemBlock(r.certificate, 'CERTIFICATE');
}

class Consent {
  private answer: boolean | undefined;
  constructor(private readonly ask: RenewOptions['confirm']) {}
  async granted(plan: string[]): Promise<boolean> {
    if (!this.ask) return true;
    this.answer ??= await this.ask(plan);
    return this.answer;
  }
}

/**
 * A renewal whose certificate is on the card: it becomes the default, and every older certificate
 * of the same subject and issuer goes with its container and key. Where the old container's
 * certificate file is already gone (a pass cut short between the two deletions), the service's
 * copy of the certificate its key was proven for says what it was.
 */
async function finishSwitches(card: MinidriverCard, phase: CollectedOnCard, consent: Consent, now: Date): Promise<RemovedCredential[] | undefined> {
  const onCard = await certificatesOnCard(card);
  const containers = await card.containers();
  const removed: RemovedCredential[] = [];
  for (const item of phase.items) {
    if (item.kind !== 'reenroll' || item.thumbprint === null || item.action === 'waiting' || item.action === 'rejected' || item.action === 'revoked') continue;
    const fresh = onCard.find((c) => c.container.name === item.container && c.thumbprint === item.thumbprint);
    if (!fresh) continue;
    const older: { container: string; cert: X509Certificate; der: Uint8Array }[] = [];
    for (const c of containers) {
      if (c.name === fresh.container.name) continue;
      const mine = onCard.find((x) => x.container.name === c.name);
      const copies = mine ? [mine.der] : phase.answers.filter((a) => a.container === c.name).map(certificateOf).filter((d): d is Uint8Array => d !== undefined);
      for (const der of copies) {
        const cert = new X509Certificate(der);
        if (supersedes(fresh.cert, cert)) {
          older.push({ container: c.name, cert, der });
          break;
        }
      }
    }
    if (!fresh.container.isDefault || older.length > 0) {
      const plan = [`make '${fresh.container.name}' (the renewed certificate ${fresh.thumbprint}) the default container`, ...older.map((o) => `delete container '${o.container}' with its key and its old certificate ${certThumbprint(o.der)}`)];
      if (!(await consent.granted(plan))) return undefined;
    }
    if (!fresh.container.isDefault) await card.installCertificate(fresh.der, { container: fresh.container.name, makeDefault: true, now });
    for (const o of older) {
      // Minidriver spec CardDeleteContainer: the key material goes with the container (see MinidriverCard.deleteContainer).
      await card.deleteContainer(o.container);
      removed.push({ container: o.container, thumbprint: certThumbprint(o.der), unlinked: false });
    }
  }
  return removed;
}

/** Starts the renewals that are due: one new key and one request per certificate in its window. */
async function startRenewals(card: MinidriverCard, client: ServiceClient, phase: CollectedOnCard, windowDays: number, consent: Consent, now: Date): Promise<RenewalItem[] | undefined> {
  const onCard = await certificatesOnCard(card);
  const containers = await card.containers();
  const claimed = new Set(phase.answers.map((a) => a.container));
  // A new key whose request never reached the service (a pass cut short): used again, not piled up.
  const spare = containers.filter((c) => !c.certificateFile && !claimed.has(c.name) && NEW_CONTAINER_RE.test(c.name));
  const out: RenewalItem[] = [];
  for (const c of onCard) {
    const mine = phase.answers.find((a) => a.container === c.container.name && certificateOf(a) !== undefined && certThumbprint(certificateOf(a)!) === c.thumbprint);
    // Only what this service issued, still good, in its window, and not already replaced on the card.
    if (!mine || mine.state === 'revoked' || mine.state === 'rejected') continue;
    const notAfter = Date.parse(c.cert.validTo);
    if (notAfter <= now.getTime() || notAfter - windowDays * DAY > now.getTime()) continue;
    if (onCard.some((x) => supersedes(x.cert, c.cert))) continue;
    const serial = c.cert.serialNumber.toLowerCase();
    const base = { container: c.container.name, serial, thumbprint: c.thumbprint, notAfter: new Date(notAfter).toISOString() };
    const waiting = phase.answers.find((a) => a.kind === 'reenroll' && WAITING.has(a.state) && a.user === mine.user && a.container !== c.container.name);
    if (waiting) {
      out.push({ ...base, action: 'waiting', newContainer: waiting.container, requestId: waiting.id, reason: null });
      continue;
    }
    const reuse = spare.shift();
    const name = reuse?.name ?? `lr-${randomUUID()}`;
    if (!(await consent.granted([`renew certificate ${c.thumbprint} of '${c.container.name}' (ends ${base.notAfter}): a new key in container '${name}'`]))) return undefined;
    if (!reuse) await repairLeftovers(card);
    if (!reuse) await card.createContainer(name, { bits: c.container.keyBits >= 2048 ? (c.container.keyBits as 2048 | 3072 | 4096) : 2048, keySpec: 'kx' });
    const cardId = hex(await card.cardId()).toLowerCase();
    const { nonce } = await client.challenge(cardId);
    // The subject stays the current certificate's (RFC 7030 §4.2.2); the challengePassword binds the new key to this card.
    const csr = await card.csr(name, mine.subject, { challengePassword: renewalBinding(nonce, cardId, name) });
    const signature = Buffer.from(await card.sign(c.container.name, renewalProof(serial, csr.der), 'sha256')).toString('base64');
    try {
      const { value } = await client.renew({ serial, csr: csr.pem, signature });
      out.push({ ...base, action: value.certificate !== null ? 'issued' : 'requested', newContainer: name, requestId: value.id, reason: null });
    } catch (err) {
      // Refused by the rules: the new key is of no use, so it goes again (failed attempts never fill the card).
      // Anything else (no answer): the request may have arrived; the next pass finds it by the key, or uses the key again.
      if (!(err instanceof ServiceClientError && err.code === 'SERVICE_REFUSED' && err.status !== undefined && err.status < 500 && err.status !== 429)) throw err;
      await card.deleteContainer(name);
      out.push({ ...base, action: 'refused', newContainer: null, requestId: null, reason: err.message });
    }
  }
  return out;
}

/**
 * A key generation or a container deletion cut short by a pulled card leaves a key map entry in
 * use for a slot `cmapfile` does not hold (MinidriverCard.createContainer, deleteContainer): what
 * `card check` names and `--repair` rewrites. Put right before the next key is made and while a
 * renewal's switch may be half done, so the pass that finishes leaves a clean card.
 */
async function repairLeftovers(card: MinidriverCard): Promise<void> {
  const found = (await card.check()).findings.filter((f) => f.severity === 'error');
  if (found.length === 0) return;
  const repaired = await card.repair();
  const left = repaired.after.findings.filter((f) => f.severity === 'error');
  if (left.length > 0) {
    throw new CardlinkError('RENEW_CARD_INCONSISTENT', `a renewal left the card inconsistent and repair did not fix it (${left.map((f) => f.code).join(', ')}): run 'cardlink card check --repair'`);
  }
}

function daysLeft(certs: CardCertificate[], now: Date): CertificateDays[] {
  return certs.map((c) => {
    const notAfter = Date.parse(c.cert.validTo);
    return {
      container: c.container.name, thumbprint: c.thumbprint, serial: c.cert.serialNumber.toLowerCase(), subject: c.cert.subject,
      notAfter: new Date(notAfter).toISOString(), daysLeft: Math.floor((notAfter - now.getTime()) / DAY), isDefault: c.container.isDefault,
    };
  });
}

/**
 * The card phase of a pass with renewal: collect (installs what was issued, renewals included),
 * finish the renewals whose certificate is on the card, start the ones that are due, and collect
 * again when one was submitted (an automatic profile issues at once). Without `o.renew`, only the
 * days left are added to a plain collection.
 */
export async function renewOnCard(card: MinidriverCard, client: ServiceClient, o: RenewPassOptions): Promise<CollectedOnCard> {
  const now = (): Date => o.now?.() ?? new Date();
  const inner: CollectOptions = { ...o };
  delete inner.link;
  let phase = await collectOnCard(card, client, inner);
  const removed: RemovedCredential[] = [];
  let renewals: RenewalItem[] = [];
  if (o.renew) {
    const consent = new Consent(o.renew.confirm);
    const first = await finishSwitches(card, phase, consent, now());
    if (first) {
      removed.push(...first);
      renewals = (await startRenewals(card, client, phase, o.renew.windowDays ?? 30, consent, now())) ?? [];
      if (renewals.some((r) => r.action === 'issued' || r.action === 'requested')) {
        phase = await collectOnCard(card, client, inner);
        removed.push(...((await finishSwitches(card, phase, consent, now())) ?? []));
      }
    }
  }
  // While a renewal is issued but its delivery not yet reported, the switch may have been cut
  // short on an earlier pass (a deletion between its steps): put the card right before reporting.
  if (o.renew && phase.answers.some((a) => a.kind === 'reenroll' && a.state === 'issued')) await repairLeftovers(card);
  const certs = await certificatesOnCard(card);
  // Linked when collect would link (something issued that is not revoked) or a replaced one must be unlinked.
  const toLink = phase.items.some((i) => i.thumbprint !== null && i.action !== 'revoked') || removed.length > 0;
  const view = o.link && toLink ? await readCardFresh(card.minidriver()) : undefined;
  return { ...phase, view, certificates: daysLeft(certs, now()), ...(o.renew ? { renewals, removed } : {}) };
}

/**
 * After the card phase, with the card released: link the card's certificates, remove the store
 * entries of the replaced ones, report deliveries (the service then supersedes the old certificate).
 */
export async function finishRenewPass(phase: CollectedOnCard, client: ServiceClient, o: RenewPassOptions): Promise<CollectReport> {
  const removed = phase.removed ?? [];
  const link = o.link;
  const withUnlink: CollectOptions = {
    ...o,
    ...(link
      ? {
          link: async (view) => {
            const report = await link(view);
            if (o.unlink && removed.length > 0) {
              const gone = new Set((await o.unlink(removed.map((r) => r.thumbprint))).map((t) => t.toUpperCase()));
              for (const r of removed) r.unlinked = gone.has(r.thumbprint.toUpperCase());
            }
            return report;
          },
        }
      : {}),
  };
  return finishCollect(phase, client, withUnlink);
}

/** One pass with renewal on a card whose linker shares this connection (tests, the model). */
export async function renewPass(card: MinidriverCard, client: ServiceClient, o: RenewPassOptions): Promise<CollectReport> {
  return finishRenewPass(await renewOnCard(card, client, o), client, o);
}
