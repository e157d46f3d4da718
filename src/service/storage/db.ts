import { ServiceError } from '../errors.js';

export type Dialect = 'sqlite' | 'postgres';
export type Row = Record<string, unknown>;

/**
 * The few things the storage layer needs of a SQL database. SQL is written once with `?`
 * placeholders; timestamps are BIGINT milliseconds and binary values Buffers in both dialects.
 */
export interface DbTx {
  query<T extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<T[]>;
}

export interface Db extends DbTx {
  readonly dialect: Dialect;
  /** Runs `fn` in one transaction: all of it commits or none of it does. */
  transaction<T>(fn: (tx: DbTx) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** A uniqueness constraint refused a row: the thing already exists (or a racer made it first). */
export class UniqueViolationError extends ServiceError {
  constructor(detail: string, options?: { cause?: unknown }) {
    super('CONFLICT', `already exists: ${detail}`, options);
  }
}
