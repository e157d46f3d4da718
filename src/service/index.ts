import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { AdminKeyVault } from './admin-keys.js';
import { registerApi } from './api.js';
import { EmbeddedCa, type CaKeyType } from './ca/embedded.js';
import { fileKeyStore, MALFORMED, OcspResponder } from './ca/ocsp.js';
import { CardAdminService } from './card-admin.js';
import { CardService } from './cards.js';
import type { UpstreamCa } from './ca/upstream.js';
import { systemClock, type Clock } from './clock.js';
import { EnrollmentService, type ConsoleSessionLimits, type LoginThrottle } from './enrollment.js';
import { registerConsole } from './console/routes.js';
import { ServiceError } from './errors.js';
import { registerEst } from './est.js';
import { createApp, createRevocationApp, type HttpLimits } from './http.js';
import { registerRevocation } from './api.js';
import { apiPath, REVOCATION_PATHS } from './protocol.js';
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
  /**
   * A plain-HTTP listener on `host` for relying parties (CRL, CA certificate, OCSP); 0 picks a
   * free port. Issued certificates then point at it (CRL distribution point and authority
   * information access) rather than at the HTTPS service.
   */
  revocationPort?: number;
  /** The base URL relying parties reach the revocation endpoints at (default: the revocation listener, or the service's URL). */
  revocationUrl?: string;
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
  /** The plain-HTTP revocation listener's URL and port, when one was asked for. */
  revocationUrl?: string;
  revocationPort?: number;
  /** The OCSP responder (embedded CA only). */
  ocsp?: OcspResponder;
  caCertPath: string;
  caCertPem: string;
  service: EnrollmentService;
  cardAdmin: CardAdminService;
  cards: CardService;
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
  for (const f of [join(dataDir, 'ca'), join(dataDir, 'ca', 'key.pem'), join(dataDir, 'ca', 'ocsp.pem'), join(dataDir, 'tls.pem')]) ownerOnly(f, f.endsWith('ca') ? 0o700 : 0o600, 'the key file');
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
    // Where certificates send relying parties: the revocation listener (or --revocation-url), else
    // --public-url, else the listen address once the port is known.
    const trim = (u: string): string => u.replace(/\/$/, '');
    let revocationBase: string | undefined = cfg.revocationUrl ? trim(cfg.revocationUrl) : undefined;
    let serviceBase: string | undefined = cfg.publicUrl ? trim(cfg.publicUrl) : undefined;
    const urls = (): { crl?: string; ocsp?: string; caIssuers?: string } => {
      if (revocationBase !== undefined) return { crl: revocationBase + REVOCATION_PATHS.crl, ocsp: revocationBase + REVOCATION_PATHS.ocsp, caIssuers: revocationBase + REVOCATION_PATHS.caCertificate };
      if (serviceBase !== undefined) return { crl: serviceBase + apiPath('crl'), ocsp: serviceBase + REVOCATION_PATHS.ocsp, caIssuers: serviceBase + REVOCATION_PATHS.caCertificate };
      return {};
    };
    const embedded = cfg.upstream ? undefined : await EmbeddedCa.open(cfg.dataDir, cfg.passphrase, clock.now(), {
      crlUrl: () => urls().crl, aia: () => urls(), ...(cfg.caKeyType ? { keyType: cfg.caKeyType } : {}),
    });
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
    // Every revocation the card life cycle makes reaches relying parties through the one CRL publisher.
    const revocationsChanged = (): Promise<Buffer> => service.publishCrl();
    const cardAdmin = new CardAdminService({ storage, vault, clock, revocationsChanged, ...(cfg.unblockLimitPerHour !== undefined ? { unblockLimitPerHour: cfg.unblockLimitPerHour } : {}) });
    const cards = new CardService({ storage, clock, revocationsChanged });
    if (cfg.operator) await service.ensureOperator(cfg.operator.username, cfg.operator.password);
    // The TLS certificate always comes from the embedded CA key in the data directory.
    const tlsCa = embedded ?? (await EmbeddedCa.open(cfg.dataDir, cfg.passphrase, clock.now()));
    const tls = await ensureTlsCertificate(cfg.dataDir, tlsCa, host, cfg.passphrase, clock.now(), (cert) => service.recordOwnCertificate(cert, 'service TLS'));
    const caCertPem = ca.chain().map((c) => c.toString('pem')).join('\n') + '\n';
    const app = createApp(service, { tls, clientCa: caCertPem, ...(cfg.log ? { log: cfg.log } : {}), ...(cfg.limits ? { limits: cfg.limits } : {}) });
    registerEst(app, service);
    const openapi = registerApi(app, service, cardAdmin, cards);
    // The delegated OCSP responder: its key beside the CA key, sealed with the same passphrase;
    // made on first use (a service nobody asks costs no key generation), renewed before it expires, its certificate booked like the TLS one.
    const ocsp = embedded
      ? new OcspResponder(embedded, service.revocation, fileKeyStore(cfg.dataDir, cfg.passphrase), () => clock.now(), (cert) => service.recordOwnCertificate(cert, 'OCSP responder'))
      : undefined;
    const revocationEndpoints = { crl: () => service.crl(), caCertificate: new Uint8Array(ca.chain()[0]!.rawData), ...(ocsp ? { ocsp } : {}) };
    registerRevocation(app, revocationEndpoints);
    const revocationApp = cfg.revocationPort !== undefined ? createRevocationApp({ ocspPath: REVOCATION_PATHS.ocsp, malformedOcsp: MALFORMED, ...(cfg.limits ? { limits: cfg.limits } : {}), ...(cfg.log ? { log: cfg.log } : {}) }) : undefined;
    if (revocationApp) registerRevocation(revocationApp, revocationEndpoints);
    // The operator console: same origin, TLS and use cases as the API (issue 15).
    registerConsole(app, { service, cards: cardAdmin, cardRecords: cards, ...(cfg.consoleSession ? { session: cfg.consoleSession } : {}) });
    await service.sweep();
    await app.listen({ host, port: cfg.port ?? 8443 });
    const port = (app.server.address() as AddressInfo).port;
    const urlHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
    // On every address: the name the TLS certificate carries for this machine; otherwise the address itself.
    const reachableHost = host === '0.0.0.0' || host === '::' ? hostname() : urlHost;
    let revocationPort: number | undefined;
    if (revocationApp) {
      try {
        await revocationApp.listen({ host, port: cfg.revocationPort });
      } catch (err) {
        await app.close();
        throw new ServiceError('CONFIG', `the revocation listener cannot listen on ${urlHost}:${cfg.revocationPort}: ${(err as Error).message}`, { cause: err });
      }
      revocationPort = (revocationApp.server.address() as AddressInfo).port;
      revocationBase ??= `http://${reachableHost}:${revocationPort}`;
    }
    if (serviceBase === undefined) {
      serviceBase = `https://${reachableHost}:${port}`;
      const crlUrl = urls().crl!;
      if (isLoopback(host) && cfg.revocationUrl === undefined) warn(`the service listens on loopback only (${host}), so the CRL distribution point in its certificates (${crlUrl}) serves this machine alone: give --public-url with the address clients use`);
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
      cards,
      openapi,
      warnings,
      ...(revocationApp ? { revocationUrl: `http://${urlHost}:${revocationPort}`, revocationPort } : {}),
      ...(ocsp ? { ocsp } : {}),
      close: async () => {
        if (timer) clearInterval(timer);
        await revocationApp?.close();
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
