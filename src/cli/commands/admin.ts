import { readFileSync } from 'node:fs';
import { groupedHex, parseChallengeHex } from '../../admin-challenge.js';
import { fromHex, hex } from '../../bytes.js';
import { PREFIX } from '../../service/auth.js';
import {
  ServiceClient,
  ServiceClientError,
  type AuditListQuery,
  type CardAction,
  type CardDetail,
  type CardState,
  type CardTransition,
  type CardView,
  type LostReason,
  type RequestPage,
  type RequestState,
  type RequestView,
  type OperatorRole,
} from '../../service/client.js';
import { REVOKE_REASONS, type HandlerOf, type specs } from '../catalog.js';
import { required } from '../args.js';
import { emit, UsageError, type CliIo } from '../io.js';
import { readNewOperatorPassword, readSecret } from '../secrets.js';
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

/** An operator session kept in the shell's environment by `eval "$(cardlink admin login)"`. */
function shellSession(io: CliIo): string | undefined {
  const session = io.env.CARDLINK_SESSION;
  if (session === undefined || session === '') return undefined;
  if (!session.startsWith(PREFIX.session)) throw new UsageError(`CARDLINK_SESSION does not hold an operator session (it starts with ${PREFIX.session}); run: eval "$(cardlink admin login)"`);
  return session;
}

/**
 * Runs `fn` as an operator: in the shell's session (CARDLINK_SESSION) when there is one, else
 * logged in for this command alone (password from CARDLINK_OPERATOR_PASSWORD or a prompt) and
 * logged out whatever happens.
 */
