import { X509Certificate } from 'node:crypto';
import { equalBytes } from '../bytes.js';
import { keyId } from '../thumbprint.js';
import {
  decodeCertificateFile,
  encodeCertificateFile,
  isDefaultContainer,
  isValidContainer,
  serializeCmapfile,
  setDefaultContainer,
  type ContainerRecord,
} from '../minidriver/index.js';
import { certificatePath, describeContainers, type CardFiles, type ContainerInfo } from './card-files.js';
import { parseCertificate, type ParsedCertificate } from './certificate.js';
import { CardError } from './errors.js';

export interface InstallOptions {
  /** Container name; without it the container is found by matching public keys. */
  container?: string;
  /** Make this container the default one. */
  makeDefault?: boolean;
  /** Install even what needs a second thought (expired, not yet valid, a CA, older than the one replaced). */
  force?: boolean;
  /** The time validity is judged at (default: now). */
  now?: Date;
  /**
   * Read the file back and compare it with what was written (`card install --verify`). Without
   * it, the card's own answer is the proof: see installCertificate.
   */
  verify?: boolean;
}

export interface InstallResult {
  container: ContainerInfo;
  file: string;
  replaced: boolean;
  /** The container already held this very certificate: nothing was written, cardcf did not move. */
  unchanged: boolean;
  /** The file was read back from the card and compared (InstallOptions.verify). */
  verified: boolean;
  /** Bytes written to the card file (header + zlib stream). */
  storedBytes: number;
  derBytes: number;
  /** GIDS: the `cardcf` counters after the write. A PIV card has no `cardcf` (docs/piv.md). */
  cardcf?: { containersFreshness: number; filesFreshness: number };
  /**
   * PIV: the card identity Windows keys its cache on (the CHUID GUID, hex) and whether this
   * install had to write the CHUID first (a card without one: new container names).
   */
  chuid?: { guid: string; written: boolean };
}

/**
 * Loads a certificate into its container's `kscNN`/`kxcNN` file the way Windows' Base CSP would:
 * compressed, `cmapfile` kept right, the `cardcf` files counter moved before the first change.
 * Write order (each step leaves a card `check` understands): counter → file table (new file only)
 * → file content → cmapfile flags → (with `verify`) read back.
 *
 * What proves the write without reading it back: the file goes in one PUT DATA of one data object
 * whose BER-TLV header, in the first APDU, states its whole length, and the card answers the APDU
 * that completes the object with 9000 (ISO 7816-4: processing completed, docs/sources.md#iso7816-4).
 * The emulator counts the bytes against the header and refuses (6984) a chain that ends short or
 * runs long; a chain cut by a pulled card throws here, before anything is remembered. Each APDU
 * crosses the reader under the transmission protocol's own check (T=1 block EDC), and any answer
 * but 9000 throws. What the 9000 does not cover is a card that stores other bytes than it received
 * (a faulty chip or applet): `verify` adds the read-back (one GET DATA: one to four APDUs) that
 * compares them end to end.
 *
 * The table and `cmapfile` come from the cache when the card was last written by cardlink under
 * the counters it has now (CardFiles.containersForWrite); `cmapfile` is then read afresh before it
 * is changed, and the table before a new file is added to it.
 */
export async function installCertificate(files: CardFiles, input: Uint8Array | string, options: InstallOptions = {}): Promise<InstallResult> {
  const parsed = parseCertificate(input);
  await files.refresh();
  const known = await files.containersForWrite();
  let cmap = known.cmap;
  const target = await findContainer(files, known.containers, parsed, options.container);
  const path = certificatePath(target);
  // The certificate there now (for 'unchanged' and the older-than check): from the cache when
  // cardlink wrote the card last under its current counters, as the table and cmapfile are.
  const before = (known.fromCache ? files.cachedFile(path) : undefined) ?? (await files.readFile(path));
  // An empty file (a deletion cut short) holds no certificate to compare with.
  const current = before && before.length > 0 ? decodeCertificateFile(before, path).der : undefined;
  if (current && equalBytes(current, parsed.der) && options.makeDefault !== true) {
    // Writing it again would move cardcf, and every Windows cache of the card would be dropped.
    const cf = files.cardcf;
    return { container: target, file: path, replaced: false, unchanged: true, verified: false, storedBytes: before!.length, derBytes: parsed.der.length, cardcf: { containersFreshness: cf.containersFreshness, filesFreshness: cf.filesFreshness } };
  }
  if (options.force !== true) refuseSurprises(parsed, current, options.now ?? new Date());
  const stored = encodeCertificateFile(parsed.der, path);

  let wanted = wantedCmapfile(cmap, target, parsed, options.makeDefault === true);
  if (known.fromCache && !equalBytes(serializeCmapfile(wanted), serializeCmapfile(cmap))) {
    // About to write it: what we write must start from the card's cmapfile, not the cache's.
    cmap = await files.freshCmapfile();
    wanted = wantedCmapfile(cmap, target, parsed, options.makeDefault === true);
  }

  await files.bump({ files: true });
  const replaced = await files.putFile(path, stored);
  if (!equalBytes(serializeCmapfile(wanted), serializeCmapfile(cmap))) await files.putCmapfile(wanted);

  if (options.verify === true) {
    // Byte for byte what was written: a corrupted file may not even decompress.
    const back = await files.readFile(path);
    if (!back || !equalBytes(back, stored) || !equalBytes(decodeCertificateFile(back, path).der, parsed.der)) {
      throw new CardError('VERIFY_FAILED', `${path}: the certificate read back differs from the one written`, { container: target.name });
    }
  }
  files.rememberFile(path, stored);
  const finalTable = await files.rememberCurrentTable();
  files.rememberCmapfile(wanted);
  const cf = files.cardcf;
  const info = describeContainers(wanted, finalTable).find((c) => c.index === target.index)!;
  return {
    container: info,
    file: path,
    replaced,
    unchanged: false,
    verified: options.verify === true,
    storedBytes: stored.length,
    derBytes: parsed.der.length,
    cardcf: { containersFreshness: cf.containersFreshness, filesFreshness: cf.filesFreshness },
  };
}

