import { createPublicKey, type KeyObject } from 'node:crypto';
import { ApduError, SW } from '../apdu/status.js';
import { equalBytes } from '../bytes.js';
import { ALG_RSA, DO, EF, FIRST_KEY_REF, KEYTYPE_EXCHANGE, KEYTYPE_SIGNATURE, MAX_CONTAINERS, keyFid } from '../gids/protocol/constants.js';
import { GidsSession, type InitializeOptions, type PinStatus } from '../gids/host/session.js';
import {
  CONTAINER_DEFAULT,
  CONTAINER_VALID,
  bumpCardCf,
  certificateFileName,
  decodeCertificateFile,
  deletedKeyMapRecord,
  emptyContainerRecord,
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
  type MasterFileRecord,
} from '../minidriver/index.js';
import type { Transport } from '../transport/transport.js';
import { MemoryCardCache, freshnessValue, type CardCache, type Freshness } from './cache.js';
import { checkCard, repairCard, type CheckReport } from './check.js';
import { installCertificate, removeCertificate, type InstallOptions, type InstallResult } from './install.js';
import { buildCsr, type BuiltCsr, type CsrOptions } from './csr.js';
import { digestInfoOf, type HashName } from './digest-info.js';
import { CardError } from './errors.js';

export type KeySpec = 'kx' | 'sig';

export interface ContainerInfo {
  index: number;
  name: string;
  /** GIDS key reference (0x81 + index). */
  keyRef: number;
  keySpec: KeySpec;
  keyBits: number;
  isDefault: boolean;
  /** Logical path of the certificate file when the card has one for this container. */
  certificateFile: string | undefined;
}

export interface CreateContainerOptions {
  keySpec?: KeySpec;
  bits?: 1024 | 2048 | 3072 | 4096;
  /** Make it the default container even if another one is. */
  makeDefault?: boolean;
}

export interface LogicalFile {
  path: string;
  size: number;
}

/**
 * The card as Windows' Base CSP sees it through a minidriver: containers, keys, certificates and
 * logical files. It owns the write order that keeps `cardcf`, `cmapfile` and the key map
 * consistent, and the cache rule (an item is valid while `cardid` and its freshness counter are
 * unchanged).
 */
export class MinidriverCard {
  private id: Uint8Array | undefined;
  private cf: CardCf | undefined;

  private constructor(
    readonly session: GidsSession,
    readonly cache: CardCache,
  ) {}

  /** Selects the GIDS application on the card behind `transport`. */
  static async open(transport: Transport, options: { cache?: CardCache } = {}): Promise<MinidriverCard> {
    const session = new GidsSession(transport);
    await session.select();
    return new MinidriverCard(session, options.cache ?? new MemoryCardCache());
  }

  /** Initialises a factory-fresh card (PIN, admin key, file system) and opens it. */
  static async initialize(transport: Transport, options: InitializeOptions & { cache?: CardCache }): Promise<MinidriverCard> {
    const session = new GidsSession(transport);
    await session.initialize(options);
    await session.select();
    return new MinidriverCard(session, options.cache ?? new MemoryCardCache());
  }

  get transport(): Transport {
    return this.session.transport;
  }

  // ---- identity and freshness ------------------------------------------------------------------

  /**
   * Reads `cardid` and `cardcf` afresh: what the Base CSP does at the start of every transaction.
   * Every public operation calls it once, so nothing later in the operation trusts a stale cache.
   */
  async refresh(): Promise<{ cardId: Uint8Array; cardcf: CardCf }> {
    const rawId = await this.session.getData(EF.EveryoneReadAdminWriteAc, DO.CARDID);
    if (!rawId) throw new CardError('NOT_INITIALIZED', `${this.transport.name}: the card has no cardid (not initialised?)`);
    const cardId = parseCardId(rawId);
    if (this.id && !equalBytes(this.id, cardId)) this.session.invalidate();
    const rawCf = await this.session.getData(EF.EveryoneReadUserWriteAc, DO.CARDCF);
    if (!rawCf) throw new CardError('NOT_INITIALIZED', `${this.transport.name}: the card has no cardcf`);
    const cardcf = parseCardCf(rawCf);
    this.id = cardId;
    this.cf = cardcf;
    return { cardId, cardcf };
  }

