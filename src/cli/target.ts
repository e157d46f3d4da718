import { existsSync } from 'node:fs';
import { fromHex } from '../bytes.js';
import { DiskCardCache, MemoryCardCache, MinidriverCard, type ManagementKey, type ManagementKeySource, type MinidriverPort } from '../card/index.js';
import { cardImageApplication, readImageFile, withImagePath } from '../card-image.js';
import { lockCardImage, openCardImage } from '../gids/emulator/index.js';
import { FACTORY, openPivCardImage } from '../piv/emulator/index.js';
import { ALG, type SymmetricAlg } from '../piv/protocol/constants.js';
import { cardlinkHome } from '../home.js';
import { MemoryTransport } from '../transport/memory.js';
import type { Transport } from '../transport/transport.js';
import { UsageError, type CliIo } from './io.js';
import { forTerminal } from './terminal.js';

export interface TargetArgs {
  image?: string | undefined;
  reader?: string | undefined;
  /** `--app gids|piv`: which card application to use; without it an image says, a reader is probed (GIDS, then PIV). */
  app?: string | undefined;
}

/** The application an image file holds, or undefined for a file that is not there yet. */
function imageApplication(path: string): 'gids' | 'piv' | undefined {
  const bytes = readImageFile(path);
  if (bytes === undefined) return undefined;
  try {
    return cardImageApplication(bytes);
  } catch (e) {
    throw withImagePath(e, path);
  }
}

/** The application to open: `--app`, else what the image holds, else detect (GIDS first, then PIV). */
export function targetApplication(args: TargetArgs): 'gids' | 'piv' | 'detect' {
  if (args.app !== undefined && args.app !== 'gids' && args.app !== 'piv') throw new UsageError('--app is gids or piv');
  const inImage = args.image !== undefined && existsSync(args.image) ? imageApplication(args.image) : undefined;
  if (args.app !== undefined && inImage !== undefined && args.app !== inImage) throw new UsageError(`${args.image} holds a ${inImage.toUpperCase()} card, not ${args.app.toUpperCase()}`);
  return (args.app as 'gids' | 'piv' | undefined) ?? inImage ?? 'detect';
}

/**
 * The card a command works on: an emulated card in its image file (`--image`, in process), a
 * reader (`--reader`), or, with neither, the only reader that holds a GIDS or PIV card.
 */
export async function openTransport(args: TargetArgs, options: { createImage?: boolean; env?: NodeJS.ProcessEnv; share?: 'exclusive' | 'shared' } = {}): Promise<Transport> {
  if (args.image !== undefined && args.reader !== undefined) throw new UsageError('give --image or --reader, not both');
  if (args.image !== undefined) {
    if (!options.createImage && !existsSync(args.image)) throw new UsageError(`no card image at ${args.image} (create one with 'cardlink card init --image ${args.image}')`);
    // Held until the transport closes: emulate or another command on the same file must not
    // write it meanwhile (a short-lived command is waited for a little).
    const lock = await lockCardImage(args.image, `cardlink (${process.argv.slice(2, 4).join(' ') || 'cli'})`, { waitMs: 3000 });
    try {
      const home = cardlinkHome(options.env);
      const card = imageApplication(args.image) === 'piv' ? openPivCardImage(args.image, { home }) : openCardImage(args.image, { create: options.createImage === true, home });
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
      const card = await MinidriverCard.open(transport, { cache: new MemoryCardCache(), app: targetApplication(args) });
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
export async function withCard<T>(args: TargetArgs, io: Pick<CliIo, 'env' | 'stderr'>, fn: (card: MinidriverCard) => Promise<T>, options: { managementKey?: ManagementKeySource } = {}): Promise<T> {
  const app = targetApplication(args);
  const cache = userCardCache(io);
  const env = io.env;
  const transport = await openTransport(args, { env });
  try {
    const card = await MinidriverCard.open(transport, { cache, app, ...(options.managementKey ? { managementKey: options.managementKey } : {}) });
    return await fn(card);
  } finally {
    cache.flush();
    await transport.close();
  }
}

/** `--mgmt-alg` values and the card management key algorithms they name (SP 800-78-4 Table 6-2). */
export const MGMT_ALGS: Record<string, SymmetricAlg> = { '3des': ALG.TDES, aes128: ALG.AES_128, aes192: ALG.AES_192, aes256: ALG.AES_256 };
const MGMT_KEY_BYTES: Record<SymmetricAlg, number> = { [ALG.TDES]: 24, [ALG.AES_128]: 16, [ALG.AES_192]: 24, [ALG.AES_256]: 32 };

export interface ManagementKeyArgs {
  'mgmt-alg'?: string | undefined;
  'default-mgmt-key'?: boolean | undefined;
}

/**
 * The PIV card management key, read only when a write needs it: from CARDLINK_MGMT_KEY (hex, never
 * a flag: flags end up in shell history), else asked on the terminal; the well-known factory key
 * (yubico-piv-tool's and the emulator's, docs/piv.md) only with --default-mgmt-key, and then
 * with a warning on stderr. `--mgmt-alg` says the key's algorithm (3DES by default, as on a
 * factory YubiKey before firmware 5.7).
 */
export function managementKeySource(io: Pick<CliIo, 'env' | 'stderr' | 'promptSecret'>, args: ManagementKeyArgs, command: string): ManagementKeySource {
  const algName = args['mgmt-alg'] ?? '3des';
  const alg = MGMT_ALGS[algName];
  if (alg === undefined) throw new UsageError(`--mgmt-alg is one of ${Object.keys(MGMT_ALGS).join(', ')}`);
  const fromEnv = io.env.CARDLINK_MGMT_KEY;
  if (args['default-mgmt-key'] === true && fromEnv !== undefined && fromEnv !== '') throw new UsageError('give CARDLINK_MGMT_KEY or --default-mgmt-key, not both');
  return async (): Promise<ManagementKey> => {
    if (args['default-mgmt-key'] === true) {
      if (alg !== ALG.TDES) throw new UsageError('--default-mgmt-key is the factory 3DES key: leave out --mgmt-alg');
      io.stderr(`${command}: warning: using the well-known factory PIV management key; anyone can change this card's keys and certificates with it — set a key of your own on a real card\n`);
      return { key: FACTORY.MANAGEMENT_KEY.slice(), alg };
    }
    let text = fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined;
    if (text === undefined) {
      if (!io.promptSecret) throw new UsageError('this change needs the PIV management key: set CARDLINK_MGMT_KEY (hex), run on a terminal to be asked, or add --default-mgmt-key for a card that still has the factory key');
      text = await io.promptSecret('PIV management key (hex): ');
    }
    const digits = text.replace(/\s+/g, '');
    const bytes = MGMT_KEY_BYTES[alg];
    if (!/^[0-9a-fA-F]*$/.test(digits) || digits.length !== bytes * 2) {
      throw new UsageError(`the PIV management key for --mgmt-alg ${algName} is ${bytes * 2} hex digits (${bytes} bytes)`);
    }
    return { key: fromHex(digits), alg };
  };
}
