/**
 * `--store`: which CertStoreHost a command works on. `native` is the real `CurrentUser\My` through
 * crypt32 (Windows only); `model:DIR` is a model Windows machine whose state (registry, Smart Card
 * service cache) lives in the directory DIR, with the command's card in its reader.
 */
import type { MinidriverPort } from '../card/index.js';
import { StoreHostError } from './errors.js';
import { WindowsMachine } from './model/machine.js';
import type { CardConnector, PinSource } from './model/smartcard.js';
import { openNativeHost } from './native/index.js';
import type { CertStoreHost } from './store.js';

export interface OpenedCertStoreHost {
  host: CertStoreHost;
  /** The model machine, for `model:` specs. */
  machine?: WindowsMachine;
  close(): Promise<void>;
}

/** The `--store` spec used when none is given: the real store on Windows, none elsewhere. */
export function defaultStoreSpec(platform: NodeJS.Platform = process.platform): string | undefined {
  return platform === 'win32' ? 'native' : undefined;
}

/**
 * Opens the CertStoreHost a `--store` spec names; a model machine gets `card` in its reader —
 * a connector (each provider transaction opens its own shared connection, as on Windows) or a
 * port shared with the caller.
 */
export async function openCertStoreHost(spec: string, card: MinidriverPort | CardConnector, pinSource: PinSource): Promise<OpenedCertStoreHost> {
  if (spec === 'native') {
    const host = await openNativeHost();
    return { host, close: () => host.close() };
  }
  const m = /^model:(.+)$/.exec(spec);
  if (!m) throw new StoreHostError('STORE_SPEC', `--store takes 'native' or 'model:DIR', not '${spec}'`);
  const machine = new WindowsMachine({ stateDir: m[1]! });
  machine.insert(card);
  const process = machine.startProcess(pinSource);
  return {
    host: process.host,
    machine,
    close: async () => {
      await process.host.close();
      machine.shutdown();
    },
  };
}
