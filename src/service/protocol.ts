/**
 * The wire contract between the enrollment service and its agents: the JSON shapes both sides
 * read, and the message a card signs to prove it holds a container's key. Agents import this
 * module only, never the service's implementation.
 */
import type { RequestState } from './storage/storage.js';

export interface RequestView {
  id: string;
  kind: string;
  user: string;
  profile: string;
  state: RequestState;
  subject: string;
  cardId: string | null;
  container: string | null;
  createdAt: string;
  decidedBy: string | null;
  decidedAt: string | null;
  reason: string | null;
  serial: string | null;
  notBefore: string | null;
  notAfter: string | null;
  issuedAt: string | null;
  deliveredAt: string | null;
  /** PEM, once issued. */
  certificate: string | null;
  /** Seconds to wait before asking again, while the request waits for a decision or the CA. */
  retryAfter: number | null;
}

export interface CollectedRequest extends RequestView {
  /** Present with an issued certificate: proves the delivery report comes from the card's holder. */
  deliveryTicket: string | null;
}

/** The bytes a card signs to prove it holds a container's key: bound to the nonce, card and container. */
export function collectMessage(nonce: string, cardId: string, container: string): Uint8Array {
  return new TextEncoder().encode(`cardlink collect v1\n${nonce}\n${cardId.toLowerCase()}\n${container}`);
}
