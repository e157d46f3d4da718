/**
 * The card layer's file-level primitives, in one internal module that MinidriverCard, install and
 * check share (src/card/index.ts does not export it): `cardid` and the `cardcf` counters, the GIDS
 * file table and `cmapfile` fresh from the card or from the cache, the key map, a container's
 * public key and certificate, and logical file reads and writes.
 *
 * The cache rule lives here and only here: an item is valid while `cardid` and the `cardcf`
 * counter it was stored under are unchanged (Minidriver spec §5.4.3, docs/sources.md#minidriver-spec).
 * Counters are only read by `refresh()`, at the start of an operation, and moved by `bump()`
 * before the change they announce.
 *
 * A write trusts the cached file table and `cmapfile` only when, on top of that rule, the card was
 * last written by cardlink through this cache: every operation that moved `cardcf` and finished
 * records the counters it left (the write mark, keyed by cardid). Counters equal to the mark mean
 * no writer that moves `cardcf` came since; a card whose counters are not ours is read afresh,
 * which is what catches a writer that changed files without moving `cardcf` after someone else's
 * write (the seed's loader). Even a trusted table is read from the card again before it is written
 * back (GidsSession.adoptMasterTable), so such a writer's new file is never lost.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { equalBytes } from '../bytes.js';
import type { GidsSession } from '../gids/host/session.js';
import { ALG_RSA, DO, EF, FIRST_KEY_REF } from '../gids/protocol/constants.js';
import {
  MSCP_DIRECTORY,
  bumpCardCf,
  certificateFileName,
  decodeCertificateFile,
  isDefaultContainer,
  isValidContainer,
  parseCardCf,
  parseCardId,
  parseCertificateFileName,
  parseCmapfile,
  parseFilePath,
  parseMasterFileTable,
  serializeCardCf,
  serializeCmapfile,
  serializeMasterFileTable,
  type CardCf,
  type ContainerRecord,
  type KeyMapRecord,
  type KeySpec,
  type MasterFileRecord,
} from '../minidriver/index.js';
import { freshnessValue, type CardCache, type Freshness } from './cache.js';
import { CardError } from './errors.js';

export type { KeySpec } from '../minidriver/index.js';

export interface ContainerInfo {
  index: number;
  name: string;
  /** GIDS key reference (0x81 + index); PIV: the slot. */
  keyRef: number;
  keySpec: KeySpec;
  keyBits: number;
  isDefault: boolean;
  /** Logical path of the certificate file when the card has one for this container (PIV: the certificate object, e.g. 5FC105). */
  certificateFile: string | undefined;
  /** PIV: the key slot (9A, 9C, 9D, 9E, 82-95); keyRef is the same number. */
  slot?: number;
  /** The key algorithm as users name it ('RSA-2048', 'ECC P-256'); absent on GIDS (RSA, keyBits). */
  algorithm?: string;
}

/** The GIDS key reference of container `index`: 0x81 + index, as OpenSC's card-gids.c assigns them. */
export function keyRefOf(index: number): number {
  return FIRST_KEY_REF + index;
}

/** The GIDS algorithm identifier of an RSA key size. */
export function rsaAlgId(bits: number, container: string): number {
  const alg = ALG_RSA[bits];
  if (alg === undefined) throw new CardError('BAD_ALGORITHM', `container '${container}' has an unsupported key size ${bits}`, { container });
  return alg;
}

/** The key spec of a valid `cmapfile` record: the key exchange size field set means AT_KEYEXCHANGE. */
export function keySpecOf(r: ContainerRecord): KeySpec {
  return r.kxKeyBits > 0 ? 'kx' : 'sig';
}

/** `mscp/kxcNN` or `mscp/kscNN`: where the Base CSP looks for a container's certificate. */
export function certificatePath(c: { index: number; keySpec: KeySpec }): string {
  return `${MSCP_DIRECTORY}/${certificateFileName(c.index, c.keySpec)}`;
}

