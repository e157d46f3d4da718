// Issue 18, point 3: fewer APDUs on the card. Extended lengths where the card announces them, no
// read-back unless asked, one cardid/cardcf read per operation, and the cached file table trusted
// for a write only when cardlink wrote the card last.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hex } from '../../src/bytes.js';
import { MemoryCardCache, MinidriverCard, type CardCache } from '../../src/card/index.js';
import { GidsCard } from '../../src/gids/emulator/index.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import type { RecordingTransport } from '../../src/transport/recorder.js';
import type { Transport } from '../../src/transport/transport.js';
import { TEST_PIN, initialisedCard, moveCounters, reopen } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';
import { seedLoad } from '../fixtures/seed-loader.js';

/** GET DATA (INS CB) of data object `doTag` in EF `efid`, short or extended. */
function isGetData(command: Uint8Array, efid: number, doTag: number): boolean {
  if (command[1] !== 0xcb || command[2] !== efid >> 8 || command[3] !== (efid & 0xff)) return false;
  const body = hex(command.subarray(4));
  return body.includes(`5C02${doTag.toString(16).toUpperCase()}`);
}

const reads = (t: RecordingTransport, efid: number, doTag: number): number => t.records.filter((r) => isGetData(r.command, efid, doTag)).length;
const CARDID = [0xa012, 0xdf20] as const;
const CARDCF = [0xa010, 0xdf22] as const;
const TABLE = [0xa000, 0xdf1f] as const;
const CMAPFILE = [0xa010, 0xdf23] as const;

/** Two RSA-2048 containers and an ~800-byte certificate for the first, as `npm run bench load` has. */
async function benchCard(extendedLength: boolean) {
  const t = await initialisedCard({ extendedLength });
  await t.card.verifyPin(TEST_PIN);
  const first = await t.card.createContainer('first', { bits: 2048 });
  const second = await t.card.createContainer('second', { keySpec: 'sig', bits: 2048 });
  const der = await issueOurs(first.publicKey, 0, 'CN=bench');
  assert.ok(der.length > 700 && der.length < 900, `an ~800-byte certificate (${der.length})`);
  return { ...t, first, second, der };
}

async function session(emulator: GidsCard, cache: CardCache) {
  const s = await reopen({ emulator }, cache);
  await s.card.verifyPin(TEST_PIN);
  s.transport.clear();
  return s;
}

for (const extendedLength of [true, false]) {
  const mode = extendedLength ? 'extended length' : 'short APDUs only';
  const [coldMax, warmMax] = extendedLength ? [10, 8] : [12, 10];

  test(`install of an 800-byte certificate (${mode}): at most ${coldMax} APDUs cold, ${warmMax} warm, and the certificate is on the card`, async () => {
    const cold = await benchCard(extendedLength);
    const c = await session(cold.emulator, new MemoryCardCache());
    const result = await c.card.installCertificate(cold.der);
    assert.ok(c.transport.count <= coldMax, `cold: ${c.transport.count} APDUs`);
    assert.equal(result.verified, false);

    const warm = await benchCard(extendedLength);
    const cache = new MemoryCardCache();
    const reader = await reopen(warm, cache); // another command filled the cache: ls, and the public keys
    for (const x of await reader.card.containers()) await reader.card.publicKey(x.index);
    const w = await session(warm.emulator, cache);
    await w.card.installCertificate(warm.der);
    assert.ok(w.transport.count <= warmMax, `warm: ${w.transport.count} APDUs`);
    assert.ok(w.transport.count < c.transport.count, 'the warm cache saves APDUs');

    for (const t of [cold, warm]) {
      const fresh = await reopen(t);
      assert.equal(hex((await fresh.card.readCertificate('first'))!), hex(t.der), 'the card holds the certificate');
      assert.deepEqual((await fresh.card.check()).findings, []);
    }

    // Long data goes as one extended APDU exactly when the card announced extended lengths.
    const extendedApdus = c.transport.records.filter((r) => r.command.length > 7 && r.command[4] === 0x00);
    const longest = Math.max(...c.transport.records.map((r) => r.command.length));
    if (extendedLength) {
      assert.ok(extendedApdus.length > 0 && longest > 700, `the certificate went in one APDU (longest ${longest} bytes)`);
    } else {
      assert.equal(extendedApdus.length, 0, 'no extended APDU to a card that did not announce them');
      assert.ok(longest <= 261, `short APDUs only (longest ${longest} bytes)`);
    }
  });

  test(`a card cardlink wrote last: its cached table and cmapfile are trusted for the next install (${mode})`, async () => {
    const t = await benchCard(extendedLength);
    const cache = new MemoryCardCache();
    const writer = await session(t.emulator, cache);
    await writer.card.installCertificate(t.der); // cardlink's own write: leaves the write mark

    // Replacing the certificate: neither the table nor cmapfile is read, nor the public keys.
    const renewed = await issueOurs(t.first.publicKey, 1, 'CN=bench renewed');
    const again = await session(t.emulator, cache);
    await again.card.installCertificate(renewed);
    assert.equal(reads(again.transport, ...TABLE), 0, 'file table from the cache');
    assert.equal(reads(again.transport, ...CMAPFILE), 0, 'cmapfile from the cache');
    assert.equal(reads(again.transport, ...CARDID) + reads(again.transport, ...CARDCF), 2, 'cardid and cardcf once each');
    assert.ok(again.transport.count <= (extendedLength ? 4 : 7), `replace: ${again.transport.count} APDUs`);
    assert.equal(hex((await (await reopen(t)).card.readCertificate('first'))!), hex(renewed));

    // A cache that only read the card (no write of ours since) reads both afresh.
    const readerCache = new MemoryCardCache();
    await (await reopen(t, readerCache)).card.containers();
    const third = await issueOurs(t.first.publicKey, 2, 'CN=bench third');
    const fromReader = await session(t.emulator, readerCache);
    await fromReader.card.installCertificate(third);
    assert.equal(reads(fromReader.transport, ...TABLE), 1, 'not written by us through this cache: the table is read');
    assert.equal(reads(fromReader.transport, ...CMAPFILE), 1, 'and cmapfile');

    // Another writer that moved cardcf after our write: read afresh again.
    const other = await reopen(t);
    await other.card.verifyPin(TEST_PIN);
    await moveCounters(other, { files: true });
    const afterOther = await session(t.emulator, cache);
    // A certificate newer than `third` (an older one would need --force, which is not what is measured here).
    const fourth = await issueOurs(t.first.publicKey, 3, 'CN=bench fourth');
    await afterOther.card.installCertificate(fourth);
    assert.equal(reads(afterOther.transport, ...TABLE), 1, 'counters moved by someone else: the table is read');
    assert.equal(reads(afterOther.transport, ...CMAPFILE), 1);
  });
}

