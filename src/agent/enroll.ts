import { randomUUID } from 'node:crypto';
import { hex } from '../bytes.js';
import type { MinidriverCard } from '../card/index.js';
import { CardlinkError } from '../errors.js';
import { ServiceClientError, type RequestView, type ServiceClient } from '../service/client.js';
import { ensureCardAdminKey, type AdminKeyOutcome } from './admin-key.js';

export interface EnrollOptions {
  /** The one-time enrollment token an operator gave the user. */
  token: string;
  pin: string;
  /** Container name; default `lr-` and a fresh GUID, like the names Windows enrollment makes. */
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
  /** The card's administrator key: its own, managed by the service, or left stand-alone. */
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
 * Enrollment on the workstation: the token and the service are checked first; then a new
 * container with its key generated on the card, a request signed on the card, submitted with the
 * token. The service binds the request to the card's cardid and the container name, so any
 * workstation where this card is inserted can collect. When the submission fails, the container
 * and key made for it are deleted again: failed attempts never fill the card.
 */
export async function enroll(card: MinidriverCard, client: ServiceClient, o: EnrollOptions): Promise<EnrollResult> {
  await checkToken(client, o.token);
  const container = o.container ?? `lr-${randomUUID()}`;
  const cardId = hex(await card.cardId()).toLowerCase();
  // Before the PIN: administrator authentication ends with a logout of every role.
  const adminKey = await ensureCardAdminKey(card, client, o.token, cardId, o.adminKey);
  await card.verifyPin(o.pin);
  await card.createContainer(container, { bits: o.bits ?? 2048, keySpec: 'kx' });
  let lastError: unknown;
  try {
    // The service sets the subject and UPN from the token; the request's subject is only a label.
    const csr = await card.csr(container, `CN=${container}`);
    const body = { csr: csr.pem, cardId, container };
    // The same request sent again is recognised by the service, so a lost answer is safe to retry.
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const { value } = await client.submit(o.token, body);
        return { requestId: value.id, state: value.state, cardId, container, retryAfter: value.retryAfter, certificate: value.certificate, adminKey };
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
    if (mine) return { requestId: mine.id, state: mine.state, cardId, container, retryAfter: mine.retryAfter, certificate: mine.certificate, adminKey };
  }
  let cleanup = `the container '${container}' and its key were deleted again`;
  try {
    await card.deleteContainer(container);
  } catch (err) {
    cleanup = `deleting the container '${container}' made for it failed too (${(err as Error).message}): remove it with 'cardlink card rm-container --container ${container}'`;
  }
  const message = `${lastError instanceof Error ? lastError.message : String(lastError)}; ${cleanup}`;
  throw new CardlinkError(lastError instanceof CardlinkError ? lastError.code : 'ENROLL_FAILED', message, { cause: lastError });
}
