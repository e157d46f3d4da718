import { hostname } from 'node:os';
import { collect, type CollectReport } from '../../agent/collect.js';
import { watch } from '../../agent/watch.js';
import { DiskCardCache, MinidriverCard } from '../../card/index.js';
import { defaultStoreSpec, openCertStoreHost } from '../../windows/hosts.js';
import { linkCard } from '../../windows/link.js';
import { parse } from '../args.js';
import { emit, type CliIo, type Command } from '../io.js';
import { readPin } from '../secrets.js';
import { openTransport, TARGET_OPTIONS, withCard } from '../target.js';
import { openClient } from './admin.js';

function describe(r: CollectReport): string {
  if (r.items.length === 0) return `card ${r.cardId}: nothing requested with this card's keys`;
  const lines = r.items.map((i) => {
    const what = {
      installed: 'installed on the card',
      'already-on-card': 'already on the card',
      'delivered-before': 'delivered before',
      waiting: 'waiting for approval',
      rejected: 'rejected by an operator',
      revoked: 'revoked',
    }[i.action];
    return `${i.id}  '${i.container}': ${what}${i.linked ? ', linked in the store' : ''}${i.reported ? ', delivery reported' : ''}${i.thumbprint ? `  ${i.thumbprint}` : ''}`;
  });
  if (r.retryAfter !== null) lines.push(`the service asks to try again in ${r.retryAfter} s`);
  return lines.join('\n');
}

export const collectCommand: Command = {
  path: ['collect'],
  summary: "load what the service issued for the inserted card's keys, link it, report delivery",
  usage:
    'cardlink collect --server URL [--reader NAME | --image FILE] [--store model:DIR | --store native] [--watch] [--cacert FILE] [--json]\n' +
    '  --watch   keep running: collect on every card insertion, and again after the service\'s Retry-After while something waits',
  async run(argv, io) {
    const { values } = parse(argv, { ...TARGET_OPTIONS, server: { type: 'string' }, cacert: { type: 'string' }, store: { type: 'string' }, watch: { type: 'boolean' } });
    const spec = values.store ?? defaultStoreSpec();
    const pin = await readPin(io);
    const client = openClient(values, io);
    const pass = async (card: MinidriverCard): Promise<CollectReport> =>
      collect(card, client, {
        pin,
        host: hostname(),
        ...(spec
          ? {
              link: async (c: MinidriverCard) => {
                const store = await openCertStoreHost(spec, c.minidriver(), () => pin);
                try {
                  // The PIN goes to the provider of a silent context: collect runs unattended.
                  return await linkCard(c.minidriver(), store.host, { pin });
                } finally {
                  await store.close();
                }
              },
            }
          : {}),
      });
    try {
      if (!values.watch) {
        const report = await withCard(values, io.env, pass);
        emit(io, values.json === true, { ok: true, ...report }, () => describe(report));
        return 0;
      }
      await watchCards(values, io, pass, values.json === true);
      return 0;
    } finally {
      client.close();
    }
  },
};

async function watchCards(target: { image?: string | undefined; reader?: string | undefined }, io: CliIo, pass: (card: MinidriverCard) => Promise<CollectReport>, json: boolean): Promise<void> {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const cache = DiskCardCache.forUser(io.env);
  try {
    await watch({
      signal: controller.signal,
      open: async () => {
        let transport;
        try {
          transport = await openTransport(target, { env: io.env });
        } catch {
          return undefined;
        }
        const card = await MinidriverCard.open(transport, { cache });
        return {
          card,
          close: async () => {
            cache.flush();
            await transport.close();
          },
        };
      },
      pass,
      onReport: (r) => (json ? io.stdout(JSON.stringify({ ok: true, at: new Date().toISOString(), ...r }) + '\n') : io.stdout(`${new Date().toISOString()}\n${describe(r)}\n`)),
      onError: (err) => io.stderr(`cardlink collect: ${(err as Error).message}\n`),
    });
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
