/**
 * The seed's `addCardCertToStore` (docs/sources.md#seed), run as a process of the model: log in
 * with the PIN, get the user key, read its certificate with CryptGetKeyParam(KP_CERTIFICATE),
 * create a context from it, prove the private key with CryptAcquireCertificatePrivateKey, and
 * only then save the context to `CurrentUser\My`. Used by the reproduction test and the
 * demonstration, next to `link`.
 */
import { ACQUIRE, ADD, AT_SIGNATURE } from '../constants.js';
import type { WindowsMachine } from './machine.js';

export interface SeedToolResult {
  thumbprint: string;
}

export async function addCardCertToStore(machine: WindowsMachine, options: { container: string; pin: string; keySpec?: number }): Promise<SeedToolResult> {
  const keySpec = options.keySpec ?? AT_SIGNATURE;
  const p = machine.startProcess(() => options.pin);
  try {
    await p.csp.setPin(options.pin);
    const key = await p.csp.open(options.container, keySpec, false);
    key.release();
    const der = await p.csp.keyCertificate(options.container, keySpec, false);
    const ctx = await p.host.createContext(der);
    // The proof: a freshly created context carries no KEY_PROV_INFO of its own.
    const acquired = await p.host.acquirePrivateKey(ctx, ACQUIRE.COMPARE_KEY);
    await acquired.release();
    const my = await p.host.openCurrentUserMy();
    try {
      const stored = await my.add(ctx, ADD.REPLACE_EXISTING);
      return { thumbprint: stored.thumbprint };
    } finally {
      await my.close();
    }
  } finally {
    p.exit();
  }
}