test("after cardlink's write, the seed's loader adds a file without moving cardcf: cardlink's next new file reads the table first and loses nothing", async () => {
  const t = await benchCard(true);
  const third = await t.card.createContainer('third', { bits: 2048 });
  const cache = new MemoryCardCache();
  const writer = await session(t.emulator, cache);
  await writer.card.installCertificate(t.der); // mscp/kxc00, the write mark in `cache`

  // The seed's loader writes mscp/ksc01 for 'second' (a new file in the table), cardcf untouched.
  const loader = await reopen(t);
  await loader.card.verifyPin(TEST_PIN);
  const seedDer = await issueOurs(t.second.publicKey, 0, 'CN=seed way');
  const cfBefore = await loader.card.cardcf();
  assert.equal(await seedLoad(loader.transport, 'second', seedDer), 'mscp/ksc01');
  assert.deepEqual(await loader.card.cardcf(), cfBefore);

  // cardlink, same cache (the write mark still matches), adds mscp/kxc02: a new table record.
  const next = await session(t.emulator, cache);
  const r = await next.card.installCertificate(await issueOurs(third.publicKey, 0, 'CN=third'));
  assert.equal(r.file, 'mscp/kxc02');
  assert.equal(reads(next.transport, ...TABLE), 1, 'the table is read from the card before it is extended');

  const fresh = await reopen(t);
  const containers = await fresh.card.containers();
  assert.deepEqual(containers.map((c) => c.certificateFile), ['mscp/kxc00', 'mscp/ksc01', 'mscp/kxc02']);
  assert.equal(hex((await fresh.card.readCertificate('second'))!), hex(seedDer), "the seed's file survives");
  assert.deepEqual((await fresh.card.check()).findings, []);
});

test("check that finds files changed behind cardcf withdraws the trust: the next install reads the table again", async () => {
  const t = await benchCard(false);
  const cache = new MemoryCardCache();
  await (await session(t.emulator, cache)).card.installCertificate(t.der);
  const loader = await reopen(t);
  await loader.card.verifyPin(TEST_PIN);
  await seedLoad(loader.transport, 'second', await issueOurs(t.second.publicKey));
  const report = await (await reopen(t, cache)).card.check();
  assert.deepEqual(report.findings.map((f) => f.code), ['STALE_FILES_COUNTER']);
  const next = await session(t.emulator, cache);
  await next.card.installCertificate(await issueOurs(t.first.publicKey, 3));
  assert.equal(reads(next.transport, ...TABLE), 1);
  assert.equal(reads(next.transport, ...CMAPFILE), 1);
});