  async cardId(): Promise<Uint8Array> {
    return (await this.refresh()).cardId;
  }

  async cardcf(): Promise<CardCf> {
    return (await this.refresh()).cardcf;
  }

  // ---- containers ------------------------------------------------------------------------------

  async containers(): Promise<ContainerInfo[]> {
    return this.session.transaction(async () => {
      await this.refresh();
      const table = await this.cachedMasterTable();
      const cmap = await this.cachedCmapfile();
      return describeContainers(cmap, table);
    });
  }

  async container(nameOrIndex: string | number): Promise<ContainerInfo> {
    const all = await this.containers();
    const c = typeof nameOrIndex === 'number' ? all.find((x) => x.index === nameOrIndex) : all.find((x) => x.name === nameOrIndex);
    if (!c) {
      const names = all.map((x) => x.name).join(', ') || 'none';
      throw new CardError('NO_CONTAINER', `no container '${nameOrIndex}' on the card (containers: ${names})`, { container: String(nameOrIndex) });
    }
    return c;
  }

  /**
   * Creates a container and generates its RSA key on the card (needs the PIN). Same file
   * contents and counter moves as OpenSC's GIDS driver, but the key is generated before the
   * container is marked valid, so an interruption never leaves a valid container without a key.
   */
  async createContainer(name: string, options: CreateContainerOptions = {}): Promise<ContainerInfo & { publicKey: KeyObject }> {
    return this.session.transaction(async () => {
      const keySpec = options.keySpec ?? 'kx';
      const bits = options.bits ?? 2048;
      const algId = ALG_RSA[bits];
      if (algId === undefined) throw new CardError('BAD_ALGORITHM', `RSA-${bits} is not a GIDS key size (1024, 2048, 3072, 4096)`);
      if (name.length === 0 || name.length > 39 || name.includes('\\') || name.includes('\0')) {
        throw new CardError('BAD_CONTAINER_NAME', `container name '${name}' must be 1-39 characters without '\\'`, { container: name });
      }
      await this.refresh();
      await this.readMasterTableFromCard();
      const cmap = await this.readCmapfileFromCard();
      const keymap = await this.session.keyMap();
      if (keymap.length !== cmap.length && !(keymap.length === 0 && cmap.length === 0)) {
        throw new CardError('INCONSISTENT', `cmapfile has ${cmap.length} records but the key map ${keymap.length}: run 'cardlink card check --repair'`, { container: name });
      }
      if (cmap.some((r) => (r.flags & CONTAINER_VALID) !== 0 && r.name === name)) {
        throw new CardError('CONTAINER_EXISTS', `a container named '${name}' already exists`, { container: name });
      }
      let index = cmap.findIndex((r, i) => (r.flags & CONTAINER_VALID) === 0 && keymap[i]?.state !== 1);
      const newSlot = index < 0;
      if (newSlot) index = cmap.length;
      if (index >= MAX_CONTAINERS) throw new CardError('CARD_FULL', `the card holds at most ${MAX_CONTAINERS} containers`, { container: name });
      const keyRef = FIRST_KEY_REF + index;

      if (newSlot) {
        cmap.push(emptyContainerRecord());
        await this.bump({ files: true });
        await this.putCmapfile(cmap);
        keymap.push(deletedKeyMapRecord());
      }
      await this.createKeyFileReplacingLeftover(keyRef, algId, keySpec);
      await this.bump({ containers: true });
      keymap[index] = { ...keymap[index]!, state: 1, algId, keyType: keySpec === 'kx' ? KEYTYPE_EXCHANGE : KEYTYPE_SIGNATURE, keyFid: keyFid(keyRef) };
      await this.session.putKeyMap(keymap);
      const publicKey = await this.session.generateKey(keyRef, algId);

      const hasDefault = cmap.some((r) => (r.flags & (CONTAINER_VALID | CONTAINER_DEFAULT)) === (CONTAINER_VALID | CONTAINER_DEFAULT));
      const makeDefault = options.makeDefault === true || !hasDefault;
      if (makeDefault) for (const r of cmap) r.flags &= ~CONTAINER_DEFAULT;
      cmap[index] = {
        ...emptyContainerRecord(),
        name,
        flags: CONTAINER_VALID | (makeDefault ? CONTAINER_DEFAULT : 0),
        sigKeyBits: keySpec === 'sig' ? bits : 0,
        kxKeyBits: keySpec === 'kx' ? bits : 0,
      };
      await this.bump({ files: true });
      await this.putCmapfile(cmap);
      this.cachePublicKey(index, publicKey);
      const info = describeContainers(cmap, await this.session.masterTable())[index];
      if (!info) throw new CardError('INTERNAL', 'created container vanished', { container: name });
      return { ...info, publicKey };
    });
  }

