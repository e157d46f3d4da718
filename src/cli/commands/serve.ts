import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse } from '../args.js';
import { UsageError, type Command } from '../io.js';
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

export const serveCommand: Command = {
  path: ['serve'],
  summary: 'run the enrollment service (EST + JSON API over HTTPS, embedded CA)',
  usage:
    'cardlink serve [--data DIR] [--db URL] [--listen HOST:PORT] [--public-url URL] [--retry-after SECONDS] [--issue-lease SECONDS] [--ca-key rsa-2048|p-256] [--operator NAME] [--json]\n' +
    '  --ca-key       the key of the embedded CA when it is made on first start (default rsa-2048)\n' +
    '  --data DIR     CA, TLS key and SQLite database (default $CARDLINK_DATA or ~/.cardlink/service)\n' +
    '  --db URL       postgres://user@host:port/db, or sqlite:/path/file.db (default: DIR/cardlink.db)\n' +
    '  --listen       address to listen on (default 127.0.0.1:8443)\n' +
    '  CARDLINK_CA_PASSPHRASE encrypts the CA and TLS keys on disk (asked for on a terminal when unset);\n' +
    '  CARDLINK_OPERATOR_PASSWORD, when set, creates operator --operator (default admin) unless it exists;\n' +
    '  CARDLINK_TRANSPORT_KEY (48 hex digits): the administrator key new cards arrive with (default 0102…08 three times).',
  async run(argv, io) {
    const { values } = parse(argv, {
      data: { type: 'string' },
      db: { type: 'string' },
      listen: { type: 'string' },
      'public-url': { type: 'string' },
      'retry-after': { type: 'string' },
      'issue-lease': { type: 'string' },
      'ca-key': { type: 'string' },
      operator: { type: 'string' },
    });
    const dataDir = values.data ?? io.env.CARDLINK_DATA ?? join(homedir(), '.cardlink', 'service');
    const { host, port } = parseListen(values.listen ?? '127.0.0.1:8443');
    const passphrase = await readSecret(io, 'CARDLINK_CA_PASSPHRASE', 'CA key passphrase: ');
    const operatorPassword = io.env.CARDLINK_OPERATOR_PASSWORD;
    const retryAfter = positiveInt(values['retry-after'], '--retry-after');
    const lease = positiveInt(values['issue-lease'], '--issue-lease');
    const caKey = values['ca-key'];
    if (caKey !== undefined && caKey !== 'rsa-2048' && caKey !== 'p-256') throw new UsageError('--ca-key is rsa-2048 or p-256');
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
      ...(retryAfter !== undefined ? { retryAfterSeconds: retryAfter } : {}),
      ...(lease !== undefined ? { issueLeaseMs: lease * 1000 } : {}),
      ...(caKey !== undefined ? { caKeyType: caKey } : {}),
      ...(transportText ? { transportKey: new Uint8Array(Buffer.from(transportText, 'hex')) } : {}),
      ...(operatorPassword ? { operator: { username: values.operator ?? 'admin', password: operatorPassword } } : {}),
      log: (text) => io.stderr(`cardlink serve: ${forTerminal(text)}\n`),
    });
    const facts = { url: running.url, caCertificate: running.caCertPath, dataDir, database: values.db === undefined ? join(dataDir, 'cardlink.db') : values.db.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@') };
    if (values.json) io.stdout(JSON.stringify({ ok: true, ...facts }) + '\n');
    else io.stdout(`listening on ${facts.url}\nCA certificate: ${facts.caCertificate}\ndatabase: ${facts.database}\n`);
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
  },
};
