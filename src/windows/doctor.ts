/**
 * `doctor`: why a certificate on the card has no working private key in `CurrentUser\My`, and
 * what fixes it — with a `certutil -scinfo`-like picture of the card as Windows sees it [CU].
 *
 * It works in two steps, so that it never locks out the providers it tests: `readDoctorView`
 * reads the card through the minidriver port (the caller then releases the card), and
 * `diagnoseView` goes through Windows only — the store, CryptAcquireCertificatePrivateKey, a proof
 * signature, the Smart Card service cache — whose providers open their own connection to the card
 * [SCON]. For every linked certificate it always tries the acquisition (cached, and uncached with
 * CRYPT_MACHINE_KEYSET, which the smart card providers serve without their data cache [ARCH]) and,
 * given the PIN, a proof signature; each finding names the error it really causes.
 */
import { createHash, randomBytes, verify, X509Certificate } from 'node:crypto';
import { equalBytes, hex } from '../bytes.js';
import { CardlinkError } from '../errors.js';
import { pivContainerSlotTag, type CheckReport, type MinidriverContainer, type MinidriverPort, type ParsedCertificate, type PinInfo } from '../card/index.js';
import { MSCP_DIRECTORY, certificateFileName, parseCmapfile } from '../minidriver/index.js';
import { ACQUIRE, AT_KEYEXCHANGE, AT_SIGNATURE, HRESULT, hresultHex, KEY_PROV_FLAG, MS_SCARD_PROV, MS_SMART_CARD_KSP, PROV_TYPE, SET_PROP, type HresultName } from './constants.js';
import { readCardFresh, type CardContainer, type CardView } from './card-view.js';
import { WinError } from './errors.js';
import { bareContainerName } from './link.js';
import { cacheFreshness } from './model/hypotheses.js';
import type { WindowsMachine } from './model/machine.js';
import { pivCardCf } from './model/piv-cache.js';
import { NO_FILE_PREFIX } from './model/smartcard.js';
import type { CertStoreHost, KeyProvInfo } from './store.js';
import type { RevocationList } from '../crl.js';

export type DoctorCode =
  | 'NO_STORE_ENTRY'
  | 'NO_KEY_PROV_INFO'
  | 'WRONG_PROVIDER'
  | 'WRONG_CONTAINER'
  | 'CONTAINER_MISSING'
  | 'PUBLIC_KEY_MISMATCH'
  | 'STALE_CACHE'
  | 'PROPAGATION_NOT_RUNNING'
  | 'CAPI_CNG_MISMATCH'
  | 'PIN_BLOCKED'
  | 'DUPLICATE_ENTRY'
  | 'ACQUISITION_FAILED'
  | 'PROOF_FAILED'
  | 'REVOKED_CERTIFICATE'
  /** PIV: the card changed while it stayed in the reader; only a new insertion moves the PIV minidriver's freshness. */
  | 'PIV_NOT_REINSERTED'
  /** PIV: the CHUID GUID changed since the link, and with it every container name. */
  | 'PIV_CHUID_CHANGED'
  /** PIV: the card has no CHUID, so Windows' PIV minidriver has no card identity. */
  | 'PIV_NO_CHUID';

export interface DoctorFinding {
  code: DoctorCode;
  container?: string;
  thumbprint?: string;
  message: string;
  /** The error this causes, by HRESULT name and value (S_OK: nothing fails, but something is wrong). */
  error: { name: HresultName; value: string };
  /** What CryptAcquireCertificatePrivateKey(COMPARE_KEY | SILENT) returned on the store entry, when tried. */
  observed?: Outcome;
  /** The command that fixes it. */
  fix: string;
}

/** What a Windows call returned: S_OK or an HRESULT, by name and value. */
export interface Outcome {
  name: string;
  value: string;
}

/** One container as `certutil -scinfo` would show it. */
export interface ScInfoContainer {
  index: number;
  name: string;
  keySpec: 'AT_KEYEXCHANGE' | 'AT_SIGNATURE';
  keyBits: number;
  isDefault: boolean;
  certificate?: { file: string; subject: string; thumbprint: string; notBefore: string; notAfter: string; keyMatch: boolean };
  /** Whether Windows offers the certificate at smart card logon, and why not [CREQ]. */
  logon?: { offered: boolean; why: string[] };
}

export interface ScInfo {
  reader: string;
  cardId: string;
  cardcf: { pins: number; containers: number; files: number };
  /** `cardcf`: the counters above are the card's; `host`: the card has none (PIV), the minidriver keeps them. */
  freshnessSource: 'cardcf' | 'host';
  providers: { cryptoApi: string; cng: string };
  defaultContainer: string | undefined;
  pin: PinInfo;
  containers: ScInfoContainer[];
}

