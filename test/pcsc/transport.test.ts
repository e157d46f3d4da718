/**
 * The PC/SC transport against the real pcscd + vpcd, with small scripted cards attached in this
 * process (the GIDS emulator's own suites live in the interop and card-API files).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import { PivCard } from '../../src/piv/emulator/index.js';
import { TransportError } from '../../src/transport/transport.js';
import { tempDir } from '../helpers/card.js';
import { cli } from '../helpers/cli.js';
import { listPcscReaders, openPcscTransport, waitForPcscCard, type PcscTransport } from '../../src/transport/pcsc.js';
import type { VpcdCard } from '../../src/vpcd/attach.js';
import { SLOTS, STATE_DIR, insertCard, lockPcsc, requirePcscd, runTool } from './harness.js';

const GIDS_SELECT_PREFIX = [0x00, 0xa4, 0x04, 0x00, 0x09, 0xa0, 0x00, 0x00, 0x03, 0x97, 0x42, 0x54, 0x46, 0x59];

interface ScriptedCard extends VpcdCard {
  resets: number;
  seen: number;
}

/** Answers the GIDS SELECT (or not), echoes lengths for INS B0, and 6A82 to everything else. */
function scriptedCard(gids: boolean, onApdu?: (apdu: Uint8Array) => void): ScriptedCard {
  const card: ScriptedCard = {
    atr: new Uint8Array([0x3b, 0x80, 0x80, 0x01, 0x01]),
    resets: 0,
    seen: 0,
    process(apdu) {
      card.seen++;
      onApdu?.(apdu);
      if (gids && GIDS_SELECT_PREFIX.every((b, i) => apdu[i] === b)) return new Uint8Array([0x90, 0x00]);
      if (apdu[1] === 0xb0) {
        const size = (apdu[2]! << 8) | apdu[3]!;
        return new Uint8Array([...new Uint8Array(size).fill(0xa5), 0x90, 0x00]);
      }
      return new Uint8Array([0x6a, 0x82]);
    },
    reset() {
      card.resets++;
    },
  };
  return card;
}

const READ = (size: number): Uint8Array => new Uint8Array([0x00, 0xb0, size >> 8, size & 0xff, 0x00]);

