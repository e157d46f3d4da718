/**
 * The Certificate Propagation service (CertPropSvc) of the model [CPS][CREQ][ARCH]:
 * - runs only while the service is running and a user is logged on [ISS2517];
 * - is triggered by card insertion (nothing else in the model: the only other known trigger is a
 *   service restart, which needs an administrator [seed answer]);
 * - works asynchronously: the model runs it `delayMs` after the insertion (configurable; the
 *   sources give no figure, the seed speaks of up to about a minute);
 * - reads every certificate from the card through the providers' user certificate store — RSA
 *   through the Base CSP, other keys through the Smart Card KSP [ISS2517] — so it sees what the
 *   providers' cache sees;
 * - adds each to the user's `My` store with CERT_STORE_ADD_REPLACE_EXISTING_INHERIT_PROPERTIES and
 *   the provider info (bare container name, provider, type, key spec) [CPS][ADD];
 * - leaves certificates in place when the card is removed [CREQ];
 * - enumerates every container's certificate (Vista and later), or, as a hypothesis
 *   (hypotheses.ts), only the default container's AT_KEYEXCHANGE one, the fallback [CREQ] gives
 *   when PP_USER_CERTSTORE is not available (older Windows).
 * Not modelled: root certificates from `mscp/msroots`, which Windows propagates into the machine's
 * `SmartCardRoot` store when the root propagation policy is on [CPS][RINFO]; cardlink neither
 * propagates nor checks them.
 */
import { equalBytes } from '../../bytes.js';
import { ADD, AT_KEYEXCHANGE } from '../constants.js';
import { WinError } from '../errors.js';
import type { Scheduled, Scheduler } from './clock.js';
import { SmartCardProvider, type CardReader, type CardCertificate } from './smartcard.js';
import type { ModelCertStoreHost } from './store.js';
import type { Enumeration } from './hypotheses.js';

export interface PropagationOptions {
  /** The service is running (default true). */
  running?: boolean;
  /** A user is logged on (default true). */
  userLoggedOn?: boolean;
  /** Milliseconds from insertion to the copy; a function draws it per insertion. */
  delayMs?: number | (() => number);
  /** Which certificates are enumerated [CREQ] (hypotheses.ts); all containers' by default. */
  enumeration?: Enumeration;
}

export interface PropagationRun {
  at: number;
  /** Thumbprints added or refreshed in `My`. */
  added: string[];
  /** Why nothing was propagated, when nothing was. */
  skipped?: string;
}

export class CertificatePropagation {
  running: boolean;
  userLoggedOn: boolean;
  delayMs: number | (() => number);
  readonly enumeration: Enumeration;
  readonly runs: PropagationRun[] = [];
  private readonly scheduled = new Set<Scheduled>();

  constructor(
    private readonly scheduler: Scheduler,
    private readonly reader: CardReader,
    private readonly csp: SmartCardProvider,
    private readonly ksp: SmartCardProvider,
    private readonly store: ModelCertStoreHost,
    options: PropagationOptions = {},
  ) {
    this.running = options.running ?? true;
    this.userLoggedOn = options.userLoggedOn ?? true;
    this.delayMs = options.delayMs ?? 5000;
    this.enumeration = options.enumeration ?? 'all-containers';
  }

  /** Propagation runs scheduled and not started yet. */
  get pending(): number {
    return this.scheduled.size;
  }

  onInsert(card: object): void {
    if (!this.running || !this.userLoggedOn) return;
    const delay = typeof this.delayMs === 'function' ? this.delayMs() : this.delayMs;
    const handle = this.scheduler.schedule(delay, async () => {
      this.scheduled.delete(handle);
      await this.propagate(card);
    });
    this.scheduled.add(handle);
  }

  /** Drops runs that have not started (the machine shuts down). */
  cancelPending(): void {
    for (const h of this.scheduled) h.cancel();
    this.scheduled.clear();
  }

  private async propagate(card: object): Promise<void> {
    const at = this.scheduler.now();
    if (!this.running || !this.userLoggedOn) return void this.runs.push({ at, added: [], skipped: 'service stopped or nobody logged on' });
    if (this.reader.card !== card) return void this.runs.push({ at, added: [], skipped: 'the card left the reader before propagation ran' });
    let certs: CardCertificate[];
    try {
      const viaCsp = await this.csp.userCertificates(true);
      const viaKsp = await this.ksp.userCertificates(true);
      certs = viaCsp.map((c) => (SmartCardProvider.cryptoApiCanUse(c.der) ? c : (viaKsp.find((k) => equalBytes(k.der, c.der)) ?? c)));
      // Before Vista only the default container's key exchange certificate was enumerated [CREQ].
      if (this.enumeration === 'default-container-kx') certs = certs.filter((c) => c.isDefault && c.info.keySpec === AT_KEYEXCHANGE);
    } catch (err) {
      if (!(err instanceof WinError)) throw err;
      return void this.runs.push({ at, added: [], skipped: err.message });
    }
    const my = await this.store.openCurrentUserMy();
    const added: string[] = [];
    try {
      for (const c of certs) {
        const ctx = await this.store.createContext(c.der);
        await this.store.setKeyProvInfo(ctx, c.info);
        added.push((await my.add(ctx, ADD.REPLACE_EXISTING_INHERIT_PROPERTIES)).thumbprint);
        await this.store.freeContext(ctx);
      }
    } finally {
      await my.close();
    }
    this.runs.push({ at, added });
  }
}
