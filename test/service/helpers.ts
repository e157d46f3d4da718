import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { collectMessage, ServiceClient } from '../../src/service/client.js';
import { startService, type Clock, type RunningService, type ServiceConfig } from '../../src/service/index.js';
import { x509 } from '../../src/x509.js';

export const CA_PASSPHRASE = 'test-ca-passphrase';
export const OPERATOR = { username: 'admin', password: 'correct horse battery staple' };

const made: string[] = [];
export function tempDir(prefix = 'cardlink-service-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}
process.on('exit', () => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

let baseUrl: string | undefined;
/** The local test PostgreSQL: started by scripts/setup-postgres.sh unless CARDLINK_TEST_PG_URL names one. */
export function pgBaseUrl(): string {
  baseUrl ??= process.env.CARDLINK_TEST_PG_URL ?? execFileSync('bash', ['scripts/setup-postgres.sh'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n').pop()!;
  return baseUrl;
}

/** A new empty database on the test server, dropped by the returned function. */
export async function freshPgDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const base = pgBaseUrl();
  const name = `cardlink_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name} TEMPLATE template0`);
  await admin.end();
  const url = base.replace(/\/[^/]*$/, `/${name}`);
  return {
    url,
    drop: async () => {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export interface Backend {
  name: 'sqlite' | 'postgres';
  /** A database URL for a fresh database (undefined: SQLite in the data directory). */
  open(): Promise<{ dbUrl: string | undefined; cleanup(): Promise<void> }>;
}

export const BACKENDS: Backend[] = [
  { name: 'sqlite', open: async () => ({ dbUrl: undefined, cleanup: async () => undefined }) },
  {
    name: 'postgres',
    open: async () => {
      const db = await freshPgDatabase();
      return { dbUrl: db.url, cleanup: db.drop };
    },
  },
];

export interface TestService {
  svc: RunningService;
  client: ServiceClient;
  dataDir: string;
  close(): Promise<void>;
}

export async function startTestService(
  backend: Backend,
  o: { clock?: Clock; retryAfterSeconds?: number; dataDir?: string; limits?: ServiceConfig['limits']; loginThrottle?: ServiceConfig['loginThrottle'] } = {},
): Promise<TestService> {
  const { dbUrl, cleanup } = await backend.open();
  const dataDir = o.dataDir ?? tempDir();
  const svc = await startService({
    dataDir,
    port: 0,
    passphrase: CA_PASSPHRASE,
    operator: OPERATOR,
    sweepIntervalMs: 0,
    ...(dbUrl ? { dbUrl } : {}),
    ...(o.clock ? { clock: o.clock } : {}),
    retryAfterSeconds: o.retryAfterSeconds ?? 7,
    ...(o.limits ? { limits: o.limits } : {}),
    ...(o.loginThrottle ? { loginThrottle: o.loginThrottle } : {}),
  });
  const client = new ServiceClient({ server: svc.url, ca: svc.caCertPem, maxSockets: 16 });
  return {
    svc,
    client,
    dataDir,
    close: async () => {
      client.close();
      await svc.close();
      await cleanup();
    },
  };
}

export async function login(client: ServiceClient, who = OPERATOR): Promise<string> {
  return (await client.login(who)).token;
}

export async function makeToken(client: ServiceClient, bearer: string, user: string, profile = 'smartcard-logon', ttlSeconds?: number): Promise<string> {
  return (await client.createToken(bearer, { user, profile, ...(ttlSeconds ? { ttlSeconds } : {}) })).token;
}

export interface SoftKey {
  keys: webcrypto.CryptoKeyPair;
  csrPem: string;
  csrDer: Uint8Array;
}

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;

/** A software key and its PKCS#10 request: stands in for a card where the card is not the point. */
export async function softKey(subject = 'CN=someone'): Promise<SoftKey> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: subject, keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
  return { keys, csrPem: csr.toString('pem'), csrDer: new Uint8Array(csr.rawData) };
}

/** A software key's private half as PEM, for a TLS client (EST re-enrollment). */
export async function pkcs8Pem(key: SoftKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key.keys.privateKey));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`;
}

/** A renewal request by a new key, optionally carrying a card binding (protocol.ts renewalBinding). */
export async function renewalCsr(user: string, binding?: string): Promise<SoftKey> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${user}`, keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    ...(binding ? { attributes: [new x509.ChallengePasswordAttribute(binding)] } : {}),
  });
  return { keys, csrPem: csr.toString('pem'), csrDer: new Uint8Array(csr.rawData) };
}

/** What an agent sends to prove it holds the key of a container. */
export async function proofFor(key: SoftKey, nonce: string, cardId: string, container: string): Promise<{ container: string; signature: string }> {
  const sig = await webcrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key.keys.privateKey, collectMessage(nonce, cardId, container));
  return { container, signature: Buffer.from(sig).toString('base64') };
}

export function randomCardId(): string {
  return randomBytes(16).toString('hex');
}

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  /** The plain-HTTP revocation listener, when serve was given --revocation-port. */
  revocationUrl?: string;
  /** Resolves when the process has exited. */
  exited: Promise<number | null>;
}

/** `cardlink serve` in its own process, on a free loopback port; resolves once it listens. */
export async function spawnServe(dataDir: string, dbUrl: string | undefined, extra: string[] = [], nodeArgs: string[] = []): Promise<ServeProcess> {
  const args = [...nodeArgs, '--import', 'tsx', 'test/service/fixtures/cli-entry.ts', 'serve', '--data', dataDir, '--listen', '127.0.0.1:0', '--json', ...(dbUrl ? ['--db', dbUrl] : []), ...extra];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, CARDLINK_CA_PASSPHRASE: CA_PASSPHRASE, CARDLINK_OPERATOR_PASSWORD: OPERATOR.password },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const started = await new Promise<{ url: string; revocationUrl?: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start in 60 s: ${err}`)), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{"ok":true'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as { url: string; revocationUrl?: string });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code}) before listening: ${out} ${err}`));
    });
  });
  return { child, url: started.url, ...(started.revocationUrl !== undefined ? { revocationUrl: started.revocationUrl } : {}), exited };
}

/** Runs `fn` over `items` with at most `concurrency` at a time; results in input order. */
export async function pool<T, R>(items: T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}