export interface DoctorReport {
  cardId: string;
  scinfo: ScInfo;
  certificates: {
    container: string;
    thumbprint: string;
    linked: boolean;
    /** The acquisition through the store entry: through the providers' cache, without it, and the proof signature. */
    acquisition?: { cached: Outcome; uncached?: Outcome; proof?: Outcome };
  }[];
  /** Where the Smart Card service cache was read from, and how many items were compared with the card. */
  serviceCache?: { source: string; compared: number; note?: string };
  /** Which revocation list the certificates were checked against, or why they were not. */
  revocation?: { source: string; checked: number; note?: string };
  findings: DoctorFinding[];
}

/**
 * Where doctor learns whether a certificate was revoked: the issuing service's CRL, read by the
 * caller (doctor itself never goes on the network), or why it could not be read.
 */
export type RevocationSource =
  | { source: string; list: Pick<RevocationList, 'revocationOf'>; unavailable?: undefined }
  | { source: string; unavailable: string; list?: undefined };

/**
 * The Smart Card service's data cache as SCardReadCacheW reads it [RC]: an item is returned only
 * for the card GUID, freshness and lookup name it was written under.
 */
export interface ServiceCacheProbe {
  readonly source: string;
  /** The freshness DWORD the providers key an item of this kind under, for these counters. */
  freshness(kind: 'files' | 'containers', cf: CardView['cardcf']): number;
  /** The cached data, or undefined when the cache has no such item (or it is stale). */
  read(cardId: Uint8Array, freshness: number, name: string): Promise<Uint8Array | undefined>;
  /** Why the probe could not run, when it could not (e.g. Wine's winscard). */
  readonly unavailable?: string;
  /**
   * For a card without `cardcf` (PIV): the counters its minidriver keeps on the host and would
   * use now (model/piv-cache.ts). Absent: the probe cannot know them, and PIV items are not compared.
   */
  hostCounters?(cardId: Uint8Array): CardView['cardcf'];
}

/** What doctor reads from the card before it lets go of it. */
export interface DoctorCardView extends CardView {
  reader: string;
  publicKeys: Map<number, Uint8Array>;
  pin: PinInfo;
  /** `mscp/cmapfile` and every certificate file a `cmapfile` record can have, as the card holds them (undefined: absent). */
  files: Map<string, Uint8Array | undefined>;
  /** The card layer's own check (`card check`), when the caller ran it. */
  check?: CheckReport;
  /** Why the card has no identity Windows can use (a PIV card without CHUID); nothing else was read then. */
  noIdentity?: string;
}

export interface DoctorOptions {
  /** How the card and store were named on the command line, for the fix commands (`--image x --store y`). */
  target: string;
  /** The model machine behind a `model:` store: its cache and propagation service can be inspected. */
  machine?: WindowsMachine;
  /** Where to read the Smart Card service cache (native: SCardReadCacheW); the model machine's by default. */
  cache?: ServiceCacheProbe;
  /**
   * The card layer's own check of the card (`card check`), when the caller has one: its stale
   * counter findings — content that changed while cardcf stood still, seen against cardlink's
   * cache — are reported as STALE_CACHE too.
   */
  cardCheck?: () => Promise<CheckReport>;
  /** The card PIN: with it the acquisition is followed by a proof signature (silent, PIN given to the provider). */
  pin?: string;
  /** The issuer's revocation list: revoked certificates on the card or in the store are findings. */
  revocation?: RevocationSource;
}

function err(name: HresultName): DoctorFinding['error'] {
  return { name, value: hresultHex(HRESULT[name]) };
}

function outcomeOf(e: unknown): Outcome {
  if (!(e instanceof WinError)) throw e;
  return { name: e.hresultName ?? e.code, value: hresultHex(e.hresult) };
}

const OK: Outcome = { name: 'S_OK', value: hresultHex(0) };

/** The one fix for a PIV card's stale data in Windows: nothing written on the card moves its freshness, a new insertion does [BLOG]. */
const REINSERT = 'remove the card from the reader and insert it again (Windows re-reads a PIV card only after a new insertion)';
const PIV_STALE_WHY = ' — the PIV card was written while it stayed in the reader, and it has not been re-inserted since: its minidriver keeps its freshness on the host and only a new insertion moves it';

