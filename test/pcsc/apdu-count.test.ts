/**
 * Issue 18's APDU counts, counted at the card behind the real pcscd + vpcd: install of an
 * 800-byte certificate cold and warm, on a card that announces extended lengths and on one that
 * takes short APDUs only, and a warm ls. The same numbers `npm run bench load` prints in memory.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MemoryCardCache, MinidriverCard, type CardCache } from '../../src/card/index.js';
import { GidsCard, type CardImageData } from '../../src/gids/emulator/index.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { openPcscTransport } from '../../src/transport/pcsc.js';
import { RecordingTransport } from '../../src/transport/recorder.js';
import { TEST_ADMIN_KEY, TEST_PIN } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';
import { SLOTS, insertCard, lockPcsc } from './harness.js';

/** Two RSA-2048 containers and an ~800-byte certificate for the first, prepared in memory. */
async function prepared(extendedLength: boolean): Promise<{ image: CardImageData; der: Uint8Array }> {
  const emulator = GidsCard.blank({ extendedLength });
  const card = await MinidriverCard.initialize(new MemoryTransport(emulator), { pin: TEST_PIN, adminKey: TEST_ADMIN_KEY });
  await card.verifyPin(TEST_PIN);
  const first = await card.createContainer('first', { bits: 2048 });
  await card.createContainer('second', { keySpec: 'sig', bits: 2048 });
  const der = await issueOurs(first.publicKey, 0, 'CN=bench');
  assert.ok(der.length > 700 && der.length < 900);
  return { image: emulator.toImage(), der };
}

/** Runs `fn` on a copy of `image` in a vpcd slot; returns the APDUs the card saw during `measure`. */
async function throughReader(
  image: CardImageData,
  cache: CardCache,
  fill: (card: MinidriverCard) => Promise<unknown>,
  measure: (card: MinidriverCard) => Promise<unknown>,
): Promise<{ apdus: number; longest: number }> {
  const inserted = await insertCard(GidsCard.fromImage(image), SLOTS[0]);
  try {
    const t1 = await openPcscTransport({ reader: SLOTS[0].reader });
    try {
      await fill(await MinidriverCard.open(t1, { cache }));
    } finally {
      await t1.close();
    }
    const t2 = new RecordingTransport(await openPcscTransport({ reader: SLOTS[0].reader }));
    try {
      const card = await MinidriverCard.open(t2, { cache });
      await card.verifyPin(TEST_PIN);
      const before = inserted.attachment.counters.apdus;
      await measure(card);
      // The longest command the reader carried and the card answered 9000.
      const ok = t2.records.filter((r) => r.response.at(-2) === 0x90 && r.response.at(-1) === 0x00);
      return { apdus: inserted.attachment.counters.apdus - before, longest: Math.max(...ok.map((r) => r.command.length)) };
    } finally {
      await t2.close();
    }
  } finally {
    await inserted.eject();
  }
}

describe('APDU counts through pcscd + vpcd', () => {
  let release: () => void;
  before(async () => {
    release = await lockPcsc();
  });
  after(() => release());

  for (const extendedLength of [true, false]) {
    const [coldMax, warmMax] = extendedLength ? [10, 8] : [12, 10];
    it(`install of an 800-byte certificate, ${extendedLength ? 'extended length' : 'short APDUs only'}: ≤ ${coldMax} cold, ≤ ${warmMax} warm; warm ls 3`, async () => {
      const { image, der } = await prepared(extendedLength);
      const nothing = async (): Promise<void> => {};
      const cold = await throughReader(image, new MemoryCardCache(), nothing, (c) => c.installCertificate(der));
      const cache = new MemoryCardCache();
      const warm = await throughReader(
        image,
        cache,
        async (c) => {
          for (const x of await c.containers()) await c.publicKey(x.index);
        },
        (c) => c.installCertificate(der),
      );
      assert.ok(cold.apdus <= coldMax, `cold install: ${cold.apdus} APDUs at the card`);
      assert.ok(warm.apdus <= warmMax, `warm install: ${warm.apdus} APDUs at the card`);
      assert.ok(warm.apdus < cold.apdus);
      // The certificate crossed the reader in one extended APDU, or in short ones only.
      if (extendedLength) assert.ok(cold.longest > 700, `longest APDU ${cold.longest} bytes`);
      else assert.ok(cold.longest <= 261, `longest APDU ${cold.longest} bytes`);
      // ls on an unchanged card with a warm cache: SELECT, cardid, cardcf (the SELECT is part of open).
      const lsCache = new MemoryCardCache();
      const inserted = await insertCard(GidsCard.fromImage(image), SLOTS[0]);
      try {
        for (const round of [0, 1]) {
          const before = inserted.attachment.counters.apdus;
          const t = await openPcscTransport({ reader: SLOTS[0].reader });
          try {
            await (await MinidriverCard.open(t, { cache: lsCache })).containers();
          } finally {
            await t.close();
          }
          if (round === 1) assert.equal(inserted.attachment.counters.apdus - before, 3, 'warm ls');
        }
      } finally {
        await inserted.eject();
      }
    });
  }
});
