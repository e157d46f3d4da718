/**
 * `link`: puts every certificate of a card into `CurrentUser\My` with the provider info that ties
 * it to its key on the card, proves each link, and removes this card's entries whose certificate
 * is gone. It does what Certificate Propagation does [CPS][ADD] — without waiting for an
 * insertion, without going through a cache, and with a proof:
 * CryptAcquireCertificatePrivateKey(COMPARE_KEY), a signature over a random challenge made on the
 * card, verified with the certificate's public key.
 *
 * The card is read first (`readCardFresh`) and everything after goes through Windows' providers,
 * which open their own connection to the card: a caller that holds the card exclusively must
 * release it between the two steps (`linkView`), or the Base CSP / KSP fail with
 * SCARD_E_SHARING_VIOLATION [SCON] — on Windows as in the model.
 */
import { createHash, randomBytes, verify, type KeyObject } from 'node:crypto';
import { hex } from '../bytes.js';
import type { MinidriverContainer, MinidriverPort, ParsedCertificate } from '../card/index.js';
import { ACQUIRE, ADD, AT_KEYEXCHANGE, AT_SIGNATURE, MS_SCARD_PROV, MS_SMART_CARD_KSP, PROV_TYPE } from './constants.js';
import { readCardFresh, type CardContainer, type CardView } from './card-view.js';
import { WinError } from './errors.js';
import type { CertContext, CertStore, CertStoreHost, KeyProvInfo } from './store.js';

export type ProviderChoice = 'auto' | 'csp' | 'ksp';

export interface LinkOptions {
  /** auto: the Base CSP for RSA keys, the KSP for others (the default); csp / ksp force one. */
  provider?: ProviderChoice;
  /** The challenge to sign (random 32 bytes by default). */
  challenge?: (container: MinidriverContainer) => Uint8Array;
  /**
   * The card PIN for the proof: given, the key is acquired with CRYPT_ACQUIRE_SILENT_FLAG and the
   * PIN handed to the provider (PP_*_PIN / NCRYPT_PIN_PROPERTY), so that no dialog appears and
   * `link` runs unattended (the agent); absent, the provider asks the user as it normally would.
   */
  pin?: string;
}

export interface LinkProof {
  challenge: string;
  signature: string;
  hash: 'SHA256';
  api: 'CryptoAPI' | 'CNG';
  keySpec: number;
  verified: true;
}

export interface LinkedCertificate {
  container: string;
  index: number;
  thumbprint: string;
  subject: string;
  keyProvInfo: KeyProvInfo;
  /** added: new entry; updated: entry existed with other provider info; unchanged: already right. */
  action: 'added' | 'updated' | 'unchanged';
  proof: LinkProof;
  /** The certificate, DER: kept for verification by other tools (openssl in the tests). */
  der: Uint8Array;
}

export interface LinkReport {
  cardId: string;
  linked: LinkedCertificate[];
  removed: { thumbprint: string; container: string }[];
}

const SMART_CARD_PROVIDERS = new Set([MS_SCARD_PROV, MS_SMART_CARD_KSP]);

/** The bare container name of a `\\.\reader\name` or bare form. */
export function bareContainerName(name: string): string {
  const m = /^\\\\\.\\[^\\]*\\(.*)$/.exec(name);
  return m ? m[1]! : name;
}

/** The provider info Windows' own propagation would write for this container [CPS][ISS2517]. */
export function keyProvInfoFor(container: Pick<MinidriverContainer, 'name' | 'keySpec'>, publicKey: KeyObject, choice: ProviderChoice = 'auto'): KeyProvInfo {
  const rsa = publicKey.asymmetricKeyType === 'rsa';
  const keySpec = container.keySpec === 'kx' ? AT_KEYEXCHANGE : AT_SIGNATURE;
  const useKsp = choice === 'ksp' || (choice === 'auto' && !rsa);
  if (!useKsp && !rsa) throw WinError.of('NTE_BAD_ALGID', 'link', `container '${container.name}' holds a non-RSA key, which the CryptoAPI Base CSP cannot use: use --ksp`);
  return {
    containerName: container.name,
    providerName: useKsp ? MS_SMART_CARD_KSP : MS_SCARD_PROV,
    providerType: useKsp ? PROV_TYPE.CNG : PROV_TYPE.RSA_FULL,
    flags: 0,
    params: [],
    // The KSP takes the legacy key spec as dwLegacyKeySpec to pick the container's key [KPI].
    keySpec,
  };
}

export function sameKeyProvInfo(a: KeyProvInfo | undefined, b: KeyProvInfo): boolean {
  return (
    a !== undefined &&
    a.containerName === b.containerName &&
    a.providerName === b.providerName &&
    a.providerType === b.providerType &&
    a.flags === b.flags &&
    a.keySpec === b.keySpec &&
    a.params.length === 0 &&
    b.params.length === 0
  );
}

