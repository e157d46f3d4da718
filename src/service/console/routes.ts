/**
 * The operator console under /console/: server-rendered pages over the same use cases as the
 * JSON API (EnrollmentService, CardAdminService) with the same Principal, so authorisation and
 * audit are the API's own. Registered as an encapsulated Fastify plugin: its cookie and form
 * parsers, security headers and HTML error pages apply to /console only.
 */
import { createHash } from 'node:crypto';
import fastifyCookie from '@fastify/cookie';
import fastifyFormbody from '@fastify/formbody';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { requireOperator, type OperatorPrincipal, type OperatorRole, type Principal } from '../auth.js';
import type { CardAdminService } from '../card-admin.js';
import { cardActionsFrom, cardMoveRefusal, type CardService } from '../cards.js';
import type { ConsoleSessionLimits, EnrollmentService } from '../enrollment.js';
import { ServiceError } from '../errors.js';
import type { App } from '../http.js';
import {
  CARD_ACTIONS, CARD_STATES, DEFAULT_PROFILE, LOST_REASONS, REQUEST_STATES,
  type AuditEntryView, type CardAction, type CardDetail, type CardState, type LostReason, type RequestListQuery, type RequestState, type RequestView,
} from '../protocol.js';
import { x509 } from '../../x509.js';
import { CONSOLE_CSS, CONSOLE_JS, FAVICON_SVG, htmxSource } from './assets.js';
import { html } from './html.js';
import * as pages from './pages.js';
import { checkStateChange, CONSOLE_PATH, CONSOLE_SESSION_DEFAULTS, COOKIE_OPTIONS, csrfToken, SESSION_COOKIE, sessionSecret } from './session.js';

/**
 * Content-Security-Policy (W3C CSP Level 3): scripts and styles from the console only, no inline
 * code, no framing (with X-Frame-Options for older browsers), forms post back to the service only.
 */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";

export interface ConsoleOptions {
  service: EnrollmentService;
  cards: CardAdminService;
  /** The card records and their life cycle (issue 13). */
  cardRecords: CardService;
  session?: Partial<ConsoleSessionLimits>;
}

const atLeast = (p: OperatorPrincipal, role: OperatorRole): boolean => pages.hasRole(p, role);

const ID_RE = /^[0-9a-f-]{36}$/;
const CARD_RE = /^[0-9a-f]{32}$/;

/** Thrown to send the browser to the sign-in page (no or expired session). */
class SignInNeeded extends Error {}

/** A date field (YYYY-MM-DD, a UTC day) to the ISO date-time the use cases take; `endOfDay` is the next midnight. */
function dayToIso(text: string | undefined, endOfDay: boolean, name: string): string | undefined {
  if (text === undefined || text === '') return undefined;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text) || Number.isNaN(Date.parse(`${text}T00:00:00Z`))) throw new ServiceError('BAD_REQUEST', `${name}: give a date like 2026-12-04`);
  const ms = Date.parse(`${text}T00:00:00Z`) + (endOfDay ? 86_400_000 : 0);
  return new Date(ms).toISOString();
}

/** Only the query values a page knows, as bounded strings. */
function queryOf(req: FastifyRequest, names: string[]): Record<string, string | undefined> {
  const q = (req.query ?? {}) as Record<string, unknown>;
  const out: Record<string, string | undefined> = {};
  for (const n of names) {
    const v = q[n];
    if (typeof v === 'string' && v !== '' && v.length <= 300) out[n] = v;
  }
  return out;
}

function form(req: FastifyRequest): Record<string, string> {
  const b = (req.body ?? {}) as Record<string, unknown>;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(b)) if (typeof v === 'string') out[k] = v;
  return out;
}

const NOTICES: Record<string, string> = {
  approved: 'Request approved: the certificate is issued and waits for the card.',
  rejected: 'Request rejected: the user sees the reason on the next collect.',
  revoked: 'Certificate revoked: the next CRL lists it.',
  'token-revoked': 'Token revoked: it can no longer enroll.',
  'card-suspend': 'Card suspended: its certificates are on hold until it is resumed; the next CRL lists them.',
  'card-resume': 'Card resumed: the hold on its certificates is lifted.',
  'card-retire': 'Card retired: its certificates are revoked; the card may be enrolled again.',
  'profile-saved': 'Profile saved.',
  'signed-out': 'You are signed out.',
  'password-changed': 'Password changed: every session of yours has ended. Sign in with the new password.',
  expired: 'Your session ended (signed out, expired, or idle too long). Sign in again.',
};

