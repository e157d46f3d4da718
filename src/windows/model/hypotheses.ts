/**
 * What the model of the Windows smart card stack assumes where Microsoft's documents are silent or
 * give more than one answer, as explicit parameters. Each value is labelled with its source or as
 * an assumption; `DOCUMENTED` is the best-documented choice and the default of every machine. The
 * symptom × hypothesis table in the README (test/windows/hypotheses.test.ts) shows which of the
 * seed's symptoms each set reproduces.
 */

/**
 * Where CryptAcquireCertificatePrivateKey finds a CERT_KEY_PROV_INFO for a context that has none
 * ("healing", done unless CRYPT_ACQUIRE_NO_HEALING is given [CACPK]; the document does not say
 * from where):
 * - `key-identifier`: the KEY_PROV_INFO kept for the certificate's key identifier (SHA-1 of its
 *   public key), the store CryptGetKeyIdentifierProperty reads [KIDP]. The model records it when a
 *   certificate carrying KEY_PROV_INFO is added to `CurrentUser\My` (assumption: which calls write
 *   it is not documented), and it outlives the certificate's deletion.
 * - `my-by-sha1`: the copy of the same certificate (by SHA-1) in `CurrentUser\My` (assumption,
 *   chosen once because it fits the seed's report).
 * - `none`: no healing source: a bare context always fails.
 */
export type HealingSource = 'key-identifier' | 'my-by-sha1' | 'none';

/**
 * CP_CARD_CACHE_MODE, per minidriver [DEVG][CMH]: `global` (CP_CACHE_MODE_GLOBAL_CACHE: the Smart
 * Card service's cache, shared by every process and kept across restarts), `session-only`
 * (CP_CACHE_MODE_SESSION_ONLY: per process, cleared when the card is removed or reinserted),
 * `no-cache` (CP_CACHE_MODE_NO_CACHE: the Base CSP caches no card data).
 */
export type CacheMode = 'global' | 'session-only' | 'no-cache';

/**
 * Which `cardcf` counter keys which cached item (not documented: docs/sources.md#open-questions):
 * - `by-class`: files (`Cached_GeneralFile/…`) by wFilesFreshness, container data (public keys)
 *   by wContainersFreshness — the split the Minidriver spec gives the two counters [FSR];
 * - `whole-cardcf`: every item by both counters, so moving either refreshes everything (assumption).
 */
export type FreshnessKeying = 'by-class' | 'whole-cardcf';

/**
 * Which certificates Certificate Propagation (and logon) enumerate [CREQ]: Windows Vista and later
 * every valid container's certificate; earlier Windows only the default container's
 * AT_KEYEXCHANGE certificate.
 */
export type Enumeration = 'all-containers' | 'default-container-kx';

/**
 * What moves the freshness of a card without `cardcf` (PIV), whose minidriver keeps its counters
 * on the host (piv-cache.ts):
 * - `insertion`: the activity count derived from the reader's event counter is part of it [BLOG,
 *   unofficial], so a new insertion refreshes every item;
 * - `chuid-only`: only the card GUID (the CHUID's) keys the items, so nothing but a new CHUID
 *   refreshes them (assumption: the activity count would then serve the PIN cache only).
 */
export type PivFreshness = 'insertion' | 'chuid-only';

/** A Windows version profile: what it implies for the other parameters. */
export type WindowsProfile = 'windows-10' | 'windows-xp';

export interface Hypotheses {
  healing: HealingSource;
  /** The providers cache the absence of a file (a read that found none) like content (assumption; no source says either way). */
  negativeCaching: boolean;
  freshness: FreshnessKeying;
  cacheMode: CacheMode;
  enumeration: Enumeration;
  windows: WindowsProfile;
  pivFreshness: PivFreshness;
}

/** The best-documented choice for each parameter: the default of every model machine. */
export const DOCUMENTED: Hypotheses = {
  healing: 'key-identifier',
  negativeCaching: false,
  freshness: 'by-class',
  cacheMode: 'global',
  enumeration: 'all-containers',
  windows: 'windows-10',
  pivFreshness: 'insertion',
};

