// `npm run bench serve`: enrollments per second through the whole service (HTTPS, token check,
// CSR verification, storage, CA signature, audit) at concurrency 1, 16 and 64, on SQLite and on
// PostgreSQL, for an RSA-2048 and a P-256 CA key, next to the raw sign+verify rate of the same CA
// key measured in the same run, and the service's share of that ceiling. The service runs in its
// own process (`cardlink serve`), as in production; the load comes from this one.
//
//   npm run bench serve                          the whole table
//   npm run bench serve -- --backend sqlite --ca rsa-2048
//   npm run bench serve -- --profile DIR         also a CPU profile of each service process
//                                                (node --cpu-prof), summarised by package
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ServiceClient } from '../src/service/client.js';
import { CA_PASSPHRASE, freshPgDatabase, login, makeToken, pool, softKey, spawnServe, tempDir } from '../test/service/helpers.js';
import { summariseProfiles } from './cpu-profile.js';

const { values: args } = parseArgs({
  options: { backend: { type: 'string', multiple: true }, ca: { type: 'string', multiple: true }, profile: { type: 'string' } },
});
const BACKENDS = args.backend ?? ['sqlite', 'postgres'];
const CA_KEYS = args.ca ?? ['rsa-2048', 'p-256'];
const LEVELS = [1, 16, 64];
const PER_LEVEL = { 1: 150, 16: 500, 64: 1280 } as Record<number, number>;
const MAX_SECONDS = 20;
// Every service process this bench starts writes its profile there when it exits.
const profileDir = args.profile === undefined ? undefined : resolve(args.profile);
if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true });

interface Row {
  backend: string;
  caKey: string;
  concurrency: number;
  enrollments: number;
  perSecond: number;
  p50ms: number;
  p99ms: number;
  rawCaPerSecond?: number;
  ofCeiling?: string;
}

/** Sign + verify of a certificate-sized message with the CA's own key, on one core, for 2 s. */
function caRate(dataDir: string): number {
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
  return runs / (Number(process.hrtime.bigint() - start) / 1e9);
}

async function measure(backend: string, caKey: string, dbUrl: string | undefined): Promise<Row[]> {
  const dataDir = tempDir('cardlink-bench-serve-');
  const server = await spawnServe(dataDir, dbUrl, ['--ca-key', caKey], profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`]);
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
      rows.push({ backend, caKey, concurrency, enrollments: latencies.length, perSecond: Math.round((latencies.length / seconds) * 10) / 10, p50ms: at(0.5), p99ms: at(0.99) });
      client.close();
    }
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
  }
  // The ceiling: the same key, measured right after its service stopped (so they do not share the CPU).
  const raw = caRate(dataDir);
  for (const r of rows) {
    r.rawCaPerSecond = Math.round(raw);
    r.ofCeiling = `${((r.perSecond / raw) * 100).toFixed(1)}%`;
  }
  return rows;
}


const rows: Row[] = [];
for (const backend of BACKENDS) {
  if (backend === 'sqlite') {
    for (const caKey of CA_KEYS) rows.push(...(await measure('sqlite', caKey, undefined)));
    continue;
  }
  // The bench starts the private test PostgreSQL when it is not running; then it stops it again.
  const pgWasRunning =
    process.env.CARDLINK_TEST_PG_URL !== undefined ||
    spawnSync('bash', ['-c', 'f=${CARDLINK_PG_DIR:-/tmp/cardlink-pg}/data/postmaster.pid; [ -f "$f" ] && kill -0 "$(head -1 "$f")"']).status === 0;
  try {
    for (const caKey of CA_KEYS) {
      const pg = await freshPgDatabase();
      try {
        rows.push(...(await measure('postgres', caKey, pg.url)));
      } finally {
        await pg.drop();
      }
    }
  } finally {
    if (!pgWasRunning) spawnSync('bash', ['scripts/setup-postgres.sh', 'stop'], { stdio: 'inherit' });
  }
}

console.log('enrollments through `cardlink serve` (HTTPS, EC P-256 requests, embedded CA, automatic approval);');
console.log('rawCaPerSecond: the CA key alone, sign + verify of 900 bytes with SHA-256, same run; ofCeiling: perSecond / rawCaPerSecond');
console.table(rows);
if (profileDir !== undefined) summariseProfiles(profileDir);
