import { fromHex } from '../bytes.js';
import type { MinidriverCard } from '../card/index.js';
import { ServiceClientError, type ServiceClient } from '../service/client.js';

/** What happened to the card's administrator key during enrollment. */
export type AdminKeyOutcome =
  | { managed: true; keyVersion: number; changed: boolean }
  /** No key the service knows (nor the one given locally) opens the card: it stays stand-alone. */
  | { managed: false; reason: string };

/**
 * Gives the card its own administrator key, derived by the service, during enrollment: asks the
 * service (with the user's enrollment token, over TLS) for the card's key and the keys it may
 * have now (the factory transport key for a new card, the previous version after a master key
 * rotation); authenticates with the one that works, writes the new key through that
 * authenticated session, proves it, and reports it back so the service records cardid → key
 * version. A card whose key nobody here knows (initialised with a private CARDLINK_ADMIN_KEY and
 * not given) is left alone and stays stand-alone; enrollment goes on.
 */
export async function ensureCardAdminKey(card: MinidriverCard, client: ServiceClient, token: string, cardId: string, localKey?: Uint8Array): Promise<AdminKeyOutcome> {
  let answer: Awaited<ReturnType<ServiceClient['cardAdminKey']>>;
  try {
    answer = await client.cardAdminKey(token, cardId);
  } catch (err) {
    // The service keeps this card's key for someone else (or retired it): enrollment may go on, the key stays as it is.
    if (err instanceof ServiceClientError && (err.status === 403 || err.status === 409)) {
      return { managed: false, reason: `the service does not manage this card's key for this user (${err.message}); the administrator key was left as it is` };
    }
    throw err;
  }
  if (answer.upToDate || answer.newKey === null) return { managed: true, keyVersion: answer.keyVersion, changed: false };
  const newKey = fromHex(answer.newKey);
  // The key the user gave first (they know the card has it), then what the service says the card
  // has; the new key last, for a re-key that was written but not reported (the agent stopped in
  // between). A card that counts failed administrator attempts thus usually sees none.
  const candidates = [...(localKey ? [localKey] : []), ...answer.currentKeys.map((k) => fromHex(k.key))];
  try {
    for (const current of candidates) {
      if (!(await card.adminKeyWorks(current))) continue;
      await card.changeAdminKey(current, newKey);
      await client.confirmCardAdminKey(token, cardId, answer.keyVersion);
      return { managed: true, keyVersion: answer.keyVersion, changed: true };
    }
    if (await card.adminKeyWorks(newKey)) {
      await client.confirmCardAdminKey(token, cardId, answer.keyVersion);
      return { managed: true, keyVersion: answer.keyVersion, changed: false };
    }
    return { managed: false, reason: 'the card does not have the transport key or a key the service gave it: it keeps its own administrator key and stays stand-alone (no help-desk unblock)' };
  } finally {
    newKey.fill(0);
    for (const c of candidates) if (c !== localKey) c.fill(0);
  }
}
