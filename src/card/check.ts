import { createPublicKey, randomBytes } from 'node:crypto';
import { equalBytes, hex } from '../bytes.js';
import { ALG_RSA, DO, EF, FIRST_KEY_REF, KEYTYPE_EXCHANGE, KEYTYPE_SIGNATURE, keyFid } from '../gids/protocol/constants.js';
import {
  CONTAINER_DEFAULT,
  CONTAINER_VALID,
  CardFormatError,
  KEY_STATE_USED,
  certificateFileName,
  decodeCertificateFile,
  deletedKeyMapRecord,
  emptyContainerRecord,
  encodeCertificateFile,
  parseCertificateFileName,
  parseCmapfile,
  serializeCmapfile,
  serializeKeyMap,
  serializeMasterFileTable,
  type CardCf,
  type ContainerRecord,
  type KeyMapRecord,
  type MasterFileRecord,
} from '../minidriver/index.js';
import { keyIdOf, parseCertificate } from './certificate.js';
import type { MinidriverCard } from './minidriver-card.js';

export type FindingCode =
  | 'KEYMAP_OUT_OF_STEP'
  | 'CONTAINER_WITHOUT_KEY'
  | 'CONTAINER_KEY_SIZE'
  | 'FILE_DANGLING'
  | 'CERT_MALFORMED'
  | 'CERT_UNCOMPRESSED'
  | 'CERT_ORPHAN'
  | 'CERT_WRONG_KEYSPEC'
  | 'CERT_KEY_MISMATCH'
  | 'DEFAULT_MISSING'
  | 'DEFAULT_MULTIPLE'
  | 'DEFAULT_INVALID'
  | 'STALE_FILES_COUNTER'
  | 'STALE_CONTAINERS_COUNTER'
  | 'CARDID_REUSED';

export interface Finding {
  code: FindingCode;
  severity: 'error' | 'warning';
  /** One line a user can read. */
  message: string;
  /** What `--repair` does about it. */
  fix: string;
  container?: string;
  file?: string;
  /** Set by repair. */
  fixed?: boolean;
}

export interface CheckReport {
  cardId: string;
  cardcf: CardCf;
  findings: Finding[];
}

/** What check saw, so repair can act without reading the card twice. */
interface Snapshot {
  cardId: Uint8Array;
  cardcf: CardCf;
  table: MasterFileRecord[];
  cmap: ContainerRecord[];
  keymap: KeyMapRecord[];
  keyIds: Map<number, string>;
  certs: Map<string, { index: number; keySpec: 'kx' | 'sig'; raw: Uint8Array | undefined; der?: Uint8Array; keyId?: string; compressed?: boolean }>;
}

/** Per-card memory kept in the cache across sessions, to recognise a cardid seen on another card. */
interface History {
  maxContainers: number;
  maxFiles: number;
  containersAtLast: number;
  keyIds: string[];
}

const HISTORY = 'history';
const HISTORY_FRESHNESS = -1;

export function readHistory(card: MinidriverCard, cardId: Uint8Array): History | undefined {
  const raw = card.cache.get(cardId, HISTORY, HISTORY_FRESHNESS);
  if (!raw) return undefined;
  try {
    return JSON.parse(Buffer.from(raw).toString('utf8')) as History;
  } catch {
    return undefined;
  }
}

export function recordHistory(card: MinidriverCard, cardId: Uint8Array, cf: CardCf, keyIds: string[]): void {
  const h = readHistory(card, cardId);
  const next: History = {
    maxContainers: Math.max(h?.maxContainers ?? 0, cf.containersFreshness),
    maxFiles: Math.max(h?.maxFiles ?? 0, cf.filesFreshness),
    containersAtLast: cf.containersFreshness,
    keyIds: [...new Set([...(h?.keyIds ?? []), ...keyIds])].slice(-64),
  };
  card.cache.put(cardId, HISTORY, HISTORY_FRESHNESS, Buffer.from(JSON.stringify(next)));
}

/**
 * Reads the whole minidriver view straight from the card (never from the cache) and compares it
 * with itself and with what the cache holds for the same counters.
 */
