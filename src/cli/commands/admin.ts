import { readFileSync } from 'node:fs';
import { groupedHex, parseChallengeHex } from '../../admin-challenge.js';
import { fromHex, hex } from '../../bytes.js';
import { ServiceClient, ServiceClientError, type AuditListQuery, type RequestPage, type RequestState, type RequestView } from '../../service/client.js';
import { parse, required } from '../args.js';
import { emit, UsageError, type CliIo, type Command } from '../io.js';
import { readSecret } from '../secrets.js';
import { TARGET_OPTIONS, withCard } from '../target.js';
import { line } from '../terminal.js';

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
    emit(io, values.json === true, { ok: true, ...created }, () => line`${created.token}\nfor ${created.user}, profile ${created.profile}, one use, expires ${created.expiresAt}`);
    return 0;
  },
};

/** Rows per page asked of the service; it may answer fewer and says where to go on. */
const PAGE_SIZE = 200;
/** What `admin requests` shows without --limit or --all: enough for a screen of recent work. */
export const DEFAULT_REQUEST_LIMIT = 100;

/**
 * Follows the service's cursors until `limit` rows are in (or every row, with `all`), and says
 * whether more were left: a listing never stops silently.
 */
export async function fetchRequestPages(
  page: (cursor: string | undefined, limit: number) => Promise<RequestPage>,
  o: { limit: number; all: boolean },
): Promise<{ items: RequestView[]; truncated: boolean; nextCursor: string | null }> {
  const items: RequestView[] = [];
  let cursor: string | undefined;
  for (;;) {
    const want = o.all ? PAGE_SIZE : Math.min(PAGE_SIZE, o.limit - items.length);
    const got = await page(cursor, want);
    const room = o.all ? got.requests.length : o.limit - items.length;
    items.push(...got.requests.slice(0, room));
    const leftOnPage = got.requests.length > room;
    if (got.next === null && !leftOnPage) return { items, truncated: false, nextCursor: null };
    if (!o.all && items.length >= o.limit) return { items, truncated: true, nextCursor: leftOnPage ? null : got.next };
    if (got.next === null) return { items, truncated: false, nextCursor: null };
    // A page that brings nothing new while promising more would loop for ever.
    if (got.requests.length === 0 || got.next === cursor) throw new ServiceClientError('SERVICE_BAD_ANSWER', 'the service returned an empty page with a cursor to more');
    cursor = got.next;
  }
}

const requests: Command = {
  path: ['admin', 'requests'],
  summary: `list enrollment requests (${DEFAULT_REQUEST_LIMIT} unless --limit N or --all; says when more match)`,
  usage: `cardlink admin requests ${CONNECT_USAGE} [--state STATE] [--user UPN] [--limit N | --all] [--json]`,
  async run(argv, io) {
    const { values } = parse(argv, { ...CONNECT, state: { type: 'string' }, user: { type: 'string' }, limit: { type: 'string' }, all: { type: 'boolean' } });
    if (values.limit !== undefined && (!/^\d+$/.test(values.limit) || Number(values.limit) < 1)) throw new UsageError('--limit takes a whole number of rows, at least 1');
    if (values.limit !== undefined && values.all) throw new UsageError('give --limit or --all, not both');
    const limit = values.limit !== undefined ? Number(values.limit) : DEFAULT_REQUEST_LIMIT;
    // The service checks the state name and answers 400 with the list of states.
    const query = { ...(values.state ? { state: values.state as RequestState } : {}), ...(values.user ? { user: values.user } : {}) };
    const result = await asOperator(values, io, (client, session) => {
      return fetchRequestPages((cursor, n) => client.requestPage(session, { ...query, limit: n, ...(cursor !== undefined ? { cursor } : {}) }), { limit, all: values.all === true });
    });
    const rows = result.items;
    emit(io, values.json === true, { ok: true, requests: rows, truncated: result.truncated, ...(result.nextCursor !== null ? { nextCursor: result.nextCursor } : {}) }, () => {
      const lines = rows.map((r) => line`${r.id}  ${r.state.padEnd(9)} ${r.user}  ${r.profile}  ${r.createdAt}` + (r.container ? line`  card ${r.cardId} / ${r.container}` : ''));
      if (rows.length === 0) lines.push('no requests');
      if (result.truncated) lines.push(`(first ${rows.length} shown; more match: --limit N for more, --all for every one)`);
      return lines.join('\n');
    });
    return 0;
  },
};

const tokenRevoke: Command = {
  path: ['admin', 'token', 'revoke'],
  summary: 'revoke an enrollment token that has not been used (it can no longer enroll)',
  usage: `cardlink admin token revoke ${CONNECT_USAGE} ID [--json]`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, CONNECT, true);
    if (positionals.length !== 1) throw new UsageError('give exactly one token id (see the id in the answer of `cardlink admin token`)');
    const id = positionals[0]!;
    await asOperator(values, io, (client, session) => client.revokeToken(session, id));
    emit(io, values.json === true, { ok: true, id, revoked: true }, () => line`token ${id} revoked: it can no longer enroll`);
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
      emit(io, values.json === true, { ok: true, request: r }, () => line`${r.id} ${r.state}` + (r.serial ? line` (serial ${r.serial})` : ''));
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
    emit(io, values.json === true, { ok: true, entries: rows }, () => rows.map((e) => line`${e.at}  ${e.actor}  ${e.action}  ${e.subject ?? ''}  ${JSON.stringify(e.details)}`).join('\n'));
    return 0;
  },
};

