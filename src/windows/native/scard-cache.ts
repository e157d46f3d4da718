/**
 * What the Smart Card service actually caches, read through SCardReadCacheW [RC]: an item is
 * keyed by the card's GUID (a UUID pointing at the 16 bytes of `cardid`), a freshness DWORD and a
 * lookup name; the call returns it only when all three match (SCARD_W_CACHE_ITEM_NOT_FOUND
 * otherwise, SCARD_W_CACHE_ITEM_STALE — and the item deleted — when it is older). Windows only
 * (koffi, winscard.dll); under Wine 8 winscard has no SCardReadCacheW and no working context, so
 * the probe says it is unavailable — the contract suite drives the same call through a function
 * pointer of the same prototype to check the key layout (test/windows/fixtures/contract-native-entry.ts).
 *
 * Lookup names and the value layout follow the inbox minidriver as reverse-engineered [BLOG,
 * unofficial]: `Cached_GeneralFile/mscp/…` under the files counter, `Cached_ContainerInfo_NN`
 * under the containers counter; a value may start with a 16-byte header (the 6-byte `cardcf`
 * image, 6 bytes of padding, a u32 length) which is stripped when it is consistent.
 */
import type { ServiceCacheProbe } from '../doctor.js';
import { HRESULT, hresultHex, hresultName } from '../constants.js';
import { WinError } from '../errors.js';
import { koffi } from './structs.js';

/** LONG WINAPI SCardReadCacheW(SCARDCONTEXT, UUID*, DWORD FreshnessCounter, LPWSTR LookupName, PBYTE Data, DWORD* DataLen) [RC]. */
const READ_CACHE_ARGS = ['uintptr_t', 'uint8_t *', 'uint32_t', 'str16', 'uint8_t *', koffi.inout(koffi.pointer('uint32_t'))];
export const SCardReadCacheW_t = koffi.proto('__stdcall', 'SCardReadCacheW_t', 'int32_t', READ_CACHE_ARGS);

const SCARD_SCOPE_USER = 0;
/** RDP redirection caps an item at 64 KiB [RDPESC]; the service's own per-item default is far smaller [DEC, unofficial]. */
const MAX_ITEM = 65_536;

type ReadCacheW = (ctx: number | bigint, uuid: Uint8Array, freshness: number, name: string, data: Uint8Array, len: number[]) => number;

/** Strips the [BLOG] header when its length field matches what follows it. */
export function cachePayload(value: Uint8Array): Uint8Array {
  if (value.length >= 16) {
    const declared = new DataView(value.buffer, value.byteOffset, value.byteLength).getUint32(12, true);
    if (declared === value.length - 16) return value.slice(16);
  }
  return value;
}

/** A probe over a SCardReadCacheW of the prototype above (the real one, or a stand-in with the same ABI). */
export function probeOver(readCacheW: ReadCacheW, context: number | bigint, source: string): ServiceCacheProbe {
  return {
    source,
    // The split the Minidriver spec gives the two counters [FSR]; which counter keys which item
    // is not documented (docs/sources.md#open-questions).
    freshness: (kind, cf) => (kind === 'files' ? cf.filesFreshness : cf.containersFreshness),
    async read(cardId, freshness, name) {
      if (cardId.length !== 16) throw new WinError(HRESULT.E_INVALIDARG, 'SCardReadCacheW', 'a card GUID is 16 bytes');
      const data = new Uint8Array(MAX_ITEM);
      const len = [data.length];
      const status = readCacheW(context, cardId.slice(), freshness >>> 0, name, data, len) >>> 0;
      if (status === HRESULT.SCARD_W_CACHE_ITEM_NOT_FOUND || status === HRESULT.SCARD_W_CACHE_ITEM_STALE) return undefined;
      if (status !== 0) throw new WinError(status, 'SCardReadCacheW', name);
      return cachePayload(data.slice(0, Math.min(len[0]!, data.length)));
    },
  };
}

/** The real Smart Card service's cache, or a probe that says why it cannot be read. */
export async function openServiceCacheProbe(): Promise<ServiceCacheProbe> {
  const source = 'SCardReadCacheW (the Smart Card service)';
  const unavailable = (why: string): ServiceCacheProbe => ({ source, unavailable: why, freshness: () => 0, read: async () => undefined });
  let winscard: ReturnType<typeof koffi.load>;
  try {
    winscard = koffi.load('winscard.dll');
  } catch (e) {
    return unavailable(`winscard.dll cannot be loaded: ${(e as Error).message}`);
  }
  let readCacheW: ReadCacheW;
  try {
    readCacheW = winscard.func('__stdcall', 'SCardReadCacheW', 'int32_t', READ_CACHE_ARGS) as ReadCacheW;
  } catch {
    return unavailable('this winscard.dll has no SCardReadCacheW (Wine 8 has none)');
  }
  const establish = winscard.func('__stdcall', 'SCardEstablishContext', 'int32_t', ['uint32_t', 'void *', 'void *', koffi.out(koffi.pointer('uintptr_t'))]) as (s: number, a: null, b: null, out: (number | bigint)[]) => number;
  const ctx: (number | bigint)[] = [0];
  const status = establish(SCARD_SCOPE_USER, null, null, ctx) >>> 0;
  if (status !== 0) return unavailable(`SCardEstablishContext failed: ${hresultName(status) ?? 'error'} (${hresultHex(status)})`);
  return probeOver(readCacheW, ctx[0]!, source);
}
