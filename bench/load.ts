// `npm run bench load`: APDUs and bytes of install and ls, cold and warm cache, next to their
// lower bounds, over the in-memory transport (APDU counts do not depend on the transport; the same
// counts through pcscd + vpcd: `npm run bench pcsc` and test/pcsc/card-api.test.ts). Each row
// twice: on a card that announces extended-length APDUs, and on one that takes short APDUs only.
// Then the PIV rows (bench/piv-load.ts): install into 9A and list cold and warm, next to OpenSC's
// piv-tool and pkcs15-tool counted at the card through pcscd + vpcd (`-- --opensc`, which starts
// a private pcscd: run it as `flock /tmp/cardlink-pcsc.lock npm run bench load -- --opensc`).
import { MemoryCardCache, MinidriverCard, type CardCache } from '../src/card/index.js';
import { GidsCard } from '../src/gids/emulator/index.js';
import { GidsSession } from '../src/gids/host/session.js';
import { encodeCertificateFile, serializeCmapfile, parseCmapfile } from '../src/minidriver/index.js';
import { encodeTlv } from '../src/gids/protocol/tlv.js';
import { MemoryTransport } from '../src/transport/memory.js';
import { RecordingTransport } from '../src/transport/recorder.js';
import { EmbeddedCa } from '../src/service/ca/embedded.js';
import { printPivRows } from './piv-load.js';

const PIN = '123456';
const ADMIN = Buffer.alloc(24, 1);
/** What the emulator announces when made with extended lengths (src/gids/emulator/constants.ts). */
const EXTENDED_DATA = 4096;

async function open(emulator: GidsCard, cache: CardCache) {
  emulator.reset();
  const transport = new RecordingTransport(new MemoryTransport(emulator));
  const card = await MinidriverCard.open(transport, { cache });
  return { card, transport };
}

interface Cost {
  apdus: number;
  bytes: number;
}

/** Fewest APDUs to send `payload` bytes of command data, and their total size (header + Lc). */
function send(payload: number, extended: boolean): Cost {
  if (extended && payload > 255) {
    const apdus = Math.ceil(payload / EXTENDED_DATA);
    return { apdus, bytes: payload + apdus * 7 };
  }
  const apdus = Math.max(1, Math.ceil(payload / 255));
  return { apdus, bytes: payload + apdus * 5 };
}

/** Fewest APDUs to read `payloadBack` bytes with a 10-byte GET DATA. */
function read(payloadBack: number, extended: boolean): Cost {
  if (extended) return { apdus: 1, bytes: 10 + (payloadBack > 256 ? 3 : 0) + payloadBack + 2 };
  return { apdus: 1 + Math.max(0, Math.ceil((payloadBack - 256) / 256)), bytes: 10 + payloadBack + 2 };
}

function add(...c: Cost[]): Cost {
  return c.reduce((a, b) => ({ apdus: a.apdus + b.apdus, bytes: a.bytes + b.bytes }), { apdus: 0, bytes: 0 });
}

interface Row {
  operation: string;
  apdus: number;
  bytes: number;
  bound: Cost;
  limit?: number;
}

async function installRows(ca: EmbeddedCa, extended: boolean): Promise<Row[]> {
  const rows: Row[] = [];
  const mode = extended ? 'extended' : 'short';
  for (const sans of [0, 150]) {
    const emulator = GidsCard.blank({ extendedLength: extended });
    const init = await MinidriverCard.initialize(new MemoryTransport(emulator), { pin: PIN, adminKey: ADMIN });
    await init.verifyPin(PIN);
    const a = await init.createContainer('first', { bits: 2048 });
    const b = await init.createContainer('second', { keySpec: 'sig', bits: 2048 });
    const der = await ca.issueFor(a.publicKey, { subject: 'CN=bench', dnsNames: Array.from({ length: sans }, (_, i) => `h${i}.bench.example.com`) });
    const derB = await ca.issueFor(b.publicKey, { subject: 'CN=bench sig', dnsNames: Array.from({ length: sans }, (_, i) => `h${i}.bench.example.com`) });
    const stored = encodeCertificateFile(der);
    const label = `${der.length} B cert`;
    const base = emulator.toImage();

    for (const warmth of ['cold', 'warm', 'cardlink wrote last'] as const) {
      const emu = GidsCard.fromImage(base);
      const cache = new MemoryCardCache();
      if (warmth === 'warm') {
        // Another command filled the cache by reading: ls and the public keys.
        const w = await open(emu, cache);
        for (const c of await w.card.containers()) await w.card.publicKey(c.index);
      } else if (warmth === 'cardlink wrote last') {
        // cardlink's own install into the other container left the write mark in this cache.
        const w = await open(emu, cache);
        await w.card.verifyPin(PIN);
        await w.card.installCertificate(derB);
      }
      const s = await open(emu, cache);
      await s.card.verifyPin(PIN);
      s.transport.clear();
      const before = parseCmapfile(await s.card.readFile('mscp/cmapfile'));
      s.transport.clear();
      await s.card.installCertificate(der);
      const measured = { apdus: s.transport.count, bytes: s.transport.bytesSent + s.transport.bytesReceived };
      const table = await new GidsSession(s.transport).masterTable(); // after the measurement
      // Lower bound: the cardcf update, the file table with its new record, the compressed
      // certificate, and cmapfile only if its bytes had to change.
      const after = parseCmapfile(await s.card.readFile('mscp/cmapfile'));
      const cmapChanged = Buffer.compare(serializeCmapfile(before), serializeCmapfile(after)) !== 0;
      const bound = add(
        send(encodeTlv(0xdf22, new Uint8Array(6)).length, extended),
        send(encodeTlv(0xdf1f, new Uint8Array(1 + 28 * table.length)).length, extended),
        send(encodeTlv(0xdf24, stored).length, extended),
        ...(cmapChanged ? [send(encodeTlv(0xdf23, serializeCmapfile(after)).length, extended)] : []),
      );
      const limit = sans === 0 && warmth !== 'cardlink wrote last' ? (warmth === 'cold' ? (extended ? 10 : 12) : extended ? 8 : 10) : undefined;
      rows.push({ operation: `install ${label}, ${warmth}, ${mode}`, ...measured, bound, ...(limit ? { limit } : {}) });
    }
  }
  return rows;
}

