/**
 * The administrator keys of the cards the service manages: one 3DES key per card, derived from a
 * versioned master key the service alone holds, so learning one card's key (it passes through
 * the workstation that writes it) opens that card and no other.
 *
 * Derivation: NIST SP 800-108r1 KDF in counter mode with HMAC-SHA256 as the PRF
 * (docs/sources.md#sp800-108): K = HMAC(KM_v, [1]₃₂ ‖ Label ‖ 0x00 ‖ Context ‖ [192]₃₂), first 24
 * bytes, where Label = "cardlink GIDS admin key v<version>" and Context = the card's 16-byte
 * cardid. The label carries the version, so rotating the master key gives every card a new key
 * and the old one can still be derived to authenticate while the card is re-keyed.
 *
 * Master keys live in the data directory, one file per version (`admin-keys/v<N>.json`), each
 * 32 random bytes sealed with AES-256-GCM under a key derived from the service passphrase with
 * scrypt, the same passphrase that encrypts the CA key. A version file is created exclusively and
 * never changed, so several service processes on one data directory agree on every version; the
 * current version is the highest one present.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, scryptSync } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeQuietly, syncDirectory, writeTempBeside } from '../atomic-file.js';
import { ServiceError } from './errors.js';

const MASTER_BYTES = 32;
const CARD_KEY_BYTES = 24;
const FORMAT = 'cardlink admin master key v1';
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;

/**
 * The factory administrator key cards arrive with, unless configured otherwise: 01 02 … 08 three
 * times, the key of Microsoft's GIDS examples and GidsApplet's tests (docs/sources.md#gidsapplet).
 */
export const DEFAULT_TRANSPORT_KEY = Buffer.from('010203040506070801020304050607080102030405060708', 'hex');

interface SealedMasterKey {
  format: string;
  version: number;
  createdAt: string;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  iv: string;
  tag: string;
  ciphertext: string;
}

/** SP 800-108r1 §4.1, counter mode, HMAC-SHA256, one block (L = 192 bits). */
export function deriveCardAdminKey(masterKey: Uint8Array, version: number, cardId: Uint8Array): Uint8Array {
  if (cardId.length !== 16) throw new ServiceError('BAD_REQUEST', 'a cardid has 16 bytes');
  const label = Buffer.from(`cardlink GIDS admin key v${version}`, 'ascii');
  const counter = Buffer.from([0, 0, 0, 1]);
  const length = Buffer.from([0, 0, 0, CARD_KEY_BYTES * 8]);
  const block = createHmac('sha256', masterKey).update(counter).update(label).update(Buffer.from([0])).update(cardId).update(length).digest();
  return new Uint8Array(block.subarray(0, CARD_KEY_BYTES));
}

function aad(version: number): Buffer {
  return Buffer.from(`${FORMAT} ${version}`, 'utf8');
}

function seal(master: Uint8Array, version: number, passphrase: string, now: Date): SealedMasterKey {
  const salt = randomBytes(16);
  const kek = scryptSync(passphrase.normalize('NFC'), salt, 32, SCRYPT);
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', kek, iv).setAAD(aad(version));
  const ciphertext = Buffer.concat([c.update(master), c.final()]);
  kek.fill(0);
  return {
    format: FORMAT, version, createdAt: now.toISOString(),
    kdf: { name: 'scrypt', N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, salt: salt.toString('base64') },
    iv: iv.toString('base64'), tag: c.getAuthTag().toString('base64'), ciphertext: ciphertext.toString('base64'),
  };
}

function unseal(sealed: SealedMasterKey, passphrase: string, file: string): Uint8Array {
  try {
    if (sealed.format !== FORMAT || sealed.kdf.name !== 'scrypt') throw new Error(`unknown format ${sealed.format}`);
    const kek = scryptSync(passphrase.normalize('NFC'), Buffer.from(sealed.kdf.salt, 'base64'), 32, { N: sealed.kdf.N, r: sealed.kdf.r, p: sealed.kdf.p, maxmem: SCRYPT.maxmem });
    const d = createDecipheriv('aes-256-gcm', kek, Buffer.from(sealed.iv, 'base64')).setAAD(aad(sealed.version));
    d.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    const master = Buffer.concat([d.update(Buffer.from(sealed.ciphertext, 'base64')), d.final()]);
    kek.fill(0);
    if (master.length !== MASTER_BYTES) throw new Error('wrong length');
    return new Uint8Array(master);
  } catch (err) {
    throw new ServiceError('CONFIG', `cannot decrypt ${file}: wrong CARDLINK_CA_PASSPHRASE, or the file is damaged`, { cause: err });
  }
}

