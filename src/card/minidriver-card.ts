import type { KeyObject } from 'node:crypto';
import type { InitializeOptions } from '../gids/host/session.js';
import { GidsError } from '../gids/host/errors.js';
import { PivError } from '../piv/host/errors.js';
import type { CardCf } from '../minidriver/index.js';
import type { Transport } from '../transport/transport.js';
import type { CardApplication, CardApplicationKind, CreateContainerOptions, PinState } from './card-application.js';
import type { ContainerInfo } from './card-files.js';
import type { CheckReport, RepairReport } from './check/index.js';
import type { BuiltCsr, CsrOptions } from './csr.js';
import type { HashName } from './digest-info.js';
import { CardError } from './errors.js';
import { GidsApplication, type GidsOpenOptions, type LogicalFile } from './gids-application.js';
import type { InstallOptions, InstallResult } from './install.js';
import type { MinidriverPort } from './minidriver-port.js';
import { PivApplication, type ManagementKeySource, type PivDataObject } from './piv-application.js';

export type { CreateContainerOptions } from './card-application.js';
export type { LogicalFile } from './gids-application.js';

export interface OpenOptions extends GidsOpenOptions {
  /**
   * Which card application to use: `gids` (the default, as before PIV), `piv`, or `detect`: GIDS
   * first, then PIV — the opposite of Windows' order, because a card with both is a GIDS card to
   * cardlink's users (docs/piv.md).
   */
  app?: CardApplicationKind | 'detect';
  /** The PIV card management key, asked only when a write needs it. */
  managementKey?: ManagementKeySource;
}

/**
 * A smart card as cardlink's user sees it: containers and their keys, signatures, requests,
 * certificates, the PIN, and check/repair — over the card application it holds (GIDS or PIV,
 * card-application.ts). What exists on one application only (GIDS: logical files, the
 * administrator key, deleting containers; PIV: the PUK, data objects) is here too and answers
 * NOT_ON_THIS_CARD on the other. `minidriver()` is the same card behind the minidriver port, which
 * is how Windows' side reaches it.
 */
export class MinidriverCard {
  private constructor(readonly application: GidsApplication | PivApplication) {}

  /** Opens the card application behind `transport` (GIDS unless `options.app` says otherwise). */
  static async open(transport: Transport, options: OpenOptions = {}): Promise<MinidriverCard> {
    const app = options.app ?? 'gids';
    const piv = (): Promise<PivApplication> => PivApplication.open(transport, options.managementKey ? { managementKey: options.managementKey } : {});
    if (app === 'piv') return new MinidriverCard(await piv());
    try {
      return new MinidriverCard(await GidsApplication.open(transport, options));
    } catch (err) {
      if (app !== 'detect' || !(err instanceof GidsError && err.code === 'NOT_GIDS')) throw err;
    }
    try {
      return new MinidriverCard(await piv());
    } catch (err) {
      if (err instanceof PivError && err.code === 'NOT_PIV') {
        throw new CardError('NO_CARD_APPLICATION', `${transport.name}: the card has neither a GIDS nor a PIV application`, { cause: err });
      }
      throw err;
    }
  }

  /** Initialises a factory-fresh GIDS card (PIN, admin key, file system) and opens it. */
  static async initialize(transport: Transport, options: InitializeOptions & GidsOpenOptions): Promise<MinidriverCard> {
    return new MinidriverCard(await GidsApplication.initialize(transport, options));
  }

  /** Which application the card speaks (what the CLI reports as used). */
  get kind(): CardApplicationKind {
    return this.application.kind;
  }

  private get app(): CardApplication {
    return this.application;
  }

  private gids(what: string): GidsApplication {
    if (this.application instanceof GidsApplication) return this.application;
    throw new CardError('NOT_ON_THIS_CARD', `${what} exists on GIDS cards only; this card speaks PIV (docs/piv.md)`);
  }

  private piv(what: string): PivApplication {
    if (this.application instanceof PivApplication) return this.application;
    throw new CardError('NOT_ON_THIS_CARD', `${what} exists on PIV cards only; this card speaks GIDS`);
  }

  minidriver(): MinidriverPort {
    return this.app.minidriver();
  }

  // ---- identity and freshness ------------------------------------------------------------------

  /** GIDS: reads `cardid` and `cardcf` afresh (every operation starts this way). */
  async refresh(): Promise<{ cardId: Uint8Array; cardcf: CardCf }> {
    return this.gids('cardcf').refresh();
  }

  /** GIDS `cardid`; PIV the CHUID GUID. */
  async cardId(): Promise<Uint8Array> {
    return this.app.cardId();
  }

  async cardcf(): Promise<CardCf> {
    return this.gids('cardcf').cardcf();
  }

  async info(): Promise<{ cardId: Uint8Array; cardcf: CardCf; containers: ContainerInfo[] }> {
    return this.gids('card info').info();
  }

  // ---- containers ------------------------------------------------------------------------------

  async containers(): Promise<ContainerInfo[]> {
    return this.app.containers();
  }

  async container(nameOrIndex: string | number): Promise<ContainerInfo> {
    return this.app.container(nameOrIndex);
  }

