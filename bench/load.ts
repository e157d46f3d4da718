// `npm run bench load`: APDUs and bytes of install and ls, cold and warm cache, next to their
// lower bounds, over the in-memory transport (APDU counts do not depend on the transport).
import { MemoryCardCache, MinidriverCard, type CardCache } from '../src/card/index.js';
import { GidsCard } from '../src/gids/emulator/index.js';
import { GidsSession } from '../src/gids/host/session.js';
import { encodeCertificateFile, serializeCmapfile, parseCmapfile } from '../src/minidriver/index.js';
import { encodeTlv } from '../src/gids/protocol/tlv.js';
import { MemoryTransport } from '../src/transport/memory.js';
import { RecordingTransport } from '../src/transport/recorder.js';
import { EmbeddedCa } from '../src/service/ca/embedded.js';

const PIN = '123456';
const ADMIN = Buffer.alloc(24, 1);

async function open(emulator: GidsCard, cache: CardCache) {
  emulator.reset();
  const transport = new RecordingTransport(new MemoryTransport(emulator));
  const card = await MinidriverCard.open(transport, { cache });
  return { card, transport };
}

/** Short APDUs needed to send `payload` bytes of command data, and their total size (header + Lc). */
function shortApdus(payload: number): { apdus: number; bytes: number } {
  const apdus = Math.max(1, Math.ceil(payload / 255));
  return { apdus, bytes: payload + apdus * 5 };
}

function add(a: { apdus: number; bytes: number }, b: { apdus: number; bytes: number }) {
  return { apdus: a.apdus + b.apdus, bytes: a.bytes + b.bytes };
}

interface Row {
  operation: string;
  apdus: number;
  bytes: number;
  boundApdus: number;
  boundBytes: number;
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const ca = await EmbeddedCa.inMemory();
  for (const sans of [0, 150]) {
    const emulator = GidsCard.blank();
    const init = await MinidriverCard.initialize(new MemoryTransport(emulator), { pin: PIN, adminKey: ADMIN });
    await init.verifyPin(PIN);
    const a = await init.createContainer('first', { bits: 2048 });
    await init.createContainer('second', { keySpec: 'sig', bits: 2048 });
    const der = await ca.issueFor(a.publicKey, { subject: 'CN=bench', dnsNames: Array.from({ length: sans }, (_, i) => `h${i}.bench.example.com`) });
    const stored = encodeCertificateFile(der);
    const label = `${der.length} B cert`;
    const base = emulator.toImage();

    for (const warm of [false, true]) {
      const emu = GidsCard.fromImage(base);
      const cache = new MemoryCardCache();
      if (warm) {
        const w = await open(emu, cache);
        for (const c of await w.card.containers()) await w.card.publicKey(c.index);
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
      let bound = shortApdus(encodeTlv(0xdf22, new Uint8Array(6)).length);
      bound = add(bound, shortApdus(encodeTlv(0xdf1f, new Uint8Array(1 + 28 * table.length)).length));
      bound = add(bound, shortApdus(encodeTlv(0xdf24, stored).length));
      if (cmapChanged) bound = add(bound, shortApdus(encodeTlv(0xdf23, serializeCmapfile(after)).length));
      rows.push({ operation: `install ${label}, ${warm ? 'warm' : 'cold'} cache`, ...measured, boundApdus: bound.apdus, boundBytes: bound.bytes });
    }
  }

  // ls: cold (nothing cached) and warm (cache proven fresh by cardcf).
  const emulator = GidsCard.blank();
  const init = await MinidriverCard.initialize(new MemoryTransport(emulator), { pin: PIN, adminKey: ADMIN });
  await init.verifyPin(PIN);
  for (let i = 0; i < 3; i++) await init.createContainer(`container-${i}`, { bits: 1024 });
  const cache = new MemoryCardCache();
  const cold = await open(emulator, cache);
  await cold.card.containers();
  const warm = await open(emulator, cache);
  await warm.card.containers();
  const read = (payloadBack: number) => ({ apdus: 1 + Math.max(0, Math.ceil((payloadBack - 256) / 256)), bytes: 10 + payloadBack + 2 });
  const selectB = { apdus: 1, bytes: 5 + 9 + 1 + 2 };
  const idAndCf = add(read(3 + 16), read(3 + 6));
  const table = await new GidsSession(new MemoryTransport(emulator)).masterTable(); // not through `warm`: its count is the measurement
  const coldBound = add(add(add(selectB, idAndCf), read(4 + 1 + 28 * table.length)), read(3 + 86 * 3));
  rows.push({ operation: 'ls, 3 containers, cold cache', apdus: cold.transport.count, bytes: cold.transport.bytesSent + cold.transport.bytesReceived, boundApdus: coldBound.apdus, boundBytes: coldBound.bytes });
  const warmBound = add(selectB, idAndCf);
  rows.push({ operation: 'ls, 3 containers, warm cache', apdus: warm.transport.count, bytes: warm.transport.bytesSent + warm.transport.bytesReceived, boundApdus: warmBound.apdus, boundBytes: warmBound.bytes });

  const w = Math.max(...rows.map((r) => r.operation.length));
  console.log(`| ${'operation'.padEnd(w)} | APDUs | bound | bytes  | bound  |`);
  console.log(`|${'-'.repeat(w + 2)}|-------|-------|--------|--------|`);
  for (const r of rows) {
    console.log(`| ${r.operation.padEnd(w)} | ${String(r.apdus).padStart(5)} | ${String(r.boundApdus).padStart(5)} | ${String(r.bytes).padStart(6)} | ${String(r.boundBytes).padStart(6)} |`);
  }
  console.log('\nbound = fewest short APDUs (and their bytes) that can carry what must be read or written:');
  console.log('install: the cardcf update, the file table record, the compressed certificate, cmapfile when it changes;');
  console.log('ls: SELECT + cardid + cardcf (warm), plus the file table and cmapfile (cold).');
}

await main();
