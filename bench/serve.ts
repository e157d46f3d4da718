// `npm run bench serve`: enrollments per second through the whole service (HTTPS, token check,
// CSR verification, storage, CA signature, audit) at concurrency 1, 16 and 64, on SQLite and on
// PostgreSQL, next to the raw sign+verify rate of the CA key measured in the same run. The service
// runs in its own process (`cardlink serve`), as in production; the load comes from this one.
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ServiceClient } from '../src/service/client.js';
import { CA_PASSPHRASE, freshPgDatabase, login, makeToken, pool, softKey, spawnServe, tempDir } from '../test/service/helpers.js';

const LEVELS = [1, 16, 64];
const PER_LEVEL = { 1: 150, 16: 500, 64: 640 } as Record<number, number>;
const MAX_SECONDS = 20;

interface Row {
  backend: string;
  concurrency: number;
  enrollments: number;
  perSecond: number;
  p50ms: number;
  p99ms: number;
}

function caRate(dataDir: string): { perSecond: number; runs: number } {
  const key = createPrivateKey({ key: readFileSync(join(dataDir, 'ca', 'key.pem'), 'utf8'), passphrase: CA_PASSPHRASE });
  const pub = createPublicKey(key);
  const tbs = Buffer.alloc(900, 7);
  const start = process.hrtime.bigint();
  let runs = 0;
  while (Number(process.hrtime.bigint() - start) < 2e9) {
    const sig = sign('sha256', tbs, key);
    if (!verify('sha256', tbs, pub, sig)) throw new Error('CA signature did not verify');
    runs++;
  }
  return { runs, perSecond: runs / (Number(process.hrtime.bigint() - start) / 1e9) };
}

async function measure(backend: string, dbUrl: string | undefined): Promise<{ rows: Row[]; dataDir: string }> {
  const dataDir = tempDir('cardlink-bench-serve-');
  const server = await spawnServe(dataDir, dbUrl);
  const ca = readFileSync(join(dataDir, 'ca', 'cert.pem'), 'utf8');
  const rows: Row[] = [];
  try {
    for (const concurrency of LEVELS) {
      const client = new ServiceClient({ server: server.url, ca, maxSockets: concurrency });
      const op = await login(client);
      const n = PER_LEVEL[concurrency]!;
      const users = await pool(Array.from({ length: n }, (_, i) => i), 16, async (i) => ({
        token: await makeToken(client, op, `b${concurrency}-${i}@example.com`, 'smartcard-logon-auto'),
        csr: (await softKey()).csrPem,
      }));
      // Warm the connections so the table measures enrollments, not TLS handshakes.
      await pool(Array.from({ length: concurrency }, (_, i) => i), concurrency, () => client.health());
      const latencies: number[] = [];
      const deadline = Date.now() + MAX_SECONDS * 1000;
      const start = process.hrtime.bigint();
      await pool(users, concurrency, async (u) => {
        if (Date.now() > deadline) return;
        const t = process.hrtime.bigint();
        const res = await client.submit(u.token, { csr: u.csr });
        if (res.value.state !== 'issued') throw new Error(`enrollment answered ${res.value.state}`);
        latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
      });
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      latencies.sort((a, b) => a - b);
      const at = (q: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]! * 10) / 10;
      rows.push({ backend, concurrency, enrollments: latencies.length, perSecond: Math.round((latencies.length / seconds) * 10) / 10, p50ms: at(0.5), p99ms: at(0.99) });
      client.close();
    }
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
  }
  return { rows, dataDir };
}

const sqlite = await measure('sqlite', undefined);
// The bench starts the private test PostgreSQL when it is not running; then it stops it again.
const pgWasRunning =
  process.env.CARDLINK_TEST_PG_URL !== undefined ||
  spawnSync('bash', ['-c', 'f=${CARDLINK_PG_DIR:-/tmp/cardlink-pg}/data/postmaster.pid; [ -f "$f" ] && kill -0 "$(head -1 "$f")"']).status === 0;
const pg = await freshPgDatabase();
let postgres: Row[];
try {
  postgres = (await measure('postgres', pg.url)).rows;
} finally {
  await pg.drop();
  if (!pgWasRunning) spawnSync('bash', ['scripts/setup-postgres.sh', 'stop'], { stdio: 'inherit' });
}
const raw = caRate(sqlite.dataDir);

console.log('enrollments through `cardlink serve` (HTTPS, EC P-256 requests, RSA-2048 embedded CA, automatic approval)');
console.table([...sqlite.rows, ...postgres]);
console.log('the CA key alone, same machine and run (RSA-2048 PKCS#1 v1.5 SHA-256 sign + verify of 900 bytes)');
console.table([{ operation: 'CA sign+verify', runs: raw.runs, perSecond: Math.round(raw.perSecond) }]);
