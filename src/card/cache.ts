import type { CardCf } from '../minidriver/index.js';

/** Which cardcf counter proves an item fresh: the rule Windows' Smart Card service applies. */
export type Freshness = 'files' | 'containers';

/**
 * Card data kept between sessions. An item is valid only while the card's `cardid` and the
 * freshness counter it was stored under are unchanged (Minidriver spec §5.4.3; SCardReadCache keys
 * items by card GUID + freshness + name). Implementations never store PINs or keys.
 */
export interface CardCache {
  get(cardId: Uint8Array, name: string, freshness: number): Uint8Array | undefined;
  put(cardId: Uint8Array, name: string, freshness: number, value: Uint8Array): void;
  /** Drops everything known about a card. */
  forget(cardId: Uint8Array): void;
  /** Persists (disk-backed caches); a no-op in memory. */
  flush?(): void;
}

export function freshnessValue(cf: CardCf, kind: Freshness): number {
  return kind === 'files' ? cf.filesFreshness : cf.containersFreshness;
}

/** A process-local cache (the default when no cache directory is configured). */
export class MemoryCardCache implements CardCache {
  private readonly items = new Map<string, { freshness: number; value: Uint8Array }>();

  get(cardId: Uint8Array, name: string, freshness: number): Uint8Array | undefined {
    const item = this.items.get(key(cardId, name));
    return item && item.freshness === freshness ? item.value : undefined;
  }

  put(cardId: Uint8Array, name: string, freshness: number, value: Uint8Array): void {
    this.items.set(key(cardId, name), { freshness, value: value.slice() });
  }

  forget(cardId: Uint8Array): void {
    const prefix = Buffer.from(cardId).toString('hex') + '/';
    for (const k of this.items.keys()) if (k.startsWith(prefix)) this.items.delete(k);
  }
}

function key(cardId: Uint8Array, name: string): string {
  return `${Buffer.from(cardId).toString('hex')}/${name}`;
}