/** Where the master keys are: on disk, sealed (the service), or in memory (tests, the demo). */
interface MasterKeyStore {
  versions(): number[];
  get(version: number): Uint8Array;
  create(version: number): void;
}

class DiskMasterKeys implements MasterKeyStore {
  private readonly cache = new Map<number, Uint8Array>();
  constructor(
    private readonly dir: string,
    private readonly passphrase: string,
    private readonly now: () => Date,
  ) {}

  versions(): number[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir)
      .map((n) => /^v(\d+)\.json$/.exec(n)?.[1])
      .filter((v): v is string => v !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  get(version: number): Uint8Array {
    const cached = this.cache.get(version);
    if (cached) return cached;
    const file = join(this.dir, `v${version}.json`);
    if (!existsSync(file)) throw new ServiceError('CONFIG', `no administrator master key version ${version} in ${this.dir}`);
    const sealed = JSON.parse(readFileSync(file, 'utf8')) as SealedMasterKey;
    if (sealed.version !== version) throw new ServiceError('CONFIG', `${file} holds version ${sealed.version}`);
    const key = unseal(sealed, this.passphrase, file);
    this.cache.set(version, key);
    return key;
  }

  /** Exclusive: a temp file hard-linked to its name fails if another process made that version first. */
  create(version: number): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const master = randomBytes(MASTER_BYTES);
    const tmp = writeTempBeside(join(this.dir, `v${version}.json`), JSON.stringify(seal(master, version, this.passphrase, this.now()), null, 2) + '\n');
    master.fill(0);
    try {
      linkSync(tmp, join(this.dir, `v${version}.json`));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      removeQuietly(tmp);
    }
    syncDirectory(this.dir);
  }
}

class MemoryMasterKeys implements MasterKeyStore {
  private readonly keys = new Map<number, Uint8Array>();
  versions(): number[] {
    return [...this.keys.keys()].sort((a, b) => a - b);
  }
  get(version: number): Uint8Array {
    const k = this.keys.get(version);
    if (!k) throw new ServiceError('CONFIG', `no administrator master key version ${version}`);
    return k;
  }
  create(version: number): void {
    if (!this.keys.has(version)) this.keys.set(version, new Uint8Array(randomBytes(MASTER_BYTES)));
  }
}

/** The master keys by version, and the card keys derived from them. */
export class AdminKeyVault {
  private constructor(
    private readonly store: MasterKeyStore,
    readonly transportKey: Uint8Array,
  ) {}

  /** The vault in `<dataDir>/admin-keys`, made (version 1) on first start. */
  static open(dataDir: string, passphrase: string, now: () => Date, transportKey: Uint8Array = DEFAULT_TRANSPORT_KEY): AdminKeyVault {
    const vault = new AdminKeyVault(new DiskMasterKeys(join(dataDir, 'admin-keys'), passphrase, now), transportKey);
    if (vault.store.versions().length === 0) vault.store.create(1);
    vault.store.get(vault.currentVersion()); // fails at start-up, not at the first card, on a wrong passphrase
    return vault;
  }

  /** Master keys that never touch disk (tests, the demo). */
  static inMemory(transportKey: Uint8Array = DEFAULT_TRANSPORT_KEY): AdminKeyVault {
    const vault = new AdminKeyVault(new MemoryMasterKeys(), transportKey);
    vault.store.create(1);
    return vault;
  }

  currentVersion(): number {
    const v = this.store.versions();
    return v[v.length - 1] ?? 0;
  }

  /** Makes a new master key version; cards move to it on their next contact. */
  rotate(): number {
    const next = this.currentVersion() + 1;
    this.store.create(next);
    return this.currentVersion();
  }

  /** The card's key under a master key version; version 0 is the transport key. */
  cardKey(cardIdHex: string, version: number): Uint8Array {
    if (version === 0) return new Uint8Array(this.transportKey);
    return deriveCardAdminKey(this.store.get(version), version, Buffer.from(cardIdHex, 'hex'));
  }
}
