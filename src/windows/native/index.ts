/**
 * The native CertStoreHost, for Windows only. koffi is an optional dependency and crypt32 exists
 * only there, so both are reached through a dynamic import that other platforms never take.
 */
import { StoreHostError } from '../errors.js';
import type { CertStoreHost } from '../store.js';

export async function openNativeHost(platform: NodeJS.Platform = process.platform): Promise<CertStoreHost> {
  if (platform !== 'win32') {
    throw new StoreHostError('NATIVE_UNAVAILABLE', `--store native needs Windows (this is ${platform}); use --store model:DIR here`);
  }
  const mod = await import('./crypt32.js').catch((err: unknown) => {
    throw new StoreHostError('NATIVE_UNAVAILABLE', `the native store needs the optional package koffi (npm install koffi): ${(err as Error).message}`, { cause: err });
  });
  return new mod.NativeCertStoreHost();
}