  /** GIDS: a new container with an RSA key (PIN). PIV: a new key in the slot `name` names (management key). */
  async createContainer(name: string, options: CreateContainerOptions = {}): Promise<ContainerInfo & { publicKey: KeyObject }> {
    return this.app.createContainer(name, options);
  }

  async deleteContainer(name: string): Promise<{ container: ContainerInfo; certificateFile: string | undefined }> {
    return this.gids('deleting a container').deleteContainer(name);
  }

  /** PIV: frees a slot whose key has no certificate (cardlink forgets the key; PIV cannot delete one). */
  async forgetKey(nameOrIndex: string | number): Promise<{ container: ContainerInfo }> {
    return this.piv('forgetting a slot key').forgetKey(nameOrIndex);
  }

  async publicKey(nameOrIndex: string | number): Promise<KeyObject> {
    return this.app.publicKey(nameOrIndex);
  }

  async sign(nameOrIndex: string | number, data: Uint8Array, hash: HashName = 'sha256'): Promise<Uint8Array> {
    return this.app.sign(nameOrIndex, data, hash);
  }

  async csr(nameOrIndex: string | number, subject: string, options: CsrOptions = {}): Promise<BuiltCsr> {
    return this.app.csr(nameOrIndex, subject, options);
  }

  async decipher(nameOrIndex: string | number, cryptogram: Uint8Array): Promise<Uint8Array> {
    return this.gids('decipher').decipher(nameOrIndex, cryptogram);
  }

  // ---- certificates ----------------------------------------------------------------------------

  async installCertificate(cert: Uint8Array | string, options: InstallOptions = {}): Promise<InstallResult> {
    return this.app.installCertificate(cert, options);
  }

  async removeCertificate(containerName: string): Promise<{ container: ContainerInfo; file: string | undefined }> {
    return this.app.removeCertificate(containerName);
  }

  async readCertificate(nameOrIndex: string | number): Promise<Uint8Array | undefined> {
    return this.app.readCertificate(nameOrIndex);
  }

  async check(): Promise<CheckReport> {
    return this.app.check();
  }

  async moveCounters(which: { files?: boolean; containers?: boolean }): Promise<CardCf> {
    return this.gids('cardcf').moveCounters(which);
  }

  async repair(options: { adminKey?: Uint8Array } = {}): Promise<RepairReport> {
    return this.app.repair(options);
  }

  // ---- logical files (GIDS) and data objects (PIV) ---------------------------------------------

  async listFiles(): Promise<LogicalFile[]> {
    return this.gids('a file system').listFiles();
  }

  async readFile(path: string): Promise<Uint8Array> {
    return this.gids('a file system').readFile(path);
  }

  async writeFile(path: string, data: Uint8Array): Promise<void> {
    return this.gids('a file system').writeFile(path, data);
  }

  async deleteFile(path: string): Promise<void> {
    return this.gids('a file system').deleteFile(path);
  }

  /** PIV: the data objects the card holds (PIV has no file system). */
  async dataObjects(): Promise<PivDataObject[]> {
    return this.piv('data objects').dataObjects();
  }

  // ---- PIN -------------------------------------------------------------------------------------

  async pinStatus(): Promise<PinState> {
    return this.app.pinStatus();
  }

  async verifyPin(pin: string): Promise<void> {
    return this.app.verifyPin(pin);
  }

  async changePin(oldPin: string, newPin: string): Promise<void> {
    return this.app.changePin(oldPin, newPin);
  }

  /** GIDS: unblocks the PIN with the administrator key and sets a new one. */
  async unblockPin(adminKey: Uint8Array, newPin: string): Promise<void> {
    return this.gids('unblocking with the administrator key').unblockPin(adminKey, newPin);
  }

  /** PIV: unblocks the PIN with the PUK and sets a new one. */
  async unblockPinWithPuk(puk: string, newPin: string): Promise<void> {
    return this.piv('the PUK').unblockPin(puk, newPin);
  }

  async changePuk(oldPuk: string, newPuk: string): Promise<void> {
    return this.piv('the PUK').changePuk(oldPuk, newPuk);
  }

  async logout(): Promise<void> {
    return this.app.logout();
  }

  // ---- GIDS administrator key ------------------------------------------------------------------

  async adminChallenge(): Promise<Uint8Array> {
    return this.gids('the administrator challenge').adminChallenge();
  }

  async unblockPinWithResponse(response: Uint8Array, newPin: string): Promise<void> {
    return this.gids('the administrator challenge').unblockPinWithResponse(response, newPin);
  }

  async retire(adminResponse: Uint8Array, transportKey: Uint8Array, newPin: string): Promise<{ deletedContainers: string[] }> {
    return this.gids('retiring with the administrator key').retire(adminResponse, transportKey, newPin);
  }

  async adminKeyWorks(adminKey: Uint8Array): Promise<boolean> {
    return this.gids('the administrator key').adminKeyWorks(adminKey);
  }

  async changeAdminKey(currentKey: Uint8Array, newKey: Uint8Array): Promise<void> {
    return this.gids('the administrator key').changeAdminKey(currentKey, newKey);
  }
}