/** Reads what doctor needs from the card through the minidriver port; nothing after this touches the card directly. */
export async function readDoctorView(card: MinidriverPort, cardCheck?: () => Promise<CheckReport>): Promise<DoctorCardView> {
  let view: CardView;
  try {
    view = await readCardFresh(card);
  } catch (e) {
    if (!(e instanceof CardlinkError && e.code === 'PIV_NO_CHUID')) throw e;
    const empty: CardView['cardcf'] = { version: 0, pinsFreshness: 0, containersFreshness: 0, filesFreshness: 0, appFreshness: [] };
    return { cardId: new Uint8Array(0), cardcf: empty, freshnessSource: 'host', containers: [], reader: card.name, publicKeys: new Map(), pin: await card.pinStatus(), files: new Map(), noIdentity: e.message };
  }
  const publicKeys = new Map<number, Uint8Array>();
  for (const c of view.containers) publicKeys.set(c.index, await card.publicKey(c.index));
  const files = new Map<string, Uint8Array | undefined>();
  const cmapPath = `${MSCP_DIRECTORY}/cmapfile`;
  const cmap = await card.readFile(cmapPath);
  files.set(cmapPath, cmap);
  const records = cmap ? parseCmapfile(cmap) : [];
  for (let i = 0; i < records.length; i++) {
    for (const spec of ['kx', 'sig'] as const) {
      const path = `${MSCP_DIRECTORY}/${certificateFileName(i, spec)}`;
      files.set(path, await card.readFile(path));
    }
  }
  const pin = await card.pinStatus();
  const check = cardCheck ? await cardCheck() : undefined;
  return { ...view, reader: card.name, publicKeys, pin, files, ...(check ? { check } : {}) };
}

/** Diagnoses the card behind `card` against `host`'s `CurrentUser\My` (for callers whose card connection the providers can share). */
export async function diagnose(card: MinidriverPort, host: CertStoreHost, options: DoctorOptions): Promise<DoctorReport> {
  return diagnoseView(await readDoctorView(card, options.cardCheck), host, options);
}

/** The model machine's Smart Card service cache, read the way SCardReadCacheW would. */
export function modelCacheProbe(machine: WindowsMachine): ServiceCacheProbe {
  return {
    source: 'the model Smart Card service',
    freshness: (kind, cf) => cacheFreshness(machine.hypotheses, cf, kind),
    hostCounters: (cardId) => pivCardCf(machine.scardsvr, cardId, machine.hypotheses.pivFreshness === 'insertion' ? machine.reader.insertions : 0),
    read: async (cardId, freshness, name) => {
      try {
        return machine.scardsvr.read(cardId, freshness, name);
      } catch (e) {
        if (e instanceof WinError && (e.hresult === HRESULT.SCARD_W_CACHE_ITEM_NOT_FOUND || e.hresult === HRESULT.SCARD_W_CACHE_ITEM_STALE)) return undefined;
        throw e;
      }
    },
  };
}