  /** The container's public key, from the cache while the containers counter proves it fresh. */
  async publicKey(nameOrIndex: string | number): Promise<KeyObject> {
    const c = await this.container(nameOrIndex);
    return this.publicKeyOf(c);
  }

  /** Signs `data` hashed with `hash` (PKCS#1 v1.5, padded on the card). Needs the PIN. */
  async sign(nameOrIndex: string | number, data: Uint8Array, hash: HashName = 'sha256'): Promise<Uint8Array> {
    const c = await this.container(nameOrIndex);
    return this.session.sign(c.keyRef, algIdFor(c), digestInfoOf(hash, data));
  }

  /** Signs a ready DigestInfo (PKCS#1 v1.5, padded on the card). Needs the PIN. */
  async signDigestInfo(nameOrIndex: string | number, digestInfo: Uint8Array): Promise<Uint8Array> {
    const c = await this.container(nameOrIndex);
    return this.session.sign(c.keyRef, algIdFor(c), digestInfo);
  }

  /** A PKCS#10 request for the container's key, signed on the card. Needs the PIN. */
  async csr(nameOrIndex: string | number, subject: string, options: CsrOptions = {}): Promise<BuiltCsr> {
    const c = await this.container(nameOrIndex);
    const publicKey = await this.publicKeyOf(c);
    return buildCsr(subject, publicKey, (di) => this.session.sign(c.keyRef, algIdFor(c), di), options);
  }

  /** Deciphers a PKCS#1 v1.5 cryptogram with a key exchange container's key. Needs the PIN. */
  async decipher(nameOrIndex: string | number, cryptogram: Uint8Array): Promise<Uint8Array> {
    const c = await this.container(nameOrIndex);
    if (c.keySpec !== 'kx') throw new CardError('WRONG_KEY_SPEC', `container '${c.name}' holds a signature key; it cannot decipher`, { container: c.name });
    return this.session.decipher(c.keyRef, algIdFor(c), cryptogram);
  }

  // ---- certificates (the load layer) ------------------------------------------------------------

  /** Loads a certificate (DER or PEM) into its container; see install.ts for the write order. */
  installCertificate(cert: Uint8Array | string, options: InstallOptions = {}): Promise<InstallResult> {
    return this.session.transaction(() => installCertificate(this, cert, options));
  }

  removeCertificate(containerName: string): Promise<{ container: ContainerInfo; file: string | undefined }> {
    return this.session.transaction(() => removeCertificate(this, containerName));
  }

  /** The certificate of a container, DER, or undefined when it has none. */
  async readCertificate(nameOrIndex: string | number): Promise<Uint8Array | undefined> {
    return this.session.transaction(async () => {
      const c = await this.container(nameOrIndex);
      if (!c.certificateFile) return undefined;
      const hit = this.recall(c.certificateFile, 'files');
      const raw = hit ?? (await this.readFile(c.certificateFile));
      if (!hit) this.remember(c.certificateFile, 'files', raw);
      return decodeCertificateFile(raw, c.certificateFile).der;
    });
  }

  async check(): Promise<CheckReport> {
    return this.session.transaction(async () => {
      return (await checkCard(this)).report;
    });
  }

  repair(options: { adminKey?: Uint8Array } = {}): Promise<CheckReport> {
    return this.session.transaction(() => repairCard(this, options));
  }

  // ---- logical files ---------------------------------------------------------------------------

  async listFiles(): Promise<LogicalFile[]> {
    return this.session.transaction(async () => {
      await this.refresh();
      const table = await this.cachedMasterTable();
      const out: LogicalFile[] = [];
      for (const r of table) {
        if (r.filename === '') continue;
        const data = await this.session.getData(r.efid, r.doTag);
        out.push({ path: pathOf(r), size: data?.length ?? 0 });
      }
      return out;
    });
  }