export function pathOf(p: { directory: string; filename: string }): string {
  return p.directory ? `${p.directory}/${p.filename}` : p.filename;
}

/** The valid containers of `cmap`, each with the certificate file the file table holds for it. */
export function describeContainers(cmap: readonly ContainerRecord[], table: readonly MasterFileRecord[]): ContainerInfo[] {
  const certFiles = new Map<string, string>(); // `${index}/${keySpec}` → path as found
  for (const r of table) {
    if (r.directory.toLowerCase() !== MSCP_DIRECTORY) continue;
    const parsed = parseCertificateFileName(r.filename);
    if (parsed) certFiles.set(`${parsed.index}/${parsed.keySpec}`, pathOf(r));
  }
  const out: ContainerInfo[] = [];
  cmap.forEach((r, index) => {
    if (!isValidContainer(r)) return;
    const keySpec = keySpecOf(r);
    out.push({
      index,
      name: r.name,
      keyRef: keyRefOf(index),
      keySpec,
      keyBits: keySpec === 'kx' ? r.kxKeyBits : r.sigKeyBits,
      isDefault: isDefaultContainer(r),
      certificateFile: certFiles.get(`${index}/${keySpec}`),
    });
  });
  return out;
}

/** Le of a short APDU's whole answer (Le = 00). */
const SHORT_LE = 256;

/** Cache item names. */
const TABLE_ITEM = 'gids/mastertable';
const CMAPFILE = 'mscp/cmapfile';
const publicKeyItem = (index: number): string => `pubkey/${index}`;
/** Per-card memory that no counter invalidates (check's history of a cardid). */
const HISTORY_ITEM = 'history';
const HISTORY_FRESHNESS = -1;
/** The cardcf cardlink left after its last finished write (see the module comment). */
const WRITE_MARK_ITEM = 'written-by-cardlink';
const WRITE_MARK_FRESHNESS = -2;

function spkiKey(der: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' });
}

function spkiOf(key: KeyObject): Uint8Array {
  return new Uint8Array(key.export({ type: 'spki', format: 'der' }));
}

export class CardFiles {
  private id: Uint8Array | undefined;
  private cf: CardCf | undefined;
  private raw: { cardId: Uint8Array; cardcf: Uint8Array } | undefined;
  private depth = 0;
  /** This transaction moved cardcf (so it wrote, or is about to). */
  private moved = false;

  constructor(
    readonly session: GidsSession,
    private readonly cache: CardCache,
  ) {}

  /** The reader or image the card is in. */
  get name(): string {
    return this.session.transport.name;
  }

  /**
   * One card transaction: the file table is read from the card at most once inside it. When it
   * moved cardcf and finished, the counters it left become the write mark.
   */
  transaction<T>(fn: () => Promise<T>): Promise<T> {
    return this.session.transaction(async () => {
      if (this.depth++ === 0) this.moved = false;
      try {
        const result = await fn();
        if (this.depth === 1 && this.moved && this.id && this.cf) {
          this.cache.put(this.id, WRITE_MARK_ITEM, WRITE_MARK_FRESHNESS, serializeCardCf(this.cf));
        }
        return result;
      } finally {
        this.depth--;
      }
    });
  }

  /** Did cardlink, through this cache, write the card last (its counters are the write mark)? */
  lastWrittenByUs(): boolean {
    if (!this.id || !this.cf) return false;
    const mark = this.cache.get(this.id, WRITE_MARK_ITEM, WRITE_MARK_FRESHNESS);
    return mark !== undefined && equalBytes(mark, serializeCardCf(this.cf));
  }

  /** Someone changed the card behind its counters (check found it): trust nothing cached for writes. */
  forgetWriteMark(cardId: Uint8Array): void {
    this.cache.put(cardId, WRITE_MARK_ITEM, WRITE_MARK_FRESHNESS, new Uint8Array(0));
  }

  // ---- identity and counters -------------------------------------------------------------------

