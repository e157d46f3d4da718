// `npm run bench pg-storage`: the PostgreSQL work of one automatic enrollment, without HTTP or
// the CA, one enrollment after another on one connection: round trips (each query a pg.Client
// sends, BEGIN and COMMIT included), the server's CPU (its backend process, from /proc) and this
// process's CPU and wall time per enrollment, split by step. It shows where the database part of
// `npm run bench serve`'s PostgreSQL rows goes; the CPU columns move with other work on the machine.
//
//   npm run bench pg-storage                 1,000 enrollments
//   npm run bench pg-storage -- --count 3000
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { newSerial } from '../src/service/ca/pki.js';
import { PostgresDb } from '../src/service/storage/postgres.js';
import { Storage } from '../src/service/storage/storage.js';
import { freshPgDatabase } from '../test/service/helpers.js';

const { values: args } = parseArgs({ options: { count: { type: 'string' } } });
const N = Number(args.count ?? 1000);

const pgWasRunning =
  process.env.CARDLINK_TEST_PG_URL !== undefined ||
  spawnSync('bash', ['-c', 'f=${CARDLINK_PG_DIR:-/tmp/cardlink-pg}/data/postmaster.pid; [ -f "$f" ] && kill -0 "$(head -1 "$f")"']).status === 0;
const database = await freshPgDatabase();
const storage = await Storage.open(new PostgresDb(database.url, { max: 1 }), Date.now());
try {
  await storage.ensureProfile({ name: 'auto', approval: 'automatic', validityDays: 365 }, 'bench', Date.now());
  const [backend] = await storage.db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  /** The server process's user + system CPU seconds (Linux /proc, in clock ticks of 1/100 s). */
  const serverCpu = (): number => {
    const fields = readFileSync(`/proc/${backend!.pid}/stat`, 'utf8').split(')').pop()!.trim().split(/\s+/);
    return (Number(fields[11]) + Number(fields[12])) / 100;
  };
  const now = Date.now();
  for (let i = 0; i < N; i++) {
    await storage.createToken({ id: `t${i}`, user: `u${i}@example.com`, profile: 'auto', createdBy: 'bench', createdAt: now, expiresAt: now + 3_600_000, usedAt: null, requestId: null }, `hash${i}`);
  }

  let roundTrips = 0;
  const query = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...a: unknown[]) {
    roundTrips++;
    return (query as (...a: unknown[]) => unknown).apply(this, a);
  } as typeof query;

  const steps = new Map<string, { roundTrips: number; serverCpu: number; ownCpu: number; wall: number }>();
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const [r0, c0, o0, w0] = [roundTrips, serverCpu(), process.cpuUsage(), process.hrtime.bigint()];
    const result = await fn();
    const own = process.cpuUsage(o0);
    const s = steps.get(name) ?? { roundTrips: 0, serverCpu: 0, ownCpu: 0, wall: 0 };
    s.roundTrips += roundTrips - r0;
    s.serverCpu += serverCpu() - c0;
    s.ownCpu += (own.user + own.system) / 1e6;
    s.wall += Number(process.hrtime.bigint() - w0) / 1e9;
    steps.set(name, s);
    return result;
  };
  // The storage calls EnrollmentService makes for a first submission with an unspent token.
  for (let i = 0; i < N; i++) {
    const id = randomUUID();
    const claim = { serial: newSerial(), notBefore: now, notAfter: now + 1000, leaseUntil: now + 30_000 };
    await step('token (authentication)', () => storage.tokenByHash(`hash${i}`));
    await step('profile', () => storage.getProfile('auto'));
    await step('submission with its claim', () =>
      storage.submitRequest(
        { id, kind: 'enroll', user: `u${i}@example.com`, profile: 'auto', csr: Buffer.alloc(330, 1), csrHash: `csr${i}`, keyHash: `key${i}`, subject: `CN=u${i}@example.com`, cardId: null, container: null, renews: null, state: 'approved', createdBy: `token:t${i}`, decidedBy: 'policy:auto' },
        now, { id: `t${i}` }, claim,
      ));
    await step('issued certificate', () =>
      storage.completeIssuance(id, { serial: claim.serial, requestId: id, subject: `CN=u${i}@example.com`, der: Buffer.alloc(900, 2), notBefore: now, notAfter: now + 1000, issuedAt: now }, 'ca:bench'));
  }
  pg.Client.prototype.query = query;

  const per = (v: number, unit = 1e3): number => Math.round((v / N) * unit * 1000) / 1000;
  const rows = [...steps].map(([name, s]) => ({ step: name, roundTrips: per(s.roundTrips, 1), serverCpuMs: per(s.serverCpu), ownCpuMs: per(s.ownCpu), wallMs: per(s.wall) }));
  const total = rows.reduce((t, r) => ({ roundTrips: t.roundTrips + r.roundTrips, serverCpuMs: t.serverCpuMs + r.serverCpuMs, ownCpuMs: t.ownCpuMs + r.ownCpuMs, wallMs: t.wallMs + r.wallMs }), { roundTrips: 0, serverCpuMs: 0, ownCpuMs: 0, wallMs: 0 });
  rows.push({ step: 'one enrollment', ...Object.fromEntries(Object.entries(total).map(([k, v]) => [k, Math.round(v * 1000) / 1000])) } as (typeof rows)[number]);
  console.log(`PostgreSQL work per automatic enrollment, ${N} enrollments one after another on one connection (server CPU in 10 ms ticks, averaged):`);
  console.table(rows);
} finally {
  await storage.close();
  await database.drop();
  if (!pgWasRunning) spawnSync('bash', ['scripts/setup-postgres.sh', 'stop'], { stdio: 'inherit' });
}
