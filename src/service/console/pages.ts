/**
 * The console's pages, server-rendered: every value goes through the escaping `html` template.
 * Status is always written in words (colour only repeats it), every field has a label, times are
 * `<time>` elements with the UTC time in `title` (the script shows them in the browser's zone).
 */
import { createPublicKey } from 'node:crypto';
import { spkiSha256 } from '../../thumbprint.js';
import { x509 } from '../../x509.js';
import type { OperatorPrincipal, OperatorRole } from '../auth.js';
import { cardActionsFrom } from '../cards.js';
import type { AuditEntryView, CardAction, CardCredential, CardDetail, CardState, CardView, CertificateStatus, CreatedToken, ExpiringCertificate, ProfileView, RequestState, RequestView, TokenView } from '../protocol.js';
import { CARD_STATES, REQUEST_STATES } from '../protocol.js';
import { html, type Html } from './html.js';

export const ASSETS = '/console/assets';

export interface PageContext {
  operator: OperatorPrincipal | undefined;
  csrf: string | undefined;
  /** Path of the nav entry to mark current. */
  current?: string;
  notice?: string | undefined;
  error?: string | undefined;
}

const NAV: { path: string; label: string }[] = [
  { path: '/console/pending', label: 'Pending' },
  { path: '/console/requests', label: 'Requests' },
  { path: '/console/tokens', label: 'Tokens' },
  { path: '/console/cards', label: 'Cards' },
  { path: '/console/audit', label: 'Audit log' },
  { path: '/console/profiles', label: 'Profiles' },
];

/** The CSRF field every state-changing form carries. */
export function csrfField(ctx: PageContext): Html {
  return html`<input type="hidden" name="_csrf" value="${ctx.csrf ?? ''}">`;
}