/** Passes everything through, but flips one byte inside the first PUT DATA into EF A010 longer than 200 bytes. */
class CorruptingTransport implements Transport {
  done = false;
  constructor(private readonly inner: Transport) {}
  get name(): string {
    return this.inner.name;
  }
  transmit(apdu: Uint8Array): Promise<Uint8Array> {
    if (!this.done && apdu[1] === 0xdb && apdu[2] === 0xa0 && apdu[3] === 0x10 && apdu.length > 200) {
      this.done = true;
      const bad = apdu.slice();
      bad[bad.length - 20]! ^= 0x01;
      return this.inner.transmit(bad);
    }
    return this.inner.transmit(apdu);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

test('install --verify reads the file back and compares; without it, no read-back (the 9000 is the proof)', async () => {
  for (const extendedLength of [true, false]) {
    const t = await benchCard(extendedLength);
    const plain = await session(GidsCard.fromImage(t.emulator.toImage()), new MemoryCardCache());
    await plain.card.installCertificate(t.der);
    const checked = await session(GidsCard.fromImage(t.emulator.toImage()), new MemoryCardCache());
    const result = await checked.card.installCertificate(t.der, { verify: true });
    assert.equal(result.verified, true);
    const certReads = (s: { transport: RecordingTransport }): number => s.transport.records.filter((r) => isGetData(r.command, 0xa010, 0xdf24)).length;
    assert.equal(certReads(plain), 0, 'no read-back by default');
    assert.equal(certReads(checked), 1, 'one read-back with verify');
    assert.ok(checked.transport.count > plain.transport.count);

    // A card that stores other bytes than it was sent: only the read-back can tell.
    for (const verify of [false, true]) {
      const emu = GidsCard.fromImage(t.emulator.toImage());
      emu.reset();
      const card = await MinidriverCard.open(new CorruptingTransport(new MemoryTransport(emu)));
      await card.verifyPin(TEST_PIN);
      if (verify) await assert.rejects(card.installCertificate(t.der, { verify }), { code: 'VERIFY_FAILED' });
      else await card.installCertificate(t.der, { verify });
    }
  }
});

test('card info and check read cardid and cardcf once each (check also cmapfile once)', async () => {
  const t = await benchCard(false);
  await t.card.installCertificate(t.der);
  const u = await reopen(t);
  u.transport.clear();
  const info = await u.card.info();
  assert.equal(info.containers.length, 2);
  assert.equal(hex(info.cardId), hex(await (await reopen(t)).card.cardId()));
  assert.deepEqual([reads(u.transport, ...CARDID), reads(u.transport, ...CARDCF)], [1, 1]);

  u.transport.clear();
  const report = await u.card.check();
  assert.deepEqual(report.findings, []);
  assert.deepEqual([reads(u.transport, ...CARDID), reads(u.transport, ...CARDCF), reads(u.transport, ...CMAPFILE)], [1, 1, 1]);
});

test('warm card ls stays at 3 APDUs on a card with extended lengths', async () => {
  const t = await benchCard(true);
  const cache = new MemoryCardCache();
  await (await reopen(t, cache)).card.containers();
  const warm = await reopen(t, cache);
  await warm.card.containers();
  assert.equal(warm.transport.count, 3);
});

test('CLI: card install --verify says it read the file back; without it, it does not claim to', async () => {
  const { cli } = await import('../helpers/cli.js');
  const { writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { createPublicKey } = await import('node:crypto');
  const { tempDir, TEST_ADMIN_KEY } = await import('../helpers/card.js');
  const dir = tempDir();
  const image = join(dir, 'card.json');
  const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) };
  assert.equal((await cli(['card', 'init', '--image', image], env)).code, 0);
  const gen = JSON.parse((await cli(['card', 'gen', '--image', image, '--container', 'alice', '--alg', 'rsa1024', '--json'], env)).stdout);
  const cert = join(dir, 'alice.der');
  writeFileSync(cert, await issueOurs(createPublicKey(gen.publicKey)));
  const plain = await cli(['card', 'install', cert, '--image', image, '--json'], env);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(JSON.parse(plain.stdout).verified, false);
  // A renewal for the same key: the same certificate again would be 'unchanged' (nothing written, nothing to read back).
  const renewal = join(dir, 'alice-renewed.der');
  writeFileSync(renewal, await issueOurs(createPublicKey(gen.publicKey)));
  const verified = await cli(['card', 'install', renewal, '--image', image, '--verify'], env);
  assert.equal(verified.code, 0, verified.stderr);
  assert.match(verified.stdout, /read back and compared/);
  const info = JSON.parse((await cli(['card', 'info', '--image', image, '--json'], env)).stdout);
  assert.deepEqual([info.containers, info.certificates], [1, 1]);
});

test('gen then install with the same cache (the agent\'s and the CLI\'s way): cmapfile from the cache, the table read once before its new record', async () => {
  const t = await initialisedCard();
  const cache = new MemoryCardCache();
  const s = await session(t.emulator, cache);
  const c = await s.card.createContainer('alice', { bits: 1024 });
  const next = await session(t.emulator, cache);
  await next.card.installCertificate(await issueOurs(c.publicKey));
  assert.equal(reads(next.transport, ...CMAPFILE), 0);
  assert.equal(reads(next.transport, ...TABLE), 1);
  assert.deepEqual((await (await reopen(t)).card.check()).findings, []);
});
