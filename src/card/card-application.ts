/**
 * The card-application interface: what `MinidriverCard` needs from the application on the card,
 * so that one card API (and `card ls|gen|csr|install|rm-cert|check|pin|files`) works on a GIDS
 * card and on a PIV card alike (docs/piv.md, "One card API for GIDS and PIV").
 *
 * - GIDS (`gids-application.ts`): the minidriver file system on the card (`cardid`, `cardcf`,
 *   `cmapfile`, `kxcNN`/`kscNN`), containers created freely, keys RSA.
 * - PIV (`piv-application.ts`): fixed key slots named as Windows' PIV minidriver presents them,
 *   certificates in PIV data objects, the card management key for writes, the PUK to unblock.
 *
 * An operation that exists on one application only (GIDS: logical files, the administrator key,
 * container deletion; PIV: the management key) is not part of this interface: `MinidriverCard`
 * reaches it through the application's own class and answers NOT_ON_THIS_CARD on the other.
 */
import type { KeyObject } from 'node:crypto';
import type { ContainerInfo, KeySpec } from './card-files.js';
import type { CheckReport, RepairReport } from './check/report.js';
import type { BuiltCsr, CsrOptions } from './csr.js';
import type { HashName } from './digest-info.js';
import type { InstallOptions, InstallResult } from './install.js';
import type { MinidriverPort } from './minidriver-port.js';

export type CardApplicationKind = 'gids' | 'piv';

/** Elliptic curves a PIV slot can hold (SP 800-78-4 Table 3-1; GIDS keys are RSA in cardlink). */
export type Curve = 'p256' | 'p384';

export interface CreateContainerOptions {
  keySpec?: KeySpec;
  bits?: 1024 | 2048 | 3072 | 4096;
  /** An ECC key instead of RSA (PIV only). */
  curve?: Curve;
  /** Make it the default container even if another one is. */
  makeDefault?: boolean;
}

/** The PIN's state as `card pin status` reports it. */
export interface PinState {
  triesLeft: number;
  tryLimit: number;
}

export interface CardApplication {
  readonly kind: CardApplicationKind;
  /** The card's identity: GIDS `cardid`, PIV the CHUID GUID (NO_CHUID on a PIV card without one). */
  cardId(): Promise<Uint8Array>;
  /** Containers as the platform's minidriver presents them (PIV: the slots, docs/piv.md). */
  containers(): Promise<ContainerInfo[]>;
  /** One container by name or index (PIV also by slot, e.g. `9a`); NO_CONTAINER otherwise. */
  container(nameOrIndex: string | number): Promise<ContainerInfo>;
  /** Creates a container (GIDS) or generates a slot's key (PIV) on the card. */
  createContainer(name: string, options?: CreateContainerOptions): Promise<ContainerInfo & { publicKey: KeyObject }>;
  /** The container's public key: read from the card, or (PIV) from cardlink's record or the certificate. */
  publicKey(nameOrIndex: string | number): Promise<KeyObject>;
  /** Signs `data` hashed with `hash` (RSA PKCS#1 v1.5; ECDSA on a PIV ECC slot). Needs the PIN. */
  sign(nameOrIndex: string | number, data: Uint8Array, hash?: HashName): Promise<Uint8Array>;
  /** A PKCS#10 request for the container's key, signed on the card. Needs the PIN. */
  csr(nameOrIndex: string | number, subject: string, options?: CsrOptions): Promise<BuiltCsr>;
  readCertificate(nameOrIndex: string | number): Promise<Uint8Array | undefined>;
  /** Writes the certificate into the container holding its key, the way Windows notices it. */
  installCertificate(cert: Uint8Array | string, options?: InstallOptions): Promise<InstallResult>;
  removeCertificate(containerName: string): Promise<{ container: ContainerInfo; file: string | undefined }>;
  check(): Promise<CheckReport>;
  repair(options?: { adminKey?: Uint8Array }): Promise<RepairReport>;
  pinStatus(): Promise<PinState>;
  verifyPin(pin: string): Promise<void>;
  changePin(oldPin: string, newPin: string): Promise<void>;
  logout(): Promise<void>;
  /** The same card behind the minidriver port (Windows' side). */
  minidriver(): MinidriverPort;
}
