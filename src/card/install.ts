import { equalBytes } from '../bytes.js';
import {
  CONTAINER_DEFAULT,
  CONTAINER_VALID,
  decodeCertificateFile,
  encodeCertificateFile,
  serializeCmapfile,
  serializeMasterFileTable,
} from '../minidriver/index.js';
import { parseCertificate, keyIdOf, type ParsedCertificate } from './certificate.js';
import { CardError } from './errors.js';
import { certificatePathFor, describeContainers, type ContainerInfo, type MinidriverCard } from './minidriver-card.js';

export interface InstallOptions {
  /** Container name; without it the container is found by matching public keys. */
  container?: string;
  /** Make this container the default one. */
  makeDefault?: boolean;
}

export interface InstallResult {
  container: ContainerInfo;
  file: string;
  replaced: boolean;
  /** Bytes written to the card file (header + zlib stream). */
  storedBytes: number;
  derBytes: number;
  cardcf: { containersFreshness: number; filesFreshness: number };
}

/**
 * Loads a certificate into its container's `kscNN`/`kxcNN` file the way Windows' Base CSP would:
 * compressed, `cmapfile` kept right, the `cardcf` files counter moved before the first change,
 * then read back and compared. Write order (each step leaves a card `check` understands):
 * counter → file table (new file only) → file content → cmapfile flags → read back.
 */
export async function installCertificate(card: MinidriverCard, input: Uint8Array | string, options: InstallOptions = {}): Promise<InstallResult> {
  const parsed = parseCertificate(input);
  await card.refresh();
  const table = await card.readMasterTableFromCard();
  const cmap = await card.readCmapfileFromCard();
  const containers = describeContainers(cmap, table);
  const target = await findContainer(card, containers, parsed, options.container);
  const path = certificatePathFor(target);
  const [dir, name] = path.split('/') as [string, string];
  const stored = encodeCertificateFile(parsed.der, path);
  const existing = await card.session.locate(dir, name);

  // cmapfile as it must be afterwards: exactly one default (this one when asked or when none is),
  // and the key size of the certificate's key in the container's one size field.
  const wanted = cmap.map((r) => ({ ...r }));
  const anyDefault = cmap.some((r) => (r.flags & (CONTAINER_VALID | CONTAINER_DEFAULT)) === (CONTAINER_VALID | CONTAINER_DEFAULT));
  if (options.makeDefault === true || !anyDefault) {
    for (const [i, r] of wanted.entries()) r.flags = i === target.index ? r.flags | CONTAINER_DEFAULT : r.flags & ~CONTAINER_DEFAULT;
  }
  const bits = parsed.publicKey.asymmetricKeyDetails?.modulusLength;
  if (bits) wanted[target.index]![target.keySpec === 'kx' ? 'kxKeyBits' : 'sigKeyBits'] = bits;

  await card.bump({ files: true });
  if (existing) await card.session.writeFile(dir, name, stored);
  else await card.session.createFile(dir, name, stored);
  if (!equalBytes(serializeCmapfile(wanted), serializeCmapfile(cmap))) await card.putCmapfile(wanted);

  const back = await card.session.readFile(dir, name);
  if (!back || !equalBytes(decodeCertificateFile(back, path).der, parsed.der)) {
    throw new CardError('VERIFY_FAILED', `${path}: the certificate read back differs from the one written`, { container: target.name });
  }
  card.remember(path, 'files', back);
  const finalTable = await card.session.masterTable();
  card.remember('gids/mastertable', 'files', serializeMasterFileTable(finalTable));
  card.remember('mscp/cmapfile', 'files', serializeCmapfile(wanted));
  const cf = card.currentCardCf();
  const info = describeContainers(wanted, finalTable).find((c) => c.index === target.index)!;
  return {
    container: info,
    file: path,
    replaced: existing !== undefined,
    storedBytes: stored.length,
    derBytes: parsed.der.length,
    cardcf: { containersFreshness: cf.containersFreshness, filesFreshness: cf.filesFreshness },
  };
}

/**
 * Deletes a container's certificate file (the key stays). Idempotent: a container without a
 * certificate is reported, not an error, so a removal interrupted by a pulled card can simply be
 * run again.
 */
export async function removeCertificate(card: MinidriverCard, containerName: string): Promise<{ container: ContainerInfo; file: string | undefined }> {
  await card.refresh();
  const table = await card.readMasterTableFromCard();
  const cmap = await card.readCmapfileFromCard();
  const c = describeContainers(cmap, table).find((x) => x.name === containerName);
  if (!c) throw new CardError('NO_CONTAINER', `no container '${containerName}' on the card`, { container: containerName });
  if (!c.certificateFile) return { container: c, file: undefined };
  const [dir, name] = c.certificateFile.split('/') as [string, string];
  await card.bump({ files: true });
  await card.session.deleteFile(dir, name);
  card.remember('gids/mastertable', 'files', serializeMasterFileTable(await card.session.masterTable()));
  card.remember('mscp/cmapfile', 'files', serializeCmapfile(cmap));
  return { container: { ...c, certificateFile: undefined }, file: c.certificateFile };
}

async function findContainer(card: MinidriverCard, containers: ContainerInfo[], parsed: ParsedCertificate, name: string | undefined): Promise<ContainerInfo> {
  if (name !== undefined) {
    const c = containers.find((x) => x.name === name);
    if (!c) throw new CardError('NO_CONTAINER', `no container '${name}' on the card (containers: ${containers.map((x) => x.name).join(', ') || 'none'})`, { container: name });
    const key = keyIdOf(await card.publicKeyOf(c));
    if (key !== parsed.keyId) {
      throw new CardError('KEY_MISMATCH', `the certificate's public key (SHA-256 ${parsed.keyId.slice(0, 16)}…) is not the key of container '${name}' (${key.slice(0, 16)}…)`, { container: name });
    }
    return c;
  }
  const tried: string[] = [];
  for (const c of containers) {
    const key = keyIdOf(await card.publicKeyOf(c));
    if (key === parsed.keyId) return c;
    tried.push(`'${c.name}' (${key.slice(0, 16)}…)`);
  }
  throw new CardError(
    'NO_MATCHING_CONTAINER',
    `no container on the card holds the key of '${parsed.subject}' (public key SHA-256 ${parsed.keyId.slice(0, 16)}…); tried ${tried.join(', ') || 'no containers'}`,
  );
}