/** RFC 4180 CSV; a cell that a spreadsheet would run as a formula gets a leading quote (OWASP CSV Injection). */
function csvCell(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function auditCsv(entries: AuditEntryView[]): string {
  const rows = [['id', 'at', 'actor', 'action', 'subject', 'details'], ...entries.map((e) => [String(e.id), e.at, e.actor, e.action, e.subject ?? '', JSON.stringify(e.details)])];
  return rows.map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
}

export function registerConsole(app: App, o: ConsoleOptions): void {
  const { service, cards, cardRecords } = o;
  const limits: ConsoleSessionLimits = { ...CONSOLE_SESSION_DEFAULTS, ...o.session };

  app.get(CONSOLE_PATH, async (_req, reply) => reply.redirect(`${CONSOLE_PATH}/`));

  void app.register(async (c) => {
    await c.register(fastifyCookie);
    await c.register(fastifyFormbody, { bodyLimit: 16 * 1024 });

    c.addHook('onRequest', async (_req, reply) => {
      reply.header('content-security-policy', CSP);
      reply.header('x-frame-options', 'DENY');
      reply.header('referrer-policy', 'no-referrer');
      reply.header('x-content-type-options', 'nosniff');
      reply.header('cache-control', 'no-store');
    });

    /** The signed-in operator from the session cookie, or a redirect to the sign-in page. */
    async function who(req: FastifyRequest): Promise<{ p: OperatorPrincipal; secret: string }> {
      const secret = sessionSecret(req);
      const p: Principal | undefined = secret ? await service.fromBearer(secret) : undefined;
      if (!secret || !p || p.kind !== 'operator') throw new SignInNeeded();
      return { p, secret };
    }

    async function page(req: FastifyRequest, reply: FastifyReply, title: string, current: string | undefined, body: (ctx: pages.PageContext, p: OperatorPrincipal) => Promise<ReturnType<typeof html>>): Promise<FastifyReply> {
      const { p, secret } = await who(req);
      const notice = queryOf(req, ['done']).done;
      const ctx: pages.PageContext = { operator: p, csrf: csrfToken(secret), current, notice: notice ? NOTICES[notice] : undefined };
      const content = await body(ctx, p);
      return reply.type('text/html; charset=utf-8').send(pages.layout(title, ctx, content));
    }

    /** A state change: same-origin check, CSRF token, then the use case; answers with a redirect (Post/Redirect/Get). */
    async function change(req: FastifyRequest, reply: FastifyReply, run: (p: OperatorPrincipal, body: Record<string, string>) => Promise<string>): Promise<FastifyReply> {
      const secret = sessionSecret(req);
      checkStateChange(req, secret);
      const { p } = await who(req);
      return reply.redirect(await run(p, form(req)), 303);
    }

    c.setErrorHandler(async (err, req, reply) => {
      if (err instanceof SignInNeeded) {
        if (req.headers['hx-request']) return reply.code(401).header('hx-redirect', `${CONSOLE_PATH}/login?done=expired`).send();
        const next = req.method === 'GET' ? req.url : `${CONSOLE_PATH}/pending`;
        // "Your session ended" only to whoever had one; a first visit just sees the sign-in page.
        return reply.redirect(`${CONSOLE_PATH}/login?${sessionSecret(req) ? 'done=expired&' : ''}next=${encodeURIComponent(next)}`, 303);
      }
      const e = err instanceof ServiceError ? err : (err as { statusCode?: number }).statusCode === 413
        ? new ServiceError('TOO_LARGE', 'the form is too large')
        : (err as { validation?: unknown }).validation !== undefined ? new ServiceError('BAD_REQUEST', (err as Error).message) : undefined;
      if (!e) req.log.error(err);
      const status = e?.status ?? 500;
      const message = e
        ? e.code === 'FORBIDDEN' ? `Not allowed: ${e.message}.` : e.code === 'STORAGE' ? 'The database could not complete this; try again shortly.' : `${e.message}.`
        : 'Something went wrong on the service: try again; if it persists, see the service log.';
      const secret = sessionSecret(req);
      const p = secret ? await service.fromBearer(secret).catch(() => undefined) : undefined;
      const op = p?.kind === 'operator' ? p : undefined;
      const ctx: pages.PageContext = { operator: op, csrf: op && secret ? csrfToken(secret) : undefined, error: message.replace(/\.\.$/, '.') };
      // Back to where the operator was: the card an action on it failed for, else the pending requests.
      const card = /^\/console\/cards\/([0-9a-fA-F]{32})(?:[/?]|$)/.exec(req.url)?.[1]?.toLowerCase();
      const back = card ? html`<a href="${CONSOLE_PATH}/cards/${card}">Back to the card</a>` : html`<a href="${CONSOLE_PATH}/pending">Back to the pending requests</a>`;
      return reply.code(status).type('text/html; charset=utf-8').send(pages.layout(status === 403 ? 'Not allowed' : 'That did not work', ctx, html`<p>${back}</p>`));
    });

    // Static files
    const asset = (type: string, body: () => string) => async (_req: FastifyRequest, reply: FastifyReply) => reply.header('cache-control', 'public, max-age=300').type(type).send(body());
    c.get(`${pages.ASSETS}/htmx.min.js`, asset('text/javascript; charset=utf-8', htmxSource));
    c.get(`${pages.ASSETS}/console.js`, asset('text/javascript; charset=utf-8', () => CONSOLE_JS));
    c.get(`${pages.ASSETS}/console.css`, asset('text/css; charset=utf-8', () => CONSOLE_CSS));
    c.get(`${pages.ASSETS}/favicon.svg`, asset('image/svg+xml', () => FAVICON_SVG));

    c.get(`${CONSOLE_PATH}/`, async (_req, reply) => reply.redirect(`${CONSOLE_PATH}/pending`, 303));

    // Sign in and out
    c.get(`${CONSOLE_PATH}/login`, async (req, reply) => {
      const q = queryOf(req, ['done', 'next']);
      const ctx: pages.PageContext = { operator: undefined, csrf: undefined, notice: q.done ? NOTICES[q.done] : undefined };
      return reply.type('text/html; charset=utf-8').send(pages.layout('Sign in', ctx, pages.loginForm(q.next ?? `${CONSOLE_PATH}/pending`)));
    });
    c.post(`${CONSOLE_PATH}/login`, async (req, reply) => {
      // No session yet: the origin check is the CSRF defence here (a login CSRF would sign the victim in as the attacker).
      checkStateChange(req, undefined);
      const f = form(req);
      const next = f.next && /^\/console\/[A-Za-z0-9/_?=&.%-]*$/.test(f.next) && !f.next.startsWith('//') ? f.next : `${CONSOLE_PATH}/pending`;
      try {
        const s = await service.login(f.username ?? '', f.password ?? '', req.ip, limits);
        reply.setCookie(SESSION_COOKIE, s.token, { ...COOKIE_OPTIONS, maxAge: Math.floor(limits.absoluteMs / 1000) });
        return reply.redirect(next, 303);
      } catch (err) {
        if (!(err instanceof ServiceError)) throw err;
        const message = err.code === 'TOO_MANY_ATTEMPTS' ? `Too many failed sign-ins: ${err.message.replace(/^too many failed logins: /, '')}.`
          : err.code === 'BAD_REQUEST' ? `${err.message}.` : 'Wrong operator name or password.';
        const ctx: pages.PageContext = { operator: undefined, csrf: undefined, error: message };
        return reply.code(err.status).type('text/html; charset=utf-8').send(pages.layout('Sign in', ctx, pages.loginForm(next)));
      }
    });
    c.post(`${CONSOLE_PATH}/logout`, async (req, reply) => {
      const secret = sessionSecret(req);
      checkStateChange(req, secret);
      const p = secret ? await service.fromBearer(secret) : undefined;
      if (p?.kind === 'operator') await service.logout(p);
      reply.clearCookie(SESSION_COOKIE, COOKIE_OPTIONS);
      return reply.redirect(`${CONSOLE_PATH}/login?done=signed-out`, 303);
    });

    // Pending requests (the default page) and its live fragment
    async function pendingRows(p: OperatorPrincipal): Promise<{ rows: pages.PendingRow[]; version: string }> {
      const { requests } = await service.page(p, { state: 'pending', limit: 200 });
      const rows: pages.PendingRow[] = [];
      for (const r of requests) {
        const csr = new x509.Pkcs10CertificateRequest(await service.csr(p, r.id));
        rows.push({ request: r, key: pages.keyFacts(new Uint8Array(csr.publicKey.rawData)) });
      }
      const version = createHash('sha256').update(requests.map((r) => r.id).join(',')).digest('base64url').slice(0, 16);
      return { rows, version };
    }
    c.get(`${CONSOLE_PATH}/pending`, async (req, reply) =>
      page(req, reply, 'Pending requests', `${CONSOLE_PATH}/pending`, async (_ctx, p) => {
        const { rows, version } = await pendingRows(p);
        return html`<p class="muted">Requests that wait for an operator's decision. This list updates by itself.</p>${pages.pendingList(rows, version, atLeast(p, 'approver'))}`;
      }));
    c.get(`${CONSOLE_PATH}/pending/rows`, async (req, reply) => {
      const { p } = await who(req);
      const { rows, version } = await pendingRows(p);
      // Unchanged: htmx swaps nothing on 204, so a keyboard user's focus stays where it is.
      if (queryOf(req, ['v']).v === version) return reply.code(204).send();
      return reply.type('text/html; charset=utf-8').send(pages.pendingList(rows, version, atLeast(p, 'approver')).text);
    });

    // Requests
    c.get(`${CONSOLE_PATH}/requests`, async (req, reply) =>
      page(req, reply, 'Requests', `${CONSOLE_PATH}/requests`, async (_ctx, p) => {
        const q = queryOf(req, ['state', 'user', 'since', 'until', 'cursor']);
        if (q.state !== undefined && !REQUEST_STATES.includes(q.state as RequestState)) throw new ServiceError('BAD_REQUEST', `there is no request state '${q.state}'`);
        const query: RequestListQuery = {
          ...(q.state ? { state: q.state as RequestState } : {}), ...(q.user ? { user: q.user } : {}), ...(q.cursor ? { cursor: q.cursor } : {}),
          since: dayToIso(q.since, false, 'Submitted from'), until: dayToIso(q.until, true, 'Submitted until'), limit: 50,
        };
        const res = await service.page(p, query);
        const keep = new URLSearchParams(Object.entries({ ...q, cursor: res.next ?? '' }).filter(([, v]) => v) as [string, string][]);
        return html`${pages.requestFilters(q)}${pages.requestTable(res.requests)}
<nav aria-label="Pages" class="actions">${q.cursor ? html`<a href="/console/requests?${new URLSearchParams(Object.entries(q).filter(([k, v]) => k !== 'cursor' && v) as [string, string][]).toString()}">First page</a>` : ''}
${res.next ? html`<a href="/console/requests?${keep.toString()}">Next page</a>` : ''}</nav>`;
      }));

    const requestId = (req: FastifyRequest): string => {
      const id = (req.params as { id: string }).id;
      if (!ID_RE.test(id)) throw new ServiceError('NOT_FOUND', 'there is no request with that id');
      return id;
    };

    c.get(`${CONSOLE_PATH}/requests/:id`, async (req, reply) =>
      page(req, reply, 'Request', `${CONSOLE_PATH}/requests`, async (ctx, p) => {
        const id = requestId(req);
        const r = await service.get(p, id);
        const history = await service.audit(p, { subject: `request:${id}`, limit: 200 });
        return pages.requestDetail(r, await service.csr(p, id), history, ctx, atLeast(p, 'approver'), atLeast(p, 'approver'));
      }));

    const summary = (r: RequestView) => html`<dl class="facts"><dt>User</dt><dd>${r.user}</dd><dt>Profile</dt><dd>${r.profile}</dd><dt>Card</dt><dd class="mono">${r.cardId ?? '—'}</dd><dt>Container</dt><dd class="mono">${r.container ?? '—'}</dd><dt>Submitted</dt><dd>${pages.time(r.createdAt)}</dd></dl>`;

    c.get(`${CONSOLE_PATH}/requests/:id/approve`, async (req, reply) =>
      page(req, reply, 'Approve request?', `${CONSOLE_PATH}/pending`, async (ctx, p) => {
        requireOperator(p, 'approver');
        const r = await service.get(p, requestId(req));
        if (r.state !== 'pending') throw new ServiceError('CONFLICT', `this request is ${r.state}, not pending: someone decided it already`);
        return html`${summary(r)}${pages.confirmForm({ action: `/console/requests/${r.id}/approve`, question: html`Approve this request of ${r.user}? The CA issues the certificate at once.`, button: `Approve the request of ${r.user}`, cancel: '/console/pending' }, ctx)}`;
      }));
    c.post(`${CONSOLE_PATH}/requests/:id/approve`, async (req, reply) =>
      change(req, reply, async (p) => {
        await service.approve(p, requestId(req));
        return `${CONSOLE_PATH}/pending?done=approved`;
      }));
    c.get(`${CONSOLE_PATH}/requests/:id/reject`, async (req, reply) =>
      page(req, reply, 'Reject request?', `${CONSOLE_PATH}/pending`, async (ctx, p) => {
        requireOperator(p, 'approver');
        const r = await service.get(p, requestId(req));
        if (r.state !== 'pending') throw new ServiceError('CONFLICT', `this request is ${r.state}, not pending: someone decided it already`);
        return html`${summary(r)}${pages.confirmForm({
          action: `/console/requests/${r.id}/reject`, question: html`Reject this request of ${r.user}? The user sees the reason.`, button: `Reject the request of ${r.user}`, danger: true, cancel: '/console/pending',
          extra: html`<div><label for="reason">Reason (the user sees it)</label><textarea id="reason" name="reason" required maxlength="500" rows="3"></textarea></div>`,
        }, ctx)}`;
      }));
    c.post(`${CONSOLE_PATH}/requests/:id/reject`, async (req, reply) =>
      change(req, reply, async (p, f) => {
        const reason = (f.reason ?? '').trim();
        if (reason === '' || reason.length > 500) throw new ServiceError('BAD_REQUEST', 'give a reason of 1 to 500 characters: the user sees it');
        await service.reject(p, requestId(req), reason);
        return `${CONSOLE_PATH}/pending?done=rejected`;
      }));
    const REASONS: [number, string][] = [[0, 'unspecified'], [1, 'key compromise (the card was lost or stolen)'], [3, 'affiliation changed'], [4, 'superseded'], [5, 'cessation of operation (the user left)']];
    c.get(`${CONSOLE_PATH}/requests/:id/revoke`, async (req, reply) =>
      page(req, reply, 'Revoke certificate?', `${CONSOLE_PATH}/cards`, async (ctx, p) => {
        requireOperator(p, 'approver');
        const r = await service.get(p, requestId(req));
        return html`${summary(r)}${pages.confirmForm({
          action: `/console/requests/${r.id}/revoke`, question: html`Revoke the certificate ${r.serial ?? ''} of ${r.user}? This cannot be undone.`, button: 'Revoke the certificate', danger: true, cancel: `/console/requests/${r.id}`,
          extra: html`<div><label for="crl-reason">Reason (RFC 5280)</label><select id="crl-reason" name="reason">${REASONS.map(([code, label]) => html`<option value="${code}">${label}</option>`)}</select></div>`,
        }, ctx)}`;
      }));
    c.post(`${CONSOLE_PATH}/requests/:id/revoke`, async (req, reply) =>
      change(req, reply, async (p, f) => {
        const reason = Number(f.reason ?? '0');
        await service.revoke(p, requestId(req), Number.isInteger(reason) ? reason : -1);
        return `${CONSOLE_PATH}/requests/${requestId(req)}?done=revoked`;
      }));

    // Enrollment tokens
    c.get(`${CONSOLE_PATH}/tokens`, async (req, reply) =>
      page(req, reply, 'Enrollment tokens', `${CONSOLE_PATH}/tokens`, async (ctx, p) =>
        pages.tokensPage((await service.listTokens(p)).reverse(), await service.profiles(p), ctx, undefined, atLeast(p, 'approver'), Date.now())));
    c.post(`${CONSOLE_PATH}/tokens`, async (req, reply) => {
      // Not a redirect: the new token is shown in this answer, once (it is stored only as a hash).
      const secret = sessionSecret(req);
      checkStateChange(req, secret);
      return page(req, reply, 'Enrollment tokens', `${CONSOLE_PATH}/tokens`, async (ctx, p) => {
        const f = form(req);
        const hours = Number(f.hours ?? '24');
        if (!Number.isInteger(hours) || hours < 1 || hours > 720) throw new ServiceError('BAD_REQUEST', 'a token is valid for 1 to 720 hours');
        const created = await service.createToken(p, { user: (f.user ?? '').trim(), profile: f.profile || DEFAULT_PROFILE, ttlSeconds: hours * 3600 });
        return pages.tokensPage((await service.listTokens(p)).reverse(), await service.profiles(p), ctx, created, atLeast(p, 'approver'), Date.now());
      });
    });
    c.get(`${CONSOLE_PATH}/tokens/:id/revoke`, async (req, reply) =>
      page(req, reply, 'Revoke token?', `${CONSOLE_PATH}/tokens`, async (ctx, p) => {
        requireOperator(p, 'approver');
        const id = requestId(req);
        const t = (await service.listTokens(p)).find((x) => x.id === id);
        if (!t) throw new ServiceError('NOT_FOUND', 'there is no such token');
        return pages.confirmForm({ action: `/console/tokens/${id}/revoke`, question: html`Revoke the enrollment token of ${t.user}? It can no longer enroll.`, button: 'Revoke the token', danger: true, cancel: '/console/tokens' }, ctx);
      }));
    c.post(`${CONSOLE_PATH}/tokens/:id/revoke`, async (req, reply) =>
      change(req, reply, async (p) => {
        await service.revokeToken(p, requestId(req));
        return `${CONSOLE_PATH}/tokens?done=token-revoked`;
      }));

    // Cards: the service's card records and their life cycle (issue 13), through CardService with the session's Principal.
    c.get(`${CONSOLE_PATH}/cards`, async (req, reply) =>
      page(req, reply, 'Cards', `${CONSOLE_PATH}/cards`, async (_ctx, p) => {
        const q = queryOf(req, ['state', 'user', 'cursor']);
        if (q.state !== undefined && !CARD_STATES.includes(q.state as CardState)) throw new ServiceError('BAD_REQUEST', `there is no card state '${q.state}'`);
        const res = await cardRecords.list(p, { ...(q.state ? { state: q.state as CardState } : {}), ...(q.user ? { user: q.user } : {}), ...(q.cursor ? { cursor: q.cursor } : {}), limit: 50 });
        const filters = Object.entries(q).filter(([k, v]) => k !== 'cursor' && v) as [string, string][];
        const keep = new URLSearchParams([...filters, ...(res.next ? [['cursor', res.next] as [string, string]] : [])]);
        return html`${pages.cardFilters(q)}${pages.cardsList(res.cards, filters.length > 0)}
<nav aria-label="Pages" class="actions">${q.cursor ? html`<a href="/console/cards?${new URLSearchParams(filters).toString()}">First page</a>` : ''}
${res.next ? html`<a href="/console/cards?${keep.toString()}">Next page</a>` : ''}</nav>`;
      }));
    c.get(`${CONSOLE_PATH}/cards/expiring`, async (req, reply) =>
      page(req, reply, 'Certificates expiring soon', `${CONSOLE_PATH}/cards`, async (_ctx, p) => {
        const text = queryOf(req, ['days']).days ?? '30';
        const days = /^\d{1,4}$/.test(text) ? Number(text) : Number.NaN;
        if (!Number.isInteger(days) || days > 3650) throw new ServiceError('BAD_REQUEST', 'days: give a whole number of days from 0 to 3650');
        return pages.expiringPage(days, await cardRecords.expiring(p, days));
      }));
    const cardIdOf = (req: FastifyRequest): string => {
      const cardId = (req.params as { cardId: string }).cardId.toLowerCase();
      if (!CARD_RE.test(cardId)) throw new ServiceError('NOT_FOUND', 'a card ID is 32 hex digits');
      return cardId;
    };
    /** The card's record, or undefined for a card the service knows only from its administrator key (no request yet). */
    const cardRecord = async (p: OperatorPrincipal, cardId: string): Promise<CardDetail | undefined> => {
      try {
        return await cardRecords.show(p, cardId);
      } catch (err) {
        if (err instanceof ServiceError && err.code === 'NOT_FOUND') return undefined;
        throw err;
      }
    };
    const cardPage = (req: FastifyRequest, reply: FastifyReply, shown?: (p: OperatorPrincipal, cardId: string) => Promise<pages.CardSecret>) =>
      page(req, reply, 'Card', `${CONSOLE_PATH}/cards`, async (ctx, p) => {
        const cardId = cardIdOf(req);
        const secret = shown ? await shown(p, cardId) : undefined;
        return pages.cardDetail(cardId, await cardRecord(p, cardId), ctx, secret ? { shown: secret } : {});
      });
    c.get(`${CONSOLE_PATH}/cards/:cardId`, async (req, reply) => cardPage(req, reply));
    const cardActionOf = (req: FastifyRequest): CardAction => {
      const action = (req.params as { action: string }).action;
      if (!CARD_ACTIONS.includes(action as CardAction)) throw new ServiceError('NOT_FOUND', `there is no card action '${action}': the actions are ${CARD_ACTIONS.join(', ')}`);
      return action as CardAction;
    };
    // The confirmation step of a move, like approve and reject: a page of its own, shown only when the role and the card's state allow the move.
    c.get(`${CONSOLE_PATH}/cards/:cardId/:action`, async (req, reply) =>
      page(req, reply, 'Change the card?', `${CONSOLE_PATH}/cards`, async (ctx, p) => {
        const action = cardActionOf(req);
        const text = pages.CARD_ACTION_TEXT[action];
        requireOperator(p, text.role);
        const card = await cardRecords.show(p, cardIdOf(req));
        if (!cardActionsFrom(card.state).includes(action)) throw new ServiceError('CONFLICT', cardMoveRefusal(action, card.cardId, card.state));
        return html`<dl class="facts"><dt>Card ID</dt><dd class="mono">${card.cardId}</dd><dt>User</dt><dd>${card.user}</dd><dt>State</dt><dd>${pages.cardStateBadge(card.state)}</dd></dl>
${pages.confirmForm({ action: `/console/cards/${card.cardId}/${action}`, question: text.question(card.cardId, card.user), button: text.button, danger: text.danger, cancel: `/console/cards/${card.cardId}`, ...(action === 'lost' ? { extra: pages.lostFields() } : {}) }, ctx)}`;
      }));
    c.post(`${CONSOLE_PATH}/cards/:cardId/:action`, async (req, reply) => {
      if ((req.params as { action: string }).action !== 'lost') {
        return change(req, reply, async (p) => {
          const action = cardActionOf(req);
          const cardId = cardIdOf(req);
          await cardRecords.transition(p, cardId, { action });
          return `${CONSOLE_PATH}/cards/${cardId}?done=card-${action}`;
        });
      }
      // Not a redirect: the replacement token is shown in this answer, once (it is stored only as a hash).
      checkStateChange(req, sessionSecret(req));
      return page(req, reply, 'Card', `${CONSOLE_PATH}/cards`, async (ctx, p) => {
        const action = 'lost';
        const cardId = cardIdOf(req);
        const f = form(req);
        const reason = f.reason ?? 'keyCompromise';
        if (!LOST_REASONS.includes(reason as LostReason)) throw new ServiceError('BAD_REQUEST', 'choose why the card is lost: key compromise or cessation of operation');
        const days = Number(f.days ?? '7');
        if (!Number.isInteger(days) || days < 1 || days > 30) throw new ServiceError('BAD_REQUEST', 'the replacement token is valid for 1 to 30 days');
        const moved = await cardRecords.transition(p, cardId, { action, reason: reason as LostReason, temporary: f.temporary === 'yes', ttlSeconds: days * 86_400 });
        return pages.cardDetail(cardId, moved.card, ctx, { outcome: { revoked: moved.revoked, replacementToken: moved.replacementToken } });
      });
    });
    // Help desk (issue 14): answers shown in this one page and nowhere else, like a new token.
    c.post(`${CONSOLE_PATH}/cards/:cardId/unblock-response`, async (req, reply) => {
      checkStateChange(req, sessionSecret(req));
      return cardPage(req, reply, async (p, cardId) => {
        const r = await cards.unblockResponse(p, cardId, form(req).challenge ?? '');
        return { label: `Response to challenge ${r.challenge}`, value: r.response, note: html`<p>Read it out to the user, who types it into <span class="mono">cardlink card unblock</span>. It opens this card for this challenge only.</p>` };
      });
    });
    c.post(`${CONSOLE_PATH}/cards/:cardId/unblock-ticket`, async (req, reply) => {
      checkStateChange(req, sessionSecret(req));
      return cardPage(req, reply, async (p, cardId) => {
        const t = await cards.createUnblockTicket(p, cardId);
        return { label: 'Unblock ticket (shown once)', value: t.ticket, note: html`<p>Give it to the user for <span class="mono">cardlink card unblock --online</span>; it works once, until ${pages.time(t.expiresAt)}.</p>` };
      });
    });

    // Audit log
    const auditQuery = (req: FastifyRequest, limit: number) => {
      const q = queryOf(req, ['actor', 'action', 'subject', 'since', 'until']);
      return {
        q,
        query: {
          ...(q.actor ? { actor: q.actor } : {}), ...(q.action ? { action: q.action } : {}), ...(q.subject ? { subject: q.subject } : {}),
          since: dayToIso(q.since, false, 'From'), until: dayToIso(q.until, true, 'Until'), limit, newestFirst: true,
        },
      };
    };
    c.get(`${CONSOLE_PATH}/audit`, async (req, reply) =>
      page(req, reply, 'Audit log', `${CONSOLE_PATH}/audit`, async (ctx, p) => {
        const { q, query } = auditQuery(req, 500);
        const entries = await service.audit(p, query);
        const csv = new URLSearchParams(Object.entries(q).filter(([, v]) => v) as [string, string][]).toString();
        return html`${pages.auditFilters(q)}<p><a class="button secondary" href="/console/audit.csv${csv ? `?${csv}` : ''}" download>Download as CSV</a> <span class="muted">Newest first; the page shows the latest 500, the CSV up to 10,000.</span></p>${pages.auditTable(entries, ctx)}`;
      }));
    c.get(`${CONSOLE_PATH}/audit.csv`, async (req, reply) => {
      const { p } = await who(req);
      const { query } = auditQuery(req, 10_000);
      const entries = await service.audit(p, query);
      return reply.type('text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="cardlink-audit.csv"').send(auditCsv(entries));
    });

    // Profiles
    c.get(`${CONSOLE_PATH}/profiles`, async (req, reply) =>
      page(req, reply, 'Profiles', `${CONSOLE_PATH}/profiles`, async (ctx, p) => pages.profilesPage(await service.profiles(p), ctx, atLeast(p, 'admin'))));
    c.post(`${CONSOLE_PATH}/profiles/:name`, async (req, reply) =>
      change(req, reply, async (p, f) => {
        const name = (req.params as { name: string }).name;
        const validityDays = Number(f.validityDays);
        if (f.approval !== 'operator' && f.approval !== 'automatic') throw new ServiceError('BAD_REQUEST', 'approval is operator or automatic');
        if (!Number.isInteger(validityDays)) throw new ServiceError('BAD_REQUEST', 'validity is a whole number of days');
        await service.updateProfile(p, name, { approval: f.approval, validityDays });
        return `${CONSOLE_PATH}/profiles?done=profile-saved`;
      }));

    // The operator's own account
    c.get(`${CONSOLE_PATH}/account`, async (req, reply) => page(req, reply, 'Your account', undefined, async (ctx) => pages.accountPage(ctx)));
    c.post(`${CONSOLE_PATH}/account/password`, async (req, reply) =>
      change(req, reply, async (p, f) => {
        await service.changePassword(p, f.current ?? '', f.next ?? '');
        reply.clearCookie(SESSION_COOKIE, COOKIE_OPTIONS);
        return `${CONSOLE_PATH}/login?done=password-changed`;
      }));
  });
}
