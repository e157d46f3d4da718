import type { KeyObject } from 'node:crypto';
import { CardlinkError } from '../errors.js';
import { ApduError, SW } from '../apdu/status.js';
import { GidsSession, type InitializeOptions, type PinStatus } from '../gids/host/session.js';
import { ALG_RSA, KEYTYPE_EXCHANGE, KEYTYPE_SIGNATURE, MAX_CONTAINERS, keyFid } from '../gids/protocol/constants.js';
import {
  CONTAINER_DEFAULT,
  CONTAINER_VALID,
  KEY_STATE_USED,
  deletedKeyMapRecord,
  emptyContainerRecord,
  isDefaultContainer,
  isValidContainer,
  parseFilePath,
  setDefaultContainer,
  type CardCf,
} from '../minidriver/index.js';
import type { Transport } from '../transport/transport.js';
import { MemoryCardCache, type CardCache } from './cache.js';
import type { CardApplication, CreateContainerOptions } from './card-application.js';
import { CardFiles, describeContainers, keyRefOf, pathOf, rsaAlgId, type ContainerInfo, type KeySpec } from './card-files.js';
import { checkCard, repairCard, type CheckReport, type RepairReport } from './check/index.js';
import type { BuiltCsr, CsrOptions } from './csr.js';
import { digestInfoOf, type HashName } from './digest-info.js';
import { CardError } from './errors.js';
import { GidsMinidriver } from './gids-minidriver.js';
import { installCertificate, removeCertificate, type InstallOptions, type InstallResult } from './install.js';
import type { MinidriverPort } from './minidriver-port.js';

export interface LogicalFile {
  path: string;
  size: number;
}

export interface GidsOpenOptions {
  /**
   * Where card data is kept between sessions (valid while cardid and cardcf say so): a
   * MemoryCardCache of its own by default, DiskCardCache.forUser() for the per-user cache.
   */
  cache?: CardCache;
}

/**
 * The GIDS application behind MinidriverCard (card-application.ts): a GIDS card as cardlink's
 * user sees it: containers and their keys, signatures, requests, certificates, logical files, the
 * PIN, and check/repair. It owns the write order that keeps
 * `cardcf`, `cmapfile` and the key map consistent, and the cache rule (an item is valid while
 * `cardid` and its freshness counter are unchanged). `minidriver()` is the same card behind the
 * minidriver port, which is how Windows' side reaches it.
 */
export class GidsApplication implements CardApplication {
  readonly kind = 'gids' as const;

  private port: MinidriverPort | undefined;

  private constructor(private readonly files: CardFiles) {}

  /** Selects the GIDS application on the card behind `transport`. */
  static async open(transport: Transport, options: GidsOpenOptions = {}): Promise<GidsApplication> {
    const session = new GidsSession(transport);
    await session.select();
    return new GidsApplication(new CardFiles(session, options.cache ?? new MemoryCardCache()));
  }

  /** Initialises a factory-fresh card (PIN, admin key, file system) and opens it. */
  static async initialize(transport: Transport, options: InitializeOptions & GidsOpenOptions): Promise<GidsApplication> {
    const session = new GidsSession(transport);
    await session.initialize(options);
    await session.select();
    return new GidsApplication(new CardFiles(session, options.cache ?? new MemoryCardCache()));
  }

