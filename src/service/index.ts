import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { AdminKeyVault } from './admin-keys.js';
import { registerApi } from './api.js';
import { EmbeddedCa } from './ca/embedded.js';
import { CardAdminService } from './card-admin.js';
import type { UpstreamCa } from './ca/upstream.js';
import { systemClock, type Clock } from './clock.js';
import { EnrollmentService } from './enrollment.js';
import { ServiceError } from './errors.js';
import { registerEst } from './est.js';
import { createApp } from './http.js';
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
  /** Base URL clients reach the service at; puts a CRL distribution point in issued certificates. */
  publicUrl?: string;
  /** Made on start unless it exists (first start needs one to be able to log in at all). */
  operator?: { username: string; password: string };
  /** How often to finish issuances left behind by a crash or by another process; 0 = never. */
  sweepIntervalMs?: number;
  /** Another CA in place of the embedded one. */
  upstream?: UpstreamCa;
  log?: (line: string) => void;
  /** The administrator key cards arrive with (default: the well-known GIDS example key). */
  transportKey?: Uint8Array;
  /** Unblock responses per card per hour; default 5. */
  unblockLimitPerHour?: number;
}

export interface RunningService {
  url: string;
  port: number;
  caCertPath: string;
  caCertPem: string;
  service: EnrollmentService;
  cardAdmin: CardAdminService;
  openapi: Record<string, unknown>;
  close(): Promise<void>;
}

/** Opens storage and CA, makes the TLS certificate, and listens. */
export async function startService(cfg: ServiceConfig): Promise<RunningService> {
  const clock = cfg.clock ?? systemClock;
  const host = cfg.host ?? '127.0.0.1';
  if (cfg.passphrase.length < 8) throw new ServiceError('CONFIG', 'the CA passphrase (CARDLINK_CA_PASSPHRASE) needs 8 characters at least');
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  // The composition root: storage is opened here and handed to the use cases, which alone use it.
  const storage = await openStorage(cfg.dbUrl, cfg.dataDir, clock.now().getTime());
  try {
    const embedded = cfg.upstream ? undefined : await EmbeddedCa.open(cfg.dataDir, cfg.passphrase, clock.now(), cfg.publicUrl ? { crlUrl: `${cfg.publicUrl.replace(/\/$/, '')}${apiPath('crl')}` } : {});
    const ca = cfg.upstream ?? embedded!;
    const service = new EnrollmentService({
      storage, ca, clock,
      ...(cfg.retryAfterSeconds !== undefined ? { retryAfterSeconds: cfg.retryAfterSeconds } : {}),
      ...(cfg.issueLeaseMs !== undefined ? { issueLeaseMs: cfg.issueLeaseMs } : {}),
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
    const app = createApp(service, { tls, clientCa: caCertPem, ...(cfg.log ? { log: cfg.log } : {}) });
    registerEst(app, service);
    const openapi = registerApi(app, service, cardAdmin);
    await service.sweep();
    await app.listen({ host, port: cfg.port ?? 8443 });
    const port = (app.server.address() as AddressInfo).port;
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
    const urlHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
    return {
      url: `https://${urlHost}:${port}`,
      port,
      caCertPath: join(cfg.dataDir, 'ca', 'cert.pem'),
      caCertPem,
      service,
      cardAdmin,
      openapi,
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