/** Signs a random challenge through the store entry's private key and checks it with the certificate's public key. */
export async function proveLink(host: CertStoreHost, stored: CertContext, info: KeyProvInfo, challenge: Uint8Array, publicKey: KeyObject, pin?: string): Promise<LinkProof> {
  const flags = ACQUIRE.COMPARE_KEY | (info.providerType === PROV_TYPE.CNG ? ACQUIRE.ONLY_NCRYPT_KEY : 0) | (pin !== undefined ? ACQUIRE.SILENT : 0);
  const key = await host.acquirePrivateKey(stored, flags);
  try {
    if (pin !== undefined) await key.setPin(pin);
    const signature = await key.signHash('SHA256', new Uint8Array(createHash('sha256').update(challenge).digest()));
    const ok = verify('sha256', challenge, publicKey.asymmetricKeyType === 'ec' ? { key: publicKey, dsaEncoding: 'ieee-p1363' } : publicKey, signature);
    if (!ok) throw WinError.of('NTE_BAD_SIGNATURE', 'link proof', `the card's signature for '${info.containerName}' does not verify with the certificate's public key`);
    return { challenge: hex(challenge), signature: hex(signature), hash: 'SHA256', api: key.api, keySpec: key.keySpec, verified: true };
  } finally {
    await key.release();
  }
}

async function linkOne(host: CertStoreHost, my: CertStore, c: CardContainer, cert: ParsedCertificate, options: LinkOptions): Promise<LinkedCertificate> {
  const info = keyProvInfoFor(c, cert.publicKey, options.provider);
  const fresh = await host.createContext(cert.der);
  let stored = await my.find(fresh.thumbprint);
  let action: LinkedCertificate['action'] = 'unchanged';
  if (!stored || !sameKeyProvInfo(await host.getKeyProvInfo(stored), info)) {
    action = stored ? 'updated' : 'added';
    await host.setKeyProvInfo(fresh, info);
    stored = await my.add(fresh, ADD.REPLACE_EXISTING_INHERIT_PROPERTIES);
    // Windows gives the stored entry the new properties; Wine keeps the old ones (contract
    // suite). Setting the property on the stored entry makes the result the same on both.
    if (!sameKeyProvInfo(await host.getKeyProvInfo(stored), info)) await host.setKeyProvInfo(stored, info);
  }
  await host.freeContext(fresh);
  const proof = await proveLink(host, stored, info, options.challenge?.(c) ?? new Uint8Array(randomBytes(32)), cert.publicKey, options.pin);
  return {
    container: c.name,
    index: c.index,
    thumbprint: stored.thumbprint,
    subject: cert.subject,
    keyProvInfo: info,
    action,
    proof,
    der: cert.der,
  };
}

/**
 * Links every certificate of the card behind `card` (a minidriver, read fresh) into `host`'s
 * `CurrentUser\My`. For callers whose card connection Windows' providers can share (the model
 * with a shared port, the agent's collect); the CLI reads, releases the card, then `linkView`s.
 */
export async function linkCard(card: MinidriverPort, host: CertStoreHost, options: LinkOptions = {}): Promise<LinkReport> {
  return linkView(await readCardFresh(card), host, options);
}

/** Links the certificates of a card already read (`readCardFresh`); touches the card only through `host`'s providers. */
export async function linkView(view: CardView, host: CertStoreHost, options: LinkOptions = {}): Promise<LinkReport> {
  const { cardId, containers } = view;
  const onCard = new Map<string, string | undefined>();
  const my = await host.openCurrentUserMy();
  const linked: LinkedCertificate[] = [];
  const removed: LinkReport['removed'] = [];
  try {
    for (const c of containers) {
      onCard.set(c.name, c.certificate?.thumbprint);
      if (c.certificate) linked.push(await linkOne(host, my, c, c.certificate, options));
    }
    // An entry is this card's when it names one of this card's containers through a smart card
    // provider; it is stale when that container now holds another certificate or none.
    for (const ctx of await my.enumerate()) {
      const info = await host.getKeyProvInfo(ctx);
      if (!info || !SMART_CARD_PROVIDERS.has(info.providerName)) continue;
      const name = bareContainerName(info.containerName);
      if (!onCard.has(name) || onCard.get(name) === ctx.thumbprint) continue;
      removed.push({ thumbprint: ctx.thumbprint, container: name });
      await my.delete(ctx);
    }
  } finally {
    await my.close();
  }
  return { cardId: hex(cardId), linked, removed };
}
