import { randomUUID } from 'node:crypto';
import { hex } from '../bytes.js';
import { CardError, type MinidriverCard } from '../card/index.js';
import { CardlinkError } from '../errors.js';
import { ServiceClientError, type RequestView, type ServiceClient } from '../service/client.js';
import { ensureCardAdminKey, type AdminKeyOutcome } from './admin-key.js';

export interface EnrollOptions {
  /** The one-time enrollment token an operator gave the user. */
  token: string;
  pin: string;
  /** Container name; default `lr-` and a fresh GUID, like the names Windows enrollment makes. PIV: a slot (`9a`), default the first free of 9A, 9D, 82…95. */
  container?: string;
  bits?: 2048 | 3072 | 4096;
  /** The card's administrator key when it was initialised with a private one (CARDLINK_ADMIN_KEY). */
  adminKey?: Uint8Array;
}

export interface EnrollResult {
  requestId: string;
  state: string;
  cardId: string;
  container: string;
  /** Seconds the service asked to wait before collecting, while it waits for approval. */
  retryAfter: number | null;
  certificate: string | null;
  /** The card's administrator key: its own, managed by the service, or left stand-alone (PIV: none, and why). */
  adminKey?: AdminKeyOutcome;
}

/**
 * Asks the service about the token before anything happens on the card: this proves the service
 * is there and is the one we trust (TLS), and that the token is known, not expired, not revoked,
 * and not spent. A token lists the requests it made, so a spent one answers with its request.
 */
async function checkToken(client: ServiceClient, token: string): Promise<void> {
  let made: RequestView[];
  try {
    made = await client.requests(token);
  } catch (err) {
    if (err instanceof ServiceClientError && err.status === 401) {
      throw new CardlinkError('TOKEN_REFUSED', 'the service does not accept this enrollment token (unknown, expired or revoked): ask an operator for a new one; nothing was done on the card', { cause: err });
    }
    if (err instanceof CardlinkError) throw new CardlinkError(err.code, `${err.message}; nothing was done on the card`, { cause: err });
    throw err;
  }
  const used = made[0];
  if (used) {
    throw new CardlinkError(
      'TOKEN_USED',
      `this enrollment token was used already, for request ${used.id} (${used.state}, card ${used.cardId ?? '?'}, container '${used.container ?? '?'}'): run 'cardlink collect' with that card; a new key needs a new token. Nothing was done on the card`,
    );
  }
}

function retryable(err: unknown): boolean {
  return err instanceof ServiceClientError && (err.code === 'SERVICE_UNREACHABLE' || err.code === 'SERVICE_TIMEOUT');
}

/**
 * The PIV slots an enrollment puts its key in, in this order: 9A (PIV Authentication, the slot
 * Windows' PIV minidriver presents as the default container and logon uses, docs/piv.md) while it
 * is free, else 9D (Key Management) and then the retired key slots 82…95 — the key exchange slots
 * (`kx`); 9C (PIN always) and 9E (no PIN) are left to their own purposes (SP 800-73-4 Part 1 §3.2).
 */
const PIV_ENROLLMENT_SLOTS: readonly number[] = [0x9a, 0x9d, ...Array.from({ length: 20 }, (_, i) => 0x82 + i)];

/** What enrollment says instead of re-keying a PIV card: it has no GIDS administrator key (issue 14). */
const PIV_ADMIN_KEY_NOTE: AdminKeyOutcome = {
  managed: false,
  reason: "a PIV card has no GIDS administrator key, so the service keeps none for it and there is no help-desk challenge/response unblock; its PIN is unblocked with its PUK ('cardlink card pin unblock', CARDLINK_PUK)",
};

function slotText(slot: number): string {
  return slot.toString(16).padStart(2, '0');
}

/** The slot for a new key: the one asked for, else the first free slot in PIV_ENROLLMENT_SLOTS. */
async function pivSlotFor(card: MinidriverCard, asked: string | undefined): Promise<string> {
  if (asked !== undefined) return asked;
  const used = new Set((await card.containers()).map((c) => c.slot));
  const free = PIV_ENROLLMENT_SLOTS.find((s) => !used.has(s));
  if (free === undefined) {
    throw new CardError('NO_FREE_SLOT', "every PIV key exchange slot (9A, 9D, 82-95) holds a key cardlink knows: remove a certificate ('cardlink card rm-cert') and its key to make room; nothing was done on the card");
  }
  return slotText(free);
}

/**
 * Sends the request, retrying what may not have arrived; a lost answer is found again among the
 * token's requests. Undefined with the last error when it did not get through.
 */
