/**
 * What the model's crypt32 asks of a key provider when it acquires a certificate's private key:
 * the CryptoAPI path (CryptAcquireContext + CryptGetUserKey) and the CNG path
 * (NCryptOpenStorageProvider + NCryptOpenKey). The Windows smart card stack model (machine.ts)
 * supplies the Base Smart Card CSP and the Smart Card KSP; a store with no stack attached knows
 * no provider at all.
 */
import { HRESULT } from '../constants.js';
import { WinError } from '../errors.js';
import type { HashAlgorithm } from '../store.js';

/** An open key: an HCRYPTPROV + HCRYPTKEY pair, or an NCRYPT_KEY_HANDLE. */
export interface ModelKeyHandle {
  readonly api: 'CryptoAPI' | 'CNG';
  /** The legacy key spec of the key the handle points at (AT_KEYEXCHANGE / AT_SIGNATURE). */
  readonly keySpec: number;
  /** The key's public key as SubjectPublicKeyInfo DER, as the provider reports it. */
  publicKeySpki(): Promise<Uint8Array>;
  signHash(algorithm: HashAlgorithm, hash: Uint8Array): Promise<Uint8Array>;
  /** PP_SIGNATURE_PIN / PP_KEYEXCHANGE_PIN (CryptSetProvParam) or NCRYPT_PIN_PROPERTY on the key [SPP][KSPP]. */
  setPin(pin: string): Promise<void>;
  release(): void;
}

export interface ModelKeyProviders {
  /**
   * CryptAcquireContextW(container, provider, type, (silent ? CRYPT_SILENT : 0) | (machine ?
   * CRYPT_MACHINE_KEYSET : 0)) then CryptGetUserKey(keySpec).
   */
  openCsp(providerName: string, providerType: number, container: string, keySpec: number, silent: boolean, machine?: boolean): Promise<ModelKeyHandle>;
  /** NCryptOpenStorageProvider(provider) then NCryptOpenKey(container, legacyKeySpec, silent, machine). */
  openKsp(providerName: string, container: string, legacyKeySpec: number, silent: boolean, machine?: boolean): Promise<ModelKeyHandle>;
  /**
   * The KSP that opens a CSP's keys through CNG. Each smart card registration names both its
   * `Crypto Provider` and its `Smart Card Key Storage Provider` [INBOX], which is the pairing
   * the model uses for CryptoAPI provider info acquired with the NCRYPT flags.
   */
  kspFor(cspName: string): string | undefined;
}

/** A machine with no smart card stack: every named provider is unknown (NTE_KEYSET_NOT_DEF). */
export const NO_PROVIDERS: ModelKeyProviders = {
  async openCsp(providerName) {
    throw new WinError(HRESULT.NTE_KEYSET_NOT_DEF, 'CryptAcquireContext', `no provider '${providerName}' on this machine`);
  },
  async openKsp(providerName) {
    throw new WinError(HRESULT.NTE_KEYSET_NOT_DEF, 'NCryptOpenStorageProvider', `no provider '${providerName}' on this machine`);
  },
  kspFor: () => undefined,
};
