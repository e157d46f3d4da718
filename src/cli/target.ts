import { existsSync } from 'node:fs';
import { DiskCardCache, MemoryCardCache, MinidriverCard, type MinidriverPort } from '../card/index.js';
import { lockCardImage, openCardImage } from '../gids/emulator/index.js';
import { cardlinkHome } from '../home.js';
import { MemoryTransport } from '../transport/memory.js';
import type { Transport } from '../transport/transport.js';
import { UsageError, type CliIo } from './io.js';
import { forTerminal } from './terminal.js';

export interface TargetArgs {
  image?: string | undefined;
  reader?: string | undefined;
}

/**
 * The card a command works on: an emulated card in its image file (`--image`, in process), a
 * reader (`--reader`), or, with neither, the only reader that holds a GIDS card.
 */
export async function openTransport(args: TargetArgs, options: { createImage?: boolean; env?: NodeJS.ProcessEnv; share?: 'exclusive' | 'shared' } = {}): Promise<Transport> {
  if (args.image !== undefined && args.reader !== undefined) throw new UsageError('give --image or --reader, not both');
  if (args.image !== undefined) {
    if (!options.createImage && !existsSync(args.image)) throw new UsageError(`no card image at ${args.image} (create one with 'cardlink card init --image ${args.image}')`);
    // Held until the transport closes: emulate or another command on the same file must not
    // write it meanwhile (a short-lived command is waited for a little).
    const lock = await lockCardImage(args.image, `cardlink (${process.argv.slice(2, 4).join(' ') || 'cli'})`, { waitMs: 3000 });
    try {
      const card = openCardImage(args.image, { create: options.createImage === true, home: cardlinkHome(options.env) });
      // An image is one card: connections to it share it as PC/SC connections share a card.
      const transport = new MemoryTransport(card, args.image, options.share ?? 'exclusive');
      const close = transport.close.bind(transport);
      transport.close = async () => {
        try {
          await close();
        } finally {
          lock.release();
        }
      };
      return transport;
    } catch (err) {
      lock.release();
      throw err;
    }
  }
  const { openPcscTransport } = await import('../transport/pcsc.js');
  return openPcscTransport({ ...(args.reader === undefined ? {} : { reader: args.reader }), ...(options.share ? { share: options.share } : {}) });
}

/**
 * Connections of their own to the target card, in shared mode, for Windows' providers (the
 * model's Base CSP and KSP open one per transaction, as the real ones do): each fails with
 * SHARING_VIOLATION while a cardlink command holds the card exclusively.
 */
export function cardConnector(args: TargetArgs, env: NodeJS.ProcessEnv): () => Promise<{ port: MinidriverPort; close(): Promise<void> }> {
  return async () => {
    const transport = await openTransport(args, { env, share: 'shared' });
    try {
      const card = await MinidriverCard.open(transport, { cache: new MemoryCardCache() });
      return { port: card.minidriver(), close: () => transport.close() };
    } catch (err) {
      await transport.close();
      throw err;
    }
  };
}

/**
 * The per-user card cache. A damaged file is not an error (the cache only saves APDUs): it is
 * dropped with a warning and rebuilt, so it cannot break every card command.
 */
export function userCardCache(io: Pick<CliIo, 'env' | 'stderr'>): DiskCardCache {
  const cache = DiskCardCache.forUser(io.env);
  if (cache.discarded !== undefined) io.stderr(`cardlink: warning: card cache ${forTerminal(cache.path)} discarded and rebuilt: ${forTerminal(cache.discarded)}\n`);
  return cache;
}

/**
 * Opens the target and runs `fn` with the card, closing the transport whatever happens. The
 * per-user card cache (valid while cardid + cardcf say so) is loaded and saved around it.
 */
export async function withCard<T>(args: TargetArgs, io: Pick<CliIo, 'env' | 'stderr'>, fn: (card: MinidriverCard) => Promise<T>): Promise<T> {
  const cache = userCardCache(io);
  const env = io.env;
  const transport = await openTransport(args, { env });
  try {
    const card = await MinidriverCard.open(transport, { cache });
    return await fn(card);
  } finally {
    cache.flush();
    await transport.close();
  }
}
