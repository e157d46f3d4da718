/**
 * Issue 13 from the CLI: admin cards, admin card ID [lost|suspend|resume|retire], admin expiring,
 * admin token --sid. The printers get what a (hostile or older) service could send through the
 * fake client; one story runs against a real service.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CardDetail, CardTransition, CardTransitionBody, ExpiringCertificate, NewToken } from '../../src/service/client.js';
import { cli } from '../helpers/cli.js';
import { BACKENDS, OPERATOR, randomCardId, softKey, startTestService, login, type TestService } from '../service/helpers.js';
import { NOWHERE, OPERATOR_ENV, withFakeService } from './fake-service.js';

const CARD = '0123456789abcdef0123456789abcdef';

function detail(over: Partial<CardDetail> = {}): CardDetail {
  return {
    cardId: CARD, user: 'alice@example.com', state: 'active', createdAt: '2026-12-01T10:00:00.000Z', updatedAt: '2026-12-02T10:00:00.000Z', replacedBy: null, replaces: null,
    credentials: [
      {
        requestId: 'r-1', kind: 'enroll', requestState: 'delivered', profile: 'smartcard-logon', container: 'lr-1', subject: 'CN=alice\u001b]0;owned\u0007', serial: '4a01',
        status: 'good', revocationReason: null, notBefore: '2026-12-01T10:00:00.000Z', notAfter: '2027-12-01T10:00:00.000Z', sidExtension: null,
        strongMapping: 'X509:<I>CN=cardlink CA<SR>014A',
      },
      {
        requestId: 'r-2', kind: 'reenroll', requestState: 'issued', profile: 'smartcard-logon', container: 'lr-2', subject: 'CN=alice', serial: '4a02',
        status: 'on-hold', revocationReason: 'certificateHold', notBefore: '2027-11-01T10:00:00.000Z', notAfter: '2028-11-01T10:00:00.000Z',
        sidExtension: 'S-1-5-21-1004336348-1177238915-682003330-1105', strongMapping: 'X509:<I>CN=cardlink CA<SR>024A',
      },
    ],
    history: [{ at: '2026-12-01T10:00:00.000Z', actor: 'user:alice@example.com (token t)', action: 'card.created', details: { user: 'alice@example.com', expiresAt: Date.UTC(2026, 11, 5) } }],
    ...over,
  };
}

function transition(body: CardTransitionBody): CardTransition {
  const to = ({ lost: 'lost', suspend: 'suspended', resume: 'active', retire: 'retired' } as const)[body.action];
  return {
    card: detail({ state: to }), from: 'active', to, revoked: body.action === 'lost' || body.action === 'retire' ? ['4a01'] : [], held: body.action === 'suspend' ? ['4a01'] : [], released: [],
    replacementToken: body.action === 'lost'
      ? { id: 't-9', user: 'alice@example.com', profile: body.temporary ? 'temporary-card' : 'smartcard-logon', createdBy: 'operator:admin', createdAt: '2026-12-04T10:00:00.000Z', expiresAt: '2026-12-11T10:00:00.000Z', usedAt: null, requestId: null, revokedAt: null, sid: null, replacesCard: CARD, token: 'cle_secret' }
      : null,
  };
}

describe('admin card and admin cards', () => {
  test('admin card ID: header rows, ISO times, escaped subjects, the SID extension or the mapping for altSecurityIdentities, history', async () => {
    const r = await withFakeService({ card: async () => detail() }, () => cli(['admin', 'card', ...NOWHERE, CARD.toUpperCase()], OPERATOR_ENV));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^card {6}0123456789abcdef0123456789abcdef\nuser {6}alice@example\.com\nstate {5}active\ncreated {3}2026-12-01T10:00:00\.000Z\n/);
    assert.ok(!r.stdout.includes('\u001b'), 'no escape sequence reaches the terminal');
    assert.match(r.stdout, /subject CN=alice\\u001b\]0;owned\\u0007/);
    assert.match(r.stdout, /serial 4a01 {2}good {2}valid 2026-12-01T10:00:00\.000Z to 2027-12-01T10:00:00\.000Z\n {4}subject .*\n {4}strong mapping X509:<I>CN=cardlink CA<SR>014A\n {4}no SID extension: put the mapping above in the user's altSecurityIdentities/);
    assert.match(r.stdout, /serial 4a02 {2}on-hold \(certificateHold\)[^\n]*\n[^\n]*\n {4}SID extension present \(S-1-5-21-1004336348-1177238915-682003330-1105\)/);
    assert.ok(!/SID extension present[^\n]*\n {4}strong mapping X509:<I>CN=cardlink CA<SR>024A/.test(r.stdout), 'a certificate with the SID needs no explicit mapping');
    assert.match(r.stdout, /history \(1\):\n {2}2026-12-01T10:00:00\.000Z {2}user:alice@example\.com \(token t\) {2}card\.created {2}\{"user":"alice@example\.com","expiresAt":"2026-12-05T00:00:00\.000Z"\}/);

    const json = await withFakeService({ card: async () => detail() }, () => cli(['admin', 'card', ...NOWHERE, CARD, '--json'], OPERATOR_ENV));
    const parsed = JSON.parse(json.stdout) as { ok: boolean; card: CardDetail };
    assert.equal(parsed.ok, true);
    assert.equal(parsed.card.credentials[1]!.sidExtension, 'S-1-5-21-1004336348-1177238915-682003330-1105');
  });

  test('lost and retire ask first: without a terminal --yes is needed; declined does nothing; suspend and resume do not ask', async () => {
    const sent: CardTransitionBody[] = [];
    const fakes = { card: async () => detail(), transitionCard: async (_s: string, _id: string, body: CardTransitionBody) => (sent.push(body), transition(body)) };
    for (const action of ['lost', 'retire']) {
      const r = await withFakeService(fakes, () => cli(['admin', 'card', ...NOWHERE, CARD, action], OPERATOR_ENV));
      assert.equal(r.code, 2);
      assert.match(r.stderr, /revokes its certificates for good: add --yes/);
    }
    const questions: string[] = [];
    const declined = await withFakeService(fakes, () => cli(['admin', 'card', ...NOWHERE, CARD, 'lost'], OPERATOR_ENV, { confirm: async (q) => (questions.push(q), false) }));
    assert.equal(declined.code, 1);
    assert.equal(declined.stdout, 'nothing done\n');
    assert.match(questions[0]!, /Mark card 0123456789abcdef0123456789abcdef of alice@example\.com lost, revoke its 2 valid certificate\(s\) \(keyCompromise\)/);
    assert.deepEqual(sent, [], 'nothing was sent');

    const suspended = await withFakeService(fakes, () => cli(['admin', 'card', ...NOWHERE, CARD, 'suspend'], OPERATOR_ENV));
    assert.equal(suspended.code, 0, suspended.stderr);
    assert.equal(suspended.stdout, `card ${CARD}: active -> suspended\non hold (certificateHold): 4a01\n`);
    assert.deepEqual(sent, [{ action: 'suspend' }]);
  });

  test('lost --yes --reason --temporary: the replacement token is printed once; --json is one object with ok', async () => {
    const sent: CardTransitionBody[] = [];
    const fakes = { transitionCard: async (_s: string, _id: string, body: CardTransitionBody) => (sent.push(body), transition(body)) };
    const r = await withFakeService(fakes, () => cli(['admin', 'card', ...NOWHERE, CARD, 'lost', '--yes', '--reason', 'cessationOfOperation', '--temporary'], OPERATOR_ENV));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(sent, [{ action: 'lost', reason: 'cessationOfOperation', temporary: true }]);
    assert.match(r.stdout, /^card 0123456789abcdef0123456789abcdef: active -> lost\nrevoked: 4a01\nreplacement enrollment token for alice@example\.com \(shown once\), profile temporary-card, expires 2026-12-11T10:00:00\.000Z:\ncle_secret\n$/);
    const json = await withFakeService(fakes, () => cli(['admin', 'card', ...NOWHERE, CARD, 'retire', '--yes', '--json'], OPERATOR_ENV));
    const parsed = JSON.parse(json.stdout) as { ok: boolean } & CardTransition;
    assert.deepEqual([parsed.ok, parsed.from, parsed.to, parsed.revoked], [true, 'active', 'retired', ['4a01']]);

    const bad = await cli(['admin', 'card', ...NOWHERE, CARD, 'suspend', '--reason', 'keyCompromise'], OPERATOR_ENV);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--reason and --temporary go with lost only/);
    const typo = await cli(['admin', 'card', ...NOWHERE, CARD, 'lsot'], OPERATOR_ENV);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /ACTION is one of lost, suspend, resume, retire; did you mean lost\?/);
    const badId = await cli(['admin', 'card', ...NOWHERE, 'xyz'], OPERATOR_ENV);
    assert.equal(badId.code, 2);
    assert.match(badId.stderr, /ID is the card id, 32 hex digits/);
  });

  test('admin cards lists with filters and says when more match; admin expiring shows days left and renewal state', async () => {
    const seen: unknown[] = [];
    const card = { cardId: CARD, user: 'alice@example.com', state: 'lost', createdAt: '2026-12-01T10:00:00.000Z', updatedAt: '2026-12-03T10:00:00.000Z', replacedBy: 'ff'.repeat(16), replaces: null };
    const list = await withFakeService({ cardPage: async (_s: string, q: unknown) => (seen.push(q), { cards: [card], next: 'more' }) }, () => cli(['admin', 'cards', ...NOWHERE, '--state', 'lost', '--user', 'alice@example.com', '--limit', '1'], OPERATOR_ENV));
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(seen, [{ state: 'lost', user: 'alice@example.com', limit: 1 }]);
    assert.match(list.stdout, /^CARD +STATE +SINCE +USER\n0123456789abcdef0123456789abcdef {2}lost {7}2026-12-03T10:00:00\.000Z {2}alice@example\.com {2}replaced by f{32}\n\(first 1 shown; more match/);

    const rows: ExpiringCertificate[] = [{ serial: '4a01', requestId: 'r-1', cardId: CARD, container: 'lr-1', user: 'alice@example.com', profile: 'smartcard-logon', notAfter: '2026-12-20T10:00:00.000Z', daysLeft: 16, renewal: 'waiting', renewalRequestId: 'r-2' }];
    const days: number[] = [];
    const exp = await withFakeService({ expiringCertificates: async (_s: string, d: number) => (days.push(d), rows) }, () => cli(['admin', 'expiring', ...NOWHERE, '--days', '20', '--json'], OPERATOR_ENV));
    assert.equal(exp.code, 0, exp.stderr);
    assert.deepEqual(days, [20]);
    assert.deepEqual(JSON.parse(exp.stdout), { ok: true, days: 20, certificates: rows });
    const text = await withFakeService({ expiringCertificates: async () => rows }, () => cli(['admin', 'expiring', ...NOWHERE], OPERATOR_ENV));
    assert.match(text.stdout, /\n {2}16 {2}2026-12-20T10:00:00\.000Z {2}4a01 +0123456789abcdef0123456789abcdef {2}waiting {2}alice@example\.com {2}smartcard-logon\n$/);
    const bad = await cli(['admin', 'expiring', ...NOWHERE, '--days', '-3'], OPERATOR_ENV);
    assert.equal(bad.code, 2);
  });

  test('admin token --sid sends the SID and says the certificates carry it', async () => {
    const sent: NewToken[] = [];
    const r = await withFakeService(
      { createToken: async (_s: string, t: NewToken) => (sent.push(t), { id: 't', user: t.user, profile: 'smartcard-logon', createdBy: 'operator:admin', createdAt: 'x', expiresAt: '2026-12-05T00:00:00.000Z', usedAt: null, requestId: null, revokedAt: null, sid: t.sid ?? null, replacesCard: null, token: 'cle_x' }) },
      () => cli(['admin', 'token', ...NOWHERE, '--user', 'alice@example.com', '--sid', 'S-1-5-21-1-2-3-1105'], OPERATOR_ENV),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(sent, [{ user: 'alice@example.com', sid: 'S-1-5-21-1-2-3-1105' }]);
    assert.match(r.stdout, /its certificates carry the SID S-1-5-21-1-2-3-1105/);
  });
});

describe('admin card against a real service', () => {
  let t: TestService;
  let env: Record<string, string>;
  before(async () => {
    t = await startTestService(BACKENDS[0]!);
    env = { CARDLINK_OPERATOR_PASSWORD: OPERATOR.password, CARDLINK_SERVER: t.svc.url, CARDLINK_CACERT: `${t.dataDir}/ca/cert.pem` };
  });
  after(async () => t.close());

  test('a lost card end to end: shown, marked lost with --yes, refused to resume, its token enrolls the next card', async () => {
    const op = await login(t.client);
    const { token } = await t.client.createToken(op, { user: 'kim@example.com', profile: 'smartcard-logon-auto' });
    const cardId = randomCardId();
    await t.client.submit(token, { csr: (await softKey('CN=kim')).csrPem, cardId, container: 'c1' });
    const shown = await cli(['admin', 'card', cardId], env);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /state {5}active/);
    assert.match(shown.stdout, /strong mapping X509:<I>.*<SR>[0-9A-F]+\n {4}no SID extension/);
    const lost = await cli(['admin', 'card', cardId, 'lost', '--yes', '--json'], env);
    assert.equal(lost.code, 0, lost.stderr);
    const moved = JSON.parse(lost.stdout) as CardTransition & { ok: boolean };
    assert.deepEqual([moved.ok, moved.to, moved.revoked.length], [true, 'lost', 1]);
    const resume = await cli(['admin', 'card', cardId, 'resume', '--json'], env);
    assert.notEqual(resume.code, 0);
    const refused = JSON.parse(resume.stdout) as { ok: boolean; error: { message: string } };
    assert.equal(refused.ok, false);
    assert.match(refused.error.message, /is lost: 'resume' applies to a card that is suspended/);
    const next = randomCardId();
    const { value } = await t.client.submit(moved.replacementToken!.token, { csr: (await softKey('CN=kim')).csrPem, cardId: next, container: 'c1' });
    assert.equal(value.state, 'issued');
    const listed = await cli(['admin', 'cards', '--user', 'kim@example.com', '--json'], env);
    const cards = (JSON.parse(listed.stdout) as { cards: { cardId: string; state: string; replacedBy: string | null }[] }).cards;
    assert.deepEqual(cards.map((c) => [c.cardId, c.state, c.replacedBy]).sort(), [[cardId, 'lost', next], [next, 'active', null]].sort());
  });
});