/** Diagnoses a card already read against `host`'s `CurrentUser\My`, through Windows only. */
export async function diagnoseView(view: DoctorCardView, host: CertStoreHost, options: DoctorOptions): Promise<DoctorReport> {
  const { target } = options;
  const { cardId, containers } = view;
  if (view.noIdentity !== undefined) {
    const finding: DoctorFinding = {
      code: 'PIV_NO_CHUID',
      message: `the PIV card has no CHUID: Windows' PIV minidriver names containers and keys its cache after the CHUID's GUID, so it cannot offer this card's certificates (${view.noIdentity})`,
      error: err('SCARD_E_CARD_UNSUPPORTED'),
      fix: `cardlink card check --repair ${target.replace(/\s*--store \S+/, '')} (writes a CHUID with a new GUID), then cardlink link ${target}`,
    };
    return { cardId: '', scinfo: scinfo(view), certificates: [], findings: [finding] };
  }
  const piv = view.freshnessSource === 'host';
  const byName = new Map(containers.map((c) => [c.name, c]));
  const findings: DoctorFinding[] = [];
  const certificates: DoctorReport['certificates'] = [];
  const link = `cardlink link ${target}`;
  const cardOnly = target.replace(/\s*--store \S+/, '');
  const cardSeesStale = (view.check?.findings ?? []).some((f) => f.code === 'STALE_FILES_COUNTER' || f.code === 'STALE_CONTAINERS_COUNTER');
  // card check only knows about staleness it can compare with cardlink's own cache; when only
  // Windows' cache shows it, doctor --repair moves the counters itself.
  // Under the `chuid-only` hypothesis a re-insertion refreshes nothing: only a new CHUID GUID does.
  const chuidOnly = options.machine?.hypotheses.pivFreshness === 'chuid-only';
  const repair = piv
    ? chuidOnly
      ? `cardlink card check --repair ${cardOnly} (a new CHUID GUID: Windows reads the card afresh under it), then ${link}`
      : REINSERT
    : cardSeesStale
      ? `cardlink card check --repair ${cardOnly}`
      : `cardlink doctor --repair ${target} (moves the cardcf counters; needs CARDLINK_PIN)`;
  const staleCode: DoctorCode = piv && !chuidOnly ? 'PIV_NOT_REINSERTED' : 'STALE_CACHE';

  for (const c of containers) {
    const cert = c.certificate;
    if (!cert) continue;
    const certKey = new Uint8Array(cert.publicKey.export({ type: 'spki', format: 'der' }));
    if (!equalBytes(certKey, view.publicKeys.get(c.index)!)) {
      findings.push({
        code: 'PUBLIC_KEY_MISMATCH',
        container: c.name,
        thumbprint: cert.thumbprint,
        message: `the certificate in ${c.certificateFile} (${cert.subject}) is not for the key of container '${c.name}'`,
        error: err('NTE_BAD_PUBLIC_KEY'),
        fix: `cardlink card rm-cert ${target} --container ${c.name}, then cardlink card install CERT ${target} (it finds the right container by public key)`,
      });
    }
  }

  // Store entries naming one of this card's containers with a certificate the card does not hold.
  const strays: StoreEntry[] = [];
  const my = await host.openCurrentUserMy();
  try {
    for (const c of containers) {
      const cert = c.certificate;
      if (!cert) continue;
      const at = { container: c.name, thumbprint: cert.thumbprint };
      const entry = await my.find(cert.thumbprint);
      if (!entry) {
        certificates.push({ ...at, linked: false });
        findings.push({ code: 'NO_STORE_ENTRY', ...at, message: `${cert.subject} is on the card but not in CurrentUser\\My: a context made from the card's certificate has no link to heal from`, error: err('CRYPT_E_NO_KEY_PROPERTY'), fix: link });
        continue;
      }
      const info = await host.getKeyProvInfo(entry);
      const found = entryFinding(info, c, byName, cert, target, piv);
      // Always tried, as a CryptoAPI caller like the seed's tool: CryptoAPI only, key compared, no UI.
      const acquisition = await acquireAndProve(host, entry, cert, options.pin);
      if (info && !found) acquisition.uncached = await acquireUncached(host, cert, info);
      certificates.push({ ...at, linked: true, acquisition });
      if (found) {
        findings.push({ ...found, ...at, observed: acquisition.cached });
        continue;
      }
      if (acquisition.cached.name !== 'S_OK') {
        const stale = acquisition.uncached?.name === 'S_OK';
        findings.push({
          code: stale ? staleCode : 'ACQUISITION_FAILED',
          ...at,
          message: stale
            ? `the entry is right, but acquiring through the providers' cache fails (${acquisition.cached.name}) while an uncached acquisition (CRYPT_MACHINE_KEYSET) succeeds: Windows holds stale card data${staleCode === 'PIV_NOT_REINSERTED' ? PIV_STALE_WHY : ''}`
            : `the entry is right, but CryptAcquireCertificatePrivateKey fails with ${acquisition.cached.name}`,
          error: { name: (acquisition.cached.name as HresultName) in HRESULT ? (acquisition.cached.name as HresultName) : 'E_INVALIDARG', value: acquisition.cached.value },
          observed: acquisition.cached,
          fix: stale ? repair : acquisition.cached.name === 'SCARD_E_SHARING_VIOLATION' ? 'close the application that holds the card exclusively, then run this again' : link,
        });
      } else if (acquisition.proof && acquisition.proof.name !== 'S_OK') {
        findings.push({
          code: 'PROOF_FAILED',
          ...at,
          message: `the key is acquired, but the proof signature fails with ${acquisition.proof.name}`,
          error: { name: (acquisition.proof.name as HresultName) in HRESULT ? (acquisition.proof.name as HresultName) : 'NTE_BAD_SIGNATURE', value: acquisition.proof.value },
          observed: acquisition.proof,
          fix: acquisition.proof.name === 'NTE_BAD_SIGNATURE' ? repair : link,
        });
      }
    }
    // Entries that name one of this card's containers but hold a certificate the card no longer
    // has: an application choosing by subject or usage may take them.
    const current = new Set(containers.flatMap((c) => (c.certificate ? [c.certificate.thumbprint] : [])));
    for (const ctx of await my.enumerate()) {
      const info = await host.getKeyProvInfo(ctx);
      if (!info || (info.providerName !== MS_SCARD_PROV && info.providerName !== MS_SMART_CARD_KSP)) continue;
      const c = byName.get(bareContainerName(info.containerName));
      if (!c || current.has(ctx.thumbprint)) continue;
      const cert = new X509Certificate(ctx.encoded);
      strays.push({ cert, thumbprint: ctx.thumbprint, container: c.name });
      const sameKey = equalBytes(new Uint8Array(cert.publicKey.export({ type: 'spki', format: 'der' })), view.publicKeys.get(c.index)!);
      findings.push({
        code: 'DUPLICATE_ENTRY',
        container: c.name,
        thumbprint: ctx.thumbprint,
        message: sameKey
          ? `another store entry points at container '${c.name}' with a certificate the card no longer holds (same key): applications may pick the old certificate`
          : `another store entry points at container '${c.name}' with a certificate for another key: acquiring it fails`,
        error: sameKey ? err('S_OK') : err('NTE_BAD_PUBLIC_KEY'),
        fix: link,
      });
    }
  } finally {
    await my.close();
  }

  if (view.pin.triesLeft === 0) {
    findings.push({ code: 'PIN_BLOCKED', message: 'the card PIN is blocked: every signature fails', error: err('SCARD_W_CHV_BLOCKED'), fix: `cardlink card pin unblock ${target} (administrator key in CARDLINK_ADMIN_KEY, new PIN in CARDLINK_NEW_PIN)` });
  }

  for (const f of view.check?.findings ?? []) {
    if (f.code !== 'STALE_FILES_COUNTER' && f.code !== 'STALE_CONTAINERS_COUNTER') continue;
    const files = f.code === 'STALE_FILES_COUNTER';
    findings.push({
      code: 'STALE_CACHE',
      message: `the card changed while its cardcf ${files ? 'files' : 'containers'} counter did not move (card check: ${f.code}, against cardlink's own cache): whatever Windows' smart card cache read before the change, it keeps serving — the old ${files ? 'files' : 'keys'}`,
      error: files ? err('CRYPT_E_NOT_FOUND') : err('NTE_BAD_PUBLIC_KEY'),
      fix: repair,
    });
  }

  const revocation = revocationFindings(options.revocation, view, strays, target, findings);

  const probe = options.cache ?? (options.machine ? modelCacheProbe(options.machine) : undefined);
  let serviceCache: DoctorReport['serviceCache'];
  if (probe?.unavailable) serviceCache = { source: probe.source, compared: 0, note: probe.unavailable };
  else if (probe && piv && !probe.hostCounters) serviceCache = { source: probe.source, compared: 0, note: 'a PIV card keeps no freshness counters; the probe cannot read the ones its minidriver keeps on the host' };
  else if (probe) serviceCache = { source: probe.source, compared: await compareServiceCache(probe, view, findings, repair, staleCode) };

  const machine = options.machine;
  if (machine && (!machine.certprop.running || !machine.certprop.userLoggedOn)) {
    findings.push({
      code: 'PROPAGATION_NOT_RUNNING',
      message: 'Certificate Propagation is not running (or nobody is logged on): inserting the card puts nothing in CurrentUser\\My',
      error: err('CRYPT_E_NO_KEY_PROPERTY'),
      fix: `${link} (no propagation needed), or start the CertPropSvc service as an administrator`,
    });
  }
  return { cardId: hex(cardId), scinfo: scinfo(view), certificates, ...(serviceCache ? { serviceCache } : {}), ...(revocation ? { revocation } : {}), findings };
}

