import { closeSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { ServiceError } from '../errors.js';
import { UniqueViolationError, type Db, type DbTx, type Row } from './db.js';

type Statement = Database.Statement<unknown[], Row>;

/**
 * SQLite through better-sqlite3. The driver is synchronous and has one connection, so async
 * transactions are serialized by a promise chain: without it two requests awaiting inside their
 * transactions would interleave their statements on the shared connection. Other processes on
 * the same file are kept out by BEGIN IMMEDIATE and the busy timeout.
 */
export class SqliteDb implements Db {
  readonly dialect = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Statement>();
  private tail: Promise<unknown> = Promise.resolve();

  constructor(path: string) {
    try {
      // SQLite gives the -wal and -shm files the database file's mode: owner-only for all three.
      if (path !== ':memory:') closeSync(openSync(path, 'a', 0o600));
      this.db = new Database(path);
      this.db.pragma('journal_mode = WAL');
      // FULL: a commit is on disk before the client hears "accepted", even across a power cut.
      this.db.pragma('synchronous = FULL');
      this.db.pragma('busy_timeout = 10000');
      this.db.pragma('foreign_keys = ON');
    } catch (err) {
      throw new ServiceError('STORAGE', `cannot open the SQLite database ${path}: ${(err as Error).message}`, { cause: err });
    }
  }

  query<T extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return this.serialized(async () => this.run<T>(sql, params));
  }

  transaction<T>(fn: (tx: DbTx) => Promise<T>): Promise<T> {
    return this.serialized(async () => {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const result = await fn({ query: async <R extends Row>(sql: string, params: readonly unknown[] = []) => this.run<R>(sql, params) });
        this.db.exec('COMMIT');
        return result;
      } catch (err) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw err;
      }
    });
  }

  async close(): Promise<void> {
    await this.tail.catch(() => undefined);
    this.db.close();
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }

  private run<T extends Row>(sql: string, params: readonly unknown[]): T[] {
    let stmt = this.statements.get(sql);
    try {
      if (!stmt) {
        stmt = this.db.prepare<unknown[], Row>(sql);
        this.statements.set(sql, stmt);
      }
      if (stmt.reader) return stmt.all(...params) as T[];
      stmt.run(...params);
      return [];
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
        throw new UniqueViolationError((err as Error).message, { cause: err });
      }
      throw new ServiceError('STORAGE', `SQLite: ${(err as Error).message}`, { cause: err });
    }
  }
}