  /**
   * Reads `cardid` and `cardcf` afresh: what the Base CSP does at the start of every transaction.
   * Every public operation calls it once, so nothing later in the operation trusts a stale cache.
   */
  async refresh(): Promise<{ cardId: Uint8Array; cardcf: CardCf }> {
    // Short Le: both fit one short answer, so their APDUs stay short on any card.
    const rawId = await this.session.getData(EF.EveryoneReadAdminWriteAc, DO.CARDID, SHORT_LE);
    if (!rawId) throw new CardError('NOT_INITIALIZED', `${this.name}: the card has no cardid (not initialised?)`);
    const cardId = parseCardId(rawId);
    if (this.id && !equalBytes(this.id, cardId)) this.session.invalidate();
    const rawCf = await this.session.getData(EF.EveryoneReadUserWriteAc, DO.CARDCF, SHORT_LE);
    if (!rawCf) throw new CardError('NOT_INITIALIZED', `${this.name}: the card has no cardcf`);
    const cardcf = parseCardCf(rawCf);
    this.id = cardId;
    this.cf = cardcf;
    this.raw = { cardId: rawId, cardcf: rawCf };
    return { cardId, cardcf };
  }

  /** `cardid` and `cardcf` exactly as the last refresh() read them (check reuses them as files). */
  get rawIdentity(): { cardId: Uint8Array; cardcf: Uint8Array } | undefined {
    return this.raw;
  }

  /** The counters as this session last read or wrote them. */
  get cardcf(): CardCf {
    if (!this.cf) throw new CardError('CARD_INTERNAL', 'cardcf read before refresh()');
    return this.cf;
  }

  /** Someone wrote `cardcf` directly: the next bump reads it again. */
  forgetCounters(): void {
    this.cf = undefined;
  }

  /** Moves cardcf counters on the card (before the change they announce). */
  async bump(which: { files?: boolean; containers?: boolean }): Promise<CardCf> {
    const current = this.cf ?? (await this.refresh()).cardcf;
    const next = bumpCardCf(current, which);
    this.moved = true;
    await this.session.putData(EF.EveryoneReadUserWriteAc, DO.CARDCF, serializeCardCf(next));
    this.cf = next;
    return next;
  }

  /** Gives the card a new cardid (needs administrator authentication first). */
  async putCardId(cardId: Uint8Array): Promise<void> {
    await this.session.putData(EF.EveryoneReadAdminWriteAc, DO.CARDID, cardId);
  }

  // ---- the file table and cmapfile -------------------------------------------------------------

  /** The file table as the card holds it now; remembered for later operations. */
  async freshTable(): Promise<MasterFileRecord[]> {
    const table = await this.session.masterTable(true);
    this.remember(TABLE_ITEM, 'files', serializeMasterFileTable(table));
    return table;
  }

  /** The file table from the cache while the files counter proves it fresh, else from the card. */
  async cachedTable(): Promise<MasterFileRecord[]> {
    const hit = this.recall(TABLE_ITEM, 'files');
    if (hit) {
      const table = parseMasterFileTable(hit);
      this.session.adoptMasterTable(table);
      return table;
    }
    return this.freshTable();
  }

  /** The file table as the card holds it now, not remembered (check compares it with the cache). */
  tableOnCard(): Promise<MasterFileRecord[]> {
    return this.session.masterTable(true);
  }

  /** The table as this transaction knows it (after its own writes), remembered for later. */
  async rememberCurrentTable(): Promise<MasterFileRecord[]> {
    const table = await this.session.masterTable();
    this.remember(TABLE_ITEM, 'files', serializeMasterFileTable(table));
    return table;
  }

  /** The raw bytes of the table and cmapfile the cache holds under the current counters. */
  cachedRaw(): { table: Uint8Array | undefined; cmapfile: Uint8Array | undefined } {
    return { table: this.recall(TABLE_ITEM, 'files'), cmapfile: this.recall(CMAPFILE, 'files') };
  }

