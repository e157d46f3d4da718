import { join } from 'node:path';
import { cardlinkHome } from '../../home.js';
import type { HandlerOf, specs } from '../catalog.js';
import { UsageError } from '../io.js';
import { readSecret } from '../secrets.js';
import { forTerminal } from '../terminal.js';

/** `HOST:PORT`, `[v6]:PORT` or `:PORT`. */
function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new UsageError(`--listen ${text}: expected HOST:PORT, e.g. 127.0.0.1:8443`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

function positiveInt(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag} takes a whole number of seconds`);
  return Number(text);
}

export const serve: HandlerOf<typeof specs.serve> = async ({ values }, io) => {
  // Under CARDLINK_HOME like every other file cardlink keeps.
  const dataDir = values.data ?? io.env.CARDLINK_DATA ?? join(cardlinkHome(io.env), 'service');
  const { host, port } = parseListen(values.listen ?? '127.0.0.1:8443');
  const passphrase = await readSecret(io, 'CARDLINK_CA_PASSPHRASE', 'CA key passphrase: ');
  const operatorPassword = io.env.CARDLINK_OPERATOR_PASSWORD;
  const retryAfter = positiveInt(values['retry-after'], '--retry-after');
  const lease = positiveInt(values['issue-lease'], '--issue-lease');
  const revocationPort = values['revocation-port'];
  if (revocationPort !== undefined && (!/^\d{1,5}$/.test(revocationPort) || Number(revocationPort) > 65535)) throw new UsageError(`--revocation-port ${revocationPort}: expected a port number, e.g. 8080`);
  const revocationUrl = values['revocation-url'];
  if (revocationUrl !== undefined && !/^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/.test(revocationUrl)) throw new UsageError(`--revocation-url ${revocationUrl}: expected an http URL, e.g. http://pki.example.com`);
  const transportText = io.env.CARDLINK_TRANSPORT_KEY?.replace(/\s+/g, '');
  if (transportText !== undefined && transportText !== '' && !/^[0-9a-fA-F]{48}$/.test(transportText)) throw new UsageError('CARDLINK_TRANSPORT_KEY is 48 hex digits (24 bytes, 3DES)');
  // Loaded on demand: the HTTP server and database drivers are not needed by other commands.
  const { startService } = await import('../../service/index.js');
  const running = await startService({
    dataDir,
    host,
    port,
    passphrase,
    ...(values.db !== undefined ? { dbUrl: values.db } : {}),
    ...(values['public-url'] !== undefined ? { publicUrl: values['public-url'] } : {}),
    ...(revocationPort !== undefined ? { revocationPort: Number(revocationPort) } : {}),
    ...(revocationUrl !== undefined ? { revocationUrl } : {}),
    ...(retryAfter !== undefined ? { retryAfterSeconds: retryAfter } : {}),
    ...(lease !== undefined ? { issueLeaseMs: lease * 1000 } : {}),
    ...(values['ca-key'] !== undefined ? { caKeyType: values['ca-key'] as 'rsa-2048' | 'p-256' } : {}),
    ...(transportText ? { transportKey: new Uint8Array(Buffer.from(transportText, 'hex')) } : {}),
    ...(operatorPassword ? { operator: { username: values.operator ?? 'admin', password: operatorPassword } } : {}),
    log: (text) => io.stderr(`cardlink serve: ${forTerminal(text)}\n`),
  });
  const operator = values.operator ?? 'admin';
  if (!(await running.service.operatorExists(operator))) {
    io.stderr(
      `cardlink serve: warning: there is no operator '${forTerminal(operator)}': 'cardlink admin' cannot log in. ` +
        `Stop serve, set CARDLINK_OPERATOR_PASSWORD and start it again to create '${forTerminal(operator)}' (--operator NAME for another name).\n`,
    );
  }
  const facts = { url: running.url, console: running.consoleUrl, ...(running.revocationUrl ? { revocationUrl: running.revocationUrl } : {}), caCertificate: running.caCertPath, dataDir, database: values.db === undefined ? join(dataDir, 'cardlink.db') : values.db.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@') };
  if (values.json) io.stdout(JSON.stringify({ ok: true, ...facts }) + '\n');
  else io.stdout(`listening on ${facts.url}\noperator console: ${facts.console}\n${running.revocationUrl ? `revocation (CRL, OCSP) on ${running.revocationUrl}\n` : ''}CA certificate: ${facts.caCertificate}\ndatabase: ${facts.database}\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await running.close();
  return 0;
};
