/**
 * Issue 15, point 3, without a browser: the console's security headers and cookie, CSRF and
 * same-origin checks, roles enforced on the server, lockout with audit, and sessions that end on
 * sign-out, on a password change and when idle. Every refusal is paired with the same request
 * done right, so a check that refused everything would fail here too.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/service/clock.js';
import { auditCsv } from '../../src/service/console/routes.js';
import { escapeHtml, html } from '../../src/service/console/html.js';
import { ServiceClient } from '../../src/service/client.js';
import { startService, type RunningService } from '../../src/service/index.js';
import { CA_PASSPHRASE, makeToken, OPERATOR, softKey, tempDir, randomCardId } from '../service/helpers.js';
import { csrfOf, send, sessionCookie, signIn, type Browserish } from './helpers.js';

const VIEWER = { username: 'vera', password: 'viewer password 123', role: 'viewer' as const };
const APPROVER = { username: 'arno', password: 'approver password 123', role: 'approver' as const };

describe('console security (direct requests)', () => {
  let svc: RunningService;
  let client: ServiceClient;
  let b: Browserish;
  let op: string;
  const clock = new ManualClock(new Date());

  before(async () => {
    svc = await startService({
      dataDir: tempDir(), port: 0, passphrase: CA_PASSPHRASE, operator: OPERATOR, sweepIntervalMs: 0, clock,
      loginThrottle: { perOperator: 3, perAddress: 100 }, consoleSession: { idleMs: 10 * 60_000, absoluteMs: 60 * 60_000 },
    });
    client = new ServiceClient({ server: svc.url, ca: svc.caCertPem });
    b = { base: svc.url, ca: svc.caCertPem };
    op = (await client.login(OPERATOR)).token;
    await client.createOperator(op, VIEWER);
    await client.createOperator(op, APPROVER);
  });
  after(async () => {
    client.close();
    await svc.close();
  });

  async function pendingRequest(): Promise<string> {
    const token = await makeToken(client, op, 'mallory@example.com');
    const key = await softKey();
    return (await client.submit(token, { csr: key.csrPem, cardId: randomCardId(), container: 'c1' })).value.id;
  }
  const stateOf = async (id: string) => (await client.request(op, id)).value.state;

  test('pages carry a strict CSP, deny framing, no referrer, no caching; the cookie is HttpOnly, Secure, SameSite=Strict, Path=/console', async () => {
    const login = await send(b, 'GET', '/console/login');
    assert.equal(login.status, 200);
    assert.equal(login.headers['content-security-policy'], "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'");
    assert.equal(login.headers['x-frame-options'], 'DENY');
    assert.equal(login.headers['referrer-policy'], 'no-referrer');
    assert.equal(login.headers['cache-control'], 'no-store');
    assert.doesNotMatch(login.body, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
    assert.doesNotMatch(login.body, /\sstyle=|<style/, 'no inline style');
    const signed = await send(b, 'POST', '/console/login', { form: { username: OPERATOR.username, password: OPERATOR.password }, headers: { origin: new URL(svc.url).origin } });
    const { attributes } = sessionCookie(signed);
    for (const a of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/console']) assert.ok(attributes.split(/;\s*/).includes(a), `${a} in ${attributes}`);
  });

  test('a state change without the CSRF token, from another origin or cross-site is refused; the same one done right works', async () => {
    const cookie = await signIn(b, APPROVER.username, APPROVER.password);
    const page = await send(b, 'GET', '/console/pending', { cookie });
    assert.equal(page.status, 200);
    const csrf = csrfOf(page.body);
    const id = await pendingRequest();
    const own = new URL(svc.url).origin;

    const noToken = await send(b, 'POST', `/console/requests/${id}/approve`, { cookie, form: {}, headers: { origin: own } });
    assert.equal(noToken.status, 403);
    assert.match(noToken.body, /no valid CSRF token/);
    const wrongToken = await send(b, 'POST', `/console/requests/${id}/approve`, { cookie, form: { _csrf: csrf.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) }, headers: { origin: own } });
    assert.equal(wrongToken.status, 403);
    const otherOrigin = await send(b, 'POST', `/console/requests/${id}/approve`, { cookie, form: { _csrf: csrf }, headers: { origin: 'https://evil.example' } });
    assert.equal(otherOrigin.status, 403);
    assert.match(otherOrigin.body, /sent from another site/);
    const crossSite = await send(b, 'POST', `/console/requests/${id}/approve`, { cookie, form: { _csrf: csrf }, headers: { 'sec-fetch-site': 'cross-site' } });
    assert.equal(crossSite.status, 403);
    assert.equal(await stateOf(id), 'pending');

    const right = await send(b, 'POST', `/console/requests/${id}/approve`, { cookie, form: { _csrf: csrf }, headers: { origin: own, 'sec-fetch-site': 'same-origin' } });
    assert.equal(right.status, 303, right.body.slice(0, 300));
    assert.equal(await stateOf(id), 'issued');
  });

  test('a viewer may look but every change is refused by the server; an approver may decide but not change profiles', async () => {
    const viewer = await signIn(b, VIEWER.username, VIEWER.password);
    const page = await send(b, 'GET', '/console/pending', { cookie: viewer });
    assert.equal(page.status, 200);
    assert.doesNotMatch(page.body, /href="\/console\/requests\/[^"]+\/approve"/, 'no approve button for a viewer');
    const csrf = csrfOf(page.body);
    const id = await pendingRequest();
    const headers = { origin: new URL(svc.url).origin };
    for (const [path, form] of [
      [`/console/requests/${id}/approve`, {}], [`/console/requests/${id}/reject`, { reason: 'no' }], ['/console/tokens', { user: 'x@example.com', hours: '1' }],
      ['/console/profiles/smartcard-logon', { approval: 'automatic', validityDays: '30' }],
    ] as [string, Record<string, string>][]) {
      const r = await send(b, 'POST', path, { cookie: viewer, form: { ...form, _csrf: csrf }, headers });
      assert.equal(r.status, 403, path);
      assert.match(r.body, /needs the (approver|admin) role; operator vera is a viewer/);
    }
    assert.equal(await stateOf(id), 'pending');
    assert.equal((await client.profiles(op)).find((p) => p.name === 'smartcard-logon')!.approval, 'operator');

    const approver = await signIn(b, APPROVER.username, APPROVER.password);
    const aCsrf = csrfOf((await send(b, 'GET', '/console/pending', { cookie: approver })).body);
    const profile = await send(b, 'POST', '/console/profiles/smartcard-logon', { cookie: approver, form: { approval: 'automatic', validityDays: '30', _csrf: aCsrf }, headers });
    assert.equal(profile.status, 403);
    const reject = await send(b, 'POST', `/console/requests/${id}/reject`, { cookie: approver, form: { reason: 'not expected', _csrf: aCsrf }, headers });
    assert.equal(reject.status, 303);
    assert.equal(await stateOf(id), 'rejected');
    const admin = await signIn(b, OPERATOR.username, OPERATOR.password);
    const adminCsrf = csrfOf((await send(b, 'GET', '/console/profiles', { cookie: admin })).body);
    const saved = await send(b, 'POST', '/console/profiles/smartcard-logon', { cookie: admin, form: { approval: 'operator', validityDays: '200', _csrf: adminCsrf }, headers });
    assert.equal(saved.status, 303);
    assert.equal((await client.profiles(op)).find((p) => p.name === 'smartcard-logon')!.validityDays, 200);
  });

  test('help desk: an approver gets the unblock response and a ticket for an active card; a viewer is refused', async () => {
    const cardId = randomCardId();
    const token = await makeToken(client, op, 'ulla@example.com');
    const key = await client.cardAdminKey(token, cardId);
    if (!key.upToDate) await client.confirmCardAdminKey(token, cardId, key.keyVersion);
    const headers = { origin: new URL(svc.url).origin };
    const viewer = await signIn(b, VIEWER.username, VIEWER.password);
    const vPage = await send(b, 'GET', `/console/cards/${cardId}`, { cookie: viewer });
    assert.doesNotMatch(vPage.body, /unblock-response/, 'no unblock form for a viewer');
    const refused = await send(b, 'POST', `/console/cards/${cardId}/unblock-response`, { cookie: viewer, form: { challenge: '0011223344556677', _csrf: csrfOf(vPage.body) }, headers });
    assert.equal(refused.status, 403);
    const approver = await signIn(b, APPROVER.username, APPROVER.password);
    const aCsrf = csrfOf((await send(b, 'GET', `/console/cards/${cardId}`, { cookie: approver })).body);
    const noToken = await send(b, 'POST', `/console/cards/${cardId}/unblock-response`, { cookie: approver, form: { challenge: '0011223344556677' }, headers });
    assert.equal(noToken.status, 403);
    const answered = await send(b, 'POST', `/console/cards/${cardId}/unblock-response`, { cookie: approver, form: { challenge: '0011223344556677', _csrf: aCsrf }, headers });
    assert.equal(answered.status, 200, answered.body.slice(0, 400));
    assert.match(answered.body, /id="card-secret-value">[0-9A-F]{16}</);
    const again = await send(b, 'POST', `/console/cards/${cardId}/unblock-response`, { cookie: approver, form: { challenge: '0011223344556677', _csrf: aCsrf }, headers });
    assert.equal(again.status, 409, 'each challenge is answered once');
    const ticket = await send(b, 'POST', `/console/cards/${cardId}/unblock-ticket`, { cookie: approver, form: { _csrf: aCsrf }, headers });
    assert.equal(ticket.status, 200);
    assert.match(ticket.body, /id="card-secret-value">clu_[A-Za-z0-9_-]{43}</);
    const audit = await client.audit(op, { actor: 'operator:arno' });
    assert.ok(audit.some((e) => e.action.includes('unblock')), JSON.stringify(audit.map((e) => e.action)));
  });

  /** A card with an issued certificate (a first enrollment, approved): its id and the certificate's serial. */
  async function issuedCard(user: string): Promise<{ cardId: string; serial: string }> {
    const cardId = randomCardId();
    const token = await makeToken(client, op, user);
    const key = await softKey();
    const { value } = await client.submit(token, { csr: key.csrPem, cardId, container: 'c1' });
    await client.approve(op, value.id);
    const serial = (await client.request(op, value.id)).value.serial!;
    return { cardId, serial };
  }
  const cardState = async (cardId: string) => (await client.card(op, cardId)).state;

  test('cards: the list and the detail read the card records (state, certificates with serial, validity, mapping, history), escaped', async () => {
    // The one markup character a user principal name may carry is the apostrophe; the certificate's subject is made from it.
    const user = `o'hara+${Date.now()}@example.com`;
    const { cardId, serial } = await issuedCard(user);
    const cookie = await signIn(b, VIEWER.username, VIEWER.password);
    const list = await send(b, 'GET', `/console/cards?user=${encodeURIComponent(user)}`, { cookie });
    assert.equal(list.status, 200);
    assert.match(list.body, new RegExp(`<tr data-card="${cardId}">`));
    assert.match(list.body, /Active: in use/);
    assert.ok(list.body.includes(escapeHtml(user)) && !list.body.includes(user), 'the user name is escaped');
    assert.doesNotMatch((await send(b, 'GET', '/console/cards?state=lost', { cookie })).body, new RegExp(cardId), 'the state filter applies');
    assert.match((await send(b, 'GET', '/console/cards?user=nobody%40example.com', { cookie })).body, /No cards match these filters/);
    const bad = await send(b, 'GET', '/console/cards?state=melted', { cookie });
    assert.equal(bad.status, 400);
    assert.match(bad.body, /there is no card state &#39;melted&#39;/);

    const detail = await send(b, 'GET', `/console/cards/${cardId}`, { cookie });
    assert.equal(detail.status, 200);
    assert.match(detail.body, /data-testid="card-state"><span class="status card-active">Active: in use/);
    assert.ok(detail.body.includes(serial), 'the serial');
    assert.match(detail.body, /<span class="status cert-good">Valid<\/span>/);
    assert.match(detail.body, /data-label="Container" class="mono wrap">c1</);
    const card = await client.card(op, cardId);
    const mapping = card.credentials[0]!.sidExtension ?? card.credentials[0]!.strongMapping!;
    assert.ok(detail.body.includes(escapeHtml(mapping)), `the account mapping ${mapping}`);
    assert.match(detail.body, /card\.created/, 'the history');
    assert.doesNotMatch(detail.body, new RegExp(`href="/console/cards/${cardId}/(suspend|lost|retire)"`), 'no life-cycle buttons for a viewer');
    assert.match(detail.body, /Your role \(viewer\) can only look/);
    const subject = card.credentials[0]!.subject;
    assert.ok(subject.includes("'") && detail.body.includes(escapeHtml(subject)) && !detail.body.includes(subject), `the subject ${subject} is escaped`);
    assert.ok(detail.body.includes(escapeHtml(user)) && !detail.body.includes(user), 'the user name is escaped on the detail page too');
  });

  test('cards: a viewer cannot move a card, an approver suspends and resumes, retire needs an admin; CSRF and origin are checked', async () => {
    const { cardId, serial } = await issuedCard('nina@example.com');
    const own = { origin: new URL(svc.url).origin };
    const viewer = await signIn(b, VIEWER.username, VIEWER.password);
    const vCsrf = csrfOf((await send(b, 'GET', `/console/cards/${cardId}`, { cookie: viewer })).body);
    for (const action of ['suspend', 'lost', 'retire']) {
      const r = await send(b, 'POST', `/console/cards/${cardId}/${action}`, { cookie: viewer, form: { _csrf: vCsrf }, headers: own });
      assert.equal(r.status, 403, action);
      assert.match(r.body, /needs the (approver|admin) role; operator vera is a viewer/);
      assert.equal((await send(b, 'GET', `/console/cards/${cardId}/${action}`, { cookie: viewer })).status, 403, `no ${action} confirmation for a viewer`);
    }
    assert.equal(await cardState(cardId), 'active');

    const approver = await signIn(b, APPROVER.username, APPROVER.password);
    const page = await send(b, 'GET', `/console/cards/${cardId}`, { cookie: approver });
    assert.match(page.body, new RegExp(`href="/console/cards/${cardId}/suspend">Suspend<`));
    assert.match(page.body, new RegExp(`href="/console/cards/${cardId}/lost">Mark lost<`));
    assert.doesNotMatch(page.body, new RegExp(`href="/console/cards/${cardId}/retire"`), 'retire is not offered to an approver');
    const csrf = csrfOf(page.body);
    const noToken = await send(b, 'POST', `/console/cards/${cardId}/suspend`, { cookie: approver, form: {}, headers: own });
    assert.equal(noToken.status, 403);
    assert.match(noToken.body, /no valid CSRF token/);
    const otherOrigin = await send(b, 'POST', `/console/cards/${cardId}/suspend`, { cookie: approver, form: { _csrf: csrf }, headers: { origin: 'https://evil.example' } });
    assert.equal(otherOrigin.status, 403);
    assert.match(otherOrigin.body, /sent from another site/);
    assert.equal(await cardState(cardId), 'active');

    const confirm = await send(b, 'GET', `/console/cards/${cardId}/suspend`, { cookie: approver });
    assert.equal(confirm.status, 200);
    assert.match(confirm.body, new RegExp(`<form class="stack" method="post" action="/console/cards/${cardId}/suspend">`));
    const suspended = await send(b, 'POST', `/console/cards/${cardId}/suspend`, { cookie: approver, form: { _csrf: csrf }, headers: own });
    assert.equal(suspended.status, 303, suspended.body.slice(0, 300));
    assert.equal(suspended.headers.location, `/console/cards/${cardId}?done=card-suspend`);
    assert.equal(await cardState(cardId), 'suspended');
    const held = await send(b, 'GET', `/console/cards/${cardId}?done=card-suspend`, { cookie: approver });
    assert.match(held.body, /Card suspended: its certificates are on hold/);
    assert.match(held.body, /<span class="status cert-on-hold">On hold: the card is suspended<\/span>/);
    assert.match(held.body, new RegExp(`href="/console/cards/${cardId}/resume">Resume<`));
    const again = await send(b, 'POST', `/console/cards/${cardId}/suspend`, { cookie: approver, form: { _csrf: csrf }, headers: own });
    assert.equal(again.status, 409);
    assert.match(again.body, /is suspended: &#39;suspend&#39; applies to a card that is active \(the card is already suspended\)/);
    const resumed = await send(b, 'POST', `/console/cards/${cardId}/resume`, { cookie: approver, form: { _csrf: csrf }, headers: own });
    assert.equal(resumed.status, 303);
    assert.equal(await cardState(cardId), 'active');
    assert.equal((await client.card(op, cardId)).credentials[0]!.status, 'good');

    const retireByApprover = await send(b, 'POST', `/console/cards/${cardId}/retire`, { cookie: approver, form: { _csrf: csrf }, headers: own });
    assert.equal(retireByApprover.status, 403);
    assert.match(retireByApprover.body, /needs the admin role; operator arno is/);
    assert.equal(await cardState(cardId), 'active');
    const admin = await signIn(b, OPERATOR.username, OPERATOR.password);
    const adminPage = await send(b, 'GET', `/console/cards/${cardId}`, { cookie: admin });
    assert.match(adminPage.body, new RegExp(`href="/console/cards/${cardId}/retire">Retire<`));
    const retired = await send(b, 'POST', `/console/cards/${cardId}/retire`, { cookie: admin, form: { _csrf: csrfOf(adminPage.body) }, headers: own });
    assert.equal(retired.status, 303);
    assert.equal(await cardState(cardId), 'retired');
    const after = await send(b, 'GET', `/console/cards/${cardId}`, { cookie: admin });
    assert.ok(after.body.includes(serial));
    assert.match(after.body, /<span class="status cert-revoked">Revoked \(cessationOfOperation\)<\/span>/);
    assert.match(after.body, /No move applies to a retired card/);
  });

  test('cards: mark lost answers with the revoked serials and the replacement token once; resuming a lost card is refused in words', async () => {
    const { cardId, serial } = await issuedCard('otto@example.com');
    const own = { origin: new URL(svc.url).origin };
    const approver = await signIn(b, APPROVER.username, APPROVER.password);
    const confirm = await send(b, 'GET', `/console/cards/${cardId}/lost`, { cookie: approver });
    assert.match(confirm.body, /<label for="lost-reason">/);
    assert.match(confirm.body, /<input id="lost-temporary" name="temporary" type="checkbox" value="yes"><label for="lost-temporary">Temporary card/);
    const csrf = csrfOf(confirm.body);
    const badReason = await send(b, 'POST', `/console/cards/${cardId}/lost`, { cookie: approver, form: { _csrf: csrf, reason: 'aliens', days: '7' }, headers: own });
    assert.equal(badReason.status, 400);
    assert.equal(await cardState(cardId), 'active');
    const lost = await send(b, 'POST', `/console/cards/${cardId}/lost`, { cookie: approver, form: { _csrf: csrf, reason: 'keyCompromise', temporary: 'yes', days: '3' }, headers: own });
    assert.equal(lost.status, 200, lost.body.slice(0, 400));
    assert.equal(await cardState(cardId), 'lost');
    assert.ok(lost.body.includes(`Revoked: 1 certificate (serial <span class="mono">${serial}</span>)`));
    const token = /id="token-secret">(cle_[A-Za-z0-9_-]{43})</.exec(lost.body)?.[1];
    assert.ok(token, 'the replacement token is shown');
    assert.match(lost.body, /with profile temporary-card until/);
    const tokens = await client.tokens(op);
    const replacement = tokens.find((t) => t.replacesCard === cardId);
    assert.ok(replacement && replacement.profile === 'temporary-card');
    const later = await send(b, 'GET', `/console/cards/${cardId}`, { cookie: approver });
    assert.ok(!later.body.includes(token), 'shown once: not on the card page afterwards');
    assert.match(later.body, /<span class="status cert-revoked">Revoked \(keyCompromise\)<\/span>/);
    assert.doesNotMatch(later.body, /href="[^"]+\/resume"/, 'no resume for a lost card');
    const resume = await send(b, 'POST', `/console/cards/${cardId}/resume`, { cookie: approver, form: { _csrf: csrf }, headers: own });
    assert.equal(resume.status, 409);
    assert.match(resume.body, /is lost: &#39;resume&#39; applies to a card that is suspended \(a lost card stays lost/);
    assert.ok(resume.body.includes(`<a href="/console/cards/${cardId}">Back to the card</a>`), 'the error page leads back to the card');
    const confirmResume = await send(b, 'GET', `/console/cards/${cardId}/resume`, { cookie: approver });
    assert.equal(confirmResume.status, 409, 'no confirmation step for a move the state does not allow');
  });

  test('cards: the expiring view lists certificates ending within N days (default 30)', async () => {
    const { cardId, serial } = await issuedCard('pia@example.com');
    const cookie = await signIn(b, VIEWER.username, VIEWER.password);
    const validity = (await client.profiles(op)).find((p) => p.name === 'smartcard-logon')!.validityDays;
    const none = await send(b, 'GET', '/console/cards/expiring', { cookie });
    assert.equal(none.status, 200);
    assert.match(none.body, /name="days" type="number" min="0" max="3650" value="30"/);
    if (validity > 30) assert.ok(!none.body.includes(serial), 'not within 30 days');
    const all = await send(b, 'GET', `/console/cards/expiring?days=${validity + 1}`, { cookie });
    assert.ok(all.body.includes(serial));
    assert.ok(all.body.includes(`href="/console/cards/${cardId}"`));
    assert.equal((await send(b, 'GET', '/console/cards/expiring?days=soon', { cookie })).status, 400);
  });

  test('the requests page filters by state, user and date, and says what to do when nothing matches', async () => {
    const cookie = await signIn(b, VIEWER.username, VIEWER.password);
    const id = await pendingRequest();
    const day = clock.now().toISOString().slice(0, 10);
    const next = new Date(clock.now().getTime() + 86_400_000).toISOString().slice(0, 10);
    const rowsOf = (body: string) => [...body.matchAll(/<a href="\/console\/requests\/([0-9a-f-]{36})">/g)].map((m) => m[1]);
    const all = await send(b, 'GET', `/console/requests?state=pending&user=mallory%40example.com&since=${day}&until=${day}`, { cookie });
    assert.equal(all.status, 200);
    assert.ok(rowsOf(all.body).includes(id));
    for (const q of [`state=rejected&user=mallory%40example.com`, `user=nobody%40example.com`, `since=${next}`]) {
      const none = await send(b, 'GET', `/console/requests?${q}`, { cookie });
      assert.ok(!rowsOf(none.body).includes(id), q);
    }
    assert.match((await send(b, 'GET', `/console/requests?since=${next}`, { cookie })).body, /No requests match these filters/);
    const bad = await send(b, 'GET', '/console/requests?since=yesterday', { cookie });
    assert.equal(bad.status, 400);
    assert.match(bad.body, /Submitted from: give a date like 2026-12-04/);
  });

  test('failed sign-ins lock the operator out (with audit entries), even with the right password afterwards', async () => {
    const headers = { origin: new URL(svc.url).origin };
    const user = { username: 'lucy', password: 'lucy password 1234' };
    await client.createOperator(op, user);
    for (let i = 0; i < 3; i++) {
      const r = await send(b, 'POST', '/console/login', { form: { username: user.username, password: 'wrong password!!' }, headers });
      assert.equal(r.status, 401);
      assert.match(r.body, /Wrong operator name or password/);
    }
    const locked = await send(b, 'POST', '/console/login', { form: user, headers });
    assert.equal(locked.status, 429);
    assert.match(locked.body, /Too many failed sign-ins/);
    assert.equal(locked.headers['set-cookie'], undefined);
    const audit = await client.audit(op, { subject: 'operator:lucy' });
    assert.equal(audit.filter((e) => e.action === 'session.refused').length, 3);
    assert.ok((await client.audit(op, { action: 'session.locked', subject: 'operator:lucy' })).length === 1);
  });

  test('a session ends on sign-out, on a password change (all of them) and after being idle', async () => {
    const own = { origin: new URL(svc.url).origin };
    const cookie = await signIn(b, APPROVER.username, APPROVER.password);
    const secret = cookie.split('=')[1]!;
    const csrf = csrfOf((await send(b, 'GET', '/console/pending', { cookie })).body);
    const out = await send(b, 'POST', '/console/logout', { cookie, form: { _csrf: csrf }, headers: own });
    assert.equal(out.status, 303);
    const after = await send(b, 'GET', '/console/pending', { cookie });
    assert.equal(after.status, 303);
    assert.match(String(after.headers.location), /^\/console\/login\?done=expired/);
    assert.equal((await client.raw('GET', '/api/v1/tokens', { bearer: secret })).status, 401, 'the ended session is no API credential either');

    const one = await signIn(b, APPROVER.username, APPROVER.password);
    const two = await signIn(b, APPROVER.username, APPROVER.password);
    const api = (await client.login({ username: APPROVER.username, password: APPROVER.password })).token;
    const oneCsrf = csrfOf((await send(b, 'GET', '/console/account', { cookie: one })).body);
    const refused = await send(b, 'POST', '/console/account/password', { cookie: one, form: { current: 'not the password', next: 'a brand new password', _csrf: oneCsrf }, headers: own });
    assert.equal(refused.status, 401);
    assert.equal((await send(b, 'GET', '/console/pending', { cookie: two })).status, 200, 'a refused change ends nothing');
    const changed = await send(b, 'POST', '/console/account/password', { cookie: one, form: { current: APPROVER.password, next: 'a brand new password', _csrf: oneCsrf }, headers: own });
    assert.equal(changed.status, 303);
    for (const c of [one, two]) assert.equal((await send(b, 'GET', '/console/pending', { cookie: c })).status, 303);
    assert.equal((await client.raw('GET', '/api/v1/tokens', { bearer: api })).status, 401);
    const again = await signIn(b, APPROVER.username, 'a brand new password');

    assert.equal((await send(b, 'GET', '/console/pending', { cookie: again })).status, 200);
    clock.advance(9 * 60_000);
    assert.equal((await send(b, 'GET', '/console/pending', { cookie: again })).status, 200, 'use within the idle time keeps it alive');
    clock.advance(9 * 60_000);
    assert.equal((await send(b, 'GET', '/console/pending', { cookie: again })).status, 200);
    clock.advance(11 * 60_000);
    assert.equal((await send(b, 'GET', '/console/pending', { cookie: again })).status, 303, 'idle longer than 10 minutes: ended');
    const fresh = await signIn(b, APPROVER.username, 'a brand new password');
    for (let i = 0; i < 6; i++) {
      clock.advance(9 * 60_000);
      assert.equal((await send(b, 'GET', '/console/pending', { cookie: fresh })).status, 200);
    }
    clock.advance(9 * 60_000);
    assert.equal((await send(b, 'GET', '/console/pending', { cookie: fresh })).status, 303, 'past the absolute hour: ended however busy');
  });
});

describe('escaping and CSV', () => {
  test('every interpolated value is escaped; nested html is not escaped twice', () => {
    const subject = `CN=<script>alert("x")</script>, O='q'&`;
    assert.equal(html`<td title="${subject}">${subject}</td>`.text, `<td title="${escapeHtml(subject)}">CN=&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;, O=&#39;q&#39;&amp;</td>`);
    assert.equal(html`<p>${html`<b>${'<i>'}</b>`}</p>`.text, '<p><b>&lt;i&gt;</b></p>');
    assert.equal(html`${[1, '<', null, undefined, false]}`.text, '1&lt;');
  });

  test('CSV cells are quoted per RFC 4180 and formulas are defused', () => {
    const csv = auditCsv([{ id: 1, at: '2026-12-04T10:00:00.000Z', actor: '=HYPERLINK("x")', action: 'a,b', subject: null, details: { reason: 'line\nbreak "q"' } }]);
    assert.equal(csv, 'id,at,actor,action,subject,details\r\n1,2026-12-04T10:00:00.000Z,"\'=HYPERLINK(""x"")","a,b",,"{""reason"":""line\\nbreak \\""q\\""""}"\r\n');
  });
});

describe('cardlink demo --keep', () => {
  test('prints the console URL and a one-time operator password that signs in; the service stops on the stop signal', { timeout: 180_000 }, async () => {
    const { main } = await import('../../src/cli/main.js');
    const { readFileSync } = await import('node:fs');
    const dir = tempDir('cardlink-demo-keep-');
    const stop = new AbortController();
    let stdout = '';
    let signedIn = 0;
    let loginStatus = 0;
    let storyUserShown = false;
    const finished = main(['demo', '--keep', '--json', '--dir', dir], {
      stdout: (t) => {
        stdout += t;
        if (!stdout.includes('"console"') || signedIn !== 0) return;
        signedIn = 1;
        const out = JSON.parse(stdout) as { ok: boolean; console: { url: string; caCertificate: string; username: string; password: string } };
        const base = new URL(out.console.url).origin;
        const b = { base, ca: readFileSync(out.console.caCertificate, 'utf8') };
        void send(b, 'POST', '/console/login', { form: { username: out.console.username, password: out.console.password }, headers: { origin: base } })
          .then(async (a) => {
            loginStatus = a.status;
            const requests = await send(b, 'GET', '/console/requests', { cookie: sessionCookie(a).pair });
            storyUserShown = requests.body.includes('demo.user@example.com');
          })
          .finally(() => stop.abort());
      },
      stderr: () => undefined,
      env: { PATH: process.env.PATH ?? '', HOME: dir, CARDLINK_HOME: `${dir}/home` },
      signal: stop.signal,
    });
    assert.equal(await finished, 0, stdout);
    assert.equal(signedIn, 1, 'the console facts were printed');
    assert.equal(loginStatus, 303, 'the printed password signs in');
    assert.ok(storyUserShown, "the story's requests are in the console");
  });
});