  async freshCmapfile(): Promise<ContainerRecord[]> {
    const raw = await this.session.readFile(MSCP_DIRECTORY, 'cmapfile');
    if (raw === undefined) throw new CardError('NO_CMAPFILE', 'the card has no mscp/cmapfile');
    this.remember(CMAPFILE, 'files', raw);
    return parseCmapfile(raw);
  }

  async cachedCmapfile(): Promise<ContainerRecord[]> {
    const hit = this.recall(CMAPFILE, 'files');
    return hit ? parseCmapfile(hit) : this.freshCmapfile();
  }

  async putCmapfile(records: readonly ContainerRecord[]): Promise<void> {
    const raw = serializeCmapfile(records);
    await this.session.writeFile(MSCP_DIRECTORY, 'cmapfile', raw);
    this.remember(CMAPFILE, 'files', raw);
  }

  /** Records `records` as the cmapfile the card holds (it was just written or found unchanged). */
  rememberCmapfile(records: readonly ContainerRecord[]): void {
    this.remember(CMAPFILE, 'files', serializeCmapfile(records));
  }

  /** Containers from the cache where the counters allow, else from the card. */
  async cachedContainers(): Promise<ContainerInfo[]> {
    const table = await this.cachedTable();
    return describeContainers(await this.cachedCmapfile(), table);
  }

  /** Containers, table and cmapfile read from the card now. */
  async freshContainers(): Promise<{ table: MasterFileRecord[]; cmap: ContainerRecord[]; containers: ContainerInfo[] }> {
    const table = await this.freshTable();
    const cmap = await this.freshCmapfile();
    return { table, cmap, containers: describeContainers(cmap, table) };
  }

  /**
   * What a write starts from: the table and cmapfile from the cache when the counters prove them
   * fresh and cardlink wrote the card last (`fromCache`), else read from the card now.
   */
  async containersForWrite(): Promise<{ table: MasterFileRecord[]; cmap: ContainerRecord[]; containers: ContainerInfo[]; fromCache: boolean }> {
    if (this.lastWrittenByUs()) {
      const { table: rawTable, cmapfile } = this.cachedRaw();
      if (rawTable && cmapfile) {
        const table = parseMasterFileTable(rawTable);
        this.session.adoptMasterTable(table);
        const cmap = parseCmapfile(cmapfile);
        return { table, cmap, containers: describeContainers(cmap, table), fromCache: true };
      }
    }
    return { ...(await this.freshContainers()), fromCache: false };
  }

  // ---- the key map -----------------------------------------------------------------------------

  keyMap(): Promise<KeyMapRecord[]> {
    return this.session.keyMap();
  }

  putKeyMap(records: KeyMapRecord[]): Promise<void> {
    return this.session.putKeyMap(records);
  }

  // ---- keys ------------------------------------------------------------------------------------

  /** A container's public key, from the cache while the containers counter proves it fresh. */
  async publicKey(c: Pick<ContainerInfo, 'index'>): Promise<KeyObject> {
    const hit = this.recall(publicKeyItem(c.index), 'containers');
    if (hit) return spkiKey(hit);
    const key = await this.session.publicKey(keyRefOf(c.index));
    this.rememberPublicKey(c.index, key);
    return key;
  }

  /** A container's public key as the card holds it now (not remembered: check compares it with the cache). */
  publicKeyFromCard(index: number): Promise<KeyObject> {
    return this.session.publicKey(keyRefOf(index));
  }

  /** The public key the cache holds for a container under the current counters. */
  cachedPublicKey(index: number): KeyObject | undefined {
    const hit = this.recall(publicKeyItem(index), 'containers');
    return hit ? spkiKey(hit) : undefined;
  }

  rememberPublicKey(index: number, key: KeyObject): void {
    this.remember(publicKeyItem(index), 'containers', spkiOf(key));
  }

  // ---- logical files ---------------------------------------------------------------------------