  async readFile(path: string): Promise<Uint8Array> {
    return this.session.transaction(async () => {
      const p = parseFilePath(path);
      await this.refresh();
      await this.cachedMasterTable();
      const data = await this.session.readFile(p.directory, p.filename);
      if (data === undefined) throw new CardError('FILE_NOT_FOUND', `${path}: no such file on the card`);
      return data;
    });
  }

  /** Writes (or creates) a logical file, moving the files counter first. Needs the PIN. */
  async writeFile(path: string, data: Uint8Array): Promise<void> {
    return this.session.transaction(async () => {
      const p = parseFilePath(path);
      await this.refresh();
      await this.readMasterTableFromCard();
      const exists = (await this.session.locate(p.directory, p.filename)) !== undefined;
      if (pathOf(p).toLowerCase() !== 'cardcf') await this.bump({ files: true });
      if (exists) await this.session.writeFile(p.directory, p.filename, data);
      else await this.session.createFile(p.directory, p.filename, data);
      this.cf = undefined;
    });
  }

  /** Deletes a logical file, moving the files counter first. Needs the PIN. */
  async deleteFile(path: string): Promise<void> {
    return this.session.transaction(async () => {
      const p = parseFilePath(path);
      await this.refresh();
      await this.readMasterTableFromCard();
      if (!(await this.session.locate(p.directory, p.filename))) throw new CardError('FILE_NOT_FOUND', `${path}: no such file on the card`);
      await this.bump({ files: true });
      await this.session.deleteFile(p.directory, p.filename);
    });
  }

  // ---- PIN -------------------------------------------------------------------------------------

  pinStatus(): Promise<PinStatus> {
    return this.session.pinStatus();
  }

  verifyPin(pin: string): Promise<void> {
    return this.session.verifyPin(pin);
  }

  changePin(oldPin: string, newPin: string): Promise<void> {
    return this.session.changePin(oldPin, newPin);
  }

  /** Unblocks the PIN with the administrator key and sets a new one. */
  async unblockPin(adminKey: Uint8Array, newPin: string): Promise<void> {
    await this.session.authenticateAdmin(adminKey);
    await this.session.unblockPin(newPin);
  }

  logout(): Promise<void> {
    return this.session.logout();
  }

  // ---- internals shared with the load layer -------------------------------------------------------

  /** Moves cardcf counters on the card (before the change they announce). */
  async bump(which: { files?: boolean; containers?: boolean }): Promise<CardCf> {
    const current = this.cf ?? (await this.refresh()).cardcf;
    const next = bumpCardCf(current, which);
    await this.session.putData(EF.EveryoneReadUserWriteAc, DO.CARDCF, serializeCardCf(next));
    this.cf = next;
    return next;
  }

  /** The freshness counters as this session last read or wrote them. */
  currentCardCf(): CardCf {
    if (!this.cf) throw new CardError('INTERNAL', 'cardcf read before refresh()');
    return this.cf;
  }

  async putCmapfile(records: ContainerRecord[]): Promise<void> {
    const raw = serializeCmapfile(records);
    await this.session.writeFile('mscp', 'cmapfile', raw);
    this.remember('mscp/cmapfile', 'files', raw);
  }

  async readCmapfileFromCard(): Promise<ContainerRecord[]> {
    const raw = await this.session.readFile('mscp', 'cmapfile');
    if (raw === undefined) throw new CardError('NO_CMAPFILE', 'the card has no mscp/cmapfile');
    this.remember('mscp/cmapfile', 'files', raw);
    return parseCmapfile(raw);
  }

  async readMasterTableFromCard(): Promise<MasterFileRecord[]> {
    const table = await this.session.masterTable(true);
    this.remember('gids/mastertable', 'files', serializeMasterFileTable(table));
    return table;
  }

  async cachedCmapfile(): Promise<ContainerRecord[]> {
    const hit = this.recall('mscp/cmapfile', 'files');
    return hit ? parseCmapfile(hit) : this.readCmapfileFromCard();
  }

