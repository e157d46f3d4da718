/**
 * The card as link and doctor read it: through the minidriver port, straight from the card,
 * never from a cache. A loader that did not move `cardcf` leaves every freshness-keyed cache stale
 * — Windows' and cardlink's own — and those stale caches are what doctor diagnoses and what link
 * must not depend on.
 */
import { parseCertificate, type CardFreshness, type MinidriverContainer, type MinidriverPort, type ParsedCertificate } from '../card/index.js';
import { MSCP_DIRECTORY, certificateFileName, decodeCertificateFile } from '../minidriver/index.js';

export interface CardContainer extends MinidriverContainer {
  /** Where the Base CSP looks for the container's certificate: `mscp/kxcNN` or `mscp/kscNN`. */
  certificateFile: string;
  /** The container's certificate as the card holds it now, parsed once, if it has one. */
  certificate: ParsedCertificate | undefined;
}

/** The certificate file of a container, by the Base CSP's naming convention. */
function certificateFileOf(c: Pick<MinidriverContainer, 'index' | 'keySpec'>): string {
  return `${MSCP_DIRECTORY}/${certificateFileName(c.index, c.keySpec)}`;
}

/** The card as one read left it: identity, counters, containers and their certificates. */
export type CardView = CardFreshness & { containers: CardContainer[] };

/** Begins a read of the card and reads its containers and their certificates. */
export async function readCardFresh(card: MinidriverPort): Promise<CardView> {
  const { cardId, cardcf, freshnessSource } = await card.begin();
  const out: CardContainer[] = [];
  for (const c of await card.containers()) {
    const certificateFile = certificateFileOf(c);
    const raw = await card.readFile(certificateFile);
    const certificate = raw ? parseCertificate(decodeCertificateFile(raw, certificateFile).der) : undefined;
    out.push({ ...c, certificateFile, certificate });
  }
  return { cardId, cardcf, ...(freshnessSource ? { freshnessSource } : {}), containers: out };
}
