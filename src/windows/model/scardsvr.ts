/**
 * The Smart Card service's (SCardSvr) global data cache, as SCardReadCache / SCardWriteCache
 * expose it [RC][WC]: items keyed by the 16-byte card GUID (`cardid`), a freshness DWORD and a
 * lookup name; a read must match all three. Held in RAM while the service runs and written to
 * the registry value `HKLM\SOFTWARE\Microsoft\Cryptography\Calais\Cache\Cache` when it stops,
 * so it survives a restart [seed answer][DEC, unofficial].
 *
 * Model assumptions where the sources are silent:
 * - The registry value's format is not public; the model stores JSON in a file of that name.
 * - A read naming a freshness newer than the item's is STALE and deletes the item [RC]; one naming
 *   an older freshness than the item's (a reader behind the card) is NOT_FOUND.
 * - The per-item limit is CacheMaxBytesPerItem's default, 10000 bytes [DEC, unofficial].
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../atomic-file.js';
import { hex } from '../../bytes.js';
import { WinError } from '../errors.js';

export const CACHE_REGISTRY_PATH = ['HKLM', 'SOFTWARE', 'Microsoft', 'Cryptography', 'Calais', 'Cache', 'Cache'];
export const CACHE_MAX_BYTES_PER_ITEM = 10000;

export interface CacheItem {
  cardId: string;
  name: string;
  freshness: number;
  data: Uint8Array;
}

/** What a provider needs of a card data cache: SCardReadCache / SCardWriteCache semantics [RC][WC]. */
export interface CardDataCache {
  read(cardId: Uint8Array, freshness: number, name: string): Uint8Array;
  write(cardId: Uint8Array, freshness: number, name: string, data: Uint8Array): void;
}

export class SmartCardService implements CardDataCache {
  private items = new Map<string, { freshness: number; data: Uint8Array }>();
  private running = false;
  private readonly file: string;

  constructor(stateDir: string) {
    this.file = join(stateDir, ...CACHE_REGISTRY_PATH);
    this.start();
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** Loads the cache the last stop left in the registry. */
  start(): void {
    if (this.running) return;
    this.items = new Map();
    try {
      const saved = JSON.parse(readFileSync(this.file, 'utf8')) as { key: string; freshness: number; data: string }[];
      for (const s of saved) this.items.set(s.key, { freshness: s.freshness, data: new Uint8Array(Buffer.from(s.data, 'base64')) });
    } catch {
      // No saved cache yet: the service starts empty.
    }
    this.running = true;
  }

  /** Writes the RAM cache to the registry and stops. */
  stop(): void {
    if (!this.running) return;
    const saved = [...this.items].map(([key, v]) => ({ key, freshness: v.freshness, data: Buffer.from(v.data).toString('base64') }));
    writeFileAtomic(this.file, JSON.stringify(saved), { mkdir: true });
    this.running = false;
  }

  restart(): void {
    this.stop();
    this.start();
  }

  private key(cardId: Uint8Array, name: string): string {
    return `${hex(cardId)}|${name}`;
  }

  private requireRunning(operation: string): void {
    // Callers (the CSP/KSP) treat an unavailable cache as a miss and go to the card.
    if (!this.running) throw WinError.of('SCARD_W_CACHE_ITEM_NOT_FOUND', operation, 'the Smart Card service is stopped');
  }

  /** SCardReadCache. */
  read(cardId: Uint8Array, freshness: number, name: string): Uint8Array {
    this.requireRunning('SCardReadCache');
    const k = this.key(cardId, name);
    const item = this.items.get(k);
    if (!item || item.freshness > freshness) throw WinError.of('SCARD_W_CACHE_ITEM_NOT_FOUND', 'SCardReadCache', name);
    if (item.freshness < freshness) {
      this.items.delete(k);
      throw WinError.of('SCARD_W_CACHE_ITEM_STALE', 'SCardReadCache', name);
    }
    return item.data.slice();
  }

  /** SCardWriteCache; an empty write deletes the item [SSPI]. */
  write(cardId: Uint8Array, freshness: number, name: string, data: Uint8Array): void {
    this.requireRunning('SCardWriteCache');
    if (data.length > CACHE_MAX_BYTES_PER_ITEM) throw WinError.of('SCARD_W_CACHE_ITEM_TOO_BIG', 'SCardWriteCache', `${name}: ${data.length} bytes`);
    const k = this.key(cardId, name);
    if (data.length === 0) this.items.delete(k);
    else this.items.set(k, { freshness, data: data.slice() });
  }

  /** Everything cached, for diagnosis (doctor) and tests. */
  list(): CacheItem[] {
    return [...this.items].map(([k, v]) => {
      const [cardId, ...name] = k.split('|');
      return { cardId: cardId!, name: name.join('|'), freshness: v.freshness, data: v.data.slice() };
    });
  }
}