  async cachedMasterTable(): Promise<MasterFileRecord[]> {
    const hit = this.recall('gids/mastertable', 'files');
    if (hit) {
      const table = parseMasterFileTable(hit);
      this.session.adoptMasterTable(table);
      return table;
    }
    return this.readMasterTableFromCard();
  }

  async publicKeyOf(c: ContainerInfo): Promise<KeyObject> {
    const hit = this.recall(`pubkey/${c.index}`, 'containers');
    if (hit) {
      return createPublicKey({ key: Buffer.from(hit), format: 'der', type: 'spki' });
    }
    const key = await this.session.publicKey(c.keyRef);
    this.cachePublicKey(c.index, key);
    return key;
  }

  private cachePublicKey(index: number, key: KeyObject): void {
    this.remember(`pubkey/${index}`, 'containers', new Uint8Array(key.export({ type: 'spki', format: 'der' })));
  }

  recall(name: string, kind: Freshness): Uint8Array | undefined {
    if (!this.id || !this.cf) return undefined;
    return this.cache.get(this.id, name, freshnessValue(this.cf, kind));
  }

  remember(name: string, kind: Freshness, value: Uint8Array): void {
    if (!this.id || !this.cf) return;
    const freshness = freshnessValue(this.cf, kind);
    // Other content under the same counter means someone changed the card without moving
    // cardcf. Keep the first item: it is what every cache keyed like ours (Windows' included)
    // still serves, and the evidence `check` needs to report the stale risk.
    const known = this.cache.get(this.id, name, freshness);
    if (known && !equalBytes(known, value)) return;
    this.cache.put(this.id, name, freshness, value);
  }

  private async createKeyFileReplacingLeftover(keyRef: number, algId: number, keySpec: KeySpec): Promise<void> {
    const usage = keySpec === 'kx' ? 'exchange' : 'signature';
    try {
      await this.session.createKeyFile(keyRef, algId, usage);
    } catch (err) {
      // A key EF left behind by an interrupted deletion: the slot is free by cmapfile and key
      // map, so the old key is garbage and may go.
      // (GidsApplet answers 6984 to CREATE FILE of an existing FID; ISO 7816-4 says 6A89.)
      if (!(err instanceof ApduError) || ![0x6a89, SW.REFERENCE_DATA_NOT_USABLE, SW.CONDITIONS_NOT_SATISFIED].includes(err.sw)) throw err;
      await this.session.deleteKeyFile(keyRef);
      await this.session.createKeyFile(keyRef, algId, usage);
    }
  }
}

export function describeContainers(cmap: ContainerRecord[], table: MasterFileRecord[]): ContainerInfo[] {
  const certFiles = new Map<string, string>(); // `${index}/${keySpec}` → path
  for (const r of table) {
    if (r.directory.toLowerCase() !== 'mscp') continue;
    const parsed = parseCertificateFileName(r.filename);
    if (parsed) certFiles.set(`${parsed.index}/${parsed.keySpec}`, `mscp/${r.filename}`);
  }
  const out: ContainerInfo[] = [];
  cmap.forEach((r, index) => {
    if ((r.flags & CONTAINER_VALID) === 0) return;
    const keySpec: KeySpec = r.kxKeyBits > 0 ? 'kx' : 'sig';
    out.push({
      index,
      name: r.name,
      keyRef: FIRST_KEY_REF + index,
      keySpec,
      keyBits: keySpec === 'kx' ? r.kxKeyBits : r.sigKeyBits,
      isDefault: (r.flags & CONTAINER_DEFAULT) !== 0,
      certificateFile: certFiles.get(`${index}/${keySpec}`),
    });
  });
  return out;
}

function pathOf(p: { directory: string; filename: string }): string {
  return p.directory ? `${p.directory}/${p.filename}` : p.filename;
}

export function certificatePathFor(c: Pick<ContainerInfo, 'index' | 'keySpec'>): string {
  return `mscp/${certificateFileName(c.index, c.keySpec)}`;
}

function algIdFor(c: ContainerInfo): number {
  const alg = ALG_RSA[c.keyBits];
  if (alg === undefined) throw new CardError('BAD_ALGORITHM', `container '${c.name}' has an unsupported key size ${c.keyBits}`, { container: c.name });
  return alg;
}
