import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryCardCache, MinidriverCard, type CardCache } from '../../src/card/index.js';
import { GidsCard } from '../../src/gids/emulator/index.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { RecordingTransport } from '../../src/transport/recorder.js';

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
export async function initialisedCard(options: { serial?: Uint8Array; cache?: CardCache } = {}): Promise<TestCard> {
  const emulator = GidsCard.blank();
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