const unblockResponse: Command = {
  path: ['admin', 'unblock-response'],
  summary: "the response to a card's unblock challenge, to read back to the user (audited; a few per card per hour)",
  usage: `cardlink admin unblock-response ${CONNECT_USAGE} --card CARDID --challenge HEX [--json]`,
  async run(argv, io) {
    const { values } = parse(argv, { ...CONNECT, card: { type: 'string' }, challenge: { type: 'string' } });
    const card = required(values.card, '--card').replace(/[\s-]+/g, '');
    if (!/^[0-9a-fA-F]{32}$/.test(card)) throw new UsageError('--card is the card id, 32 hex digits');
    const challenge = hex(parseChallengeHex(required(values.challenge, '--challenge'), 'challenge'));
    const answer = await asOperator(values, io, (client, session) => client.unblockResponse(session, card, challenge));
    emit(io, values.json === true, { ok: true, ...answer }, () => `response ${groupedHex(fromHex(answer.response))}\n` + line`for card ${answer.cardId}, challenge ${groupedHex(fromHex(answer.challenge))}; it works once, for this challenge only`);
    return 0;
  },
};

const unblockTicket: Command = {
  path: ['admin', 'unblock-ticket'],
  summary: "a one-time ticket for the user's 'card unblock --online' (printed once)",
  usage: `cardlink admin unblock-ticket ${CONNECT_USAGE} --card CARDID [--ttl SECONDS] [--json]`,
  async run(argv, io) {
    const { values } = parse(argv, { ...CONNECT, card: { type: 'string' }, ttl: { type: 'string' } });
    const card = required(values.card, '--card').replace(/[\s-]+/g, '');
    if (!/^[0-9a-fA-F]{32}$/.test(card)) throw new UsageError('--card is the card id, 32 hex digits');
    if (values.ttl !== undefined && !/^\d+$/.test(values.ttl)) throw new UsageError('--ttl takes a whole number of seconds');
    const made = await asOperator(values, io, (client, session) => client.createUnblockTicket(session, card, values.ttl === undefined ? undefined : Number(values.ttl)));
    emit(io, values.json === true, { ok: true, ...made }, () => line`${made.ticket}\nfor card ${made.cardId}, one use, expires ${made.expiresAt}`);
    return 0;
  },
};

const rotateAdminKey: Command = {
  path: ['admin', 'rotate-admin-key'],
  summary: 'a new administrator master key version; cards move to it on their next enrollment',
  usage: `cardlink admin rotate-admin-key ${CONNECT_USAGE} [--json]`,
  async run(argv, io) {
    const { values } = parse(argv, CONNECT);
    const rotated = await asOperator(values, io, (client, session) => client.rotateAdminMasterKey(session));
    emit(io, values.json === true, { ok: true, ...rotated }, () => `administrator master key version ${rotated.keyVersion}`);
    return 0;
  },
};

/**
 * Retires a card whose user is gone, with the card in this workstation's reader: the service
 * marks it retired and answers the card's administrator challenge; the card gets the transport
 * key back, the next user's initial PIN (CARDLINK_NEW_PIN or a prompt), and loses every
 * container. Asks first (--yes without a terminal).
 */
const retireCard: Command = {
  path: ['admin', 'retire-card'],
  summary: "retire a card (its user left): wipes its keys and certificates with the service's key for it, sets the next user's PIN (CARDLINK_NEW_PIN); asks first",
  usage: `cardlink admin retire-card ${CONNECT_USAGE} --card CARDID [--image FILE | --reader NAME] [--yes] [--json]`,
  async run(argv, io) {
    const { values } = parse(argv, { ...CONNECT, ...TARGET_OPTIONS, card: { type: 'string' }, yes: { type: 'boolean' } });
    const wanted = required(values.card, '--card').replace(/[\s-]+/g, '').toUpperCase();
    if (!/^[0-9A-F]{32}$/.test(wanted)) throw new UsageError('--card is the card id, 32 hex digits');
    const confirm = values.yes === true ? undefined : io.confirm;
    if (values.yes !== true && !confirm) throw new UsageError('retiring a card destroys its keys for good: add --yes to confirm (there is no terminal to ask on)');
    const newPin = await readSecret(io, 'CARDLINK_NEW_PIN', "the next user's initial PIN: ");
    const result = await withCard(values, io, async (card) => {
      const cardId = hex(await card.cardId());
      if (cardId !== wanted) throw new UsageError(`the card here is ${cardId}, not ${wanted}: nothing was done`);
      const containers = await card.containers();
      if (confirm && !(await confirm(line`Retire card ${cardId} and delete its ${containers.length} container(s) (${containers.map((c) => c.name).join(', ') || 'none'}) with their keys? This cannot be undone.`))) return undefined;
      const challenge = await card.adminChallenge();
      const answer = await asOperator(values, io, (client, session) => client.retireCard(session, cardId, hex(challenge)));
      return { cardId, ...(await card.retire(fromHex(answer.response), fromHex(answer.transportKey), newPin)) };
    });
    if (!result) {
      emit(io, values.json === true, { ok: false, retired: false }, () => 'nothing done');
      return 1;
    }
    emit(io, values.json === true, { ok: true, retired: true, ...result }, () => line`card ${result.cardId} retired: ${result.deletedContainers.length} container(s) deleted, transport key and the new initial PIN set; it can be enrolled again`);
    return 0;
  },
};

export const adminCommands: Command[] = [token, tokenRevoke, requests, approve, reject, revoke, audit, unblockResponse, unblockTicket, rotateAdminKey, retireCard];