async function submitRequest(card: MinidriverCard, client: ServiceClient, o: EnrollOptions, cardId: string, container: string, adminKey: AdminKeyOutcome | undefined): Promise<{ result: EnrollResult } | { error: unknown }> {
  let lastError: unknown;
  try {
    // The service sets the subject and UPN from the token; the request's subject is only a label.
    const csr = await card.csr(container, `CN=${container}`);
    const body = { csr: csr.pem, cardId, container };
    // The same request sent again is recognised by the service, so a lost answer is safe to retry.
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const { value } = await client.submit(o.token, body);
        return { result: { requestId: value.id, state: value.state, cardId, container, retryAfter: value.retryAfter, certificate: value.certificate, ...(adminKey ? { adminKey } : {}) } };
      } catch (err) {
        lastError = err;
        if (!retryable(err)) break;
      }
    }
  } catch (err) {
    lastError = err;
  }
  // A submission that timed out may still have arrived: then the request exists and needs this key.
  if (retryable(lastError)) {
    const arrived = await client.requests(o.token).catch(() => [] as RequestView[]);
    const mine = arrived.find((r) => r.cardId === cardId && r.container === container);
    if (mine) return { result: { requestId: mine.id, state: mine.state, cardId, container, retryAfter: mine.retryAfter, certificate: mine.certificate, ...(adminKey ? { adminKey } : {}) } };
  }
  return { error: lastError };
}

function failed(lastError: unknown, cleanup: string): CardlinkError {
  const message = `${lastError instanceof Error ? lastError.message : String(lastError)}; ${cleanup}`;
  return new CardlinkError(lastError instanceof CardlinkError ? lastError.code : 'ENROLL_FAILED', message, { cause: lastError });
}

/**
 * Enrollment on the workstation: the token and the service are checked first; then a new
 * container with its key generated on the card, a request signed on the card, submitted with the
 * token. The service binds the request to the card's cardid and the container name, so any
 * workstation where this card is inserted can collect. When the submission fails, the container
 * and key made for it are deleted again: failed attempts never fill the card.
 *
 * On a PIV card the container is a key slot (the first free of 9A, 9D, 82…95, or `container`),
 * the key is generated with the card management key (the card's ManagementKeySource), the card id
 * is the CHUID GUID (the generation writes a CHUID when the card has none) and the container name
 * is the slot's as Windows' PIV minidriver names it (docs/piv.md). There is no administrator key to
 * re-key; a failed submission frees the slot again (PIV cannot delete a key: cardlink forgets it).
 */
export async function enroll(card: MinidriverCard, client: ServiceClient, o: EnrollOptions): Promise<EnrollResult> {
  await checkToken(client, o.token);
  if (card.kind === 'piv') return enrollPiv(card, client, o);
  const container = o.container ?? `lr-${randomUUID()}`;
  const cardId = hex(await card.cardId()).toLowerCase();
  // Before the PIN: administrator authentication ends with a logout of every role.
  const adminKey = await ensureCardAdminKey(card, client, o.token, cardId, o.adminKey);
  await card.verifyPin(o.pin);
  await card.createContainer(container, { bits: o.bits ?? 2048, keySpec: 'kx' });
  const sent = await submitRequest(card, client, o, cardId, container, adminKey);
  if ('result' in sent) return sent.result;
  let cleanup = `the container '${container}' and its key were deleted again`;
  try {
    await card.deleteContainer(container);
  } catch (err) {
    cleanup = `deleting the container '${container}' made for it failed too (${(err as Error).message}): remove it with 'cardlink card rm-container --container ${container}'`;
  }
  throw failed(sent.error, cleanup);
}

async function enrollPiv(card: MinidriverCard, client: ServiceClient, o: EnrollOptions): Promise<EnrollResult> {
  if (o.adminKey) throw new CardError('NOT_ON_THIS_CARD', 'CARDLINK_ADMIN_KEY is a GIDS administrator key; this card speaks PIV (its writes use the management key, CARDLINK_MGMT_KEY); nothing was done on the card');
  const slot = await pivSlotFor(card, o.container);
  // The PIN first: a wrong one leaves the card as it was.
  await card.verifyPin(o.pin);
  const made = await card.createContainer(slot, { bits: o.bits ?? 2048, keySpec: 'kx' });
  const container = made.name;
  const cardId = hex(await card.cardId()).toLowerCase();
  const sent = await submitRequest(card, client, o, cardId, container, PIV_ADMIN_KEY_NOTE);
  if ('result' in sent) return sent.result;
  const slotName = slotText(made.slot!).toUpperCase();
  let cleanup = `slot ${slotName} is free again (its key stays on the card, as PIV cannot delete keys, until the next key generated there replaces it)`;
  try {
    await card.forgetKey(container);
  } catch (err) {
    cleanup = `freeing slot ${slotName} made for it failed too (${(err as Error).message}): the next enrollment takes another slot`;
  }
  throw failed(sent.error, cleanup);
}
