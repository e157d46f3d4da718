import { readFileSync } from 'node:fs';
import { groupedHex, parseChallengeHex } from '../../admin-challenge.js';
import { fromHex, hex } from '../../bytes.js';
import { ServiceClient, ServiceClientError, type AuditListQuery, type RequestPage, type RequestState, type RequestView } from '../../service/client.js';
import { REVOKE_REASONS, type HandlerOf, type specs } from '../catalog.js';
import { required } from '../args.js';
import { emit, UsageError, type CliIo } from '../io.js';
import { readSecret } from '../secrets.js';
import { line } from '../terminal.js';

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
export async function asOperator<T>(values: { server?: string | undefined; cacert?: string | undefined; operator?: string | undefined }, io: CliIo, fn: (client: ServiceClient, session: string) => Promise<T>): Promise<T> {
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

export const token: HandlerOf<typeof specs.adminToken> = async ({ values }, io) => {
  const user = required(values.user, '--user');
  if (values.ttl !== undefined && !/^\d+$/.test(values.ttl)) throw new UsageError('--ttl takes a whole number of seconds');
  const created = await asOperator(values, io, (client, session) =>
    client.createToken(session, { user, ...(values.profile ? { profile: values.profile } : {}), ...(values.ttl ? { ttlSeconds: Number(values.ttl) } : {}) }),
  );
  emit(io, values.json === true, { ok: true, ...created }, () => line`${created.token}\nfor ${created.user}, profile ${created.profile}, one use, expires ${created.expiresAt}`);
  return 0;
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

export const requests: HandlerOf<typeof specs.adminRequests> = async ({ values }, io) => {
  if (values.limit !== undefined && (!/^\d+$/.test(values.limit) || Number(values.limit) < 1)) throw new UsageError('--limit takes a whole number of rows, at least 1');
  if (values.limit !== undefined && values.all) throw new UsageError('give --limit or --all, not both');
  const limit = values.limit !== undefined ? Number(values.limit) : DEFAULT_REQUEST_LIMIT;
  // The service checks the state name and answers 400 with the list of states.
  const query = { ...(values.state ? { state: values.state as RequestState } : {}), ...(values.user ? { user: values.user } : {}) };
  const result = await asOperator(values, io, (client, session) =>
    fetchRequestPages((cursor, n) => client.requestPage(session, { ...query, limit: n, ...(cursor !== undefined ? { cursor } : {}) }), { limit, all: values.all === true }),
  );
  const rows = result.items;
  emit(io, values.json === true, { ok: true, requests: rows, truncated: result.truncated, ...(result.nextCursor !== null ? { nextCursor: result.nextCursor } : {}) }, () => {
    const lines = rows.map((r) => line`${r.id}  ${r.state.padEnd(9)} ${r.user}  ${r.profile}  ${r.createdAt}` + (r.container ? line`  card ${r.cardId?.toUpperCase()} / ${r.container}` : ''));
    if (rows.length === 0) lines.push('no requests');
    else lines.unshift(`${'ID'.padEnd(rows[0]!.id.length)}  ${'STATE'.padEnd(9)} USER  PROFILE  CREATED  CARD / CONTAINER`);
    if (result.truncated) lines.push(`(first ${rows.length} shown; more match: --limit N for more, --all for every one)`);
    return lines.join('\n');
  });
  return 0;
};

export const tokenRevoke: HandlerOf<typeof specs.adminTokenRevoke> = async ({ values, positionals }, io) => {
  if (positionals.length !== 1) throw new UsageError('give exactly one token id (see the id in the answer of `cardlink admin token`)');
  const id = positionals[0]!;
  await asOperator(values, io, (client, session) => client.revokeToken(session, id));
  emit(io, values.json === true, { ok: true, id, revoked: true }, () => line`token ${id} revoked: it can no longer enroll`);
  return 0;
};

type Decide = (client: ServiceClient, session: string, id: string) => Promise<RequestView>;

/** approve, reject and revoke: one request id, one decision, the request as it is after. */
async function decide(values: { server?: string; cacert?: string; operator?: string; json?: boolean }, positionals: string[], io: CliIo, call: Decide): Promise<number> {
  const given = oneId(positionals);
  const r = await asOperator(values, io, async (client, session) => {
    try {
      return await call(client, session, given);
    } catch (err) {
      // Not a request id: perhaps the start of one (36-character ids are hard to type).
      if (!(err instanceof ServiceClientError && err.status === 404) || UUID.test(given) || given.length < 4) throw err;
      const id = await requestIdByPrefix(client, session, given);
      if (id === undefined) throw err;
      return call(client, session, id);
    }
  });
  emit(io, values.json === true, { ok: true, request: r }, () => line`${r.id} ${r.state}` + (r.serial ? line` (serial ${r.serial})` : ''));
  return 0;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The one request whose id starts with `prefix`; undefined when none does, a UsageError when several do. */
export async function requestIdByPrefix(client: ServiceClient, session: string, prefix: string): Promise<string | undefined> {
  const { items } = await fetchRequestPages((cursor, n) => client.requestPage(session, { limit: n, ...(cursor !== undefined ? { cursor } : {}) }), { limit: 0, all: true });
  const matches = items.filter((r) => r.id.toLowerCase().startsWith(prefix.toLowerCase()));
  if (matches.length > 1) {
    throw new UsageError(`'${prefix}' starts ${matches.length} request ids (${matches.slice(0, 5).map((m) => m.id).join(', ')}${matches.length > 5 ? ', …' : ''}): give more characters`);
  }
  return matches[0]?.id;
}

export const approve: HandlerOf<typeof specs.adminApprove> = ({ values, positionals }, io) => decide(values, positionals, io, (client, session, id) => client.approve(session, id));

export const reject: HandlerOf<typeof specs.adminReject> = ({ values, positionals }, io) => {
  const reason = required(values.reason, '--reason');
  return decide(values, positionals, io, (client, session, id) => client.reject(session, id, reason));
};

/** `--reason 1`, `--reason keyCompromise` or `--reason "1 keyCompromise"`: the RFC 5280 code. */
export function revokeReason(text: string | undefined): number {
  if (text === undefined) return 0;
  const found = REVOKE_REASONS.find((r) => r === text || r.split(' ').includes(text) || r.split(' ')[1]!.toLowerCase() === text.toLowerCase());
  if (!found) throw new UsageError(`--reason is an RFC 5280 reason code or name: ${REVOKE_REASONS.join(', ')}`);
  return Number(found.split(' ')[0]);
}

export const revoke: HandlerOf<typeof specs.adminRevoke> = ({ values, positionals }, io) => {
  const reason = revokeReason(values.reason);
  return decide(values, positionals, io, (client, session, id) => client.revoke(session, id, reason));
};

const SESSION_ACTIONS = new Set(['session.started', 'session.ended']);

/** Times in audit details as ISO 8601, like every other time cardlink shows (some are stored as epoch ms). */
export function isoTimes(details: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(details).map(([k, v]) => [k, /At$/.test(k) && typeof v === 'number' && Number.isFinite(v) ? new Date(v).toISOString() : v]));
}

export const audit: HandlerOf<typeof specs.adminAudit> = async ({ values }, io) => {
  const query: AuditListQuery = {};
  for (const k of ['subject', 'actor', 'action', 'since'] as const) if (values[k]) query[k] = values[k];
  const all = await asOperator(values, io, (client, session) => client.audit(session, query));
  // Every admin command logs in and out: those entries stay in the log but would bury the rest.
  const rows = (values.sessions === true || values.action !== undefined ? all : all.filter((e) => !SESSION_ACTIONS.has(e.action))).map((e) => ({ ...e, details: isoTimes(e.details) }));
  emit(io, values.json === true, { ok: true, entries: rows, ...(rows.length < all.length ? { sessionsHidden: all.length - rows.length } : {}) }, () =>
    rows.map((e) => line`${e.at}  ${e.actor}  ${e.action}  ${e.subject ?? ''}  ${JSON.stringify(e.details)}`).join('\n'),
  );
  return 0;
};

export function cardIdOption(value: string | undefined): string {
  const card = required(value, '--card').replace(/[\s-]+/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(card)) throw new UsageError('--card is the card id, 32 hex digits');
  return card;
}

export const unblockResponse: HandlerOf<typeof specs.adminUnblockResponse> = async ({ values }, io) => {
  const card = cardIdOption(values.card);
  const challenge = hex(parseChallengeHex(required(values.challenge, '--challenge'), 'challenge'));
  const answer = await asOperator(values, io, (client, session) => client.unblockResponse(session, card, challenge));
  emit(io, values.json === true, { ok: true, ...answer }, () => `response ${groupedHex(fromHex(answer.response))}\n` + line`for card ${answer.cardId}, challenge ${groupedHex(fromHex(answer.challenge))}; it works once, for this challenge only`);
  return 0;
};

export const unblockTicket: HandlerOf<typeof specs.adminUnblockTicket> = async ({ values }, io) => {
  const card = cardIdOption(values.card);
  if (values.ttl !== undefined && !/^\d+$/.test(values.ttl)) throw new UsageError('--ttl takes a whole number of seconds');
  const made = await asOperator(values, io, (client, session) => client.createUnblockTicket(session, card, values.ttl === undefined ? undefined : Number(values.ttl)));
  emit(io, values.json === true, { ok: true, ...made }, () => line`${made.ticket}\nfor card ${made.cardId}, one use, expires ${made.expiresAt}`);
  return 0;
};

export const rotateAdminKey: HandlerOf<typeof specs.adminRotateAdminKey> = async ({ values }, io) => {
  const rotated = await asOperator(values, io, (client, session) => client.rotateAdminMasterKey(session));
  emit(io, values.json === true, { ok: true, ...rotated }, () => line`administrator master key version ${rotated.keyVersion}`);
  return 0;
};

// `admin retire-card` is `card retire` (lifecycle.ts): the catalog points both at one handler.
