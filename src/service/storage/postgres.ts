import pg from 'pg';
import { ServiceError } from '../errors.js';
import { UniqueViolationError, type Db, type DbTx, type Row } from './db.js';

const INT8_OID = 20;

// Millisecond timestamps and counters fit in a double; pg would otherwise hand BIGINT back as text.
const types = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format),
} as pg.CustomTypesConfig;

/** `?` placeholders to PostgreSQL's `$n` (our SQL never has a literal question mark). */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

function translate(err: unknown): Error {
  const code = (err as { code?: string }).code;
  if (code === '23505') return new UniqueViolationError((err as Error).message, { cause: err });
  if (err instanceof ServiceError) return err;
  return new ServiceError('STORAGE', `PostgreSQL: ${(err as Error).message}`, { cause: err });
}

// Deadlocks and serialization failures are the database asking us to try again.
const RETRYABLE = new Set(['40001', '40P01']);

export class PostgresDb implements Db {
  readonly dialect = 'postgres' as const;
  private readonly pool: pg.Pool;

  constructor(url: string, options: { max?: number } = {}) {
    this.pool = new pg.Pool({ connectionString: url, max: options.max ?? 10, types });
    // An idle client losing its server must not crash the process; the next query reconnects.
    this.pool.on('error', () => undefined);
  }

  async query<T extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    try {
      const res = await this.pool.query(numbered(sql), params as unknown[]);
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
              return (await client.query(numbered(sql), params as unknown[])).rows as R[];
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
