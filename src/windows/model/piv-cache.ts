/**
 * The PIV cache rule of the model: how Windows' inbox minidriver keeps a PIV card's data fresh
 * when the card has no `cardcf` (docs/piv.md "Freshness without cardcf").
 *
 * What the sources say [BLOG, unofficial]: for a PIV card `msclmd` builds the 6-byte
 * CARD_CACHE_FILE_FORMAT itself, from three counters it keeps in the global cache
 * (`Cached_CardmodFile\Cached_{Pin,File,Container}_Freshness`) and an activity count derived from
 * the reader's event counter (SCardGetStatusChange's dwEventState). The cache items are keyed by
 * the card GUID, which for PIV is the CHUID's GUID [SSPI, unofficial].
 *
 * What the model assumes where they stop:
 * - The host counters move only when the minidriver itself writes to the card (CardWriteFile,
 *   CardCreateContainer…); nothing cardlink or another tool writes offline moves them.
 * - The activity count is the number of insertions the reader has seen; the model adds it to each
 *   host counter (mod 2^16). Both only grow, so a re-insertion moves every freshness value and a
 *   card that stays in the reader keeps them: a certificate written offline is seen after the card
 *   is re-inserted, not before.
 * - A new CHUID GUID is a new card GUID: nothing cached under the old one is found again (every
 *   item is dropped, in effect), and the container names, derived from the GUID, change.
 */
import type { CardCf } from '../../minidriver/index.js';
import { WinError } from '../errors.js';
import type { CardDataCache } from './scardsvr.js';

/** The lookup names of the minidriver's own counters in the global cache [BLOG]. */
export const PIV_COUNTER_ITEMS = {
  pins: 'Cached_CardmodFile/Cached_Pin_Freshness',
  files: 'Cached_CardmodFile/Cached_File_Freshness',
  containers: 'Cached_CardmodFile/Cached_Container_Freshness',
} as const;

/** The counters are stored under freshness 0: they are the source of freshness, not keyed by it (assumption). */
const COUNTER_FRESHNESS = 0;

function readCounter(cache: CardDataCache | undefined, cardId: Uint8Array, name: string): number {
  if (!cache) return 0;
  try {
    const b = cache.read(cardId, COUNTER_FRESHNESS, name);
    return b.length >= 4 ? Buffer.from(b).readUInt32LE(0) : 0;
  } catch (err) {
    if (err instanceof WinError) return 0; // not cached yet, or no service: the minidriver starts at 0
    throw err;
  }
}

/**
 * The freshness counters the PIV minidriver reports for a card with GUID `cardId` in a reader that
 * has seen `activity` insertions, from the counters it keeps in `cache`.
 */
export function pivCardCf(cache: CardDataCache | undefined, cardId: Uint8Array, activity: number): CardCf {
  const fold = (n: number): number => (n + activity) & 0xffff;
  return {
    version: 0,
    pinsFreshness: (readCounter(cache, cardId, PIV_COUNTER_ITEMS.pins) + activity) & 0xff,
    filesFreshness: fold(readCounter(cache, cardId, PIV_COUNTER_ITEMS.files)),
    containersFreshness: fold(readCounter(cache, cardId, PIV_COUNTER_ITEMS.containers)),
    appFreshness: [],
  };
}

/**
 * What the minidriver does after writing through Windows (CardWriteFile / CardCreateContainer):
 * moves its own counter in the cache. Nothing in cardlink writes a card through Windows; the model
 * offers it so the rule is whole and tested.
 */
export function bumpPivCounter(cache: CardDataCache, cardId: Uint8Array, which: keyof typeof PIV_COUNTER_ITEMS): void {
  const next = Buffer.alloc(4);
  next.writeUInt32LE((readCounter(cache, cardId, PIV_COUNTER_ITEMS[which]) + 1) >>> 0);
  cache.write(cardId, COUNTER_FRESHNESS, PIV_COUNTER_ITEMS[which], new Uint8Array(next));
}