export function layout(title: string, ctx: PageContext, body: Html): string {
  const op = ctx.operator;
  return html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="htmx-config" content='{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"selfRequestsOnly":true}'>
<title>${title} · cardlink console</title>
<link rel="icon" href="${ASSETS}/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="${ASSETS}/console.css">
<script src="${ASSETS}/htmx.min.js" defer></script>
<script src="${ASSETS}/console.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<a class="brand" href="/console/">cardlink console</a>
${op
    ? html`<nav class="main" aria-label="Main"><ul>${NAV.map((n) => html`<li><a href="${n.path}"${ctx.current === n.path ? html` aria-current="page"` : ''}>${n.label}</a></li>`)}</ul></nav>
<div class="who"><a href="/console/account">${op.username} (${op.role})</a>
<form class="inline" method="post" action="/console/logout">${csrfField(ctx)}<button type="submit" class="secondary">Sign out</button></form></div>`
    : ''}
</header>
<main id="main">
<h1>${title}</h1>
${ctx.notice ? html`<p class="notice" role="status">${ctx.notice}</p>` : ''}
${ctx.error ? html`<p class="error" role="alert">${ctx.error}</p>` : ''}
${body}
</main>
</body>
</html>
`.text;
}

/** A time as a `<time>`: UTC in the text until the script localises it, UTC always in `title`. */
export function time(iso: string | null | undefined): Html {
  if (!iso) return html`<span class="muted">—</span>`;
  const utc = iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC').replace(/Z$/, ' UTC');
  return html`<time datetime="${iso}" title="${utc}">${utc}</time>`;
}

const STATE_WORDS: Record<RequestState, string> = {
  pending: 'Pending: waits for an operator', approved: 'Approved: being issued', issuing: 'Being issued', issued: 'Issued: waits for the card',
  delivered: 'Delivered to the card', rejected: 'Rejected', revoked: 'Revoked',
};

export function stateBadge(state: RequestState): Html {
  return html`<span class="status ${state}">${STATE_WORDS[state]}</span>`;
}

/** Key type and size, and the SHA-256 of the SubjectPublicKeyInfo (how cardlink names a key, thumbprint.ts). */
export interface KeyFacts {
  description: string;
  fingerprint: string;
}

export function keyFacts(spki: Uint8Array): KeyFacts {
  try {
    const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    const d = key.asymmetricKeyDetails ?? {};
    const curve: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };
    const description = key.asymmetricKeyType === 'ec' ? `ECDSA ${curve[d.namedCurve ?? ''] ?? d.namedCurve ?? ''}` : `${(key.asymmetricKeyType ?? '?').toUpperCase()} ${d.modulusLength ?? ''}`;
    return { description: description.trim(), fingerprint: spkiSha256(spki) };
  } catch {
    return { description: 'unreadable key', fingerprint: spkiSha256(spki) };
  }
}

export interface PendingRow {
  request: RequestView;
  key: KeyFacts;
}

/** The pending list: polled by htmx every 2 s; the server answers 204 while `version` is unchanged, so focus is not lost. */
export function pendingList(rows: PendingRow[], version: string, canDecide: boolean): Html {
  const body = rows.length === 0
    ? html`<p class="empty">No requests wait for a decision. New ones appear here by themselves; to let someone enroll, <a href="/console/tokens">issue an enrollment token</a>.</p>`
    : html`<div class="table-wrap"><table class="cards-on-phone"><caption class="muted">${rows.length} request${rows.length === 1 ? '' : 's'} waiting, oldest last</caption>
<thead><tr><th scope="col">User</th><th scope="col">Profile</th><th scope="col">Card and container</th><th scope="col">Key</th><th scope="col">Submitted</th><th scope="col">Actions</th></tr></thead>
<tbody>${rows.map(({ request: r, key }) => html`<tr data-request="${r.id}">
<td data-label="User" class="wrap">${r.user}<br><span class="muted">${r.kind === 'reenroll' ? 'renewal' : 'first enrollment'}</span></td>
<td data-label="Profile">${r.profile}</td>
<td data-label="Card" class="mono wrap">${r.cardId ?? 'no card'}<br>${r.container ?? ''}</td>
<td data-label="Key" class="wrap">${key.description}<br><span class="mono" title="SHA-256 of the public key">${key.fingerprint.slice(0, 16)}…</span></td>
<td data-label="Submitted">${time(r.createdAt)}<br><span class="muted">from ${r.submittedFrom ?? 'an unknown address'}, with ${r.kind === 'reenroll' ? 'the current certificate' : 'an enrollment token'}</span></td>
<td data-label="Actions"><div class="actions"><a href="/console/requests/${r.id}">Details<span class="skip"> of request ${r.id}</span></a>
${canDecide
    ? html`<a class="button" href="/console/requests/${r.id}/approve" aria-label="Approve the request of ${r.user}">Approve</a>
<a class="button danger" href="/console/requests/${r.id}/reject" aria-label="Reject the request of ${r.user}">Reject</a>`
    : ''}</div></td>
</tr>`)}</tbody></table></div>`;
  return html`<div id="pending" aria-live="polite" hx-get="/console/pending/rows?v=${version}" hx-trigger="every 2s" hx-swap="outerHTML">${body}</div>`;
}

export function requestTable(requests: RequestView[]): Html {
  if (requests.length === 0) return html`<p class="empty">No requests match these filters. Clear the filters, or widen the dates.</p>`;
  return html`<div class="table-wrap"><table class="cards-on-phone"><thead><tr><th scope="col">Request</th><th scope="col">User</th><th scope="col">Profile</th><th scope="col">State</th><th scope="col">Card</th><th scope="col">Submitted</th></tr></thead>
<tbody>${requests.map((r) => html`<tr>
<td data-label="Request" class="mono"><a href="/console/requests/${r.id}">${r.id.slice(0, 8)}</a></td>
<td data-label="User" class="wrap">${r.user}</td><td data-label="Profile">${r.profile}</td><td data-label="State">${stateBadge(r.state)}${r.reason ? html`<br><span class="muted">${r.reason}</span>` : ''}</td>
<td data-label="Card" class="mono wrap">${r.cardId ? html`<a href="/console/cards/${r.cardId}">${r.cardId}</a>` : '—'}</td><td data-label="Submitted">${time(r.createdAt)}</td>
</tr>`)}</tbody></table></div>`;
}

export function requestFilters(q: Record<string, string | undefined>): Html {
  return html`<form class="filters" method="get" action="/console/requests" role="search" aria-label="Filter requests">
<div><label for="f-state">State</label><select id="f-state" name="state"><option value="">any state</option>${REQUEST_STATES.map((s) => html`<option value="${s}"${q.state === s ? html` selected` : ''}>${s}</option>`)}</select></div>
<div><label for="f-user">User</label><input id="f-user" name="user" type="text" value="${q.user ?? ''}" placeholder="alice@example.com" autocomplete="off"></div>
<div><label for="f-since">Submitted from (UTC day)</label><input id="f-since" name="since" type="date" value="${q.since ?? ''}"></div>
<div><label for="f-until">Submitted until (UTC day, inclusive)</label><input id="f-until" name="until" type="date" value="${q.until ?? ''}"></div>
<div><button type="submit">Show requests</button></div>
<div><a href="/console/requests">Clear filters</a></div>
</form>`;
}

function extensionRows(exts: readonly x509.Extension[]): Html {
  if (exts.length === 0) return html`<p class="muted">No extensions.</p>`;
  return html`<ul>${exts.map((e) => html`<li><span class="mono">${e.type}</span> ${extensionName(e)}${e.critical ? ' (critical)' : ''}: <span class="mono wrap">${extensionText(e)}</span></li>`)}</ul>`;
}

const EXT_NAMES: Record<string, string> = {
  '2.5.29.14': 'subject key identifier', '2.5.29.15': 'key usage', '2.5.29.17': 'subject alternative name', '2.5.29.19': 'basic constraints',
  '2.5.29.31': 'CRL distribution points', '2.5.29.35': 'authority key identifier', '2.5.29.37': 'extended key usage', '1.3.6.1.4.1.311.20.2': 'certificate template name',
};

function signatureName(alg: unknown): string {
  const a = alg as { name?: string; hash?: { name?: string } };
  return [a.name, a.hash?.name].filter(Boolean).join(' with ');
}

function extensionName(e: x509.Extension): string {
  return EXT_NAMES[e.type] ?? 'extension';
}

function extensionText(e: x509.Extension): string {
  try {
    if (e instanceof x509.SubjectAlternativeNameExtension) return e.names.items.map((n) => `${n.type}:${n.value}`).join(', ');
    if (e instanceof x509.ExtendedKeyUsageExtension) return e.usages.map(String).join(', ');
    if (e instanceof x509.KeyUsagesExtension) return `flags ${e.usages}`;
    if (e instanceof x509.BasicConstraintsExtension) return `CA: ${e.ca}`;
  } catch {
    // fall through to the raw value
  }
  return Buffer.from(e.value).toString('hex').slice(0, 120);
}

export function requestDetail(r: RequestView, csrPem: string, history: AuditEntryView[], ctx: PageContext, canDecide: boolean, canRevoke: boolean): Html {
  let csrFacts: Html;
  try {
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    const key = keyFacts(new Uint8Array(csr.publicKey.rawData));
    csrFacts = html`<dl class="facts"><dt>Subject (as the requester wrote it)</dt><dd class="mono" data-testid="csr-subject">${csr.subject || '(empty)'}</dd>
<dt>Key</dt><dd>${key.description}</dd><dt>Key fingerprint (SHA-256)</dt><dd class="mono">${key.fingerprint}</dd>
<dt>Signature</dt><dd>${signatureName(csr.signatureAlgorithm)}</dd></dl><h3>Requested extensions</h3>${extensionRows(csr.extensions)}`;
  } catch {
    csrFacts = html`<p class="error">The stored request cannot be read.</p>`;
  }
  let certFacts: Html = html`<p class="muted">No certificate has been issued for this request.</p>`;
  if (r.certificate) {
    const cert = new x509.X509Certificate(r.certificate);
    certFacts = html`<dl class="facts"><dt>Serial</dt><dd class="mono">${r.serial}</dd><dt>Subject</dt><dd class="mono">${cert.subject}</dd><dt>Issuer</dt><dd class="mono">${cert.issuer}</dd>
<dt>Valid from</dt><dd>${time(r.notBefore)}</dd><dt>Valid until</dt><dd>${time(r.notAfter)}</dd><dt>Delivered</dt><dd>${time(r.deliveredAt)}</dd></dl>
<h3>Extensions</h3>${extensionRows(cert.extensions)}`;
  }
  return html`<dl class="facts"><dt>Request</dt><dd class="mono">${r.id}</dd><dt>State</dt><dd>${stateBadge(r.state)}</dd><dt>User</dt><dd>${r.user}</dd><dt>Profile</dt><dd>${r.profile}</dd>
<dt>Kind</dt><dd>${r.kind === 'reenroll' ? 'renewal' : 'first enrollment'}</dd><dt>Card</dt><dd class="mono">${r.cardId ? html`<a href="/console/cards/${r.cardId}">${r.cardId}</a>` : '—'}</dd><dt>Container</dt><dd class="mono">${r.container ?? '—'}</dd>
<dt>Submitted</dt><dd>${time(r.createdAt)} from ${r.submittedFrom ?? 'an unknown address'}</dd><dt>Decided</dt><dd>${r.decidedBy ? html`${time(r.decidedAt)} by ${r.decidedBy}` : '—'}</dd>${r.reason ? html`<dt>Reason</dt><dd data-testid="reason">${r.reason}</dd>` : ''}</dl>
<div class="actions">${canDecide && r.state === 'pending' ? html`<a class="button" href="/console/requests/${r.id}/approve">Approve</a><a class="button danger" href="/console/requests/${r.id}/reject">Reject</a>` : ''}
${canRevoke && (r.state === 'issued' || r.state === 'delivered') ? html`<a class="button danger" href="/console/requests/${r.id}/revoke">Revoke the certificate</a>` : ''}</div>
<h2>Certificate request</h2>${csrFacts}
<h2>Issued certificate</h2>${certFacts}
<h2>History</h2>${auditTable(history, ctx, false)}`;
}

/** A confirmation step before a change: a page of its own, so it works with the keyboard and without script. */
export function confirmForm(o: { action: string; question: Html; button: string; danger?: boolean; cancel: string; extra?: Html }, ctx: PageContext): Html {
  return html`<form class="stack" method="post" action="${o.action}">${csrfField(ctx)}<p>${o.question}</p>${o.extra ?? ''}
<div class="actions"><button type="submit" class="${o.danger ? 'danger' : ''}">${o.button}</button><a class="button secondary" href="${o.cancel}">Cancel</a></div></form>`;
}

export function tokensPage(tokens: TokenView[], profiles: ProfileView[], ctx: PageContext, created: CreatedToken | undefined, canIssue: boolean, now: number): Html {
  const shown = created
    ? html`<section aria-labelledby="new-token"><h2 id="new-token">New enrollment token for ${created.user}</h2>
<p><strong>Shown once:</strong> give it to ${created.user} now (it cannot be shown again). It enrolls one card with profile ${created.profile} until ${time(created.expiresAt)}.</p>
<p class="secret mono" id="token-secret">${created.token}</p>
<p><button type="button" data-copy="token-secret" data-status="copy-status" hidden>Copy the token</button> <span id="copy-status" role="status"></span></p></section>`
    : '';
  const form = canIssue
    ? html`<h2>Issue a token</h2><form class="stack" method="post" action="/console/tokens">${csrfField(ctx)}
<div><label for="t-user">User principal name</label><input id="t-user" name="user" type="email" required maxlength="256" autocomplete="off" placeholder="alice@example.com"></div>
<div><label for="t-profile">Profile</label><select id="t-profile" name="profile">${profiles.map((p) => html`<option value="${p.name}">${p.name} (${p.approval === 'operator' ? 'an operator approves' : 'issued at once'})</option>`)}</select></div>
<div><label for="t-ttl">Valid for (hours)</label><input id="t-ttl" name="hours" type="number" min="1" max="720" value="24" required></div>
<div><button type="submit">Issue token</button></div></form>`
    : html`<p class="muted">Your role cannot issue tokens: an approver or admin can.</p>`;
  const status = (t: TokenView): string =>
    t.revokedAt ? 'Revoked' : t.usedAt ? 'Used' : Date.parse(t.expiresAt) <= now ? 'Expired' : 'Unused: can enroll';
  const list = tokens.length === 0
    ? html`<p class="empty">No enrollment tokens yet. Issue one above for the user who enrolls a card.</p>`
    : html`<div class="table-wrap"><table class="cards-on-phone"><thead><tr><th scope="col">User</th><th scope="col">Profile</th><th scope="col">Status</th><th scope="col">Issued</th><th scope="col">Expires</th><th scope="col">Request</th><th scope="col">Actions</th></tr></thead>
<tbody>${tokens.map((t) => html`<tr><td data-label="User" class="wrap">${t.user}</td><td data-label="Profile">${t.profile}</td><td data-label="Status">${status(t)}</td>
<td data-label="Issued">${time(t.createdAt)} <span class="muted">by ${t.createdBy}</span></td><td data-label="Expires">${time(t.expiresAt)}</td>
<td data-label="Request" class="mono">${t.requestId ? html`<a href="/console/requests/${t.requestId}">${t.requestId.slice(0, 8)}</a>` : '—'}</td>
<td data-label="Actions">${canIssue && status(t).startsWith('Unused') ? html`<a class="button danger" href="/console/tokens/${t.id}/revoke" aria-label="Revoke the token of ${t.user}">Revoke</a>` : ''}</td></tr>`)}</tbody></table></div>`;
  return html`${shown}${form}<h2>Tokens</h2>${list}`;
}

export function auditFilters(q: Record<string, string | undefined>): Html {
  const field = (id: string, name: string, label: string, placeholder: string): Html =>
    html`<div><label for="${id}">${label}</label><input id="${id}" name="${name}" type="text" value="${q[name] ?? ''}" placeholder="${placeholder}" autocomplete="off"></div>`;
  return html`<form class="filters" method="get" action="/console/audit" role="search" aria-label="Filter the audit log">
${field('a-actor', 'actor', 'Who (actor)', 'operator:admin')}${field('a-action', 'action', 'Action', 'request.approved')}${field('a-subject', 'subject', 'Subject', 'request:…')}
<div><label for="a-since">From (UTC day)</label><input id="a-since" name="since" type="date" value="${q.since ?? ''}"></div>
<div><label for="a-until">Until (UTC day, inclusive)</label><input id="a-until" name="until" type="date" value="${q.until ?? ''}"></div>
<div><button type="submit">Show entries</button></div><div><a href="/console/audit">Clear filters</a></div></form>`;
}

export function auditTable(entries: AuditEntryView[], _ctx: PageContext, withSubject = true): Html {
  if (entries.length === 0) return html`<p class="empty">No audit entries match. Clear the filters or widen the dates.</p>`;
  return html`<div class="table-wrap"><table class="cards-on-phone"><thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Action</th>${withSubject ? html`<th scope="col">Subject</th>` : ''}<th scope="col">Details</th></tr></thead>
<tbody>${entries.map((e) => html`<tr><td data-label="When">${time(e.at)}</td><td data-label="Who" class="wrap">${e.actor}</td><td data-label="Action">${e.action}</td>${withSubject ? html`<td data-label="Subject" class="wrap mono">${e.subject ?? '—'}</td>` : ''}<td data-label="Details" class="wrap mono">${Object.keys(e.details).length ? JSON.stringify(e.details) : '—'}</td></tr>`)}</tbody></table></div>`;
}

export function profilesPage(profiles: ProfileView[], ctx: PageContext, canEdit: boolean): Html {
  return html`${profiles.map((p) => html`<section aria-labelledby="p-${p.name}"><h2 id="p-${p.name}">${p.name}</h2>
<dl class="facts"><dt>Approval</dt><dd>${p.approval === 'operator' ? 'An operator approves each request' : 'Issued at once (automatic)'}</dd><dt>Validity</dt><dd>${p.validityDays} days</dd>
<dt>Renewal window</dt><dd>last ${p.renewalWindowDays} days</dd><dt>Changed</dt><dd>${time(new Date(p.updatedAt).toISOString())} by ${p.updatedBy}</dd></dl>
${canEdit
    ? html`<form class="stack" method="post" action="/console/profiles/${p.name}">${csrfField(ctx)}
<div><label for="approval-${p.name}">Approval</label><select id="approval-${p.name}" name="approval"><option value="operator"${p.approval === 'operator' ? html` selected` : ''}>An operator approves</option><option value="automatic"${p.approval === 'automatic' ? html` selected` : ''}>Automatic</option></select></div>
<div><label for="validity-${p.name}">Validity (days)</label><input id="validity-${p.name}" name="validityDays" type="number" min="1" max="3650" value="${p.validityDays}" required></div>
<div><button type="submit">Save ${p.name}</button></div></form>`
    : ''}</section>`)}${canEdit ? '' : html`<p class="muted">Only an admin can change profiles.</p>`}`;
}

const CARD_STATE_WORDS: Record<CardState, string> = {
  active: 'Active: in use', suspended: 'Suspended: certificates on hold', lost: 'Lost: certificates revoked', retired: 'Retired: handed back',
};

export function cardStateBadge(state: CardState): Html {
  return html`<span class="status card-${state}">${CARD_STATE_WORDS[state]}</span>`;
}

export function cardFilters(q: Record<string, string | undefined>): Html {
  return html`<form class="filters" method="get" action="/console/cards" role="search" aria-label="Filter the cards">
<div><label for="c-state">State</label><select id="c-state" name="state"><option value="">Any state</option>${CARD_STATES.map((st) => html`<option value="${st}"${q.state === st ? html` selected` : ''}>${CARD_STATE_WORDS[st]}</option>`)}</select></div>
<div><label for="c-user">User</label><input id="c-user" name="user" type="text" value="${q.user ?? ''}" placeholder="alice@example.com" autocomplete="off"></div>
<div><button type="submit">Show cards</button></div><div><a href="/console/cards">Clear filters</a></div></form>
<p><a href="/console/cards/expiring">Certificates expiring soon</a></p>`;
}

export function cardsList(cards: CardView[], filtered: boolean): Html {
  if (cards.length === 0) {
    return filtered
      ? html`<p class="empty">No cards match these filters. <a href="/console/cards">Clear the filters</a> to see every card.</p>`
      : html`<p class="empty">No cards yet. A card appears here when its user enrolls it with a token: <a href="/console/tokens">issue a token</a>.</p>`;
  }
  return html`<div class="table-wrap"><table class="cards-on-phone"><thead><tr><th scope="col">Card</th><th scope="col">User</th><th scope="col">State</th><th scope="col">Enrolled</th><th scope="col">Changed</th><th scope="col">Replacement</th></tr></thead>
<tbody>${cards.map((c) => html`<tr data-card="${c.cardId}"><td data-label="Card" class="mono wrap"><a href="/console/cards/${c.cardId}">${c.cardId}</a></td><td data-label="User" class="wrap">${c.user}</td><td data-label="State">${cardStateBadge(c.state)}</td>
<td data-label="Enrolled">${time(c.createdAt)}</td><td data-label="Changed">${time(c.updatedAt)}</td>
<td data-label="Replacement" class="mono wrap">${c.replacedBy ? html`replaced by <a href="/console/cards/${c.replacedBy}">${c.replacedBy.slice(0, 8)}…</a>` : c.replaces ? html`replaces <a href="/console/cards/${c.replaces}">${c.replaces.slice(0, 8)}…</a>` : '—'}</td></tr>`)}</tbody></table></div>`;
}

/** What the help desk hands over once: an unblock response or ticket (never stored in the clear, never shown again). */
export interface CardSecret {
  label: string;
  value: string;
  note: Html;
}

/** The life-cycle moves as the console offers them: what the button says, what the operator confirms, who may. */
export const CARD_ACTION_TEXT: Record<CardAction, { label: string; button: string; role: OperatorRole; danger: boolean; question: (cardId: string, user: string) => Html }> = {
  lost: {
    label: 'Mark lost', button: 'Mark the card lost', role: 'approver', danger: true,
    question: (id, user) => html`Mark card ${id} of ${user} lost? Its certificates are revoked for good (a lost card cannot be resumed), and a replacement enrollment token for ${user} is shown once.`,
  },
  suspend: {
    label: 'Suspend', button: 'Suspend the card', role: 'approver', danger: true,
    question: (id, user) => html`Suspend card ${id} of ${user}? Its certificates go on hold (certificateHold) and stop working until the card is resumed.`,
  },
  resume: {
    label: 'Resume', button: 'Resume the card', role: 'approver', danger: false,
    question: (id, user) => html`Resume card ${id} of ${user}? The hold on its certificates is lifted and they work again.`,
  },
  retire: {
    label: 'Retire', button: 'Retire the card', role: 'admin', danger: true,
    question: (id, user) => html`Retire card ${id} of ${user}? Its certificates are revoked (cessation of operation); the card may then be enrolled again, by anyone.`,
  },
};

const ROLES: OperatorRole[] = ['viewer', 'approver', 'admin'];
export const hasRole = (p: OperatorPrincipal | undefined, role: OperatorRole): boolean => p !== undefined && ROLES.indexOf(p.role) >= ROLES.indexOf(role);

/** The lost move's extra fields: why (RFC 5280 §5.3.1 reason) and whether the stand-in is a temporary card. */
export function lostFields(): Html {
  return html`<div><label for="lost-reason">Why the card is lost (revocation reason, RFC 5280)</label><select id="lost-reason" name="reason">
<option value="keyCompromise">Key compromise: lost or stolen, someone else may hold it</option>
<option value="cessationOfOperation">Cessation of operation: destroyed or gone for good, nobody else holds it</option></select></div>
<div class="check"><input id="lost-temporary" name="temporary" type="checkbox" value="yes"><label for="lost-temporary">Temporary card: the replacement token enrolls a short-lived temporary card (profile temporary-card)</label></div>
<div><label for="lost-days">Replacement token valid for (days)</label><input id="lost-days" name="days" type="number" min="1" max="30" value="7" required></div>`;
}

const CERT_STATUS_WORDS: Record<CertificateStatus, string> = {
  good: 'Valid', 'on-hold': 'On hold: the card is suspended', revoked: 'Revoked', expired: 'Expired', 'not-yet-valid': 'Not yet valid',
};

function credentialStatus(c: CardCredential): Html {
  if (c.status === null) return html`<span class="muted">No certificate yet</span> ${stateBadge(c.requestState)}`;
  return html`<span class="status cert-${c.status}">${CERT_STATUS_WORDS[c.status]}${c.status === 'revoked' && c.revocationReason ? ` (${c.revocationReason})` : ''}</span>`;
}

/** How Windows maps the certificate to the account: the SID extension, or else the explicit mapping an admin adds (KB5014754). */
function accountMapping(c: CardCredential): Html {
  if (c.sidExtension) return html`SID extension: <span class="mono">${c.sidExtension}</span>`;
  if (c.strongMapping) return html`<span class="mono wrap">${c.strongMapping}</span><br><span class="muted">No SID extension: add this to the user's altSecurityIdentities (KB5014754 strong mapping).</span>`;
  return html`<span class="muted">—</span>`;
}