async function rejectsWith(p: Promise<unknown>, code: string): Promise<TransportError> {
  let caught: unknown;
  await p.then(
    () => assert.fail(`expected ${code}, got success`),
    (e: unknown) => (caught = e),
  );
  assert.ok(caught instanceof TransportError, `expected TransportError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

describe('PC/SC transport through pcscd + vpcd', () => {
  let release: () => void = () => {};
  before(async () => {
    release = await lockPcsc();
  });
  after(() => release());

  it('lists both vpcd readers and sees a card come and go', async () => {
    const before = await listPcscReaders();
    assert.deepEqual(before.map((r) => r.name), SLOTS.map((s) => s.reader));
    assert.ok(before.every((r) => r.card === 'empty'));
    const inserted = await insertCard(scriptedCard(true));
    const during = await listPcscReaders();
    assert.equal(during[0]!.card, 'present');
    assert.deepEqual(during[0]!.atr, new Uint8Array([0x3b, 0x80, 0x80, 0x01, 0x01]));
    await inserted.eject();
    assert.equal((await listPcscReaders())[0]!.card, 'empty');
  });

  it('waitForPcscCard times out with TIMEOUT when nothing changes', async () => {
    const start = Date.now();
    await rejectsWith(waitForPcscCard(SLOTS[1].reader, 'present', { timeoutMs: 300 }), 'TIMEOUT');
    assert.ok(Date.now() - start < 3000);
  });

  it('without a reader name, picks the only reader whose card answers the GIDS SELECT', async () => {
    const other = await insertCard(scriptedCard(false), SLOTS[0]);
    const gids = await insertCard(scriptedCard(true), SLOTS[1]);
    try {
      const t = await openPcscTransport();
      assert.equal(t.name, SLOTS[1].reader);
      await t.close();
    } finally {
      await other.eject();
      await gids.eject();
    }
  });

  it('says which readers it saw when none holds a GIDS or PIV card, and when several do', async () => {
    const err = await rejectsWith(openPcscTransport(), 'NO_CARD');
    assert.match(err.message, /Virtual PCD 00 00' \(no card\)/);
    const plain = await insertCard(scriptedCard(false), SLOTS[0]);
    const err2 = await rejectsWith(openPcscTransport(), 'NO_CARD');
    assert.match(err2.message, /Virtual PCD 00 00' \(card is neither GIDS nor PIV\)/);
    assert.match(err2.message, /Virtual PCD 00 01' \(no card\)/);
    await plain.eject();
    const a = await insertCard(scriptedCard(true), SLOTS[0]);
    const b = await insertCard(scriptedCard(true), SLOTS[1]);
    try {
      const err3 = await rejectsWith(openPcscTransport(), 'AMBIGUOUS_READER');
      assert.match(err3.message, /--reader/);
    } finally {
      await a.eject();
      await b.eject();
    }
  });

  it('without a reader name, a PIV card is found too (GIDS probed first, then PIV); a GIDS and a PIV card are two candidates', async () => {
    const seen: string[] = [];
    const card = PivCard.blank();
    const process = card.process.bind(card);
    card.process = (apdu) => {
      seen.push(Buffer.from(apdu.subarray(0, 4)).toString('hex'));
      return process(apdu);
    };
    let other: { eject(): Promise<void> } | undefined = await insertCard(scriptedCard(false), SLOTS[0]);
    const piv = await insertCard(card, SLOTS[1]);
    try {
      const t = await openPcscTransport();
      assert.equal(t.name, SLOTS[1].reader);
      await t.close();
      assert.deepEqual(seen.slice(0, 2), ['00a40400', '00a40400'], 'the GIDS SELECT first, then the PIV one');
      // The CLI with neither --image nor --reader reaches the PIV card and detects its application.
      const ls = await cli(['card', 'ls', '--json'], { CARDLINK_HOME: join(tempDir('cardlink-pcsc-piv-'), 'home') });
      assert.equal(ls.code, 0, ls.stderr);
      assert.deepEqual(JSON.parse(ls.stdout), { ok: true, app: 'piv', containers: [] });
      await other.eject();
      other = undefined;
      const gids = await insertCard(scriptedCard(true), SLOTS[0]);
      try {
        const err = await rejectsWith(openPcscTransport(), 'AMBIGUOUS_READER');
        assert.match(err.message, /several readers hold a GIDS or PIV card: 'Virtual PCD 00 00' \(GIDS\), 'Virtual PCD 00 01' \(PIV\)/);
      } finally {
        await gids.eject();
      }
    } finally {
      await other?.eject();
      await piv.eject();
    }
  });

  it('a named reader: unknown name lists the readers; an empty reader is NO_CARD', async () => {
    const err = await rejectsWith(openPcscTransport({ reader: 'No Such Reader' }), 'NO_READER');
    assert.match(err.message, /readers seen: 'Virtual PCD 00 00'/);
    await rejectsWith(openPcscTransport({ reader: SLOTS[0].reader, busyTimeoutMs: 200 }), 'NO_CARD');
    await rejectsWith(openPcscTransport({ reader: 'Virtual PCD' }), 'AMBIGUOUS_READER');
  });

  it('carries responses up to 65000 bytes, and any card by a unique part of its name', async () => {
    const inserted = await insertCard(scriptedCard(false));
    const t = await openPcscTransport({ reader: 'PCD 00 00' });
    try {
      for (const size of [0, 255, 256, 257, 4096, 65000]) {
        const r = await t.transmit(READ(size));
        assert.equal(r.length, size + 2, `response of ${size} bytes`);
        assert.deepEqual(r.subarray(size), new Uint8Array([0x90, 0x00]));
      }
    } finally {
      await t.close();
      await inserted.eject();
    }
  });

  it('exclusive by default: a second connection gets SHARING_VIOLATION after its wait, shared ones coexist', async () => {
    const inserted = await insertCard(scriptedCard(true));
    try {
      const first = await openPcscTransport({ reader: SLOTS[0].reader });
      const start = Date.now();
      await rejectsWith(openPcscTransport({ reader: SLOTS[0].reader, busyTimeoutMs: 400 }), 'SHARING_VIOLATION');
      assert.ok(Date.now() - start >= 400, 'retried for the busy wait');
      // OpenSC sees the same thing from another process.
      const tool = await runTool('opensc-tool', ['-r', '0', '-c', 'default', '-s', '00A4040000'], { timeoutMs: 20_000 });
      assert.notEqual(tool.code, 0);
      await first.close();

      const s1 = await openPcscTransport({ reader: SLOTS[0].reader, share: 'shared' });
      const s2 = await openPcscTransport({ reader: SLOTS[0].reader, share: 'shared' });
      assert.deepEqual(await s1.transmit(READ(1)), new Uint8Array([0xa5, 0x90, 0x00]));
      assert.deepEqual(await s2.transmit(READ(1)), new Uint8Array([0xa5, 0x90, 0x00]));
      await s1.close();
      await s2.close();
    } finally {
      await inserted.eject();
    }
  });

  it('waits for a busy card and gets it once the holder lets go', async () => {
    const inserted = await insertCard(scriptedCard(true));
    try {
      const holder = await openPcscTransport({ reader: SLOTS[0].reader });
      setTimeout(() => void holder.close(), 300);
      const t = await openPcscTransport({ reader: SLOTS[0].reader, busyTimeoutMs: 5000 });
      assert.deepEqual(await t.transmit(READ(2)), new Uint8Array([0xa5, 0xa5, 0x90, 0x00]));
      await t.close();
    } finally {
      await inserted.eject();
    }
  });

  it('APDUs from one process go one at a time, in order, even when sent concurrently', async () => {
    const order: number[] = [];
    const inserted = await insertCard(scriptedCard(false, (apdu) => order.push(apdu[3]!)));
    const t = await openPcscTransport({ reader: SLOTS[0].reader });
    try {
      const sizes = Array.from({ length: 20 }, (_, i) => i + 1);
      const responses = await Promise.all(sizes.map((n) => t.transmit(READ(n))));
      assert.deepEqual(responses.map((r) => r.length - 2), sizes);
      assert.deepEqual(order, sizes);
    } finally {
      await t.close();
      await inserted.eject();
    }
  });

  it('reset() power-cycles through the reader: the card clears its volatile state', async () => {
    const card = scriptedCard(true);
    const inserted = await insertCard(card);
    const t = await openPcscTransport({ reader: SLOTS[0].reader });
    try {
      const before = card.resets;
      await t.reset();
      // The reset reaches the card ahead of any later APDU (one ordered channel from the relay).
      assert.deepEqual(await t.transmit(READ(1)), new Uint8Array([0xa5, 0x90, 0x00]));
      assert.equal(card.resets, before + 1);
      assert.ok(inserted.events.some((e) => e.type === 'power' && e.state === 'reset'));
    } finally {
      await t.close();
      await inserted.eject();
    }
  });

  it('removal between APDUs and during one gives CARD_REMOVED, and re-insertion works without restarting', async () => {
    const hand: { pull?: () => void } = {};
    const card = scriptedCard(true, (apdu) => {
      if (apdu[1] === 0xdd) hand.pull?.();
    });
    const inserted = await insertCard(card);
    hand.pull = () => inserted.attachment.remove();
    const t = await openPcscTransport({ reader: SLOTS[0].reader });
    assert.equal((await t.transmit(READ(1))).length, 3);
    // The card leaves the reader while it holds the command: vpcd never gets an answer.
    const start = Date.now();
    const err = await rejectsWith(t.transmit(new Uint8Array([0x00, 0xdd, 0x00, 0x00])), 'CARD_REMOVED');
    assert.match(err.message, /removed from reader 'Virtual PCD 00 00'/);
    assert.ok(Date.now() - start < 5000, 'no hang');
    await rejectsWith(t.transmit(READ(1)), 'CARD_REMOVED');
    await t.close();

    inserted.attachment.insert();
    await waitForPcscCard(SLOTS[0].reader, 'present', { timeoutMs: 10_000 });
    const again = await openPcscTransport({ reader: SLOTS[0].reader });
    assert.equal((await again.transmit(READ(1))).length, 3);

    // Pulled between two APDUs of a held connection.
    inserted.attachment.remove();
    await waitForPcscCard(SLOTS[0].reader, 'empty', { timeoutMs: 10_000 });
    await rejectsWith(again.transmit(READ(1)), 'CARD_REMOVED');
    await again.close();
    inserted.attachment.insert();
    await waitForPcscCard(SLOTS[0].reader, 'present', { timeoutMs: 10_000 });
    const third: PcscTransport = await openPcscTransport({ reader: SLOTS[0].reader });
    assert.equal((await third.transmit(READ(1))).length, 3);
    await third.close();
    await inserted.eject();
  });

  it('a pcscd restart: NO_SERVICE while it is down, and the attached card comes back by itself', async () => {
    const inserted = await insertCard(scriptedCard(true));
    try {
      const pid = requirePcscd();
      process.kill(pid, 'SIGTERM');
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        try {
          process.kill(pid, 0);
        } catch {
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      await rejectsWith(openPcscTransport(), 'NO_SERVICE');
      await rejectsWith(listPcscReaders(), 'NO_SERVICE');
      const up = spawnSync('bash', ['scripts/pcsc-up.sh'], { env: { ...process.env, PCSC_STATE_DIR: STATE_DIR }, encoding: 'utf8' });
      assert.equal(up.status, 0, up.stderr);
      const info = await waitForPcscCard(SLOTS[0].reader, 'present', { timeoutMs: 10_000 });
      assert.equal(info.card, 'present');
      const t = await openPcscTransport();
      assert.equal(t.name, SLOTS[0].reader);
      await t.close();
      assert.ok(inserted.attachment.counters.connects >= 2);
    } finally {
      await inserted.eject();
    }
  });
});
