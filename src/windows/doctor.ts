/**
 * `doctor`: why a certificate on the card has no working private key in `CurrentUser\My`, and
 * what fixes it. Each finding names the error Windows reports because of it (what
 * CryptAcquireCertificatePrivateKey — or, for the card itself, signing — returns) and the
 * cardlink command that fixes it. Where the store is reachable the acquisition is also tried, and
 * what it actually returned is reported next to the expectation.
 */
import { equalBytes, hex } from '../bytes.js';
import type { CheckReport, MinidriverContainer, MinidriverPort, ParsedCertificate } from '../card/index.js';
import { ACQUIRE, AT_KEYEXCHANGE, AT_SIGNATURE, HRESULT, hresultHex, MS_SCARD_PROV, MS_SMART_CARD_KSP, PROV_TYPE, type HresultName } from './constants.js';
import { readCardFresh, type CardContainer } from './card-view.js';
import { WinError } from './errors.js';
import { bareContainerName } from './link.js';
import type { WindowsMachine } from './model/machine.js';
import type { CertStoreHost, KeyProvInfo } from './store.js';

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
  | 'PIN_BLOCKED';

export interface DoctorFinding {
  code: DoctorCode;
  container?: string;
  thumbprint?: string;
  message: string;
  /** The error this causes, by HRESULT name and value. */
  error: { name: HresultName; value: string };
  /** What CryptAcquireCertificatePrivateKey(COMPARE_KEY | SILENT) returned on the store entry, when tried. */
  observed?: { name: string; value: string };
  /** The command that fixes it. */
  fix: string;
}

export interface DoctorReport {
  cardId: string;
  certificates: { container: string; thumbprint: string; linked: boolean }[];
  findings: DoctorFinding[];
}

export interface DoctorOptions {
  /** How the card and store were named on the command line, for the fix commands (`--image x --store y`). */
  target: string;
  /** The model machine behind a `model:` store: its cache and propagation service can be inspected. */
  machine?: WindowsMachine;
  /**
   * The card layer's own check of the card (`card check`), when the caller has one: its stale
   * counter findings — content that changed while cardcf stood still, seen against cardlink's
   * cache — are reported as STALE_CACHE too.
   */
  cardCheck?: () => Promise<CheckReport>;
}

function err(name: HresultName): DoctorFinding['error'] {
  return { name, value: hresultHex(HRESULT[name]) };
}

