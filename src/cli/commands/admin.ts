import { readFileSync } from 'node:fs';
import { ServiceClient } from '../../agent/client.js';
import { parse, required } from '../args.js';
import { emit, UsageError, type CliIo, type Command } from '../io.js';
import { readSecret } from '../secrets.js';

const CONNECT = {
  server: { type: 'string' },
  cacert: { type: 'string' },
  operator: { type: 'string' },
} as const;

const CONNECT_USAGE = '--server URL [--cacert FILE] [--operator NAME]';

interface RequestRow {
  id: string;
  user: string;
  profile: string;
  state: string;
  cardId: string | null;
  container: string | null;
  createdAt: string;
  serial: string | null;
}

/**
 * The service named by --server (or CARDLINK_SERVER), trusting the CA in --cacert (or
 * CARDLINK_CACERT) when given, else the system's trust store.
 */
export function openClient(values: { server?: string | undefined; cacert?: string | undefined }, io: CliIo): ServiceClient {
  const server = required(values.server ?? io.env.CARDLINK_SERVER, '--server');
  const caFile = values.cacert ?? io.env.CARDLINK_CACERT;
  let ca: string | undefined;
  if (caFile !== undefined) {
    try {
      ca = readFileSync(caFile, 'utf8');
    } catch (err) {
      throw new UsageError(`--cacert ${caFile}: ${(err as Error).message}`);
    }
  }
  return new ServiceClient({ server, ...(ca ? { ca } : {}) });
}

/**
 * Logs in as an operator (password from CARDLINK_OPERATOR_PASSWORD or a prompt), runs `fn`, and
 * ends the session whatever happens.
 */
async function asOperator<T>(values: { server?: string | undefined; cacert?: string | undefined; operator?: string | undefined }, io: CliIo, fn: (client: ServiceClient, bearer: string) => Promise<T>): Promise<T> {
  const username = values.operator ?? io.env.CARDLINK_OPERATOR ?? 'admin';
  const password = await readSecret(io, 'CARDLINK_OPERATOR_PASSWORD', `password for operator ${username}: `);
  const client = openClient(values, io);
  try {
    const { value } = await client.call<{ token: string }>('POST', '/api/v1/sessions', { json: { username, password } });
    try {
      return await fn(client, value.token);
    } finally {
      await client.raw('DELETE', '/api/v1/sessions/current', { bearer: value.token }).catch(() => undefined);
    }
  } finally {
    client.close();
  }
}

function oneId(positionals: string[]): string {
  if (positionals.length !== 1) throw new UsageError('give exactly one request id');
  return positionals[0]!;
}

const token: Command = {
  path: ['admin', 'token'],
  summary: 'make a one-time enrollment token for a user (printed once)',
  usage: `cardlink admin token ${CONNECT_USAGE} --user UPN [--profile NAME] [--ttl SECONDS] [--json]`,
  async run(argv, io) {
    const { values } = parse(argv, { ...CONNECT, user: { type: 'string' }, profile: { type: 'string' }, ttl: { type: 'string' } });
    const user = required(values.user, '--user');
    if (values.ttl !== undefined && !/^\d+$/.test(values.ttl)) throw new UsageError('--ttl takes a whole number of seconds');
    const created = await asOperator(values, io, async (client, bearer) =>
      (await client.call<{ id: string; token: string; user: string; profile: string; expiresAt: string }>('POST', '/api/v1/tokens', {
        bearer,
        json: { user, ...(values.profile ? { profile: values.profile } : {}), ...(values.ttl ? { ttlSeconds: Number(values.ttl) } : {}) },
      })).value,
    );
    emit(io, values.json === true, { ok: true, ...created }, () => `${created.token}\nfor ${created.user}, profile ${created.profile}, one use, expires ${created.expiresAt}`);
    return 0;
  },
};

const requests: Command = {
  path: ['admin', 'requests'],
  summary: 'list enrollment requests',
  usage: `cardlink admin requests ${CONNECT_USAGE} [--state STATE] [--user UPN] [--json]`,
  async run(argv, io) {
    const { values } = parse(argv, { ...CONNECT, state: { type: 'string' }, user: { type: 'string' } });
    const query = new URLSearchParams();
    if (values.state) query.set('state', values.state);
    if (values.user) query.set('user', values.user);
    const rows = await asOperator(values, io, async (client, bearer) => (await client.call<RequestRow[]>('GET', `/api/v1/requests?${query}`, { bearer })).value);
    emit(io, values.json === true, { ok: true, requests: rows }, () =>
      rows.length === 0
        ? 'no requests'
        : rows.map((r) => `${r.id}  ${r.state.padEnd(9)} ${r.user}  ${r.profile}  ${r.createdAt}${r.container ? `  card ${r.cardId} / ${r.container}` : ''}`).join('\n'),
    );
    return 0;
  },
};

function decision(word: 'approve' | 'reject' | 'revoke', summary: string, extraUsage: string, body: (v: Record<string, string | boolean | undefined>) => unknown): Command {
  return {
    path: ['admin', word],
    summary,
    usage: `cardlink admin ${word} ${CONNECT_USAGE} ${extraUsage}ID [--json]`,
    async run(argv, io) {
      const { values, positionals } = parse(argv, { ...CONNECT, reason: { type: 'string' } }, true);
      const id = oneId(positionals);
      const payload = body(values);
      const r = await asOperator(values, io, async (client, bearer) =>
        (await client.call<RequestRow>('POST', `/api/v1/requests/${encodeURIComponent(id)}/${word}`, { bearer, ...(payload === undefined ? {} : { json: payload }) })).value,
      );
      emit(io, values.json === true, { ok: true, request: r }, () => `${r.id} ${r.state}${r.serial ? ` (serial ${r.serial})` : ''}`);
      return 0;
    },
  };
}

const approve = decision('approve', 'approve a pending request (the CA issues at once)', '', () => undefined);
const reject = decision('reject', 'reject a pending request', '--reason TEXT ', (v) => ({ reason: required(v.reason as string | undefined, '--reason') }));
const revoke = decision('revoke', "revoke a request's certificate (CRL updated)", '[--reason CODE] ', (v) => {
  const reason = v.reason as string | undefined;
  if (reason !== undefined && !/^\d+$/.test(reason)) throw new UsageError('--reason is an RFC 5280 reason code (0 unspecified, 1 keyCompromise, 4 superseded, ...)');
  return { reason: reason === undefined ? 0 : Number(reason) };
});

const audit: Command = {
  path: ['admin', 'audit'],
  summary: 'query the audit log (who, when, what)',
  usage: `cardlink admin audit ${CONNECT_USAGE} [--subject S] [--actor A] [--action A] [--since ISO] [--json]`,
  async run(argv, io) {
    const { values } = parse(argv, { ...CONNECT, subject: { type: 'string' }, actor: { type: 'string' }, action: { type: 'string' }, since: { type: 'string' } });
    const query = new URLSearchParams();
    for (const k of ['subject', 'actor', 'action', 'since'] as const) if (values[k]) query.set(k, values[k]!);
    const rows = await asOperator(values, io, async (client, bearer) =>
      (await client.call<{ at: string; actor: string; action: string; subject: string | null; details: unknown }[]>('GET', `/api/v1/audit?${query}`, { bearer })).value,
    );
    emit(io, values.json === true, { ok: true, entries: rows }, () => rows.map((e) => `${e.at}  ${e.actor}  ${e.action}  ${e.subject ?? ''}  ${JSON.stringify(e.details)}`).join('\n'));
    return 0;
  },
};

export const adminCommands: Command[] = [token, requests, approve, reject, revoke, audit];
