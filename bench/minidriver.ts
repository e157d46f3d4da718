// `npm run bench minidriver`: cost of the minidriver formats, and what a zip bomb costs the
// certificate decoder (inflation is capped by the file's LE16 length field).
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createDeflate } from 'node:zlib';
import {
  CardFormatError,
  INITIAL_MASTER_FILE_TABLE,
  certificateFileName,
  decodeCertificateFile,
  encodeCertificateFile,
  parseCmapfile,
  parseMasterFileTable,
  serializeCmapfile,
  serializeMasterFileTable,
  type ContainerRecord,
} from '../src/minidriver/index.js';

interface Row {
  case: string;
  'µs/op': string;
  'MB/s': string;
}

function time(name: string, bytes: number, fn: () => unknown): Row {
  for (let i = 0; i < 200; i++) fn();
  let ops = 0;
  const start = performance.now();
  while (performance.now() - start < 500) {
    fn();
    ops++;
  }
  const perOpMs = (performance.now() - start) / ops;
  return { case: name, 'µs/op': (perOpMs * 1000).toFixed(1), 'MB/s': (bytes / 1e6 / (perOpMs / 1000)).toFixed(1) };
}

/** A zlib stream of `total` zero bytes, built in chunks so the bench itself stays small. */
async function zeroStream(total: number): Promise<Uint8Array> {
  const deflate = createDeflate({ level: 9 });
  const parts: Buffer[] = [];
  deflate.on('data', (c: Buffer) => parts.push(c));
  const done = new Promise((resolve) => deflate.on('end', resolve));
  const chunk = Buffer.alloc(1 << 20);
  for (let written = 0; written < total; written += chunk.length) {
    if (!deflate.write(chunk)) await new Promise((resolve) => deflate.once('drain', resolve));
  }
  deflate.end();
  await done;
  return new Uint8Array(Buffer.concat(parts));
}

const der = new Uint8Array(readFileSync(new URL('../test/minidriver/fixtures/stored-certificate.der', import.meta.url)));
const certFile = encodeCertificateFile(der);
const cmap: ContainerRecord[] = Array.from({ length: 126 }, (_, i) => ({
  name: `lr-${i.toString(16).padStart(8, '0')}-7133-4284-895d-557e2261`,
  flags: i === 0 ? 3 : 1,
  sigKeyBits: 0,
  kxKeyBits: 2048,
}));
const cmapBytes = serializeCmapfile(cmap);
const table = serializeMasterFileTable([
  ...INITIAL_MASTER_FILE_TABLE,
  ...Array.from({ length: 126 }, (_, i) => ({ directory: 'mscp', filename: certificateFileName(i, 'kx'), doTag: 0xdf24 + i, efid: 0xa010 })),
]);

const rows: Row[] = [
  time(`encode certificate (${der.length} B DER)`, der.length, () => encodeCertificateFile(der)),
  time(`decode certificate (${certFile.length} B file)`, certFile.length, () => decodeCertificateFile(certFile)),
  time(`parse cmapfile (126 records, ${cmapBytes.length} B)`, cmapBytes.length, () => parseCmapfile(cmapBytes)),
  time('serialize cmapfile (126 records)', cmapBytes.length, () => serializeCmapfile(cmap)),
  time(`parse master file table (131 records, ${table.length} B)`, table.length, () => parseMasterFileTable(table)),
];
console.table(rows);

const GiB = 1 << 30;
const stream = await zeroStream(GiB);
const bomb = new Uint8Array(4 + stream.length);
bomb.set([0x01, 0x00, 0xff, 0xff]);
bomb.set(stream, 4);
global.gc?.();
const before = process.memoryUsage();
const start = performance.now();
let outcome = 'accepted (unexpected)';
try {
  decodeCertificateFile(bomb);
} catch (err) {
  outcome = err instanceof CardFormatError ? 'CardFormatError' : `other error: ${String(err)}`;
}
const ms = performance.now() - start;
const after = process.memoryUsage();
console.table([
  {
    case: `zip bomb: 1 GiB of zeros in ${(bomb.length / 1e6).toFixed(2)} MB, length field 65535`,
    outcome,
    ms: ms.toFixed(2),
    'RSS growth (MB)': ((after.rss - before.rss) / 1e6).toFixed(1),
    'external growth (MB)': ((after.external + after.arrayBuffers - before.external - before.arrayBuffers) / 1e6).toFixed(1),
  },
]);
