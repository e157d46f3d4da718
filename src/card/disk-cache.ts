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
  /**
   * Why the file on disk was thrown away (not JSON, or not the shape this class writes), for the
   * caller to warn about; undefined when it was read or did not exist. The next flush rewrites it.
   */
  readonly discarded: string | undefined;

  constructor(
    readonly path: string,
    options: DiskCacheOptions = {},
  ) {
    this.maxTotal = options.maxBytesTotal ?? 1024 * 1024;
    this.maxItem = options.maxBytesPerItem ?? 65536;
    const loaded = load(path);
    this.items = loaded.items;
    this.discarded = loaded.discarded;
    this.dirty = loaded.discarded !== undefined;
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

/**
 * A missing cache is an empty cache; so is a damaged one (it only ever saves APDUs), but then the
 * caller hears why, and the file is rebuilt. Every item is checked, so a file that parses but is
 * not what flush() writes cannot break a later get, put or eviction.
 */
function load(path: string): { items: Items; discarded?: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { items: {} };
    return { items: {}, discarded: `cannot read it (${(err as Error).message})` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { items: {}, discarded: 'it is not JSON' };
  }
  const problem = shapeProblem(parsed);
  return problem === undefined ? { items: parsed as Items } : { items: {}, discarded: problem };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function shapeProblem(parsed: unknown): string | undefined {
  if (!isObject(parsed)) return 'it is not an object of cards';
  for (const [card, items] of Object.entries(parsed)) {
    if (!/^[0-9a-f]{32}$/.test(card)) return `'${card.slice(0, 40)}' is not a cardid`;
    if (!isObject(items)) return `card ${card} is not an object of items`;
    for (const [name, it] of Object.entries(items)) {
      const ok = isObject(it) && Number.isSafeInteger(it.f) && Number.isSafeInteger(it.u) && typeof it.v === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(it.v);
      if (!ok) return `item '${name.slice(0, 40)}' of card ${card} is malformed`;
    }
  }
  return undefined;
}