export interface CardOutcome {
  /** The serials the move revoked. */
  revoked: string[];
  replacementToken: CreatedToken | null;
}

/**
 * A card: its record (or, for a card the service only knows from its administrator key, just its
 * id), the life-cycle moves the operator may make, the help desk's unblock, its certificates and its history.
 */
export function cardDetail(cardId: string, card: CardDetail | undefined, ctx: PageContext, o: { shown?: CardSecret; outcome?: CardOutcome } = {}): Html {
  const op = ctx.operator;
  const canHelp = hasRole(op, 'approver');
  const shown = o.shown;
  const unblock = canHelp && (card === undefined || card.state === 'active')
    ? html`<h2>PIN blocked: unblock</h2>
${shown ? html`<section aria-labelledby="card-secret"><h3 id="card-secret">${shown.label}</h3><p class="secret mono" id="card-secret-value">${shown.value}</p>
<p><button type="button" data-copy="card-secret-value" data-status="card-copy-status" hidden>Copy</button> <span id="card-copy-status" role="status"></span></p>${shown.note}</section>` : ''}
<form class="stack" method="post" action="/console/cards/${cardId}/unblock-response">${csrfField(ctx)}
<div><label for="challenge">Challenge the user reads from the card (16 hex digits)</label><input id="challenge" name="challenge" type="text" required maxlength="40" autocomplete="off" pattern="[0-9A-Fa-f ]{16,40}"></div>
<div><button type="submit">Get the response to read out</button></div></form>
<form class="stack" method="post" action="/console/cards/${cardId}/unblock-ticket">${csrfField(ctx)}
<p>Or let the user unblock online with <span class="mono">cardlink card unblock --online</span>: a one-time ticket, valid one hour.</p>
<div><button type="submit" class="secondary">Make an unblock ticket</button></div></form>`
    : '';
  if (!card) {
    return html`<dl class="facts"><dt>Card ID</dt><dd class="mono">${cardId}</dd></dl>
<p class="empty" id="card-lifecycle">The service has no record of this card yet: it gets one when its user submits the first request with it. Until then it has no certificates and no life cycle.</p>
${unblock}`;
  }
  const outcome = o.outcome;
  const token = outcome?.replacementToken;
  const result = outcome
    ? html`<section aria-labelledby="card-outcome"><h2 id="card-outcome">The card is now ${card.state}</h2>
<p role="status">${outcome.revoked.length ? html`Revoked: ${outcome.revoked.length} certificate${outcome.revoked.length === 1 ? '' : 's'} (serial${outcome.revoked.length === 1 ? '' : 's'} <span class="mono">${outcome.revoked.join(', ')}</span>); the next CRL lists ${outcome.revoked.length === 1 ? 'it' : 'them'}.` : 'No certificate needed revoking.'}</p>
${token ? html`<h3>Replacement enrollment token for ${token.user}</h3>
<p><strong>Shown once:</strong> give it to ${token.user} now (it cannot be shown again). It enrolls one card with profile ${token.profile} until ${time(token.expiresAt)}.</p>
<p class="secret mono" id="token-secret">${token.token}</p>
<p><button type="button" data-copy="token-secret" data-status="copy-status" hidden>Copy the token</button> <span id="copy-status" role="status"></span></p>` : ''}</section>`
    : '';
  const possible = cardActionsFrom(card.state);
  const mine = possible.filter((a) => hasRole(op, CARD_ACTION_TEXT[a].role));
  const lifecycle = html`<section id="card-lifecycle" aria-labelledby="lifecycle-head"><h2 id="lifecycle-head">Life cycle</h2>
${possible.length === 0
    ? html`<p class="muted">No move applies to a ${card.state} card${card.state === 'retired' ? ': it becomes active again when someone enrolls it' : ''}.</p>`
    : mine.length === 0
      ? html`<p class="muted">Your role (${op?.role ?? 'none'}) can only look: an approver suspends, resumes and marks cards lost; an admin retires them.</p>`
      : html`<div class="actions">${mine.map((a) => html`<a class="button${CARD_ACTION_TEXT[a].danger ? ' danger' : ''}" href="/console/cards/${card.cardId}/${a}">${CARD_ACTION_TEXT[a].label}</a>`)}</div>`}</section>`;
  const credentials = card.credentials.length === 0
    ? html`<p class="empty">No requests were made with this card.</p>`
    : html`<div class="table-wrap"><table class="cards-on-phone"><thead><tr><th scope="col">Container</th><th scope="col">Serial and subject</th><th scope="col">Status</th><th scope="col">Valid from</th><th scope="col">Valid until</th><th scope="col">Account mapping</th><th scope="col">Request</th></tr></thead>
<tbody>${[...card.credentials].reverse().map((c) => html`<tr data-request="${c.requestId}"><td data-label="Container" class="mono wrap">${c.container ?? '—'}</td><td data-label="Serial and subject" class="mono wrap">${c.serial ?? '—'}<br><span class="muted">${c.subject}</span></td>
<td data-label="Status">${credentialStatus(c)}</td><td data-label="Valid from">${time(c.notBefore)}</td><td data-label="Valid until">${time(c.notAfter)}</td>
<td data-label="Account mapping" class="wrap">${accountMapping(c)}</td><td data-label="Request" class="mono"><a href="/console/requests/${c.requestId}" aria-label="Request ${c.requestId} (${c.kind === 'reenroll' ? 'renewal' : 'first enrollment'})">${c.requestId.slice(0, 8)}</a></td></tr>`)}</tbody></table></div>`;
  const history = card.history.length === 0
    ? html`<p class="empty">Nothing has happened to this card yet.</p>`
    : html`<div class="table-wrap"><table class="cards-on-phone"><thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col">Details</th></tr></thead>
<tbody>${[...card.history].reverse().map((e) => html`<tr><td data-label="When">${time(e.at)}</td><td data-label="Who" class="wrap">${e.actor}</td><td data-label="Action">${e.action}</td><td data-label="Details" class="wrap mono">${Object.keys(e.details).length ? JSON.stringify(e.details) : '—'}</td></tr>`)}</tbody></table></div>`;
  return html`${result}<dl class="facts"><dt>Card ID</dt><dd class="mono">${card.cardId}</dd><dt>User</dt><dd>${card.user}</dd><dt>State</dt><dd data-testid="card-state">${cardStateBadge(card.state)}</dd>
<dt>Enrolled</dt><dd>${time(card.createdAt)}</dd><dt>Changed</dt><dd>${time(card.updatedAt)}</dd>
${card.replaces ? html`<dt>Replaces</dt><dd class="mono"><a href="/console/cards/${card.replaces}">${card.replaces}</a></dd>` : ''}${card.replacedBy ? html`<dt>Replaced by</dt><dd class="mono"><a href="/console/cards/${card.replacedBy}">${card.replacedBy}</a></dd>` : ''}</dl>
${lifecycle}
${unblock}
<h2>Certificates on this card</h2><p class="muted">Newest first.</p>
${credentials}
<h2>History</h2><p class="muted">Newest first.</p>
${history}`;
}