export async function asOperator<T>(values: { server?: string | undefined; cacert?: string | undefined; operator?: string | undefined }, io: CliIo, fn: (client: ServiceClient, session: string) => Promise<T>): Promise<T> {
  const client = openClient(values, io);
  try {
    const kept = shellSession(io);
    if (kept !== undefined) {
      try {
        return await fn(client, kept);
      } catch (err) {
        if (err instanceof ServiceClientError && err.status === 401) {
          throw new ServiceClientError(err.code, 'the operator session in CARDLINK_SESSION has expired or was ended; run: eval "$(cardlink admin login)"', { status: 401, ...(err.serviceCode ? { serviceCode: err.serviceCode } : {}), cause: err });
        }
        throw err;
      }
    }
    const username = values.operator ?? io.env.CARDLINK_OPERATOR ?? 'admin';
    const password = await readSecret(io, 'CARDLINK_OPERATOR_PASSWORD', `password for operator ${username}: `);
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

export const login: HandlerOf<typeof specs.adminLogin> = async ({ values }, io) => {
  const username = values.operator ?? io.env.CARDLINK_OPERATOR ?? 'admin';
  const password = await readSecret(io, 'CARDLINK_OPERATOR_PASSWORD', `password for operator ${username}: `);
  const client = openClient(values, io);
  try {
    const session = await client.login({ username, password });
    // stdout is for the shell's eval; the hint goes to stderr so it is not evaluated.
    if (values.json !== true) io.stderr(`logged in as ${username} until ${session.expiresAt}; 'eval "$(cardlink admin logout)"' ends it\n`);
    emit(io, values.json === true, { ok: true, operator: username, session: session.token, expiresAt: session.expiresAt }, () => `export CARDLINK_SESSION=${session.token}`);
    return 0;
  } finally {
    client.close();
  }
};

export const addOperator: HandlerOf<typeof specs.adminOperatorAdd> = async ({ values, positionals }, io) => {
  if (positionals.length !== 1) throw new UsageError('give exactly one name for the new operator');
  const username = positionals[0]!;
  const role = (values.role ?? 'viewer') as OperatorRole;
  const password = await readNewOperatorPassword(io);
  if (password.length < 12) throw new UsageError('an operator password has 12 characters at least');
  const made = await asOperator(values, io, (client, session) => client.createOperator(session, { username, password, role }));
  emit(io, values.json === true, { ok: true, operator: made }, () => line`operator ${made.username} created, role ${made.role}; they sign in at the console (/console/) or with 'cardlink admin login --operator ${made.username}'`);
  return 0;
};

export const logout: HandlerOf<typeof specs.adminLogout> = async ({ values }, io) => {
  const session = shellSession(io);
  if (session === undefined) throw new UsageError('no operator session in CARDLINK_SESSION to end');
  const client = openClient(values, io);
  try {
    await client.logout(session);
  } finally {
    client.close();
  }
  emit(io, values.json === true, { ok: true }, () => 'unset CARDLINK_SESSION');
  return 0;
};

function oneId(positionals: string[]): string {
  if (positionals.length !== 1) throw new UsageError('give exactly one request id');
  return positionals[0]!;
}

export const token: HandlerOf<typeof specs.adminToken> = async ({ values }, io) => {
  const user = required(values.user, '--user');
  if (values.ttl !== undefined && !/^\d+$/.test(values.ttl)) throw new UsageError('--ttl takes a whole number of seconds');
  // The service checks the SID strictly and says what one looks like.
  const created = await asOperator(values, io, (client, session) =>
    client.createToken(session, { user, ...(values.profile ? { profile: values.profile } : {}), ...(values.ttl ? { ttlSeconds: Number(values.ttl) } : {}), ...(values.sid ? { sid: values.sid } : {}) }),
  );
  emit(io, values.json === true, { ok: true, ...created }, () => line`${created.token}\nfor ${created.user}, profile ${created.profile}, one use, expires ${created.expiresAt}` + (created.sid ? line`\nits certificates carry the SID ${created.sid}` : ''));
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
  return fetchPages(async (cursor, limit) => {
    const got = await page(cursor, limit);
    return { items: got.requests, next: got.next };
  }, o);
}

/** fetchRequestPages for any paged listing (requests, cards). */
export async function fetchPages<T>(
  page: (cursor: string | undefined, limit: number) => Promise<{ items: T[]; next: string | null }>,
  o: { limit: number; all: boolean },
): Promise<{ items: T[]; truncated: boolean; nextCursor: string | null }> {
  const items: T[] = [];
  let cursor: string | undefined;
  for (;;) {
    const want = o.all ? PAGE_SIZE : Math.min(PAGE_SIZE, o.limit - items.length);
    const got = await page(cursor, want);
    const room = o.all ? got.items.length : o.limit - items.length;
    items.push(...got.items.slice(0, room));
    const leftOnPage = got.items.length > room;
    if (got.next === null && !leftOnPage) return { items, truncated: false, nextCursor: null };
    if (!o.all && items.length >= o.limit) return { items, truncated: true, nextCursor: leftOnPage ? null : got.next };
    if (got.next === null) return { items, truncated: false, nextCursor: null };
    // A page that brings nothing new while promising more would loop for ever.
    if (got.items.length === 0 || got.next === cursor) throw new ServiceClientError('SERVICE_BAD_ANSWER', 'the service returned an empty page with a cursor to more');
    cursor = got.next;
  }
}

/** --limit and --all of a listing: how many rows to show. */
function listLimit(values: { limit?: string | undefined; all?: boolean | undefined }): number {
  if (values.limit !== undefined && (!/^\d+$/.test(values.limit) || Number(values.limit) < 1)) throw new UsageError('--limit takes a whole number of rows, at least 1');
  if (values.limit !== undefined && values.all) throw new UsageError('give --limit or --all, not both');
  return values.limit !== undefined ? Number(values.limit) : DEFAULT_REQUEST_LIMIT;
}

export const requests: HandlerOf<typeof specs.adminRequests> = async ({ values }, io) => {
  const limit = listLimit(values);
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

// Cards as records and their life cycle (issue 13)

function cardIdArgument(text: string): string {
  const card = text.replace(/[\s-]+/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(card)) throw new UsageError('ID is the card id, 32 hex digits (see cardlink admin cards)');
  return card.toLowerCase();
}

export const cards: HandlerOf<typeof specs.adminCards> = async ({ values }, io) => {
  const limit = listLimit(values);
  const query = { ...(values.state ? { state: values.state as CardState } : {}), ...(values.user ? { user: values.user } : {}) };
  const result = await asOperator(values, io, (client, session) =>
    fetchPages<CardView>(async (cursor, n) => {
      const page = await client.cardPage(session, { ...query, limit: n, ...(cursor !== undefined ? { cursor } : {}) });
      return { items: page.cards, next: page.next };
    }, { limit, all: values.all === true }),
  );
  const rows = result.items;
  emit(io, values.json === true, { ok: true, cards: rows, truncated: result.truncated, ...(result.nextCursor !== null ? { nextCursor: result.nextCursor } : {}) }, () => {
    if (rows.length === 0) return 'no cards';
    const lines = [`${'CARD'.padEnd(32)}  ${'STATE'.padEnd(9)}  ${'SINCE'.padEnd(24)}  USER`];
    for (const c of rows) lines.push(line`${c.cardId}  ${c.state.padEnd(9)}  ${c.updatedAt.padEnd(24)}  ${c.user}` + (c.replacedBy ? line`  replaced by ${c.replacedBy}` : ''));
    if (result.truncated) lines.push(`(first ${rows.length} shown; more match: --limit N for more, --all for every one)`);
    return lines.join('\n');
  });
  return 0;
};

/** A card as header rows, its credentials with their strong mapping, and its history (times ISO 8601, untrusted text escaped). */
export function cardText(c: CardDetail): string {
  const out = [
    line`card      ${c.cardId}`,
    line`user      ${c.user}`,
    line`state     ${c.state}`,
    line`created   ${c.createdAt}`,
    line`updated   ${c.updatedAt}`,
    ...(c.replaces ? [line`replaces  ${c.replaces}`] : []),
    ...(c.replacedBy ? [line`replaced  by ${c.replacedBy}`] : []),
    '',
    `credentials (${c.credentials.length}):`,
  ];
  for (const k of c.credentials) {
    out.push(line`  request ${k.requestId}  ${k.kind} ${k.requestState}  profile ${k.profile}  container ${k.container ?? '-'}`);
    if (k.serial === null) continue;
    out.push(line`    serial ${k.serial}  ${k.status ?? ''}${k.revocationReason ? ` (${k.revocationReason})` : ''}  valid ${k.notBefore} to ${k.notAfter}`);
    out.push(line`    subject ${k.subject}`);
    if (k.sidExtension !== null) out.push(line`    SID extension present (${k.sidExtension}): domain controllers map it to the account strongly`);
    else if (k.strongMapping !== null) {
      out.push(line`    strong mapping ${k.strongMapping}`);
      out.push("    no SID extension: put the mapping above in the user's altSecurityIdentities (KB5014754), or issue with 'admin token --sid'");
    }
  }
  out.push('', `history (${c.history.length}):`);
  for (const h of c.history) out.push(line`  ${h.at}  ${h.actor}  ${h.action}  ${JSON.stringify(isoTimes(h.details))}`);
  return out.join('\n');
}

const CONFIRM_ACTIONS: ReadonlySet<CardAction> = new Set(['lost', 'retire']);

export const card: HandlerOf<typeof specs.adminCard> = async ({ values, positionals }, io) => {
  const cardId = cardIdArgument(positionals[0]!);
  const action = positionals[1] as CardAction | undefined;
  if (action !== 'lost' && (values.reason !== undefined || values.temporary === true)) throw new UsageError('--reason and --temporary go with lost only');
  if (action === undefined) {
    if (values.yes === true) throw new UsageError('--yes goes with lost or retire');
    const shown = await asOperator(values, io, (client, session) => client.card(session, cardId));
    emit(io, values.json === true, { ok: true, card: shown }, () => cardText(shown));
    return 0;
  }
  const confirm = values.yes === true || !CONFIRM_ACTIONS.has(action) ? undefined : io.confirm;
  if (CONFIRM_ACTIONS.has(action) && values.yes !== true && !confirm) {
    throw new UsageError(`${action === 'lost' ? 'marking a card lost' : 'retiring a card'} revokes its certificates for good: add --yes to confirm (there is no terminal to ask on)`);
  }
  const moved = await asOperator(values, io, async (client, session): Promise<CardTransition | undefined> => {
    if (confirm) {
      const current = await client.card(session, cardId);
      const live = current.credentials.filter((k) => k.status === 'good' || k.status === 'on-hold').length;
      const question = action === 'lost'
        ? line`Mark card ${cardId} of ${current.user} lost, revoke its ${live} valid certificate(s) (${values.reason ?? 'keyCompromise'}) and make a replacement token?`
        : line`Retire card ${cardId} of ${current.user} and revoke its ${live} valid certificate(s) (cessationOfOperation)? This cannot be undone.`;
      if (!(await confirm(question))) return undefined;
    }
    return client.transitionCard(session, cardId, {
      action, ...(values.reason ? { reason: values.reason as LostReason } : {}), ...(values.temporary === true ? { temporary: true } : {}),
    });
  });
  if (!moved) {
    emit(io, values.json === true, { ok: false, moved: false }, () => 'nothing done');
    return 1;
  }
  emit(io, values.json === true, { ok: true, ...moved }, () => {
    const out = [line`card ${cardId}: ${moved.from} -> ${moved.to}`];
    if (moved.revoked.length > 0) out.push(line`revoked: ${moved.revoked.join(', ')}`);
    if (moved.held.length > 0) out.push(line`on hold (certificateHold): ${moved.held.join(', ')}`);
    if (moved.released.length > 0) out.push(line`hold removed, good again: ${moved.released.join(', ')}`);
    const t = moved.replacementToken;
    if (t) out.push(line`replacement enrollment token for ${t.user} (shown once), profile ${t.profile}, expires ${t.expiresAt}:`, line`${t.token}`);
    return out.join('\n');
  });
  return 0;
};

export const expiring: HandlerOf<typeof specs.adminExpiring> = async ({ values }, io) => {
  const daysText = values.days ?? '30';
  if (!/^\d{1,4}$/.test(daysText) || Number(daysText) > 3650) throw new UsageError('--days takes a whole number of days, 0 to 3650');
  const days = Number(daysText);
  const rows = await asOperator(values, io, (client, session) => client.expiringCertificates(session, days));
  emit(io, values.json === true, { ok: true, days, certificates: rows }, () => {
    if (rows.length === 0) return `no certificate expires within ${days} days`;
    const lines = [`${'DAYS'.padStart(4)}  ${'EXPIRES'.padEnd(24)}  ${'SERIAL'.padEnd(32)}  ${'CARD'.padEnd(32)}  RENEWAL  USER  PROFILE`];
    for (const r of rows) lines.push(line`${String(r.daysLeft).padStart(4)}  ${r.notAfter.padEnd(24)}  ${r.serial.padEnd(32)}  ${(r.cardId ?? '-').padEnd(32)}  ${r.renewal.padEnd(7)}  ${r.user}  ${r.profile}`);
    return lines.join('\n');
  });
  return 0;
};