/** A store entry naming one of the card's containers with a certificate the card does not hold. */
interface StoreEntry {
  cert: X509Certificate;
  thumbprint: string;
  container: string;
}

/**
 * Revoked certificates that are still offered: on the card (Windows lists them at logon and a
 * domain controller refuses them, CRYPT_E_REVOKED [CREQ]) or in CurrentUser\My pointing at one
 * of this card's containers (applications choosing by subject may still take them).
 */
function revocationFindings(source: RevocationSource | undefined, view: DoctorCardView, strays: readonly StoreEntry[], target: string, findings: DoctorFinding[]): DoctorReport['revocation'] {
  if (!source) return undefined;
  if (source.unavailable !== undefined) return { source: source.source, checked: 0, note: source.unavailable };
  const cardOnly = target.replace(/\s*--store \S+/, '');
  let checked = 0;
  const flag = (cert: X509Certificate, thumbprint: string, container: string, where: 'card' | 'store'): void => {
    checked++;
    const r = source.list.revocationOf(cert);
    if (!r) return;
    findings.push({
      code: 'REVOKED_CERTIFICATE',
      container,
      thumbprint,
      message: `${cert.subject.split('\n').join(', ')} (serial ${cert.serialNumber}) was revoked on ${r.revokedAt.toISOString()}${r.reason ? ` (${r.reason})` : ''} but is still ${where === 'card' ? 'on the card' : 'in CurrentUser\\My'}: Windows offers it at logon and relying parties refuse it`,
      error: err('CRYPT_E_REVOKED'),
      fix: where === 'card' ? `cardlink card rm-cert ${cardOnly} --container ${container}, then cardlink link ${target}` : `cardlink link ${target} (drops store entries the card no longer backs)`,
    });
  };
  for (const c of view.containers) if (c.certificate) flag(c.certificate.cert, c.certificate.thumbprint, c.name, 'card');
  for (const e of strays) flag(e.cert, e.thumbprint, e.container, 'store');
  return { source: source.source, checked };
}