/** Source (a key of docs/sources.md) or "assumption" for each value. */
export const HYPOTHESIS_SOURCES: { [K in keyof Hypotheses]: Record<string, string> } = {
  healing: { 'key-identifier': '[CACPK] healing, [KIDP] key identifier store', 'my-by-sha1': 'assumption that fits the seed', none: 'assumption: no healing source' },
  negativeCaching: { false: 'assumption; the known cache items are contents [BLOG]', true: 'assumption' },
  freshness: { 'by-class': '[FSR] counter split', 'whole-cardcf': 'assumption' },
  cacheMode: { global: '[DEVG] CP_CACHE_MODE_GLOBAL_CACHE', 'session-only': '[DEVG] CP_CACHE_MODE_SESSION_ONLY', 'no-cache': '[DEVG] CP_CACHE_MODE_NO_CACHE' },
  enumeration: { 'all-containers': '[CREQ] Vista and later', 'default-container-kx': '[CREQ] before Vista' },
  windows: { 'windows-10': '[CREQ] Vista and later', 'windows-xp': '[CREQ] before Vista' },
  pivFreshness: { insertion: '[BLOG] activity count from the reader event counter', 'chuid-only': 'assumption' },
};

/** The hypotheses of a Windows version profile, on top of the documented defaults. */
export function profile(windows: WindowsProfile): Hypotheses {
  return windows === 'windows-xp' ? { ...DOCUMENTED, windows, enumeration: 'default-container-kx' } : { ...DOCUMENTED };
}

/** A named set of hypotheses: a column of the symptom × hypothesis table. */
export interface HypothesisSet {
  name: string;
  hypotheses: Hypotheses;
}

/** The sets the README table and the random suite run under: the documented one and one change of each parameter. */
export const HYPOTHESIS_SETS: HypothesisSet[] = [
  { name: 'documented', hypotheses: DOCUMENTED },
  { name: 'heal from My by SHA-1', hypotheses: { ...DOCUMENTED, healing: 'my-by-sha1' } },
  { name: 'no healing', hypotheses: { ...DOCUMENTED, healing: 'none' } },
  { name: 'negative caching', hypotheses: { ...DOCUMENTED, negativeCaching: true } },
  { name: 'negative caching, session-only', hypotheses: { ...DOCUMENTED, negativeCaching: true, cacheMode: 'session-only' } },
  { name: 'no cache', hypotheses: { ...DOCUMENTED, cacheMode: 'no-cache' } },
  { name: 'whole-cardcf keying', hypotheses: { ...DOCUMENTED, freshness: 'whole-cardcf' } },
  { name: 'Windows XP', hypotheses: profile('windows-xp') },
];

/**
 * The parameters on one line, each with its source: `healing=key-identifier ([CACPK] …), …`; with
 * `base`, only those that differ from it.
 */
export function describeHypotheses(h: Hypotheses, base?: Hypotheses): string {
  const keys = (Object.keys(h) as (keyof Hypotheses)[]).filter((k) => !base || base[k] !== h[k]);
  return keys.map((k) => `\`${k}=${String(h[k])}\` (${HYPOTHESIS_SOURCES[k][String(h[k])] ?? 'assumption'})`).join(', ');
}

/** The freshness DWORD a cached item of `kind` is kept under, for the counters `cf` (see FreshnessKeying). */
export function cacheFreshness(h: Pick<Hypotheses, 'freshness'>, cf: { filesFreshness: number; containersFreshness: number }, kind: 'files' | 'containers'): number {
  if (h.freshness === 'whole-cardcf') return ((cf.containersFreshness & 0xffff) * 0x10000 + (cf.filesFreshness & 0xffff)) >>> 0;
  return kind === 'files' ? cf.filesFreshness : cf.containersFreshness;
}