/** Diagnoses the card behind `card` (a minidriver, read fresh) against `host`'s `CurrentUser\My`. */
export async function diagnose(card: MinidriverPort, host: CertStoreHost, options: DoctorOptions): Promise<DoctorReport> {
  const { target } = options;
  const { cardId, cardcf, containers } = await readCardFresh(card);
  const byName = new Map(containers.map((c) => [c.name, c]));
  const findings: DoctorFinding[] = [];
  const certificates: DoctorReport['certificates'] = [];
  const link = `cardlink link ${target}`;


  const my = await host.openCurrentUserMy();
  try {
    for (const c of containers) {
      const cert = c.certificate;
      if (!cert) continue;
      const certKey = new Uint8Array(cert.publicKey.export({ type: 'spki', format: 'der' }));
      const at = { container: c.name, thumbprint: cert.thumbprint };
      if (!equalBytes(certKey, await card.publicKey(c.index))) {
        findings.push({
          code: 'PUBLIC_KEY_MISMATCH',
          ...at,
          message: `the certificate in ${c.certificateFile} (${cert.subject}) is not for the key of container '${c.name}'`,
          error: err('NTE_BAD_PUBLIC_KEY'),
          fix: `cardlink card rm-cert ${target} --container ${c.name}, then cardlink card install CERT ${target} (it finds the right container by public key)`,
        });
      }
      const entry = await my.find(cert.thumbprint);
      certificates.push({ ...at, linked: entry !== undefined });
      if (!entry) {
        findings.push({ code: 'NO_STORE_ENTRY', ...at, message: `${cert.subject} is on the card but not in CurrentUser\\My`, error: err('CRYPT_E_NO_KEY_PROPERTY'), fix: link });
        continue;
      }
      const info = await host.getKeyProvInfo(entry);
      const found = entryFinding(info, c, byName, cert, target);
      if (found) {
        let observed: DoctorFinding['observed'];
        try {
          // As a CryptoAPI caller like the seed's tool: CryptoAPI only, key compared, no UI.
          const key = await host.acquirePrivateKey(entry, ACQUIRE.COMPARE_KEY | ACQUIRE.SILENT);
          await key.release();
          observed = { name: 'S_OK', value: hresultHex(0) };
        } catch (e) {
          if (!(e instanceof WinError)) throw e;
          observed = { name: e.hresultName ?? e.code, value: hresultHex(e.hresult) };
        }
        findings.push({ ...found, ...at, observed });
      }
    }
  } finally {
    await my.close();
  }

  if ((await card.pinStatus()).triesLeft === 0) {
    findings.push({ code: 'PIN_BLOCKED', message: 'the card PIN is blocked: every signature fails', error: err('SCARD_W_CHV_BLOCKED'), fix: `cardlink card pin unblock ${target} (administrator key in CARDLINK_ADMIN_KEY, new PIN in CARDLINK_NEW_PIN)` });
  }

  const repair = `cardlink card check --repair ${target.replace(/\s*--store \S+/, '')}`;
  const checked = options.cardCheck ? (await options.cardCheck()).findings : [];
  const stale = checked.filter((f) => f.code === 'STALE_FILES_COUNTER' || f.code === 'STALE_CONTAINERS_COUNTER');
  for (const f of stale) {
    const counter = f.code === 'STALE_FILES_COUNTER' ? 'files' : 'containers';
    findings.push({ code: 'STALE_CACHE', message: `the card changed while its cardcf ${counter} counter did not move (card check: ${f.code}): Windows' smart card cache cannot tell`, error: err('CRYPT_E_NO_KEY_PROPERTY'), fix: repair });
  }

  const machine = options.machine;
  if (machine) {
    // The model's Smart Card service cache: items held under the card's current counters whose
    // content is not what the card holds are served to every CSP/KSP and to propagation.
    for (const item of machine.scardsvr.list()) {
      if (item.cardId !== hex(cardId)) continue;
      const file = /^Cached_GeneralFile\/([^/]+)\/(.+)$/.exec(item.name);
      const info = /^Cached_ContainerInfo_(\d+)$/.exec(item.name);
      if (file && item.freshness === cardcf.filesFreshness) {
        const actual = await card.readFile(`${file[1]!}/${file[2]!}`);
        if (!actual || !equalBytes(actual, item.data)) {
          findings.push({
            code: 'STALE_CACHE',
            message: `the Smart Card service caches ${file[1]}/${file[2]} under the current files counter (${cardcf.filesFreshness}) but the card holds ${actual ? 'other content' : 'no such file'}: propagation and the providers see the old data`,
            error: err('CRYPT_E_NO_KEY_PROPERTY'),
            fix: repair,
          });
        }
      }
      if (info && item.freshness === cardcf.containersFreshness) {
        const c = containers.find((x) => x.index === Number(info[1]));
        if (!c || !equalBytes(await card.publicKey(c.index), item.data)) {
          findings.push({
            code: 'STALE_CACHE',
            ...(c ? { container: c.name } : {}),
            message: `the Smart Card service caches a public key for container ${info[1]} under the current containers counter (${cardcf.containersFreshness}) that is not the key on the card: the Base CSP checks signatures against it`,
            error: err('NTE_BAD_PUBLIC_KEY'),
            fix: repair,
          });
        }
      }
    }
    if (!machine.certprop.running || !machine.certprop.userLoggedOn) {
      findings.push({
        code: 'PROPAGATION_NOT_RUNNING',
        message: 'Certificate Propagation is not running (or nobody is logged on): inserting the card puts nothing in CurrentUser\\My',
        error: err('CRYPT_E_NO_KEY_PROPERTY'),
        fix: `${link} (no propagation needed), or start the CertPropSvc service as an administrator`,
      });
    }
  }
  return { cardId: hex(cardId), certificates, findings };
}

/** What is wrong with a store entry's provider info for certificate `cert` in container `c`. */
function entryFinding(info: KeyProvInfo | undefined, c: MinidriverContainer, byName: Map<string, CardContainer>, cert: ParsedCertificate, target: string): Omit<DoctorFinding, 'container' | 'thumbprint'> | undefined {
  const link = `cardlink link ${target}`;
  if (!info) return { code: 'NO_KEY_PROV_INFO', message: `the store entry for ${cert.subject} has no CERT_KEY_PROV_INFO_PROP_ID: nothing links it to the card`, error: err('CRYPT_E_NO_KEY_PROPERTY'), fix: link };
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
