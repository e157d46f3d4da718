/**
 * One Windows machine of the model: a smart card reader, the Smart Card service with its global
 * cache, Certificate Propagation, the user's registry (`CurrentUser\My`) in a directory, and
 * processes — each with its own Base CSP and Smart Card KSP instances (and so its own PIN caches)
 * and its own view of the store. Driven by a real card behind its minidriver port (the emulator, in
 * process or through PC/SC). All state that Windows keeps across reboots lives under `stateDir`.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../atomic-file.js';
import type { MinidriverPort } from '../../card/index.js';
import { MS_SCARD_PROV, MS_SMART_CARD_KSP, PROV_TYPE } from '../constants.js';
import { WinError } from '../errors.js';
import { CertificatePropagation, type PropagationOptions } from './certprop.js';
import { RealScheduler, type Scheduler } from './clock.js';
import { DOCUMENTED, type Hypotheses } from './hypotheses.js';
import type { ModelKeyProviders } from './providers.js';
import { SmartCardService } from './scardsvr.js';
import { CardReader, SmartCardProvider, type CardConnector, type PinSource } from './smartcard.js';
import { ModelCertStoreHost } from './store.js';

export interface MachineOptions {
  /** Where the machine keeps what survives a reboot: registry (`CurrentUser\\My`) and the Smart Card service cache. */
  stateDir: string;
  scheduler?: Scheduler;
  readerName?: string;
  propagation?: PropagationOptions;
  /** What the model assumes where the sources are silent (hypotheses.ts); the documented set by default. */
  hypotheses?: Partial<Hypotheses>;
}

/**
 * The reader's event count goes on across runs of the model on one state directory, as the
 * Smart Card service cache does: each run (a `--store model:DIR` command) inserts the card, so it
 * is a new insertion to a PIV minidriver, whose freshness folds the count in (piv-cache.ts).
 * Starting again at 0 would make every run the same insertion, and a PIV card written between
 * two runs would look unchanged to the persisted cache for ever.
 */
const READER_EVENTS_FILE = 'reader-events.json';

function readInsertions(stateDir: string): number {
  try {
    const n = (JSON.parse(readFileSync(join(stateDir, READER_EVENTS_FILE), 'utf8')) as { insertions?: unknown }).insertions;
    return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : 0;
  } catch {
    return 0; // a new machine, or a damaged file: the count only has to grow from here
  }
}

/** A process on the machine: its store view and its own CryptoAPI and CNG providers. */
export class ModelProcess {
  readonly csp: SmartCardProvider;
  readonly ksp: SmartCardProvider;
  readonly host: ModelCertStoreHost;

  constructor(
    private readonly machine: WindowsMachine,
    pinSource: PinSource,
  ) {
    this.csp = new SmartCardProvider('CryptoAPI', machine.reader, machine.scardsvr, pinSource, machine.hypotheses);
    this.ksp = new SmartCardProvider('CNG', machine.reader, machine.scardsvr, pinSource, machine.hypotheses);
    const providers: ModelKeyProviders = {
      openCsp: async (name, type, container, keySpec, silent, machineKeyset) => {
        if (name !== MS_SCARD_PROV) throw WinError.of('NTE_KEYSET_NOT_DEF', 'CryptAcquireContext', `no provider '${name}' on this machine`);
        if (type !== PROV_TYPE.RSA_FULL) throw WinError.of('NTE_PROV_TYPE_NO_MATCH', 'CryptAcquireContext', `'${name}' is registered with type ${PROV_TYPE.RSA_FULL}, not ${type}`);
        return this.csp.open(container, keySpec, silent, machineKeyset === true);
      },
      openKsp: async (name, container, keySpec, silent, machineKeyset) => {
        if (name !== MS_SMART_CARD_KSP) throw WinError.of('NTE_KEYSET_NOT_DEF', 'NCryptOpenStorageProvider', `no key storage provider '${name}' on this machine`);
        return this.ksp.open(container, keySpec, silent, machineKeyset === true);
      },
      kspFor: (cspName) => (cspName === MS_SCARD_PROV ? MS_SMART_CARD_KSP : undefined),
    };
    this.host = new ModelCertStoreHost({ stateDir: machine.stateDir, providers, healing: machine.hypotheses.healing });
  }

  /** The process ends: its PIN caches go with it. */
  exit(): void {
    this.csp.clearPins();
    this.ksp.clearPins();
    this.machine.processes.delete(this);
  }
}

export class WindowsMachine {
  readonly stateDir: string;
  readonly scheduler: Scheduler;
  readonly reader: CardReader;
  readonly scardsvr: SmartCardService;
  readonly certprop: CertificatePropagation;
  readonly processes = new Set<ModelProcess>();
  readonly hypotheses: Hypotheses;
  /** The Certificate Propagation service's own process. */
  private readonly service: ModelProcess;

  constructor(options: MachineOptions) {
    this.stateDir = options.stateDir;
    this.hypotheses = { ...DOCUMENTED, ...options.hypotheses };
    mkdirSync(this.stateDir, { recursive: true });
    this.scheduler = options.scheduler ?? new RealScheduler();
    this.reader = new CardReader(options.readerName ?? 'Virtual Smart Card Reader 0');
    this.reader.insertions = readInsertions(this.stateDir);
    this.scardsvr = new SmartCardService(this.stateDir);
    // CertPropSvc is a process of its own, with no one to answer a dialog.
    this.service = new ModelProcess(this, () => undefined);
    this.certprop = new CertificatePropagation(this.scheduler, this.reader, this.service.csp, this.service.ksp, this.service.host, { ...options.propagation, enumeration: this.hypotheses.enumeration });
  }

  /** Starts a process; `pinSource` stands for the user answering its PIN dialogs. */
  startProcess(pinSource: PinSource = () => undefined): ModelProcess {
    const p = new ModelProcess(this, pinSource);
    this.processes.add(p);
    return p;
  }

  /**
   * A card goes into the reader: the providers and propagation reach it through its minidriver —
   * a port all share, or a connector that gives each provider transaction its own connection
   * (shared mode), which fails while another application holds the card exclusively [SCON].
   */
  insert(card: MinidriverPort | CardConnector): void {
    this.reader.insert(card);
    writeFileAtomic(join(this.stateDir, READER_EVENTS_FILE), JSON.stringify({ insertions: this.reader.insertions }));
    this.certprop.onInsert(card);
  }

  /** Removal ends every authentication and PIN cache for the card [AEX][PIN], and every session-only data cache [DEVG]. */
  remove(): void {
    this.reader.remove();
    for (const p of [...this.processes, this.service]) {
      p.csp.cardRemoved();
      p.ksp.cardRemoved();
    }
  }

  reinsert(): void {
    const card = this.reader.card as MinidriverPort | CardConnector | undefined;
    if (!card) throw WinError.of('SCARD_E_NO_SMARTCARD', 'reinsert', 'no card in the reader');
    this.remove();
    this.insert(card);
  }

  /** Shuts the machine down: the Smart Card service writes its cache to the registry. */
  shutdown(): void {
    this.certprop.cancelPending();
    for (const p of [...this.processes]) p.exit();
    this.scardsvr.stop();
  }
}