const RENEWAL_WORDS = { none: 'No renewal yet', waiting: 'Renewal waiting', issued: 'Renewed: successor issued' } as const;

export function expiringPage(days: number, certs: ExpiringCertificate[]): Html {
  const form = html`<form class="filters" method="get" action="/console/cards/expiring" aria-label="How far ahead">
<div><label for="x-days">Expiring within (days)</label><input id="x-days" name="days" type="number" min="0" max="3650" value="${days}" required></div>
<div><button type="submit">Show certificates</button></div></form>`;
  if (certs.length === 0) return html`${form}<p class="empty">No valid certificate expires within ${days} days. Look further ahead with a larger number of days.</p>`;
  return html`${form}<div class="table-wrap"><table class="cards-on-phone"><caption class="muted">${certs.length} certificate${certs.length === 1 ? '' : 's'}, soonest first</caption>
<thead><tr><th scope="col">User</th><th scope="col">Card</th><th scope="col">Container</th><th scope="col">Serial</th><th scope="col">Profile</th><th scope="col">Valid until</th><th scope="col">Days left</th><th scope="col">Renewal</th></tr></thead>
<tbody>${certs.map((c) => html`<tr><td data-label="User" class="wrap">${c.user}</td><td data-label="Card" class="mono wrap">${c.cardId ? html`<a href="/console/cards/${c.cardId}">${c.cardId.slice(0, 8)}…</a>` : '—'}</td>
<td data-label="Container" class="mono wrap">${c.container ?? '—'}</td><td data-label="Serial" class="mono wrap"><a href="/console/requests/${c.requestId}">${c.serial}</a></td><td data-label="Profile">${c.profile}</td>
<td data-label="Valid until">${time(c.notAfter)}</td><td data-label="Days left">${c.daysLeft}</td><td data-label="Renewal">${RENEWAL_WORDS[c.renewal]}</td></tr>`)}</tbody></table></div>`;
}

export function loginForm(next: string): Html {
  return html`<form class="stack" method="post" action="/console/login">
<input type="hidden" name="next" value="${next}">
<div><label for="username">Operator name</label><input id="username" name="username" type="text" required maxlength="64" autocomplete="username" autofocus></div>
<div><label for="password">Password</label><input id="password" name="password" type="password" required maxlength="1024" autocomplete="current-password"></div>
<div><button type="submit">Sign in</button></div></form>`;
}

export function accountPage(ctx: PageContext): Html {
  return html`<p>Signed in as ${ctx.operator?.username} with the ${ctx.operator?.role} role.</p>
<h2>Change your password</h2><p class="muted">Changing it signs you out everywhere, this browser too.</p>
<form class="stack" method="post" action="/console/account/password">${csrfField(ctx)}
<div><label for="current">Current password</label><input id="current" name="current" type="password" required autocomplete="current-password"></div>
<div><label for="next">New password (12 characters at least)</label><input id="next" name="next" type="password" required minlength="12" autocomplete="new-password"></div>
<div><button type="submit">Change password</button></div></form>`;
}