/**
 * `cmapfile` as it must be after installing into `target`: exactly one default (this one when
 * asked or when none is), and the key size of the certificate's key in the container's one size field.
 */
function wantedCmapfile(cmap: readonly ContainerRecord[], target: ContainerInfo, parsed: ParsedCertificate, makeDefault: boolean): ContainerRecord[] {
  const wanted = cmap.map((r) => ({ ...r }));
  const anyDefault = cmap.some((r) => isValidContainer(r) && isDefaultContainer(r));
  if (makeDefault || !anyDefault) {
    for (const [i, r] of wanted.entries()) setDefaultContainer(r, i === target.index);
  }
  const bits = parsed.publicKey.asymmetricKeyDetails?.modulusLength;
  const record = wanted[target.index];
  if (bits && record) record[target.keySpec === 'kx' ? 'kxKeyBits' : 'sigKeyBits'] = bits;
  return wanted;
}

/**
 * Deletes a container's certificate file (the key stays). Idempotent: a container without a
 * certificate is reported, not an error, so a removal interrupted by a pulled card can simply be
 * run again.
 */
export async function removeCertificate(files: CardFiles, containerName: string): Promise<{ container: ContainerInfo; file: string | undefined }> {
  await files.refresh();
  const { cmap, containers } = await files.containersForWrite();
  const c = containers.find((x) => x.name === containerName);
  if (!c) throw new CardError('NO_CONTAINER', `no container '${containerName}' on the card`, { container: containerName });
  if (!c.certificateFile) return { container: c, file: undefined };
  await files.bump({ files: true });
  await files.deleteFile(c.certificateFile);
  await files.rememberCurrentTable();
  files.rememberCmapfile(cmap);
  return { container: { ...c, certificateFile: undefined }, file: c.certificateFile };
}

/**
 * What an administrator would want to be asked about before it lands on the card: a certificate
 * that cannot be used now (expired, not yet valid), a CA certificate (not a user's), or one older
 * than the certificate it replaces (a renewal run backwards). Each needs `force`.
 */
const CLOCK_SKEW_MS = 5 * 60_000;

export function refuseSurprises(parsed: ParsedCertificate, current: Uint8Array | undefined, now: Date): void {
  const why: string[] = [];
  const from = new Date(parsed.cert.validFrom);
  const to = new Date(parsed.cert.validTo);
  if (to < now) why.push(`it expired on ${to.toISOString()}`);
  // A CA whose clock runs a little ahead of this machine's is not a surprise (agent/collect.ts
  // installs what the service has just issued).
  if (from.getTime() > now.getTime() + CLOCK_SKEW_MS) why.push(`it is not valid before ${from.toISOString()}`);
  if (parsed.cert.ca) why.push('it is a CA certificate (basicConstraints cA), not a user certificate');
  if (current) {
    const old = new X509Certificate(current);
    if (new Date(old.validFrom) > from) why.push(`it is older than the certificate it would replace (issued ${from.toISOString()}, the one on the card ${new Date(old.validFrom).toISOString()})`);
  }
  if (why.length > 0) throw new CardError('CERT_NEEDS_FORCE', `not installed: ${why.join('; ')}; add --force to install it anyway`);
}

async function findContainer(files: CardFiles, containers: ContainerInfo[], parsed: ParsedCertificate, name: string | undefined): Promise<ContainerInfo> {
  if (name !== undefined) {
    const c = containers.find((x) => x.name === name);
    if (!c) throw new CardError('NO_CONTAINER', `no container '${name}' on the card (containers: ${containers.map((x) => x.name).join(', ') || 'none'})`, { container: name });
    const key = keyId(await files.publicKey(c));
    if (key !== parsed.keyId) {
      throw new CardError('KEY_MISMATCH', `the certificate's public key (SHA-256 ${parsed.keyId.slice(0, 16)}…) is not the key of container '${name}' (${key.slice(0, 16)}…)`, { container: name });
    }
    return c;
  }
  const tried: string[] = [];
  for (const c of containers) {
    const key = keyId(await files.publicKey(c));
    if (key === parsed.keyId) return c;
    tried.push(`'${c.name}' (${key.slice(0, 16)}…)`);
  }
  throw new CardError(
    'NO_MATCHING_CONTAINER',
    `no container on the card holds the key of '${parsed.subject}' (public key SHA-256 ${parsed.keyId.slice(0, 16)}…); tried ${tried.join(', ') || 'no containers'}`,
  );
}
