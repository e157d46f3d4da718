import { availableParallelism } from 'node:os';
import pg from 'pg';
import { ServiceError } from '../errors.js';
import { UniqueViolationError, type Db, type DbTx, type Row } from './db.js';

const INT8_OID = 20;

// Millisecond timestamps and counters fit in a double; pg would otherwise hand BIGINT back as text.
const types = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format),
} as pg.CustomTypesConfig;

/**
 * A statement as pg sends it: `?` placeholders turned into PostgreSQL's `$n` (our SQL never has a
 * literal question mark), and a name, so that each connection parses and plans it once and then
 * only binds values (a named prepared statement, PostgreSQL's extended query protocol,
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY). The SQL is
 * the service's own, a fixed set, so the cache is bounded.
 */
const prepared = new Map<string, { name: string; text: string }>();
function statement(sql: string, params: readonly unknown[]): { name?: string; text: string; values: unknown[] } {
  // Schema changes (migrations) run once and unnamed.
  if (!/^\s*(SELECT|INSERT|UPDATE|DELETE)\b/i.test(sql)) {
    let n = 0;
    return { text: sql.replace(/\?/g, () => `$${++n}`), values: params as unknown[] };
  }
  let s = prepared.get(sql);
  if (!s) {
    let n = 0;
    s = { name: `cardlink_${prepared.size + 1}`, text: sql.replace(/\?/g, () => `$${++n}`) };
    prepared.set(sql, s);
  }
  return { ...s, values: params as unknown[] };
}

function translate(err: unknown): Error {
  const code = (err as { code?: string }).code;
  if (code === '23505') return new UniqueViolationError((err as Error).message, { cause: err });
  if (err instanceof ServiceError) return err;
  return new ServiceError('STORAGE', `PostgreSQL: ${(err as Error).message}`, { cause: err });
}

// Deadlocks and serialization failures are the database asking us to try again.
const RETRYABLE = new Set(['40001', '40P01']);

/**
 * The pool's size: 2 × cores, the PostgreSQL wiki's starting point ("Number Of Database
 * Connections", docs/sources.md: (core count × 2) + effective spindle count, the latter 0 while
 * the active data fits in RAM). Connections beyond what the cores can run only queue inside the
 * server and stretch the tail: on this 2-core machine `npm run bench serve` at concurrency 64 gave
 * a p99 of 224–235 ms with 4 connections, 246–247 ms with 5 and 237–271 ms with 10 (the old
 * default), at the same rate.
 */
export function defaultPoolSize(): number {
  return 2 * availableParallelism();
}

/**
 * PostgreSQL through a pool of connections. Durability is the server's: every connection runs
 * with `synchronous_commit = on` whatever the server or role default says, so a commit (and so
 * any answer given after it) is on disk before the server confirms it, and commits that arrive
 * together from the pool's connections share one WAL flush, PostgreSQL's own group commit
 * (https://www.postgresql.org/docs/current/runtime-config-wal.html).
 */
export class PostgresDb implements Db {
  readonly dialect = 'postgres' as const;
  private readonly pool: pg.Pool;

  constructor(url: string, options: { max?: number } = {}) {
    this.pool = new pg.Pool({ connectionString: url, max: options.max ?? defaultPoolSize(), types, options: '-c synchronous_commit=on' });
    // An idle client losing its server must not crash the process; the next query reconnects.
    this.pool.on('error', () => undefined);
  }

  async query<T extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    try {
      const res = await this.pool.query(statement(sql, params));
      return res.rows as T[];
    } catch (err) {
      throw translate(err);
    }
  }

  async transaction<T>(fn: (tx: DbTx) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (err) {
        throw translate(err);
      }
      try {
        await client.query('BEGIN');
        const result = await fn({
          query: async <R extends Row>(sql: string, params: readonly unknown[] = []) => {
            try {
              return (await client.query(statement(sql, params))).rows as R[];
            } catch (err) {
              throw Object.assign(translate(err), { pgCode: (err as { code?: string }).code });
            }
          },
        });
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        const pgCode = (err as { pgCode?: string }).pgCode;
        if (pgCode !== undefined && RETRYABLE.has(pgCode) && attempt < 5) continue;
        throw translate(err);
      } finally {
        client.release();
      }
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
