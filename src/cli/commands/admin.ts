import { readFileSync } from 'node:fs';
import { ServiceClient, type AuditListQuery, type RequestState, type RequestView } from '../../service/client.js';
import { parse, required } from '../args.js';
import { emit, UsageError, type CliIo, type Command } from '../io.js';
import { readSecret } from '../secrets.js';

const CONNECT = {
  server: { type: 'string' },
  cacert: { type: 'string' },
  operator: { type: 'string' },
} as const;

const CONNECT_USAGE = '--server URL [--cacert FILE] [--operator NAME]';

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
async function asOperator<T>(values: { server?: string | undefined; cacert?: string | undefined; operator?: string | undefined }, io: CliIo, fn: (client: ServiceClient, session: string) => Promise<T>): Promise<T> {
  const username = values.operator ?? io.env.CARDLINK_OPERATOR ?? 'admin';
  const password = await readSecret(io, 'CARDLINK_OPERATOR_PASSWORD', `password for operator ${username}: `);
  const client = openClient(values, io);
  try {
    const { token } = await client.login({ username, password });
    try {
      return await fn(client, token);
    } finally {
      await client.logout(token).catch(() => undefined);
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
    const created = await asOperator(values, io, (client, session) =>
      client.createToken(session, { user, ...(values.profile ? { profile: values.profile } : {}), ...(values.ttl ? { ttlSeconds: Number(values.ttl) } : {}) }),
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
    // The service checks the state name and answers 400 with the list of states.
    const query = { ...(values.state ? { state: values.state as RequestState } : {}), ...(values.user ? { user: values.user } : {}) };
    const rows = await asOperator(values, io, (client, session) => client.requests(session, query));
    emit(io, values.json === true, { ok: true, requests: rows }, () =>
      rows.length === 0
        ? 'no requests'
        : rows.map((r) => `${r.id}  ${r.state.padEnd(9)} ${r.user}  ${r.profile}  ${r.createdAt}${r.container ? `  card ${r.cardId} / ${r.container}` : ''}`).join('\n'),
    );
    return 0;
  },
};

type Decide = (client: ServiceClient, session: string, id: string) => Promise<RequestView>;

function decision(word: 'approve' | 'reject' | 'revoke', summary: string, extraUsage: string, decide: (v: Record<string, string | boolean | undefined>) => Decide): Command {
  return {
    path: ['admin', word],
    summary,
    usage: `cardlink admin ${word} ${CONNECT_USAGE} ${extraUsage}ID [--json]`,
    async run(argv, io) {
      const { values, positionals } = parse(argv, { ...CONNECT, reason: { type: 'string' } }, true);
      const id = oneId(positionals);
      const call = decide(values);
      const r = await asOperator(values, io, (client, session) => call(client, session, id));
      emit(io, values.json === true, { ok: true, request: r }, () => `${r.id} ${r.state}${r.serial ? ` (serial ${r.serial})` : ''}`);
      return 0;
    },
  };
}

const approve = decision('approve', 'approve a pending request (the CA issues at once)', '', () => (client, session, id) => client.approve(session, id));
const reject = decision('reject', 'reject a pending request', '--reason TEXT ', (v) => {
  const reason = required(v.reason as string | undefined, '--reason');
  return (client, session, id) => client.reject(session, id, reason);
});
const revoke = decision('revoke', "revoke a request's certificate (CRL updated)", '[--reason CODE] ', (v) => {
  const reason = v.reason as string | undefined;
  if (reason !== undefined && !/^\d+$/.test(reason)) throw new UsageError('--reason is an RFC 5280 reason code (0 unspecified, 1 keyCompromise, 4 superseded, ...)');
  return (client, session, id) => client.revoke(session, id, reason === undefined ? 0 : Number(reason));
});

const audit: Command = {
  path: ['admin', 'audit'],
  summary: 'query the audit log (who, when, what)',
  usage: `cardlink admin audit ${CONNECT_USAGE} [--subject S] [--actor A] [--action A] [--since ISO] [--json]`,
  async run(argv, io) {
    const { values } = parse(argv, { ...CONNECT, subject: { type: 'string' }, actor: { type: 'string' }, action: { type: 'string' }, since: { type: 'string' } });
    const query: AuditListQuery = {};
    for (const k of ['subject', 'actor', 'action', 'since'] as const) if (values[k]) query[k] = values[k];
    const rows = await asOperator(values, io, (client, session) => client.audit(session, query));
    emit(io, values.json === true, { ok: true, entries: rows }, () => rows.map((e) => `${e.at}  ${e.actor}  ${e.action}  ${e.subject ?? ''}  ${JSON.stringify(e.details)}`).join('\n'));
    return 0;
  },
};

export const adminCommands: Command[] = [token, requests, approve, reject, revoke, audit];