export async function checkCard(card: MinidriverCard): Promise<{ report: CheckReport; snapshot: Snapshot }> {
  const { cardId, cardcf } = await card.refresh();
  const cachedTable = card.recall('gids/mastertable', 'files');
  const cachedCmap = card.recall('mscp/cmapfile', 'files');
  const table = await card.session.masterTable(true);
  const rawCmap = await card.session.readFile('mscp', 'cmapfile');
  const cmap = rawCmap ? parseCmapfile(rawCmap) : [];
  const keymap = await card.session.keyMap();
  const findings: Finding[] = [];

  // Public keys, read from the card.
  const keyIds = new Map<number, string>();
  const cachedKeyChanged: number[] = [];
  for (const [index, r] of cmap.entries()) {
    if ((r.flags & CONTAINER_VALID) === 0) continue;
    try {
      const key = await card.session.publicKey(FIRST_KEY_REF + index);
      const id = keyIdOf(key);
      keyIds.set(index, id);
      const cached = card.recall(`pubkey/${index}`, 'containers');
      if (cached && keyIdOf(createPublicKey({ key: Buffer.from(cached), format: 'der', type: 'spki' })) !== id) cachedKeyChanged.push(index);
    } catch {
      findings.push({
        code: 'CONTAINER_WITHOUT_KEY',
        severity: 'error',
        message: `container ${index} '${r.name}' is marked valid but has no key on the card`,
        fix: 'mark the container invalid in cmapfile and the key map',
        container: r.name,
      });
    }
  }

  // Certificate files.
  const certs: Snapshot['certs'] = new Map();
  for (const rec of table) {
    if (rec.filename === '') continue;
    const path = rec.directory ? `${rec.directory}/${rec.filename}` : rec.filename;
    const raw = await card.session.getData(rec.efid, rec.doTag);
    const certName = rec.directory.toLowerCase() === 'mscp' ? parseCertificateFileName(rec.filename) : undefined;
    if (!certName) {
      if (raw === undefined && !['cardid', 'cardcf', 'cardapps', 'mscp/cmapfile'].includes(path.toLowerCase())) {
        findings.push({ code: 'FILE_DANGLING', severity: 'warning', message: `${path} is in the file table but has no data object`, fix: 'remove it from the file table', file: path });
      }
      continue;
    }
    const entry: Snapshot['certs'] extends Map<string, infer V> ? V : never = { ...certName, raw };
    certs.set(path, entry);
    if (raw === undefined || raw.length === 0) {
      findings.push({ code: 'CERT_MALFORMED', severity: 'error', message: `${path} is empty (an interrupted write?)`, fix: 'delete the file', file: path });
      continue;
    }
    try {
      const decoded = decodeCertificateFile(raw, path);
      const parsed = parseCertificate(decoded.der);
      entry.der = decoded.der;
      entry.keyId = parsed.keyId;
      entry.compressed = decoded.compressed;
    } catch (err) {
      const why = err instanceof CardFormatError ? err.reason : (err as Error).message;
      findings.push({ code: 'CERT_MALFORMED', severity: 'error', message: `${path}: ${why}`, fix: 'delete the file (the certificate can be loaded again)', file: path });
    }
  }

  // The key map against cmapfile.
  const stepProblems: string[] = [];
  if (keymap.length !== cmap.length && !(keymap.length === 0 && cmap.every((r) => (r.flags & CONTAINER_VALID) === 0))) {
    stepProblems.push(`cmapfile has ${cmap.length} records, the key map ${keymap.length}`);
  }
  for (let i = 0; i < Math.max(keymap.length, cmap.length); i++) {
    const valid = ((cmap[i]?.flags ?? 0) & CONTAINER_VALID) !== 0;
    const used = keymap[i]?.state === KEY_STATE_USED;
    if (valid && !used) stepProblems.push(`container ${i} is valid but its key map entry is not in use`);
    if (!valid && used) stepProblems.push(`key map entry ${i} is in use but container ${i} is not valid`);
    if (valid && used && keymap[i]!.keyFid !== keyFid(FIRST_KEY_REF + i)) stepProblems.push(`key map entry ${i} points at key file ${keymap[i]!.keyFid.toString(16)}`);
  }
  if (stepProblems.length > 0) {
    findings.push({ code: 'KEYMAP_OUT_OF_STEP', severity: 'error', message: `cmapfile and key map out of step: ${stepProblems.join('; ')}`, fix: 'rewrite the key map from cmapfile and the keys on the card' });
  }

  // Key sizes as OpenSC and the Base CSP read them (exactly one size set).
  for (const [index, r] of cmap.entries()) {
    if ((r.flags & CONTAINER_VALID) === 0 || !keyIds.has(index)) continue;
    if ((r.sigKeyBits > 0) === (r.kxKeyBits > 0)) {
      findings.push({ code: 'CONTAINER_KEY_SIZE', severity: 'error', message: `container ${index} '${r.name}' has ${r.sigKeyBits ? 'both' : 'neither'} key size fields set`, fix: 'set the size of its one key from the key on the card', container: r.name });
    }
  }

  // Certificates against containers.
  for (const [path, c] of certs) {
    if (!c.keyId) continue;
    const r = cmap[c.index];
    const valid = r !== undefined && (r.flags & CONTAINER_VALID) !== 0;
    if (!valid) {
      findings.push({ code: 'CERT_ORPHAN', severity: 'error', message: `${path} belongs to container ${c.index}, which is missing or invalid`, fix: 'delete the file, or move it to the container that holds its key', file: path });
      continue;
    }
    const spec = r.kxKeyBits > 0 ? 'kx' : 'sig';
    if (keyIds.has(c.index) && keyIds.get(c.index) !== c.keyId) {
      findings.push({ code: 'CERT_KEY_MISMATCH', severity: 'error', message: `${path}: the certificate's public key is not the key of container ${c.index} '${r.name}'`, fix: 'move it to the container that holds its key, or delete it', file: path, container: r.name });
    } else if (c.keySpec !== spec) {
      findings.push({ code: 'CERT_WRONG_KEYSPEC', severity: 'error', message: `${path} is named for ${c.keySpec === 'kx' ? 'AT_KEYEXCHANGE' : 'AT_SIGNATURE'} but container ${c.index} '${r.name}' holds an ${spec === 'kx' ? 'AT_KEYEXCHANGE' : 'AT_SIGNATURE'} key`, fix: `rename it to mscp/${certificateFileName(c.index, spec)}`, file: path, container: r.name });
    } else if (c.compressed === false) {
      findings.push({ code: 'CERT_UNCOMPRESSED', severity: 'warning', message: `${path} holds plain DER; OpenSC and the GIDS minidriver expect the compressed form`, fix: 'rewrite it compressed', file: path, container: r.name });
    }
  }

  // The default container.
  const defaults = cmap.map((r, i) => ({ r, i })).filter(({ r }) => (r.flags & CONTAINER_DEFAULT) !== 0);
  for (const { r, i } of defaults) {
    if ((r.flags & CONTAINER_VALID) === 0) findings.push({ code: 'DEFAULT_INVALID', severity: 'warning', message: `record ${i} carries the default flag but is not a valid container`, fix: 'clear the flag' });
  }
  const validDefaults = defaults.filter(({ r }) => (r.flags & CONTAINER_VALID) !== 0);
  const anyCert = [...certs.values()].some((c) => c.keyId && ((cmap[c.index]?.flags ?? 0) & CONTAINER_VALID) !== 0);
  if (validDefaults.length > 1) {
    findings.push({ code: 'DEFAULT_MULTIPLE', severity: 'error', message: `${validDefaults.length} containers are marked default (${validDefaults.map(({ r }) => `'${r.name}'`).join(', ')})`, fix: 'keep one default' });
  } else if (validDefaults.length === 0 && anyCert) {
    findings.push({ code: 'DEFAULT_MISSING', severity: 'warning', message: 'certificates exist but no container is the default one (pre-Vista logon and NULL container names need one)', fix: 'make the first container with a certificate the default' });
  }

  // Against the cache: content that changed while its counter did not move, or another card.
  const history = readHistory(card, cardId);
  const currentKeys = [...keyIds.values()];
  const wrapSafe = (max: number, now: number): boolean => max < 0xff00 && now < max;
  const reused =
    history !== undefined &&
    (wrapSafe(history.maxContainers, cardcf.containersFreshness) ||
      wrapSafe(history.maxFiles, cardcf.filesFreshness) ||
      (history.keyIds.length > 0 && currentKeys.length > 0 && cardcf.containersFreshness === history.containersAtLast && !currentKeys.some((k) => history.keyIds.includes(k))));
  if (reused) {
    findings.push({
      code: 'CARDID_REUSED',
      severity: 'error',
      message: `cardid ${hex(cardId)} was seen before on another card (different keys or counters that went backwards): caches keyed by cardid would mix the two cards`,
      fix: 'give this card a new random cardid (needs the administrator key)',
    });
  } else {
    const tableNow = serializeMasterFileTable(table);
    const filesChanged =
      (cachedTable !== undefined && !equalBytes(cachedTable, tableNow)) ||
      (cachedCmap !== undefined && rawCmap !== undefined && !equalBytes(cachedCmap, rawCmap)) ||
      [...certs].some(([path, c]) => {
        const cached = card.recall(path, 'files');
        return cached !== undefined && c.raw !== undefined && !equalBytes(cached, c.raw);
      });
    if (filesChanged) {
      findings.push({
        code: 'STALE_FILES_COUNTER',
        severity: 'error',
        message: `files changed on the card while the cardcf files counter stayed at ${cardcf.filesFreshness}: Windows' smart card cache would keep serving the old content`,
        fix: 'move the files counter',
      });
    }
    if (cachedKeyChanged.length > 0) {
      findings.push({
        code: 'STALE_CONTAINERS_COUNTER',
        severity: 'error',
        message: `the key of container ${cachedKeyChanged.join(', ')} changed while the cardcf containers counter stayed at ${cardcf.containersFreshness}`,
        fix: 'move the containers counter',
      });
    }
  }
  if (!reused) recordHistory(card, cardId, cardcf, currentKeys);
  return { report: { cardId: hex(cardId), cardcf, findings }, snapshot: { cardId, cardcf, table, cmap, keymap, keyIds, certs } };
}

