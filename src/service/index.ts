import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { AdminKeyVault } from './admin-keys.js';
import { registerApi } from './api.js';
import { EmbeddedCa, type CaKeyType } from './ca/embedded.js';
import { CardAdminService } from './card-admin.js';
import type { UpstreamCa } from './ca/upstream.js';
import { systemClock, type Clock } from './clock.js';
import { EnrollmentService, type ConsoleSessionLimits, type LoginThrottle } from './enrollment.js';
import { registerConsole } from './console/routes.js';
import { ServiceError } from './errors.js';
import { registerEst } from './est.js';
import { createApp, type HttpLimits } from './http.js';
import { apiPath } from './protocol.js';
import { openStorage } from './storage/open.js';
import { ensureTlsCertificate } from './tls.js';

export interface ServiceConfig {
  dataDir: string;
  /** postgres://… or sqlite:PATH; default: cardlink.db in the data directory. */
  dbUrl?: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Opens (or, on first start, encrypts) the CA and TLS keys in the data directory. */
  passphrase: string;
  clock?: Clock;
  retryAfterSeconds?: number;
  issueLeaseMs?: number;
  /**
   * Base URL clients reach the service at, for the CRL distribution point of issued certificates.
   * Without it the point is derived from the listen address (with a warning when that is loopback).
   */
  publicUrl?: string;
  /** Timeouts, connection cap and body limit (http.ts HttpLimits; defaults there). */
  limits?: Partial<HttpLimits>;
  /** Failed-login lockout (enrollment.ts LoginThrottle; defaults there). */
  loginThrottle?: Partial<LoginThrottle>;
  /** Made on start unless it exists (first start needs one to be able to log in at all). */
  operator?: { username: string; password: string };
  /** How often to finish issuances left behind by a crash or by another process; 0 = never. */
  sweepIntervalMs?: number;
  /** The key the embedded CA gets when it is made (first start); default rsa-2048. */
  caKeyType?: CaKeyType;
  /** Another CA in place of the embedded one. */
  upstream?: UpstreamCa;
  log?: (line: string) => void;
  /** The administrator key cards arrive with (default: the well-known GIDS example key). */
  transportKey?: Uint8Array;
  /** Unblock responses per card per hour; default 5. */
  unblockLimitPerHour?: number;
  /** Operator console sessions: idle and absolute expiry (console/session.ts defaults). */
  consoleSession?: Partial<ConsoleSessionLimits>;
}

export interface RunningService {
  url: string;
  /** The operator console's address. */
  consoleUrl: string;
  port: number;
  caCertPath: string;
  caCertPem: string;
  service: EnrollmentService;
  cardAdmin: CardAdminService;
  openapi: Record<string, unknown>;
  /** What start-up found worth telling the operator (also sent to `log`). */
  warnings: string[];
  close(): Promise<void>;
}

/** The CA and TLS key passphrase's minimum (NIST SP 800-63B §5.1.1.2 asks 8 of a memorized secret; a key-encryption passphrase guards more). */
export const MIN_PASSPHRASE = 12;

/**
 * The data directory and a SQLite database file must be the service's alone: an existing one
 * readable by group or others is tightened to owner-only at start, or start refuses, saying why.
 */
function ownerOnly(path: string, mode: number, what: string): void {
  if (!existsSync(path)) return;
  const st = statSync(path);
  if ((st.mode & 0o077) === 0) return;
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    throw new ServiceError('CONFIG', `${what} ${path} is readable by others and belongs to another user: make it the service user's, mode ${mode.toString(8)}`);
  }
  try {
    chmodSync(path, mode);
  } catch (err) {
    throw new ServiceError('CONFIG', `${what} ${path} is readable by others and cannot be made owner-only: ${(err as Error).message}`, { cause: err });
  }
}

function tightenDataFiles(dataDir: string, dbUrl: string | undefined): void {
  ownerOnly(dataDir, 0o700, 'the data directory');
  const db = dbUrl === undefined || dbUrl === '' ? join(dataDir, 'cardlink.db') : dbUrl.startsWith('sqlite:') ? dbUrl.slice('sqlite:'.length) : undefined;
  if (db !== undefined && db !== ':memory:') for (const f of [db, `${db}-wal`, `${db}-shm`]) ownerOnly(f, 0o600, 'the database file');
  for (const f of [join(dataDir, 'ca'), join(dataDir, 'ca', 'key.pem'), join(dataDir, 'tls.pem')]) ownerOnly(f, f.endsWith('ca') ? 0o700 : 0o600, 'the key file');
}

