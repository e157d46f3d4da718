/**
 * The card as link and doctor read it: straight from the card, never from a cache. A loader that
 * did not move `cardcf` leaves every freshness-keyed cache stale — Windows' and cardlink's own —
 * and those stale caches are what doctor diagnoses and what link must not depend on.
 */
import { createHash } from 'node:crypto';
import { hex } from '../bytes.js';
import { describeContainers, type ContainerInfo, type MinidriverCard } from '../card/index.js';
import { decodeCertificateFile } from '../minidriver/index.js';

export interface CardContainer extends ContainerInfo {
  /** The container's certificate (DER) as the card holds it now, if it has one. */
  der: Uint8Array | undefined;
  thumbprint: string | undefined;
}

export function readCardFresh(card: MinidriverCard): Promise<{ cardId: Uint8Array; containers: CardContainer[] }> {
  return card.session.transaction(() => readFresh(card));
}

async function readFresh(card: MinidriverCard): Promise<{ cardId: Uint8Array; containers: CardContainer[] }> {
  const { cardId } = await card.refresh();
  const table = await card.readMasterTableFromCard();
  const containers = describeContainers(await card.readCmapfileFromCard(), table);
  const out: CardContainer[] = [];
  for (const c of containers) {
    let der: Uint8Array | undefined;
    if (c.certificateFile) {
      const [dir, name] = c.certificateFile.split('/') as [string, string];
      const raw = await card.session.readFile(dir, name);
      if (raw) der = decodeCertificateFile(raw, c.certificateFile).der;
    }
    out.push({ ...c, der, thumbprint: der ? hex(createHash('sha1').update(der).digest()) : undefined });
  }
  return { cardId, containers: out };
}
