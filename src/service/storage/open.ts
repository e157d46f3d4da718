import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ServiceError } from '../errors.js';
import type { Db } from './db.js';
import { PostgresDb } from './postgres.js';
import { SqliteDb } from './sqlite.js';
import { Storage } from './storage.js';

/**
 * `--db` URL to a database: `postgres://` / `postgresql://` for PostgreSQL, `sqlite:PATH` for a
 * given SQLite file, and nothing for `cardlink.db` in the data directory.
 */
export function openDb(url: string | undefined, dataDir: string): Db {
  if (url === undefined || url === '') {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    return new SqliteDb(join(dataDir, 'cardlink.db'));
  }
  if (/^postgres(ql)?:\/\//.test(url)) return new PostgresDb(url);
  if (url.startsWith('sqlite:')) return new SqliteDb(url.slice('sqlite:'.length));
  throw new ServiceError('CONFIG', `--db ${url}: use postgres://user@host:port/db or sqlite:/path/file.db`);
}

export async function openStorage(url: string | undefined, dataDir: string, now: number): Promise<Storage> {
  const db = openDb(url, dataDir);
  try {
    return await Storage.open(db, now);
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
}