/**
 * Fixes what check found (needs the PIN; CARDID_REUSED also the administrator key). Counters move
 * first, as for any write; nothing that belongs to a valid container with its key is deleted.
 */
export async function repairCard(card: MinidriverCard, options: { adminKey?: Uint8Array } = {}): Promise<CheckReport> {
  const { report, snapshot } = await checkCard(card);
  if (report.findings.length === 0) return report;
  const { table, keyIds, certs } = snapshot;
  const cmap = snapshot.cmap.map((r) => ({ ...r }));
  let keymap = snapshot.keymap.map((r) => ({ ...r }));
  const codes = new Set(report.findings.map((f) => f.code));
  const mark = (code: FindingCode): void => {
    for (const f of report.findings) if (f.code === code) f.fixed = true;
  };

  if (codes.has('CARDID_REUSED')) {
    if (!options.adminKey) {
      // Leave it unfixed: a new cardid needs the administrator key.
    } else {
      await card.session.authenticateAdmin(options.adminKey);
      await card.session.putData(EF.EveryoneReadAdminWriteAc, DO.CARDID, randomBytes(16));
      mark('CARDID_REUSED');
      await card.refresh();
    }
  }
  const containerFixes = codes.has('CONTAINER_WITHOUT_KEY') || codes.has('KEYMAP_OUT_OF_STEP') || codes.has('STALE_CONTAINERS_COUNTER');
  await card.bump({ files: true, containers: containerFixes });
  mark('STALE_FILES_COUNTER');
  mark('STALE_CONTAINERS_COUNTER');

  // Containers whose key is gone stop being containers.
  for (const [i, r] of cmap.entries()) {
    if ((r.flags & CONTAINER_VALID) !== 0 && !keyIds.has(i)) cmap[i] = emptyContainerRecord();
  }
  mark('CONTAINER_WITHOUT_KEY');

  // Certificate files: delete the broken, move the misplaced.
  const tableNames = new Set(table.map((r) => `${r.directory}/${r.filename}`.toLowerCase()));
  for (const [path, c] of certs) {
    const [dir, name] = path.split('/') as [string, string];
    const r = cmap[c.index];
    const valid = r !== undefined && (r.flags & CONTAINER_VALID) !== 0;
    const spec = valid ? (r.kxKeyBits > 0 ? 'kx' : 'sig') : c.keySpec;
    const broken = !c.keyId || c.der === undefined;
    const fits = valid && c.keyId === keyIds.get(c.index) && c.keySpec === spec;
    if (fits && c.compressed === false) {
      await card.session.writeFile(dir, name, encodeCertificateFile(c.der!, path));
      continue;
    }
    if (fits) continue;
    if (!broken) {
      // Move it to the container that holds its key, if that container has no certificate yet.
      const home = [...keyIds].find(([, id]) => id === c.keyId)?.[0];
      if (home !== undefined) {
        const hr = cmap[home]!;
        const target = `mscp/${certificateFileName(home, hr.kxKeyBits > 0 ? 'kx' : 'sig')}`;
        if (!tableNames.has(target.toLowerCase())) {
          await card.session.createFile('mscp', target.slice(5), encodeCertificateFile(c.der!, target));
          tableNames.add(target.toLowerCase());
        }
      }
    }
    await card.session.deleteFile(dir, name);
    tableNames.delete(path.toLowerCase());
  }
  for (const f of report.findings) {
    if (f.file && (f.code === 'FILE_DANGLING')) {
      const [dir, name] = f.file.includes('/') ? (f.file.split('/') as [string, string]) : ['', f.file];
      await card.session.deleteFile(dir, name);
    }
  }
  for (const code of ['CERT_MALFORMED', 'CERT_ORPHAN', 'CERT_WRONG_KEYSPEC', 'CERT_KEY_MISMATCH', 'CERT_UNCOMPRESSED', 'FILE_DANGLING'] as const) mark(code);

  // cmapfile: sizes, default flag; the key map follows cmapfile.
  for (const [i, r] of cmap.entries()) {
    if ((r.flags & CONTAINER_VALID) === 0) {
      r.flags &= ~CONTAINER_DEFAULT;
      continue;
    }
    if ((r.sigKeyBits > 0) === (r.kxKeyBits > 0)) {
      const key = await card.session.publicKey(FIRST_KEY_REF + i);
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 2048;
      const spec = keymap[i]?.keyType === KEYTYPE_SIGNATURE ? 'sig' : 'kx';
      r.kxKeyBits = spec === 'kx' ? bits : 0;
      r.sigKeyBits = spec === 'sig' ? bits : 0;
    }
  }
  mark('CONTAINER_KEY_SIZE');
  mark('DEFAULT_INVALID');
  const valids = cmap.map((r, i) => ({ r, i })).filter(({ r }) => (r.flags & CONTAINER_VALID) !== 0);
  const defaults = valids.filter(({ r }) => (r.flags & CONTAINER_DEFAULT) !== 0);
  const hasCert = (i: number): boolean => [...tableNames].some((n) => parseCertificateFileName(n.split('/')[1] ?? '')?.index === i);
  if (defaults.length !== 1 && valids.some(({ i }) => hasCert(i))) {
    const keep = defaults.find(({ i }) => hasCert(i)) ?? valids.find(({ i }) => hasCert(i))!;
    for (const { r, i } of valids) r.flags = i === keep.i ? r.flags | CONTAINER_DEFAULT : r.flags & ~CONTAINER_DEFAULT;
  } else if (defaults.length > 1) {
    for (const { r, i } of defaults) if (i !== defaults[0]!.i) r.flags &= ~CONTAINER_DEFAULT;
  }
  mark('DEFAULT_MISSING');
  mark('DEFAULT_MULTIPLE');

  while (keymap.length < cmap.length) keymap.push(deletedKeyMapRecord());
  while (cmap.length < keymap.length) cmap.push(emptyContainerRecord());
  keymap = keymap.map((k, i) => {
    const r = cmap[i]!;
    if ((r.flags & CONTAINER_VALID) === 0) return k.state === KEY_STATE_USED || k.keyFid !== 0xffff ? deletedKeyMapRecord() : k;
    const bits = r.kxKeyBits || r.sigKeyBits;
    return { ...k, state: KEY_STATE_USED, algId: ALG_RSA[bits] ?? k.algId, keyType: r.kxKeyBits > 0 ? KEYTYPE_EXCHANGE : KEYTYPE_SIGNATURE, keyFid: keyFid(FIRST_KEY_REF + i) };
  });
  if (!equalBytes(serializeCmapfile(cmap), serializeCmapfile(snapshot.cmap))) await card.putCmapfile(cmap);
  if (!equalBytes(serializeKeyMap(keymap), serializeKeyMap(snapshot.keymap))) await card.session.putKeyMap(keymap);
  mark('KEYMAP_OUT_OF_STEP');
  card.session.invalidate();
  return report;
}
