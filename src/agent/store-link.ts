import type { MinidriverPort } from '../card/index.js';
import { CardlinkError } from '../errors.js';
import { openCertStoreHost } from '../windows/hosts.js';
import type { CardView } from '../windows/card-view.js';
import { bareContainerName, linkView } from '../windows/link.js';
import type { CardConnector } from '../windows/model/smartcard.js';
import type { CertStoreHost } from '../windows/store.js';
import type { AgentLinker, ExpectedLink } from './daemon.js';

/**
 * Stands in for the card while the agent only reads the store: the warm path must not touch the
 * card, so any use of it is a bug that should fail loudly rather than open a connection.
 */
const NO_CARD = new Proxy(
  {},
  {
    get: () => () => Promise.reject(new CardlinkError('AGENT_NO_CARD', 'the store check tried to use the card')),
  },
) as MinidriverPort;

/**
 * Deletes the store entries of these certificates (by SHA-1 thumbprint) from `CurrentUser\My`:
 * what a renewal, purge or retire replaced or removed on the card. `linkView` drops entries whose
 * container now holds something else, but not those of a container that is gone altogether.
 * Returns the thumbprints whose entry was there and went.
 */
export async function unlinkCertificates(host: CertStoreHost, thumbprints: readonly string[]): Promise<string[]> {
  const my = await host.openCurrentUserMy();
  const gone: string[] = [];
  try {
    for (const t of thumbprints) {
      const ctx = await my.find(t.toUpperCase());
      if (!ctx) continue;
      await my.delete(ctx);
      gone.push(t.toUpperCase());
    }
  } finally {
    await my.close();
  }
  return gone;
}

/**
 * Links into the store a `--store` spec names (`native` or `model:DIR`), as `cardlink link` does:
 * with the card released, the providers reaching it through `connect(reader)` (connections of
 * their own, shared, as Windows' Base CSP and KSP open them).
 */
export function storeLinker(spec: string, pin: () => string, connect: (reader: string) => CardConnector): AgentLinker {
  return {
    async link(view: CardView, reader: string) {
      const store = await openCertStoreHost(spec, connect(reader), pin);
      try {
        const report = await linkView(view, store.host);
        return { linked: report.linked.map((l) => ({ container: l.container, thumbprint: l.thumbprint.toUpperCase() })) };
      } finally {
        await store.close();
      }
    },
    async unlink(thumbprints: string[]) {
      const store = await openCertStoreHost(spec, NO_CARD, pin);
      try {
        return await unlinkCertificates(store.host, thumbprints);
      } finally {
        await store.close();
      }
    },
    async holds(_cardId: string, expected: ExpectedLink[]) {
      const store = await openCertStoreHost(spec, NO_CARD, pin);
      try {
        const my = await store.host.openCurrentUserMy();
        try {
          for (const e of expected) {
            const ctx = await my.find(e.thumbprint);
            if (!ctx) return false;
            const info = await store.host.getKeyProvInfo(ctx);
            if (!info || bareContainerName(info.containerName) !== e.container) return false;
          }
          return true;
        } finally {
          await my.close();
        }
      } finally {
        await store.close();
      }
    },
  };
}
