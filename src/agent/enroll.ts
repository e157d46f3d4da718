import { randomUUID } from 'node:crypto';
import { hex } from '../bytes.js';
import type { MinidriverCard } from '../card/index.js';
import { ServiceClientError, type ServiceClient } from '../service/client.js';

export interface EnrollOptions {
  /** The one-time enrollment token an operator gave the user. */
  token: string;
  pin: string;
  /** Container name; default `lr-` and a fresh GUID, like the names Windows enrollment makes. */
  container?: string;
  bits?: 2048 | 3072 | 4096;
}

export interface EnrollResult {
  requestId: string;
  state: string;
  cardId: string;
  container: string;
  /** Seconds the service asked to wait before collecting, while it waits for approval. */
  retryAfter: number | null;
  certificate: string | null;
}

/**
 * Enrollment on the workstation: a new container with its key generated on the card, a request
 * signed on the card, submitted with the token. The service binds the request to the card's
 * cardid and the container name, so any workstation where this card is inserted can collect.
 */
export async function enroll(card: MinidriverCard, client: ServiceClient, o: EnrollOptions): Promise<EnrollResult> {
  const container = o.container ?? `lr-${randomUUID()}`;
  await card.verifyPin(o.pin);
  await card.createContainer(container, { bits: o.bits ?? 2048, keySpec: 'kx' });
  // The service sets the subject and UPN from the token; the request's subject is only a label.
  const csr = await card.csr(container, `CN=${container}`);
  const cardId = hex(await card.cardId()).toLowerCase();
  const body = { csr: csr.pem, cardId, container };
  // The same request sent again is recognised by the service, so a lost answer is safe to retry.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const { value } = await client.submit(o.token, body);
      return { requestId: value.id, state: value.state, cardId, container, retryAfter: value.retryAfter, certificate: value.certificate };
    } catch (err) {
      lastError = err;
      if (!(err instanceof ServiceClientError) || (err.code !== 'SERVICE_UNREACHABLE' && err.code !== 'SERVICE_TIMEOUT')) throw err;
    }
  }
  throw lastError;
}