/** Loopback addresses: a CRL distribution point there serves no other machine. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** Opens storage and CA, makes the TLS certificate, and listens. */
export async function startService(cfg: ServiceConfig): Promise<RunningService> {
  const clock = cfg.clock ?? systemClock;
  const host = cfg.host ?? '127.0.0.1';
  if (cfg.passphrase.length < MIN_PASSPHRASE) throw new ServiceError('CONFIG', `the CA passphrase (CARDLINK_CA_PASSPHRASE) needs ${MIN_PASSPHRASE} characters at least`);
  tightenDataFiles(cfg.dataDir, cfg.dbUrl);
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  const warnings: string[] = [];
  const warn = (line: string): void => {
    warnings.push(line);
    cfg.log?.(`warning: ${line}`);
  };
  // The composition root: storage is opened here and handed to the use cases, which alone use it.
  const storage = await openStorage(cfg.dbUrl, cfg.dataDir, clock.now().getTime());
  try {
    // The CRL distribution point: from --public-url, or else from the listen address once the port is known.
    let crlUrl: string | undefined = cfg.publicUrl ? `${cfg.publicUrl.replace(/\/$/, '')}${apiPath('crl')}` : undefined;
    const embedded = cfg.upstream ? undefined : await EmbeddedCa.open(cfg.dataDir, cfg.passphrase, clock.now(), { crlUrl: () => crlUrl, ...(cfg.caKeyType ? { keyType: cfg.caKeyType } : {}) });
    const ca = cfg.upstream ?? embedded!;
    const service = new EnrollmentService({
      storage, ca, clock,
      ...(cfg.retryAfterSeconds !== undefined ? { retryAfterSeconds: cfg.retryAfterSeconds } : {}),
      ...(cfg.issueLeaseMs !== undefined ? { issueLeaseMs: cfg.issueLeaseMs } : {}),
      ...(cfg.loginThrottle ? { loginThrottle: cfg.loginThrottle } : {}),
    });
    await service.ensureDefaults();
    // The card administrator master keys sit beside the CA key, sealed with the same passphrase.
    const vault = AdminKeyVault.open(cfg.dataDir, cfg.passphrase, () => clock.now(), cfg.transportKey);
    const cardAdmin = new CardAdminService({ storage, vault, clock, ...(cfg.unblockLimitPerHour !== undefined ? { unblockLimitPerHour: cfg.unblockLimitPerHour } : {}) });
    if (cfg.operator) await service.ensureOperator(cfg.operator.username, cfg.operator.password);
    // The TLS certificate always comes from the embedded CA key in the data directory.
    const tlsCa = embedded ?? (await EmbeddedCa.open(cfg.dataDir, cfg.passphrase, clock.now()));
    const tls = await ensureTlsCertificate(cfg.dataDir, tlsCa, host, cfg.passphrase, clock.now(), (cert) => service.recordOwnCertificate(cert, 'service TLS'));
    const caCertPem = ca.chain().map((c) => c.toString('pem')).join('\n') + '\n';
    const app = createApp(service, { tls, clientCa: caCertPem, ...(cfg.log ? { log: cfg.log } : {}), ...(cfg.limits ? { limits: cfg.limits } : {}) });
    registerEst(app, service);
    const openapi = registerApi(app, service, cardAdmin);
    // The operator console: same origin, TLS and use cases as the API (issue 15).
    registerConsole(app, { service, cards: cardAdmin, ...(cfg.consoleSession ? { session: cfg.consoleSession } : {}) });
    await service.sweep();
    await app.listen({ host, port: cfg.port ?? 8443 });
    const port = (app.server.address() as AddressInfo).port;
    const urlHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
    if (crlUrl === undefined) {
      // On every address: the name the TLS certificate carries for this machine; otherwise the address itself.
      const crlHost = host === '0.0.0.0' || host === '::' ? hostname() : urlHost;
      crlUrl = `https://${crlHost}:${port}${apiPath('crl')}`;
      if (isLoopback(host)) warn(`the service listens on loopback only (${host}), so the CRL distribution point in its certificates (${crlUrl}) serves this machine alone: give --public-url with the address clients use`);
    }
    const sweepMs = cfg.sweepIntervalMs ?? 5000;
    let sweeping = false;
    const timer = sweepMs > 0
      ? setInterval(() => {
          if (sweeping) return;
          sweeping = true;
          service.sweep().catch((err: unknown) => cfg.log?.(`issuance sweep failed: ${(err as Error).message}`)).finally(() => (sweeping = false));
        }, sweepMs)
      : undefined;
    timer?.unref();
    return {
      url: `https://${urlHost}:${port}`,
      consoleUrl: `https://${urlHost}:${port}/console/`,
      port,
      caCertPath: join(cfg.dataDir, 'ca', 'cert.pem'),
      caCertPem,
      service,
      cardAdmin,
      openapi,
      warnings,
      close: async () => {
        if (timer) clearInterval(timer);
        await app.close();
        await service.close();
      },
    };
  } catch (err) {
    await storage.close().catch(() => undefined);
    throw err;
  }
}

export { EnrollmentService } from './enrollment.js';
export type { RequestView, CollectedRequest, TokenView, CollectProof } from './protocol.js';
export { ManualClock, systemClock } from './clock.js';
export type { Clock } from './clock.js';
export { ServiceError } from './errors.js';