/**
 * Reads what the Smart Card service holds for this card under its current counters and compares
 * it with the card: an item kept under the counter the card shows now but with other content is
 * what every provider and propagation are served [RC][FSR].
 */
async function compareServiceCache(probe: ServiceCacheProbe, view: DoctorCardView, findings: DoctorFinding[], repair: string, staleCode: DoctorCode): Promise<number> {
  const piv = view.freshnessSource === 'host';
  const cf = piv ? probe.hostCounters!(view.cardId) : view.cardcf;
  const filesAt = probe.freshness('files', cf);
  const keysAt = probe.freshness('containers', cf);
  const counter = (which: 'files' | 'containers'): string =>
    piv ? `under the freshness its PIV minidriver keeps for this insertion (${which === 'files' ? cf.filesFreshness : cf.containersFreshness})` : `under the current ${which} counter (${which === 'files' ? cf.filesFreshness : cf.containersFreshness})`;
  const why = staleCode === 'PIV_NOT_REINSERTED' ? PIV_STALE_WHY : '';
  let compared = 0;
  for (const [path, actual] of view.files) {
    const cached = await probe.read(view.cardId, filesAt, `Cached_GeneralFile/${path}`);
    if (cached) {
      compared++;
      if (!actual || !equalBytes(actual, cached)) {
        const isCmap = path.endsWith('/cmapfile');
        findings.push({
          code: staleCode,
          message: `${probe.source} caches ${path} ${counter('files')} but the card holds ${actual ? 'other content' : 'no such file'}: propagation and the providers are served the old ${isCmap ? 'container map' : 'certificate'}${why}`,
          // An old container map hides containers; an old certificate is what propagation copies
          // and KP_CERTIFICATE returns, so the one on the card is never found in the store.
          error: isCmap ? err('NTE_BAD_KEYSET') : err('CRYPT_E_NOT_FOUND'),
          fix: repair,
        });
      }
    }
    if (actual && (await probe.read(view.cardId, filesAt, `${NO_FILE_PREFIX}${path}`))) {
      compared++;
      findings.push({
        code: staleCode,
        message: `${probe.source} remembers that ${path} does not exist, ${counter('files')}, but the card holds it: the certificate is never propagated${why}`,
        error: err('SCARD_E_FILE_NOT_FOUND'),
        fix: repair,
      });
    }
  }
  for (const c of view.containers) {
    const cached = await probe.read(view.cardId, keysAt, `Cached_ContainerInfo_${c.index.toString().padStart(2, '0')}`);
    if (!cached) continue;
    compared++;
    if (!equalBytes(cached, view.publicKeys.get(c.index)!)) {
      findings.push({
        code: staleCode,
        container: c.name,
        message: `${probe.source} caches a public key for container ${c.index} ${counter('containers')} that is not the key on the card: the Base CSP checks signatures against it${why}`,
        error: err('NTE_BAD_PUBLIC_KEY'),
        fix: repair,
      });
    }
  }
  return compared;
}