  async exists(path: string): Promise<boolean> {
    const p = parseFilePath(path);
    return (await this.session.locate(p.directory, p.filename)) !== undefined;
  }

  /** A file's content as the card holds it now (the table as this transaction knows it). */
  async readFile(path: string): Promise<Uint8Array | undefined> {
    const p = parseFilePath(path);
    return this.session.readFile(p.directory, p.filename);
  }

  /** The data object a file table record names; undefined when it has none. */
  readRecord(r: MasterFileRecord): Promise<Uint8Array | undefined> {
    return this.session.getData(r.efid, r.doTag);
  }

  /** Replaces a file's content, or creates the file (table first, then content). True when it existed. */
  async putFile(path: string, data: Uint8Array): Promise<boolean> {
    const p = parseFilePath(path);
    let exists = (await this.session.locate(p.directory, p.filename)) !== undefined;
    // Not in a table from the cache: the card's own table decides (and is what createFile extends).
    if (!exists && this.session.tableIsFromCache) {
      await this.session.masterTable(true);
      exists = (await this.session.locate(p.directory, p.filename)) !== undefined;
    }
    if (exists) await this.session.writeFile(p.directory, p.filename, data);
    else await this.session.createFile(p.directory, p.filename, data);
    return exists;
  }

  async deleteFile(path: string): Promise<void> {
    const p = parseFilePath(path);
    await this.session.deleteFile(p.directory, p.filename);
  }

  /** A certificate file's DER, from the cache while the files counter proves it fresh. */
  async certificate(path: string): Promise<Uint8Array> {
    const hit = this.recall(path, 'files');
    const raw = hit ?? (await this.readFile(path));
    if (raw === undefined) throw new CardError('FILE_NOT_FOUND', `${path}: no such file on the card`);
    // Emptied but still in the file table: a deletion cut short between its two steps holds no certificate.
    if (raw.length === 0) throw new CardError('FILE_NOT_FOUND', `${path}: the file is empty (a deletion was cut short)`);
    if (!hit) this.remember(path, 'files', raw);
    return decodeCertificateFile(raw, path).der;
  }

  /** Records a file's content as just written or read back from the card. */
  rememberFile(path: string, raw: Uint8Array): void {
    this.remember(path, 'files', raw);
  }

  /** A file's content as the cache holds it under the current counters. */
  cachedFile(path: string): Uint8Array | undefined {
    return this.recall(path, 'files');
  }

  /** Forgets the file table this transaction read (another writer may have changed it). */
  invalidate(): void {
    this.session.invalidate();
  }

  // ---- the cache -------------------------------------------------------------------------------

  private recall(name: string, kind: Freshness): Uint8Array | undefined {
    if (!this.id || !this.cf) return undefined;
    return this.cache.get(this.id, name, freshnessValue(this.cf, kind));
  }

  private remember(name: string, kind: Freshness, value: Uint8Array): void {
    if (!this.id || !this.cf) return;
    const freshness = freshnessValue(this.cf, kind);
    // Other content under the same counter means someone changed the card without moving
    // cardcf. Keep the first item: it is what every cache keyed like ours (Windows' included)
    // still serves, and the evidence `check` needs to report the stale risk.
    const known = this.cache.get(this.id, name, freshness);
    if (known && !equalBytes(known, value)) return;
    this.cache.put(this.id, name, freshness, value);
  }

  /** What the cache keeps about a cardid whatever its counters (check's history), as JSON. */
  history<T>(cardId: Uint8Array): T | undefined {
    const raw = this.cache.get(cardId, HISTORY_ITEM, HISTORY_FRESHNESS);
    if (!raw) return undefined;
    try {
      return JSON.parse(Buffer.from(raw).toString('utf8')) as T;
    } catch {
      return undefined;
    }
  }

  putHistory(cardId: Uint8Array, value: unknown): void {
    this.cache.put(cardId, HISTORY_ITEM, HISTORY_FRESHNESS, Buffer.from(JSON.stringify(value)));
  }
}
