import { closeSync, openSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { syncDirectory } from '../../atomic-file.js';
import { ServiceError } from '../errors.js';
import { UniqueViolationError, type Db, type DbTx, type Row } from './db.js';

type Statement = Database.Statement<unknown[], Row>;

/** A finished operation of the open batch, told its outcome once the batch's commit is on disk. */
interface Waiter {
  settle(committed: boolean, failure?: unknown): void;
}

/**
 * SQLite through better-sqlite3, with group commit and the fsync off the event loop.
 *
 * The driver is synchronous and has one connection, so operations are serialized by a promise
 * chain: without it two requests awaiting inside their transactions would interleave their
 * statements on the shared connection. Operations that arrive together share one transaction:
 * the first opens a batch (BEGIN IMMEDIATE), each runs inside it under its own SAVEPOINT (so a
 * failing one is rolled back alone, https://www.sqlite.org/lang_savepoint.html), and a COMMIT
 * queued behind them ends the batch. Reads join the batch too, so no answer shows a row that
 * could still be lost.
 *
 * Durability is that of `synchronous = FULL`, with the sync moved: in WAL mode FULL means the WAL
 * is synced after every commit, NORMAL that it is synced only at checkpoints
 * (https://www.sqlite.org/pragma.html#pragma_synchronous, https://www.sqlite.org/wal.html). We
 * run NORMAL, so COMMIT only writes, and then fdatasync the WAL file ourselves on libuv's thread
 * pool; nobody hears an outcome before the sync that covers their commit has returned. So an
 * acknowledged operation survives SIGKILL and power loss, one sync serves a whole batch (and all
 * batches committed while the previous sync ran), and the event loop keeps serving requests
 * during the sync. Other processes on the same file are kept out by BEGIN IMMEDIATE and the
 * busy timeout; a batch holds the write lock for one event-loop turn.
 */
export class SqliteDb implements Db {
  readonly dialect = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Statement>();
  private tail: Promise<unknown> = Promise.resolve();
  /** The operations of the open batch, or undefined when no batch is open. */
  private batch: Waiter[] | undefined;
  private savepoints = 0;
  /** Whether the open batch wrote anything (only then does its commit need a sync). */
  private dirty = false;
  /** The WAL file, opened for syncing once it exists; undefined for a database without one. */
  private readonly walPath: string | undefined;
  private wal: Promise<FileHandle> | undefined;
  /** The sync running now, and the one queued behind it that every commit made meanwhile shares. */
  private syncing: Promise<void> | undefined;
  private queuedSync: Promise<void> | undefined;

  constructor(path: string) {
    try {
      // SQLite gives the -wal and -shm files the database file's mode: owner-only for all three.
      if (path !== ':memory:') closeSync(openSync(path, 'a', 0o600));
      this.db = new Database(path);
      const mode = this.db.pragma('journal_mode = WAL', { simple: true });
      // NORMAL plus our own sync of the WAL before any answer: see the class comment.
      this.db.pragma('synchronous = NORMAL');
      this.walPath = mode === 'wal' ? `${path}-wal` : undefined;
      this.db.pragma('busy_timeout = 10000');
      this.db.pragma('foreign_keys = ON');
    } catch (err) {
      throw new ServiceError('STORAGE', `cannot open the SQLite database ${path}: ${(err as Error).message}`, { cause: err });
    }
  }

  query<T extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return this.inBatch(async () => this.run<T>(sql, params));
  }

  transaction<T>(fn: (tx: DbTx) => Promise<T>): Promise<T> {
    return this.inBatch(async () => {
      const name = `op${++this.savepoints}`;
      this.db.exec(`SAVEPOINT ${name}`);
      try {
        const result = await fn({ query: async <R extends Row>(sql: string, params: readonly unknown[] = []) => this.run<R>(sql, params) });
        this.db.exec(`RELEASE ${name}`);
        return result;
      } catch (err) {
        // Some errors (a full disk, I/O) roll back the whole transaction: then the batch is gone.
        if (this.db.inTransaction) this.db.exec(`ROLLBACK TO ${name}; RELEASE ${name}`);
        throw err;
      }
    });
  }

  async close(): Promise<void> {
    // What ran is committed (and its callers answered) before the connection goes.
    await this.serialized(async () => this.commit()).catch(() => undefined);
    await this.tail.catch(() => undefined);
    await (this.queuedSync ?? this.syncing)?.catch(() => undefined);
    this.db.close();
    if (this.wal) await (await this.wal.catch(() => undefined))?.close().catch(() => undefined);
  }

  /**
   * Runs `op` in the open batch (opening one if needed) and resolves with its outcome once the
   * batch has committed; rejects when it failed or when the batch could not commit.
   */
  private inBatch<T>(op: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.serialized(async () => {
        if (this.batch === undefined) {
          try {
            this.open();
          } catch (err) {
            reject(new ServiceError('STORAGE', `SQLite: cannot begin a transaction: ${(err as Error).message}`, { cause: err }));
            return;
          }
        }
        const batch = this.batch!;
        let value: T;
        let failure: { err: unknown } | undefined;
        try {
          value = await op();
        } catch (err) {
          failure = { err };
        }
        if (!this.db.inTransaction) {
          // The batch was rolled back under us: nothing in it happened.
          this.batch = undefined;
          const lost = new ServiceError('STORAGE', 'SQLite rolled the transaction back', { cause: failure?.err });
          for (const w of batch) w.settle(false, lost);
          if (failure) reject(failure.err);
          else reject(lost);
          return;
        }
        batch.push({
          settle: (committed, lost) => {
            if (failure) reject(failure.err);
            else if (!committed) reject(lost);
            else resolve(value);
          },
        });
      });
    });
  }

  private open(): void {
    this.db.exec('BEGIN IMMEDIATE');
    this.batch = [];
    this.savepoints = 0;
    this.dirty = false;
    // Everything queued before this turn of the event loop ends joins the batch; then it commits.
    setImmediate(() => void this.serialized(async () => this.commit()));
  }

  private commit(): void {
    const batch = this.batch;
    if (batch === undefined) return;
    this.batch = undefined;
    try {
      if (this.db.inTransaction) this.db.exec('COMMIT');
    } catch (err) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      const lost = new ServiceError('STORAGE', `SQLite: cannot commit: ${(err as Error).message}`, { cause: err });
      for (const w of batch) w.settle(false, lost);
      return;
    }
    // A batch that only read still waits for the sync of what it may have read.
    const durable = this.dirty && this.walPath !== undefined ? this.sync() : (this.queuedSync ?? this.syncing ?? Promise.resolve());
    durable.then(
      () => {
        for (const w of batch) w.settle(true);
      },
      (err: unknown) => {
        const lost = new ServiceError('STORAGE', `SQLite: cannot sync the write-ahead log: ${(err as Error).message}`, { cause: err });
        for (const w of batch) w.settle(false, lost);
      },
    );
  }

  /** A sync of the WAL that starts after the latest commit: the running one's successor when one runs. */
  private sync(): Promise<void> {
    if (this.syncing === undefined) {
      this.syncing = this.syncWal().finally(() => {
        this.syncing = undefined;
      });
      return this.syncing;
    }
    this.queuedSync ??= this.syncing
      .catch(() => undefined)
      .then(() => {
        this.queuedSync = undefined;
        return this.sync();
      });
    return this.queuedSync;
  }

  private async syncWal(): Promise<void> {
    if (this.wal === undefined) {
      // The WAL exists from the first commit on and stays while this connection is open; its
      // directory entry is made durable once, as a new file's must be.
      this.wal = open(this.walPath!, 'r').then((handle) => {
        syncDirectory(dirname(this.walPath!));
        return handle;
      });
      this.wal.catch(() => {
        this.wal = undefined;
      });
    }
    await (await this.wal).datasync();
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
      if (!stmt.readonly) this.dirty = true;
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