/** CryptAcquireCertificatePrivateKey(COMPARE_KEY | SILENT) on the entry, then, given the PIN, a proof signature. */
async function acquireAndProve(host: CertStoreHost, entry: Parameters<CertStoreHost['acquirePrivateKey']>[0], cert: ParsedCertificate, pin: string | undefined): Promise<{ cached: Outcome; uncached?: Outcome; proof?: Outcome }> {
  let key;
  // A CryptoAPI-only caller for RSA keys (the seed's tool); a key CryptoAPI cannot hold (ECC) is
  // only ever used by CNG callers, so doctor acquires it as they do [CACPK][ISS2517].
  const flags = ACQUIRE.COMPARE_KEY | ACQUIRE.SILENT | (cert.publicKey.asymmetricKeyType === 'rsa' ? 0 : ACQUIRE.ALLOW_NCRYPT_KEY);
  try {
    key = await host.acquirePrivateKey(entry, flags);
  } catch (e) {
    return { cached: outcomeOf(e) };
  }
  try {
    if (pin === undefined) return { cached: OK };
    try {
      await key.setPin(pin);
      const challenge = new Uint8Array(randomBytes(32));
      const signature = await key.signHash('SHA256', new Uint8Array(createHash('sha256').update(challenge).digest()));
      const ok = verify('sha256', challenge, cert.publicKey.asymmetricKeyType === 'ec' ? { key: cert.publicKey, dsaEncoding: 'ieee-p1363' } : cert.publicKey, signature);
      return { cached: OK, proof: ok ? OK : { name: 'NTE_BAD_SIGNATURE', value: hresultHex(HRESULT.NTE_BAD_SIGNATURE) } };
    } catch (e) {
      return { cached: OK, proof: outcomeOf(e) };
    }
  } finally {
    await key.release();
  }
}

/**
 * The same acquisition with CRYPT_MACHINE_KEYSET added to an in-memory copy of the provider info:
 * the smart card providers then read the card itself, not their cache [ARCH]; NO_HEALING so that
 * nothing but the copy is used.
 */
async function acquireUncached(host: CertStoreHost, cert: ParsedCertificate, info: KeyProvInfo): Promise<Outcome> {
  const ctx = await host.createContext(cert.der);
  try {
    await host.setKeyProvInfo(ctx, { ...info, flags: info.flags | KEY_PROV_FLAG.MACHINE_KEYSET }, SET_PROP.INHIBIT_PERSIST);
    const key = await host.acquirePrivateKey(ctx, ACQUIRE.COMPARE_KEY | ACQUIRE.SILENT | ACQUIRE.NO_HEALING | (cert.publicKey.asymmetricKeyType === 'rsa' ? 0 : ACQUIRE.ALLOW_NCRYPT_KEY));
    await key.release();
    return OK;
  } catch (e) {
    return outcomeOf(e);
  } finally {
    await host.freeContext(ctx);
  }
}

/** The smart card logon enumeration's checks [CREQ] (the UPN and key usage are not parsed here: node does not expose them fully). */
function logonOffer(c: CardContainer, cert: ParsedCertificate, now: Date): { offered: boolean; why: string[] } {
  const why: string[] = [];
  const x = cert.cert;
  if (now < new Date(x.validFrom) || now > new Date(x.validTo)) why.push('outside its validity period');
  if (c.keySpec === 'sig') why.push('its key is AT_SIGNATURE: logon skips signature-only keys unless the "Allow signature keys valid for Logon" policy is enabled');
  const eku = x.keyUsage;
  if (eku && eku.length > 0 && !eku.includes('1.3.6.1.4.1.311.20.2.2')) why.push('no Smart Card Logon extended key usage (1.3.6.1.4.1.311.20.2.2) unless the "Allow certificates with no extended key usage" policy applies');
  return { offered: why.length === 0, why };
}

function scinfo(view: DoctorCardView): ScInfo {
  const now = new Date();
  const def = view.containers.find((c) => c.isDefault);
  return {
    reader: view.reader,
    cardId: hex(view.cardId),
    cardcf: { pins: view.cardcf.pinsFreshness, containers: view.cardcf.containersFreshness, files: view.cardcf.filesFreshness },
    freshnessSource: view.freshnessSource ?? 'cardcf',
    providers: { cryptoApi: MS_SCARD_PROV, cng: MS_SMART_CARD_KSP },
    defaultContainer: def?.name,
    pin: view.pin,
    containers: view.containers.map((c) => {
      const cert = c.certificate;
      const keyMatch = cert ? equalBytes(new Uint8Array(cert.publicKey.export({ type: 'spki', format: 'der' })), view.publicKeys.get(c.index)!) : false;
      return {
        index: c.index,
        name: c.name,
        keySpec: c.keySpec === 'kx' ? 'AT_KEYEXCHANGE' : 'AT_SIGNATURE',
        keyBits: c.keyBits,
        isDefault: c.isDefault,
        ...(cert
          ? {
              certificate: { file: c.certificateFile, subject: cert.subject, thumbprint: cert.thumbprint, notBefore: new Date(cert.cert.validFrom).toISOString(), notAfter: new Date(cert.cert.validTo).toISOString(), keyMatch },
              logon: logonOffer(c, cert, now),
            }
          : {}),
      };
    }),
  };
}