  get #session(): GidsSession {
    return this.files.session;
  }

  /**
   * The card as a minidriver presents it to Windows' Base CSP and KSP: fresh reads only, none of
   * this object's cache. The same card and connection, a separate view.
   */
  minidriver(): MinidriverPort {
    this.port ??= new GidsMinidriver(new GidsSession(this.#session.transport, { extendedLength: this.#session.channel.extendedLength }));
    return this.port;
  }

  // ---- identity and freshness ------------------------------------------------------------------

  /** Reads `cardid` and `cardcf` afresh (every operation starts this way). */
  refresh(): Promise<{ cardId: Uint8Array; cardcf: CardCf }> {
    return this.files.refresh();
  }

  async cardId(): Promise<Uint8Array> {
    return (await this.refresh()).cardId;
  }

  async cardcf(): Promise<CardCf> {
    return (await this.refresh()).cardcf;
  }

  /** Identity, counters and containers with one read of `cardid` and `cardcf` (`card info`). */
  async info(): Promise<{ cardId: Uint8Array; cardcf: CardCf; containers: ContainerInfo[] }> {
    return this.files.transaction(async () => {
      const { cardId, cardcf } = await this.files.refresh();
      return { cardId, cardcf, containers: await this.files.cachedContainers() };
    });
  }

  // ---- containers ------------------------------------------------------------------------------

  async containers(): Promise<ContainerInfo[]> {
    return this.files.transaction(async () => {
      await this.files.refresh();
      return this.files.cachedContainers();
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
    if (options.curve !== undefined) throw new CardError('BAD_ALGORITHM', `GIDS keys are RSA in cardlink; ECC keys (${options.curve}) go into PIV slots`, { container: name });
    return this.files.transaction(async () => {
      const keySpec = options.keySpec ?? 'kx';
      const bits = options.bits ?? 2048;
      const algId = ALG_RSA[bits];
      if (algId === undefined) throw new CardError('BAD_ALGORITHM', `RSA-${bits} is not a GIDS key size (1024, 2048, 3072, 4096)`);
      if (name.length === 0 || name.length > 39 || name.includes('\\') || name.includes('\0')) {
        throw new CardError('BAD_CONTAINER_NAME', `container name '${name}' must be 1-39 characters without '\\'`, { container: name });
      }
      await this.files.refresh();
      const { cmap } = await this.files.freshContainers();
      const keymap = await this.files.keyMap();
      if (keymap.length !== cmap.length && !(keymap.length === 0 && cmap.length === 0)) {
        throw new CardError('INCONSISTENT', `cmapfile has ${cmap.length} records but the key map ${keymap.length}: run 'cardlink card check --repair'`, { container: name });
      }
      if (cmap.some((r) => isValidContainer(r) && r.name === name)) {
        throw new CardError('CONTAINER_EXISTS', `a container named '${name}' already exists`, { container: name });
      }
      let index = cmap.findIndex((r, i) => !isValidContainer(r) && keymap[i]?.state !== KEY_STATE_USED);
      const newSlot = index < 0;
      if (newSlot) index = cmap.length;
      if (index >= MAX_CONTAINERS) throw new CardError('CARD_FULL', `the card holds at most ${MAX_CONTAINERS} containers`, { container: name });
      const keyRef = keyRefOf(index);

      if (newSlot) {
        cmap.push(emptyContainerRecord());
        await this.files.bump({ files: true });
        await this.files.putCmapfile(cmap);
        keymap.push(deletedKeyMapRecord());
      }
      // Undone step by step when the chip has no room (6A84 at CREATE FILE or while generating),
      // so cmapfile and the key map stay in step (check finds nothing) and the user hears why.
      let keyFileMade = false;
      let keyMapWritten = false;
      let publicKey: KeyObject;
      try {
        await this.createKeyFileReplacingLeftover(keyRef, algId, keySpec);
        keyFileMade = true;
        await this.files.bump({ containers: true });
        keymap[index] = { ...keymap[index]!, state: KEY_STATE_USED, algId, keyType: keySpec === 'kx' ? KEYTYPE_EXCHANGE : KEYTYPE_SIGNATURE, keyFid: keyFid(keyRef) };
        await this.files.putKeyMap(keymap);
        keyMapWritten = true;
        publicKey = await this.#session.generateKey(keyRef, algId);
      } catch (err) {
        if (!(err instanceof ApduError && err.sw === SW.NOT_ENOUGH_MEMORY)) throw err;
        if (keyMapWritten) {
          keymap[index] = deletedKeyMapRecord();
          if (newSlot) keymap.pop();
          await this.files.putKeyMap(keymap);
        }
        if (keyFileMade) await this.#session.deleteKeyFile(keyRef);
        if (newSlot) {
          cmap.pop();
          await this.files.bump({ files: true });
          await this.files.putCmapfile(cmap);
        }
        const used = cmap.filter(isValidContainer).length;
        throw new CardError('CARD_FULL', `card full (${used} containers): no room for another key; delete a container you no longer need ('cardlink card rm-container')`, { container: name });
      }

      const hasDefault = cmap.some((r) => isValidContainer(r) && isDefaultContainer(r));
      const makeDefault = options.makeDefault === true || !hasDefault;
      if (makeDefault) for (const r of cmap) setDefaultContainer(r, false);
      cmap[index] = {
        ...emptyContainerRecord(),
        name,
        flags: CONTAINER_VALID | (makeDefault ? CONTAINER_DEFAULT : 0),
        sigKeyBits: keySpec === 'sig' ? bits : 0,
        kxKeyBits: keySpec === 'kx' ? bits : 0,
      };
      await this.files.bump({ files: true });
      await this.files.putCmapfile(cmap);
      this.files.rememberPublicKey(index, publicKey);
      // By cmap index: the list holds valid containers only, so a gap before this slot shifts positions.
      const info = describeContainers(cmap, await this.files.rememberCurrentTable()).find((c) => c.index === index);
      if (!info) throw new CardError('CARD_INTERNAL', 'created container vanished', { container: name });
      return { ...info, publicKey };
    });
  }

  /**
   * Deletes a container: its certificate file, its `cmapfile` record and its key (needs the PIN).
   * On Windows this is the Base CSP's work and the minidriver's together: the CSP deletes the
   * certificate files (CardDeleteFile) and updates `cmapfile`, the minidriver's CardDeleteContainer
   * deletes the key material [CDC]. The card-level steps are those OpenSC's card-gids.c takes
   * (`gids_delete_cert`, `gids_delete_container_num`: the record zeroed, the key map entry marked
   * deleted, the key file deleted, `cardcf` moved; docs/sources.md#opensc-gids), but in the
   * reverse order of createContainer, so that an interruption never leaves a valid container
   * without its key or a certificate without its container: the certificate goes first, then the
   * record is zeroed, then the key map entry and the key. A leftover key file (interrupted before
   * the last step) is replaced by the next createContainer in that slot, and a key map still in
   * use for the zeroed record is what `check --repair` rewrites. If the container was the default,
   * the first remaining one becomes it (Minidriver spec [FSR]: one default while containers exist).
   */
  async deleteContainer(name: string): Promise<{ container: ContainerInfo; certificateFile: string | undefined }> {
    return this.files.transaction(async () => {
      await this.files.refresh();
      const { cmap, containers } = await this.files.freshContainers();
      const c = containers.find((x) => x.name === name);
      if (!c) {
        throw new CardError('NO_CONTAINER', `no container '${name}' on the card (containers: ${containers.map((x) => x.name).join(', ') || 'none'})`, { container: name });
      }
      const keymap = await this.files.keyMap();
      if (c.certificateFile) {
        await this.files.bump({ files: true });
        await this.files.deleteFile(c.certificateFile);
        await this.files.rememberCurrentTable();
      }
      const wasDefault = isDefaultContainer(cmap[c.index]!);
      cmap[c.index] = emptyContainerRecord();
      if (wasDefault) {
        const next = cmap.findIndex((r) => isValidContainer(r));
        if (next >= 0) setDefaultContainer(cmap[next]!, true);
      }
      await this.files.bump({ files: true, containers: true });
      await this.files.putCmapfile(cmap);
      if (keymap[c.index]) {
        keymap[c.index] = deletedKeyMapRecord();
        await this.files.putKeyMap(keymap);
      }
      await this.#session.deleteKeyFile(c.keyRef);
      return { container: c, certificateFile: c.certificateFile };
    });
  }

  /** The container's public key, from the cache while the containers counter proves it fresh. */
  async publicKey(nameOrIndex: string | number): Promise<KeyObject> {
    return this.files.publicKey(await this.container(nameOrIndex));
  }

  /** Signs `data` hashed with `hash` (PKCS#1 v1.5, padded on the card). Needs the PIN. */
  async sign(nameOrIndex: string | number, data: Uint8Array, hash: HashName = 'sha256'): Promise<Uint8Array> {
    const c = await this.container(nameOrIndex);
    return this.#session.sign(c.keyRef, rsaAlgId(c.keyBits, c.name), digestInfoOf(hash, data));
  }

  /** A PKCS#10 request for the container's key, signed on the card. Needs the PIN. */
  async csr(nameOrIndex: string | number, subject: string, options: CsrOptions = {}): Promise<BuiltCsr> {
    const c = await this.container(nameOrIndex);
    const publicKey = await this.files.publicKey(c);
    // Loaded here: the ASN.1 library behind it costs ~100 ms to load, which every other card
    // command (ls, info, install) would pay at start-up otherwise (bench/startup.ts).
    const { buildCsr } = await import('./csr.js');
    return buildCsr(subject, publicKey, (di) => this.#session.sign(c.keyRef, rsaAlgId(c.keyBits, c.name), di), options);
  }

  /** Deciphers a PKCS#1 v1.5 cryptogram with a key exchange container's key. Needs the PIN. */
  async decipher(nameOrIndex: string | number, cryptogram: Uint8Array): Promise<Uint8Array> {
    const c = await this.container(nameOrIndex);
    if (c.keySpec !== 'kx') throw new CardError('WRONG_KEY_SPEC', `container '${c.name}' holds a signature key; it cannot decipher`, { container: c.name });
    return this.#session.decipher(c.keyRef, rsaAlgId(c.keyBits, c.name), cryptogram);
  }

  // ---- certificates ----------------------------------------------------------------------------

  /** Loads a certificate (DER or PEM) into its container; see install.ts for the write order. */
  installCertificate(cert: Uint8Array | string, options: InstallOptions = {}): Promise<InstallResult> {
    return this.files.transaction(() => installCertificate(this.files, cert, options));
  }

  removeCertificate(containerName: string): Promise<{ container: ContainerInfo; file: string | undefined }> {
    return this.files.transaction(() => removeCertificate(this.files, containerName));
  }

  /** The certificate of a container, DER, or undefined when it has none. */
  async readCertificate(nameOrIndex: string | number): Promise<Uint8Array | undefined> {
    return this.files.transaction(async () => {
      const c = await this.container(nameOrIndex);
      if (!c.certificateFile) return undefined;
      try {
        return await this.files.certificate(c.certificateFile);
      } catch (err) {
        // A file-table record whose data never arrived (a card pulled during a create, FILE_DANGLING)
        // holds no certificate: installing over it is the way on, not an error.
        if (err instanceof CardError && err.code === 'FILE_NOT_FOUND') return undefined;
        throw err;
      }
    });
  }

  /** Reads the whole card afresh and reports what is inconsistent or stale (check/index.ts). */
  async check(): Promise<CheckReport> {
    return this.files.transaction(async () => (await checkCard(this.files)).report);
  }

  /**
   * Moves `cardcf`'s counters, and nothing else: every cache keyed by them — Windows' Smart Card
   * service cache included — reads the card again. For staleness only another cache can see
   * (doctor reads Windows' cache); `repair` moves them for what check finds. Needs the user PIN.
   */
  moveCounters(which: { files?: boolean; containers?: boolean }): Promise<CardCf> {
    return this.files.transaction(() => this.files.bump(which));
  }

  /**
   * Fixes what check finds and checks again: `before` marks each finding fixed only where the
   * fresh read afterwards shows the fix; `after` is that fresh check.
   */
  repair(options: { adminKey?: Uint8Array } = {}): Promise<RepairReport> {
    return this.files.transaction(() => repairCard(this.files, options));
  }

  // ---- logical files ---------------------------------------------------------------------------

  async listFiles(): Promise<LogicalFile[]> {
    return this.files.transaction(async () => {
      await this.files.refresh();
      const table = await this.files.cachedTable();
      const out: LogicalFile[] = [];
      for (const r of table) {
        if (r.filename === '') continue;
        const data = await this.files.readRecord(r);
        out.push({ path: pathOf(r), size: data?.length ?? 0 });
      }
      return out;
    });
  }

  async readFile(path: string): Promise<Uint8Array> {
    return this.files.transaction(async () => {
      parseFilePath(path);
      await this.files.refresh();
      await this.files.cachedTable();
      const data = await this.files.readFile(path);
      if (data === undefined) throw new CardError('FILE_NOT_FOUND', `${path}: no such file on the card`);
      return data;
    });
  }

  /** Writes (or creates) a logical file, moving the files counter first. Needs the PIN. */
  async writeFile(path: string, data: Uint8Array): Promise<void> {
    return this.files.transaction(async () => {
      const p = parseFilePath(path);
      await this.files.refresh();
      await this.files.freshTable();
      if (pathOf(p).toLowerCase() !== 'cardcf') await this.files.bump({ files: true });
      await this.files.putFile(path, data);
      this.files.forgetCounters();
    });
  }

  /** Deletes a logical file, moving the files counter first. Needs the PIN. */
  async deleteFile(path: string): Promise<void> {
    return this.files.transaction(async () => {
      parseFilePath(path);
      await this.files.refresh();
      await this.files.freshTable();
      if (!(await this.files.exists(path))) throw new CardError('FILE_NOT_FOUND', `${path}: no such file on the card`);
      await this.files.bump({ files: true });
      await this.files.deleteFile(path);
    });
  }

  // ---- PIN -------------------------------------------------------------------------------------

  pinStatus(): Promise<PinStatus> {
    return this.#session.pinStatus();
  }

  verifyPin(pin: string): Promise<void> {
    return this.#session.verifyPin(pin);
  }

  changePin(oldPin: string, newPin: string): Promise<void> {
    return this.#session.changePin(oldPin, newPin);
  }

  /** Unblocks the PIN with the administrator key and sets a new one. */
  async unblockPin(adminKey: Uint8Array, newPin: string): Promise<void> {
    await this.#session.authenticateAdmin(adminKey);
    await this.#session.unblockPin(newPin);
  }

  logout(): Promise<void> {
    return this.#session.logout();
  }

  // ---- administrator key: challenge/response and re-keying ----------------------------------------

  /**
   * A fresh administrator challenge from the card (8 random bytes, good for one answer). Ask
   * for it and answer it in the same card session: a reset or another challenge discards it.
   */
  adminChallenge(): Promise<Uint8Array> {
    return this.#session.adminChallenge();
  }

  /**
   * Unblocks the PIN the Windows way: the response to the challenge from adminChallenge() (from
   * whoever holds this card's administrator key) authenticates the administrator, then the new
   * PIN is set and the retry counter reset, in this same session. Certificates and keys stay.
   * A refused response throws AdminAuthError with the tries the card reports.
   */
  async unblockPinWithResponse(response: Uint8Array, newPin: string): Promise<void> {
    await this.#session.answerAdminChallenge(response);
    await this.#session.unblockPin(newPin);
  }

  /**
   * Returns a card to stock when its user is gone (the PIN unknown): the response to this
   * session's administrator challenge (from the service that holds the card's key) authenticates
   * the administrator, the administrator key goes back to the transport key, then, with it, the
   * PIN is reset to `newPin` (the next user's initial PIN) and every container is deleted with
   * its key and certificate. The card can then be enrolled for anyone, like a new one.
   */
  async retire(adminResponse: Uint8Array, transportKey: Uint8Array, newPin: string): Promise<{ deletedContainers: string[] }> {
    if (transportKey.length !== 24) throw new CardError('BAD_ADMIN_KEY_LENGTH', 'the transport key must be 24 bytes (48 hex digits)');
    await this.#session.answerAdminChallenge(adminResponse);
    await this.#session.putAdminKey(transportKey);
    await this.#session.logout();
    await this.#session.authenticateAdmin(transportKey);
    await this.#session.unblockPin(newPin);
    await this.#session.verifyPin(newPin);
    const deletedContainers: string[] = [];
    for (const c of await this.containers()) {
      await this.deleteContainer(c.name);
      deletedContainers.push(c.name);
    }
    // Left as initialisation leaves a card: no container records at all, and both counters moved
    // so every cache keyed by them drops the old content. Zeroed records would still be listed,
    // as keys without a name, by OpenSC's pkcs15-gids, which asks for every record's details.
    await this.files.transaction(async () => {
      await this.files.refresh();
      await this.files.bump({ files: true, containers: true });
      await this.files.putCmapfile([]);
      await this.files.putKeyMap([]);
    });
    await this.#session.logout();
    return { deletedContainers };
  }

  /** Does this administrator key authenticate to the card (mutual authentication)? Logs out again. */
  async adminKeyWorks(adminKey: Uint8Array): Promise<boolean> {
    try {
      await this.#session.authenticateAdmin(adminKey);
    } catch (err) {
      if (err instanceof CardlinkError && (err.code === 'ADMIN_AUTH_FAILED' || err.code === 'CARD_AUTH_FAILED')) return false;
      throw err;
    }
    await this.#session.logout();
    return true;
  }

  /**
   * Replaces the administrator key: mutual authentication with the current key, PUT KEY with
   * the new one (what `gids-tool --change-admin-key` sends), log out, and prove the new key
   * authenticates before returning.
   */
  async changeAdminKey(currentKey: Uint8Array, newKey: Uint8Array): Promise<void> {
    if (newKey.length !== 24) throw new CardError('BAD_ADMIN_KEY_LENGTH', 'the new administrator key must be 24 bytes (48 hex digits)');
    await this.#session.authenticateAdmin(currentKey);
    await this.#session.putAdminKey(newKey);
    await this.#session.logout();
    if (!(await this.adminKeyWorks(newKey))) throw new CardError('ADMIN_KEY_NOT_CHANGED', 'the card took the new administrator key but does not authenticate with it');
  }


  private async createKeyFileReplacingLeftover(keyRef: number, algId: number, keySpec: KeySpec): Promise<void> {
    const usage = keySpec === 'kx' ? 'exchange' : 'signature';
    try {
      await this.#session.createKeyFile(keyRef, algId, usage);
    } catch (err) {
      // A key EF left behind by an interrupted deletion: the slot is free by cmapfile and key
      // map, so the old key is garbage and may go.
      // (GidsApplet answers 6984 to CREATE FILE of an existing FID; ISO 7816-4 says 6A89.)
      if (!(err instanceof ApduError) || ![0x6a89, SW.REFERENCE_DATA_NOT_USABLE, SW.CONDITIONS_NOT_SATISFIED].includes(err.sw)) throw err;
      await this.#session.deleteKeyFile(keyRef);
      await this.#session.createKeyFile(keyRef, algId, usage);
    }
  }
}
