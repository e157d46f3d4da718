import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryCardCache, MinidriverCard, type CardCache } from '../../src/card/index.js';
import { GidsCard } from '../../src/gids/emulator/index.js';
import { GidsSession } from '../../src/gids/host/session.js';
import { DO, EF } from '../../src/gids/protocol/constants.js';
import { bumpCardCf, parseCardCf, serializeCardCf } from '../../src/minidriver/index.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { RecordingTransport } from '../../src/transport/recorder.js';
import type { Transport } from '../../src/transport/transport.js';

export const TEST_PIN = '123456';
/** The admin key GidsApplet's tests and Microsoft's docs use. */
export const TEST_ADMIN_KEY = Buffer.from('010203040506070801020304050607080102030405060708', 'hex');

export interface TestCard {
  emulator: GidsCard;
  transport: RecordingTransport;
  card: MinidriverCard;
  cache: CardCache;
}

/** An initialised emulated card over the in-memory transport, with an APDU recorder in between. */
export async function initialisedCard(options: { serial?: Uint8Array; cache?: CardCache; extendedLength?: boolean } = {}): Promise<TestCard> {
  const emulator = GidsCard.blank({ extendedLength: options.extendedLength === true });
  const transport = new RecordingTransport(new MemoryTransport(emulator));
  const cache = options.cache ?? new MemoryCardCache();
  const card = await MinidriverCard.initialize(transport, { pin: TEST_PIN, adminKey: TEST_ADMIN_KEY, ...(options.serial ? { serial: options.serial } : {}), cache });
  return { emulator, transport, card, cache };
}

/** A new session on the same emulated card (as another process would open it). */
export async function reopen(t: { emulator: GidsCard }, cache: CardCache = new MemoryCardCache()): Promise<TestCard> {
  t.emulator.reset();
  const transport = new RecordingTransport(new MemoryTransport(t.emulator));
  const card = await MinidriverCard.open(transport, { cache });
  return { emulator: t.emulator, transport, card, cache };
}

export function tempDir(prefix = 'cardlink-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Raw GIDS over a test card's connection: what another tool on the same card does (no counters
 * moved, no cache), to set up the faults cardlink must find.
 */
export function gidsSession(t: { transport: Transport }): GidsSession {
  return new GidsSession(t.transport);
}

/** Moves cardcf counters as another writer would (PIN verified on the connection). */
export async function moveCounters(t: { transport: Transport }, which: { files?: boolean; containers?: boolean }): Promise<void> {
  const s = gidsSession(t);
  const cf = parseCardCf((await s.getData(EF.EveryoneReadUserWriteAc, DO.CARDCF))!);
  await s.putData(EF.EveryoneReadUserWriteAc, DO.CARDCF, serializeCardCf(bumpCardCf(cf, which)));
}
