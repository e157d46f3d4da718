/**
 * Everything check looks at, read straight from the card (never from the cache), next to what the
 * cache holds for the same counters. Read once per check; repair plans from it and verifies its
 * work against a second one.
 */
import { equalBytes } from '../../bytes.js';
import { ALG_RSA, KEYTYPE_EXCHANGE } from '../../gids/protocol/constants.js';
import {
  CONTAINER_DEFAULT,
  CONTAINER_VALID,
  CardFormatError,
  KEY_STATE_USED,
  MSCP_DIRECTORY,
  emptyContainerRecord,
  decodeCertificateFile,
  isValidContainer,
  parseCertificateFileName,
  parseCmapfile,
  type CardCf,
  type ContainerRecord,
  type KeyMapRecord,
  type KeySpec,
  type MasterFileRecord,
} from '../../minidriver/index.js';
import { keyId } from '../../thumbprint.js';
import { DO, EF } from '../../gids/protocol/constants.js';
import { pathOf, type CardFiles } from '../card-files.js';
import { parseCertificate } from '../certificate.js';

export interface CardFile {
  path: string;
  /** The data object's content; undefined when the table names a DO the card does not have. */
  raw: Uint8Array | undefined;
}

export interface CertificateFile extends CardFile {
  index: number;
  keySpec: KeySpec;
  /** Set when the file decodes to a certificate. */
  der?: Uint8Array;
  keyId?: string;
  compressed?: boolean;
  /** Why it does not decode. */
  problem?: string;
}

export interface Snapshot {
  cardId: Uint8Array;
  cardcf: CardCf;
  table: MasterFileRecord[];
  rawCmapfile: Uint8Array | undefined;
  /** Set when mscp/cmapfile is missing or does not parse; `cmap` is then rebuilt from the key map. */
  cmapProblem?: string;
  cmap: ContainerRecord[];
  keymap: KeyMapRecord[];
  /** Key id (SHA-256 of the SPKI) of each valid container whose key the card could read. */
  keyIds: Map<number, string>;
  /** Valid containers whose key the card could not read. */
  keyless: number[];
  /** Every named file of the table except certificate files, with its content. */
  files: CardFile[];
  /** Certificate files (mscp/kxcNN, mscp/kscNN) by path as found. */
  certs: Map<string, CertificateFile>;
  /** What the cache holds under the current counters, for the stale-counter checks. */
  cached: {
    table: Uint8Array | undefined;
    cmapfile: Uint8Array | undefined;
    /** Containers whose cached public key is not the key on the card. */
    changedKeys: number[];
    /** Files whose cached content is not what the card holds. */
    changedFiles: string[];
  };
}