async function lsRows(extended: boolean): Promise<Row[]> {
  const mode = extended ? 'extended' : 'short';
  const emulator = GidsCard.blank({ extendedLength: extended });
  const init = await MinidriverCard.initialize(new MemoryTransport(emulator), { pin: PIN, adminKey: ADMIN });
  await init.verifyPin(PIN);
  for (let i = 0; i < 3; i++) await init.createContainer(`container-${i}`, { bits: 1024 });
  const cache = new MemoryCardCache();
  const cold = await open(emulator, cache);
  await cold.card.containers();
  const warm = await open(emulator, cache);
  await warm.card.containers();
  const selectB = { apdus: 1, bytes: 5 + 9 + 1 + 2 };
  const idAndCf = add(read(3 + 16, false), read(3 + 6, false));
  const table = await new GidsSession(new MemoryTransport(emulator)).masterTable(); // not through `warm`: its count is the measurement
  const coldBound = add(selectB, idAndCf, read(4 + 1 + 28 * table.length, false), read(3 + 86 * 3, extended));
  return [
    { operation: `ls, 3 containers, cold, ${mode}`, apdus: cold.transport.count, bytes: cold.transport.bytesSent + cold.transport.bytesReceived, bound: coldBound },
    { operation: `ls, 3 containers, warm, ${mode}`, apdus: warm.transport.count, bytes: warm.transport.bytesSent + warm.transport.bytesReceived, bound: add(selectB, idAndCf), limit: 3 },
  ];
}

async function main(): Promise<void> {
  const ca = await EmbeddedCa.inMemory();
  const rows: Row[] = [];
  for (const extended of [true, false]) rows.push(...(await installRows(ca, extended)));
  for (const extended of [true, false]) rows.push(...(await lsRows(extended)));

  const w = Math.max(...rows.map((r) => r.operation.length));
  console.log(`| ${'operation'.padEnd(w)} | APDUs | bound | target | bytes  | bound  |`);
  console.log(`|${'-'.repeat(w + 2)}|-------|-------|--------|--------|--------|`);
  for (const r of rows) {
    const target = r.limit === undefined ? '' : `≤ ${r.limit}${r.apdus <= r.limit ? '' : ' MISSED'}`;
    console.log(
      `| ${r.operation.padEnd(w)} | ${String(r.apdus).padStart(5)} | ${String(r.bound.apdus).padStart(5)} | ${target.padStart(6)} | ${String(r.bytes).padStart(6)} | ${String(r.bound.bytes).padStart(6)} |`,
    );
  }
  console.log('\nbound = fewest APDUs (and their bytes) that can carry what must be read or written, in the mode of the row:');
  console.log('install: the cardcf update, the file table record, the compressed certificate, cmapfile when it changes;');
  console.log('ls: SELECT + cardid + cardcf (warm), plus the file table and cmapfile (cold).');
  console.log('extended = the card announces extended-length APDUs in its FCI (7F66); short = it does not (chaining).');
  console.log('warm = another command read the card into the cache; cardlink wrote last = the cache holds the write mark of');
  console.log("cardlink's own previous install (the table and cmapfile are then trusted; the table is re-read before a new record).");
  console.log('target = issue 18 acceptance for the 800-byte certificate and warm ls.');
  await printPivRows(ca, process.argv.includes('--opensc'));
}

await main();
