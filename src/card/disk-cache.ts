import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { cardlinkHome } from '../home.js';
import type { CardCache } from './cache.js';

interface Item {
  f: number; // freshness counter value it was stored under
  v: string; // base64
  u: number; // last use (a logical clock: bigger = more recent)
}

/** The file's content: items by card (hex cardid), then by name. */
type Items = Record<string, Record<string, Item>>;

export interface DiskCacheOptions {
  /** Bound on the whole file's payload. Windows' own default is 50,000 bytes; we keep more cards. */
  maxBytesTotal?: number;
  /** Items larger than this are not kept (Windows: CacheMaxBytesPerItem). */
  maxBytesPerItem?: number;
}

/**
 * The per-user card cache on disk (one JSON file, mode 0600, replaced atomically). It only ever
 * holds what any reader may read from a card without a PIN: file contents and public keys.
 * Least recently used items go first when the bound is reached.
 */
export class DiskCardCache implements CardCache {
  private items: Items;
  private clock = 0;
  private dirty = false;
  private readonly maxTotal: number;
  private readonly maxItem: number;

  constructor(
    readonly path: string,
    options: DiskCacheOptions = {},
  ) {
    this.maxTotal = options.maxBytesTotal ?? 1024 * 1024;
    this.maxItem = options.maxBytesPerItem ?? 65536;
    this.items = load(path);
    for (const card of Object.values(this.items)) for (const it of Object.values(card)) this.clock = Math.max(this.clock, it.u);
  }

  /** `$CARDLINK_HOME/cache/cards.json` (default `~/.cardlink`). */
  static forUser(env: NodeJS.ProcessEnv = process.env): DiskCardCache {
    return new DiskCardCache(join(cardlinkHome(env), 'cache', 'cards.json'));
  }

  get(cardId: Uint8Array, name: string, freshness: number): Uint8Array | undefined {
    const it = this.items[idOf(cardId)]?.[name];
    if (!it || it.f !== freshness) return undefined;
    it.u = ++this.clock;
    this.dirty = true;
    return new Uint8Array(Buffer.from(it.v, 'base64'));
  }

  put(cardId: Uint8Array, name: string, freshness: number, value: Uint8Array): void {
    if (value.length > this.maxItem) return;
    const card = (this.items[idOf(cardId)] ??= {});
    card[name] = { f: freshness, v: Buffer.from(value).toString('base64'), u: ++this.clock };
    this.dirty = true;
    this.evict();
  }

  forget(cardId: Uint8Array): void {
    delete this.items[idOf(cardId)];
    this.dirty = true;
  }

  /** Bytes of payload held (base64 text, as stored). */
  get size(): number {
    let n = 0;
    for (const card of Object.values(this.items)) for (const [k, it] of Object.entries(card)) n += it.v.length + k.length;
    return n;
  }

  flush(): void {
    if (!this.dirty) return;
    writeFileAtomic(this.path, JSON.stringify(this.items), { mkdir: true, mode: 0o600 });
    this.dirty = false;
  }

  private evict(): void {
    let size = this.size;
    if (size <= this.maxTotal) return;
    const all: Array<{ card: string; name: string; it: Item }> = [];
    for (const [card, items] of Object.entries(this.items)) for (const [name, it] of Object.entries(items)) all.push({ card, name, it });
    all.sort((a, b) => a.it.u - b.it.u);
    for (const { card, name, it } of all) {
      if (size <= this.maxTotal) break;
      delete this.items[card]![name];
      if (Object.keys(this.items[card]!).length === 0) delete this.items[card];
      size -= it.v.length + name.length;
    }
  }
}

function idOf(cardId: Uint8Array): string {
  return Buffer.from(cardId).toString('hex');
}

/** A missing or unreadable cache is an empty cache: it only ever saves APDUs. */
function load(path: string): Items {
  try {
    const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Items) : {};
  } catch {
    return {};
  }
}