/** Reads the card in the order check always has (its APDU count is part of the bench). */
export async function readSnapshot(files: CardFiles): Promise<Snapshot> {
  const { cardId, cardcf } = await files.refresh();
  const cachedRaw = files.cachedRaw();
  const table = await files.tableOnCard();
  const rawCmapfile = await files.readFile(`${MSCP_DIRECTORY}/cmapfile`);
  // What this check already read, by data object: the file loop below takes it from here instead
  // of reading cardid, cardcf and cmapfile a second time.
  const read = new Map<string, Uint8Array | undefined>();
  const doKey = (efid: number, doTag: number): string => `${efid}/${doTag}`;
  const identity = files.rawIdentity;
  if (identity) {
    read.set(doKey(EF.EveryoneReadAdminWriteAc, DO.CARDID), identity.cardId);
    read.set(doKey(EF.EveryoneReadUserWriteAc, DO.CARDCF), identity.cardcf);
  }
  const cmapRecord = table.find((r) => r.directory.toLowerCase() === MSCP_DIRECTORY && r.filename.toLowerCase() === 'cmapfile');
  if (cmapRecord) read.set(doKey(cmapRecord.efid, cmapRecord.doTag), rawCmapfile);
  const keymap = await files.keyMap();
  // A missing or unreadable cmapfile is a finding, not a card check cannot read: the key map still
  // says which keys exist, so the containers are rebuilt from it (and their certificates, filed by
  // container index, stay with them instead of looking orphaned).
  let cmap: ContainerRecord[] = [];
  let cmapProblem: string | undefined;
  if (rawCmapfile === undefined) cmapProblem = 'missing';
  else {
    try {
      cmap = parseCmapfile(rawCmapfile);
    } catch (err) {
      cmapProblem = `damaged (${err instanceof CardFormatError ? err.reason : (err as Error).message})`;
    }
  }
  if (cmapProblem !== undefined) cmap = cmapFromKeyMap(keymap);

  const keyIds = new Map<number, string>();
  const keyless: number[] = [];
  const changedKeys: number[] = [];
  for (const [index, r] of cmap.entries()) {
    if (!isValidContainer(r)) continue;
    try {
      const id = keyId(await files.publicKeyFromCard(index));
      keyIds.set(index, id);
      const cached = files.cachedPublicKey(index);
      if (cached && keyId(cached) !== id) changedKeys.push(index);
    } catch {
      keyless.push(index);
    }
  }

  const plain: CardFile[] = [];
  const certs = new Map<string, CertificateFile>();
  const changedFiles: string[] = [];
  for (const rec of table) {
    if (rec.filename === '') continue;
    const path = pathOf(rec);
    const key = doKey(rec.efid, rec.doTag);
    const raw = read.has(key) ? read.get(key) : await files.readRecord(rec);
    const certName = rec.directory.toLowerCase() === MSCP_DIRECTORY ? parseCertificateFileName(rec.filename) : undefined;
    if (!certName) {
      plain.push({ path, raw });
      continue;
    }
    const entry: CertificateFile = { path, raw, ...certName };
    certs.set(path, entry);
    const cached = files.cachedFile(path);
    if (cached !== undefined && raw !== undefined && !equalBytes(cached, raw)) changedFiles.push(path);
    if (raw === undefined || raw.length === 0) {
      entry.problem = 'empty';
      continue;
    }
    try {
      const decoded = decodeCertificateFile(raw, path);
      entry.keyId = parseCertificate(decoded.der).keyId;
      entry.der = decoded.der;
      entry.compressed = decoded.compressed;
    } catch (err) {
      entry.problem = err instanceof CardFormatError ? err.reason : (err as Error).message;
    }
  }
  return {
    cardId,
    cardcf,
    table,
    rawCmapfile,
    ...(cmapProblem !== undefined ? { cmapProblem } : {}),
    cmap,
    keymap,
    keyIds,
    keyless,
    files: plain,
    certs,
    cached: { table: cachedRaw.table, cmapfile: cachedRaw.cmapfile, changedKeys, changedFiles },
  };
}

/**
 * Containers for the keys the key map lists as in use, one per entry at the same index (the key
 * file and the certificate file names follow the index): named `recovered-N`, the key size and
 * key spec from the key map, the first one the default.
 */
export function cmapFromKeyMap(keymap: readonly KeyMapRecord[]): ContainerRecord[] {
  let defaultSet = false;
  return keymap.map((k, i) => {
    if (k.state !== KEY_STATE_USED) return emptyContainerRecord();
    const bits = Number(Object.entries(ALG_RSA).find(([, alg]) => alg === k.algId)?.[0] ?? 0);
    const kx = k.keyType === KEYTYPE_EXCHANGE;
    const isDefault = !defaultSet;
    defaultSet = true;
    return { ...emptyContainerRecord(), name: `recovered-${i}`, flags: CONTAINER_VALID | (isDefault ? CONTAINER_DEFAULT : 0), kxKeyBits: kx ? bits : 0, sigKeyBits: kx ? 0 : bits };
  });
}

/** Is `cmap[index]` a valid container? */
export function validAt(s: Pick<Snapshot, 'cmap'>, index: number): boolean {
  const r = s.cmap[index];
  return r !== undefined && isValidContainer(r);
}

/** Does the file table of `s` name `path` (case-insensitively, as minidrivers compare names)? */
export function hasFile(s: Pick<Snapshot, 'table'>, path: string): boolean {
  const wanted = path.toLowerCase();
  return s.table.some((r) => r.filename !== '' && pathOf(r).toLowerCase() === wanted);
}