/** What is wrong with a store entry's provider info for certificate `cert` in container `c`. */
function entryFinding(info: KeyProvInfo | undefined, c: MinidriverContainer, byName: Map<string, CardContainer>, cert: ParsedCertificate, target: string, piv: boolean): Omit<DoctorFinding, 'container' | 'thumbprint'> | undefined {
  const link = `cardlink link ${target}`;
  if (!info) return { code: 'NO_KEY_PROV_INFO', message: `the store entry for ${cert.subject} has no CERT_KEY_PROV_INFO_PROP_ID: nothing links it to the card (healing may still find a link elsewhere)`, error: err('CRYPT_E_NO_KEY_PROPERTY'), fix: link };
  const rsa = cert.publicKey.asymmetricKeyType === 'rsa';
  const spec = c.keySpec === 'kx' ? AT_KEYEXCHANGE : AT_SIGNATURE;
  if (info.providerName !== MS_SCARD_PROV && info.providerName !== MS_SMART_CARD_KSP) {
    return { code: 'WRONG_PROVIDER', message: `the entry names provider '${info.providerName}', not a smart card provider`, error: err('NTE_KEYSET_NOT_DEF'), fix: link };
  }
  if (info.providerName === MS_SCARD_PROV && info.providerType !== PROV_TYPE.RSA_FULL) {
    return { code: 'WRONG_PROVIDER', message: `the entry names '${MS_SCARD_PROV}' with provider type ${info.providerType} (it is registered as type 1)`, error: err('NTE_PROV_TYPE_NO_MATCH'), fix: link };
  }
  if (info.providerName === MS_SMART_CARD_KSP && info.providerType !== PROV_TYPE.CNG) {
    return { code: 'WRONG_PROVIDER', message: `the entry names the CNG provider '${MS_SMART_CARD_KSP}' with provider type ${info.providerType} (CNG is 0)`, error: err('NTE_KEYSET_NOT_DEF'), fix: link };
  }
  const name = bareContainerName(info.containerName);
  const named = byName.get(name);
  if (!named && piv && pivContainerSlotTag(name) !== undefined && pivContainerSlotTag(name) === pivContainerSlotTag(c.name)) {
    return {
      code: 'PIV_CHUID_CHANGED',
      message: `the card's CHUID changed since this certificate was linked: Windows' PIV minidriver names containers after the CHUID's GUID, so the entry still names '${name}' while the card now calls the same slot '${c.name}'`,
      error: err('NTE_BAD_KEYSET'),
      fix: link,
    };
  }
  if (!named) return { code: 'CONTAINER_MISSING', message: `the entry names container '${name}', which is not on the card`, error: err('NTE_BAD_KEYSET'), fix: link };
  if (named.index !== c.index) {
    return { code: 'WRONG_CONTAINER', message: `the entry names container '${name}', but the certificate belongs to '${c.name}'`, error: err('NTE_BAD_PUBLIC_KEY'), fix: link };
  }
  if (info.keySpec !== spec && !(info.providerType === PROV_TYPE.CNG && info.keySpec === 0)) {
    return { code: 'WRONG_PROVIDER', message: `the entry asks for key spec ${info.keySpec}; container '${c.name}' holds a ${c.keySpec === 'kx' ? 'key exchange (1)' : 'signature (2)'} key`, error: err('NTE_NO_KEY'), fix: link };
  }
  if (info.providerType === PROV_TYPE.CNG && rsa) {
    return {
      code: 'CAPI_CNG_MISMATCH',
      message: `the entry names the CNG Smart Card KSP: applications that acquire keys through CryptoAPI only (no CRYPT_ACQUIRE_*_NCRYPT_KEY_FLAG) cannot use it`,
      error: err('NTE_BAD_PROV_TYPE'),
      fix: `${link} --csp`,
    };
  }
  if (info.providerType !== PROV_TYPE.CNG && !rsa) {
    return { code: 'CAPI_CNG_MISMATCH', message: 'the entry names the CryptoAPI Base CSP for a key CryptoAPI cannot use', error: err('NTE_BAD_ALGID'), fix: `${link} --ksp` };
  }
  return undefined;
}
