/**
 * Issue 13, the service's card life cycle: cards as records made by the first enrollment, who
 * sees which card, the moves (lost with its replacement token, suspend/resume with
 * certificateHold, retire), their audit entries and refusals, SIDs from token to CA and on to
 * renewals, and expiry reporting. Each on SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { renewalBinding, ServiceClient, ServiceClientError, type CardDetail, type RequestView } from '../../src/service/client.js';
import type { IssueOrder, UpstreamCa } from '../../src/service/ca/upstream.js';
import { ManualClock } from '../../src/service/index.js';
import { x509 } from '../../src/x509.js';
import { BACKENDS, login, makeToken, pkcs8Pem, proofFor, randomCardId, renewalCsr, softKey, startTestService, type SoftKey, type TestService } from './helpers.js';

const DAY = 86_400_000;
const SID = 'S-1-5-21-1004336348-1177238915-682003330-1105';

interface Enrolled {
  user: string;
  token: string;
  key: SoftKey;
  cardId: string;
  request: RequestView;
}

/** The serials and reasons of a DER CRL. */
function crlEntries(der: Buffer): Map<string, number | undefined> {
  const crl = new x509.X509Crl(der);
  return new Map((crl.entries ?? []).map((e) => [e.serialNumber.toLowerCase(), e.reason as number | undefined]));
}

/** The SID an issuance order gives the CA, if any. */
function sidOf(order: IssueOrder | undefined): string | undefined {
  return order?.template.kind === 'smartcard-logon' ? order.template.sid : undefined;
}

const refusedWith = (status: number, pattern: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof ServiceClientError, String(e));
  assert.equal(e.status, status, e.message);
  assert.match(e.message, pattern);
  return true;
};

for (const backend of BACKENDS) describe(`cards on ${backend.name}: records, life cycle, SIDs, expiry`, () => {
  let t: TestService;
  let op: string;
  let clock: ManualClock;
  const orders: IssueOrder[] = [];
  before(async () => {
    clock = new ManualClock();
    t = await startTestService(backend, { clock });
    op = await login(t.client);
    // Watch what the CA is asked to sign (the SID travels in the order's template).
    const ca = (t.svc.service as unknown as { ca: UpstreamCa }).ca;
    const issueDer = ca.issueDer.bind(ca);
    ca.issueDer = async (order: IssueOrder) => (orders.push(order), issueDer(order));
  });
  after(async () => t.close());

  let n = 0;
  async function enroll(o: { user?: string; cardId?: string; profile?: string; sid?: string; token?: string } = {}): Promise<Enrolled> {
    const user = o.user ?? `user${++n}-${backend.name}@example.com`;
    const token = o.token ?? (await t.client.createToken(op, { user, profile: o.profile ?? 'smartcard-logon-auto', ...(o.sid ? { sid: o.sid } : {}) })).token;
    const key = await softKey(`CN=${user}`);
    const cardId = o.cardId ?? randomCardId();
    const { value: request } = await t.client.submit(token, { csr: key.csrPem, cardId, container: 'c1' });
    return { user, token, key, cardId: cardId.toLowerCase(), request };
  }

  test('the first enrollment makes the card; operators see every card, a user only their own', async () => {
    const alice = await enroll({ cardId: randomCardId().toUpperCase() });
    const bob = await enroll();
    const card = await t.client.card(op, alice.cardId);
    assert.equal(card.cardId, alice.cardId, 'lower-case hex, whatever case it was submitted in');
    assert.equal(card.user, alice.user);
    assert.equal(card.state, 'active');
    assert.deepEqual(card.credentials.map((c) => [c.requestId, c.serial, c.status, c.container]), [[alice.request.id, alice.request.serial, 'good', 'c1']]);
    assert.match(card.credentials[0]!.strongMapping!, /^X509:<I>.+<SR>[0-9A-F]+$/);
    assert.equal(card.credentials[0]!.sidExtension, null);
    assert.deepEqual(card.history.map((h) => h.action), ['card.created']);
    // Alice with her (spent) token: her card, not Bob's (not found, not forbidden: nothing about it leaks).
    assert.equal((await t.client.card(alice.token, alice.cardId)).cardId, alice.cardId);
    await assert.rejects(t.client.card(alice.token, bob.cardId), refusedWith(404, /no card/));
    assert.deepEqual((await t.client.cardPage(alice.token)).cards.map((c) => c.cardId), [alice.cardId]);
    assert.deepEqual((await t.client.cardPage(alice.token, { user: bob.user })).cards, []);
    const all = (await t.client.cardPage(op, { limit: 10_000 })).cards.map((c) => c.cardId);
    assert.ok(all.includes(alice.cardId) && all.includes(bob.cardId));
    assert.deepEqual((await t.client.cardPage(op, { user: bob.user })).cards.map((c) => c.cardId), [bob.cardId]);
    // Another user cannot enroll on Alice's card.
    await assert.rejects(enroll({ cardId: alice.cardId }), refusedWith(403, /belongs to another user/));
  });

  test('cards are listed in pages that follow each other without gaps', async () => {
    const user = `pager-${backend.name}@example.com`;
    const made = [];
    for (let i = 0; i < 5; i++) made.push((await enroll({ user })).cardId);
    const seen: string[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await t.client.cardPage(op, { user, limit: 2, ...(cursor ? { cursor } : {}) });
      seen.push(...page.cards.map((c) => c.cardId));
      if (page.next === null) break;
      cursor = page.next;
    }
    assert.deepEqual([...seen].sort(), [...made].sort());
    assert.equal(new Set(seen).size, 5);
  });

  test('lost: certificates revoked with the chosen reason, waiting requests rejected, a replacement token shown once; the next card replaces it', async () => {
    const alice = await enroll({ sid: SID });
    const pendingKey = await softKey();
    const pendingToken = await makeToken(t.client, op, alice.user, 'smartcard-logon');
    const { value: pending } = await t.client.submit(pendingToken, { csr: pendingKey.csrPem, cardId: alice.cardId, container: 'c2' });
    assert.equal(pending.state, 'pending');

    const moved = await t.client.transitionCard(op, alice.cardId, { action: 'lost', reason: 'cessationOfOperation' });
    assert.equal(moved.from, 'active');
    assert.equal(moved.to, 'lost');
    assert.deepEqual(moved.revoked, [alice.request.serial]);
    assert.equal(crlEntries(await t.client.crl()).get(alice.request.serial!), 5, 'on the CRL as cessationOfOperation');
    assert.equal((await t.client.request(op, pending.id)).value.state, 'rejected');
    const token = moved.replacementToken!;
    assert.equal(token.user, alice.user);
    assert.equal(token.replacesCard, alice.cardId);
    assert.equal(token.sid, SID, 'the replacement keeps the SID');
    assert.equal(token.profile, 'smartcard-logon-auto', "the profile of the card's certificates");
    assert.match(token.token, /^cle_/);
    assert.equal((await t.client.tokens(op)).find((x) => x.id === token.id)?.replacesCard, alice.cardId);
    assert.ok(!JSON.stringify(await t.client.tokens(op)).includes(token.token), 'the secret is shown once, never listed');

    const entry = moved.card.history.find((h) => h.action === 'card.lost')!;
    assert.equal(entry.actor, 'operator:admin');
    assert.deepEqual({ from: entry.details.from, to: entry.details.to, reason: entry.details.reason }, { from: 'active', to: 'lost', reason: 'cessationOfOperation' });
    assert.ok(Date.parse(entry.at) > 0);

    // Refused moves say why, in the operator's terms.
    await assert.rejects(t.client.transitionCard(op, alice.cardId, { action: 'resume' }), refusedWith(409, /is lost: 'resume' applies to a card that is suspended \(a lost card stays lost/));
    await assert.rejects(t.client.transitionCard(op, alice.cardId, { action: 'lost' }), refusedWith(409, /is lost/));
    // Nothing is handed out for a lost card.
    const { nonce } = await t.client.challenge(alice.cardId);
    await assert.rejects(t.client.collect({ cardId: alice.cardId, nonce, proofs: [await proofFor(alice.key, nonce, alice.cardId, 'c1')] }), refusedWith(403, /is lost/));

    // The replacement token enrolls a new card, recorded as the lost one's replacement, with the SID.
    orders.length = 0;
    const next = await enroll({ user: alice.user, token: token.token });
    assert.equal(next.request.state, 'issued');
    assert.equal(sidOf(orders[orders.length - 1]), SID, 'the CA is given the SID');
    const replacement = await t.client.card(op, next.cardId);
    assert.equal(replacement.replaces, alice.cardId);
    assert.equal((await t.client.card(op, alice.cardId)).replacedBy, next.cardId);
    await assert.rejects(enroll({ user: alice.user, token: token.token }), refusedWith(401, /already used/));
  });

  test('a card that is not active gets no unblock response', async () => {
    const user = `unblock-${backend.name}@example.com`;
    const { token } = await t.client.createToken(op, { user, profile: 'smartcard-logon-auto' });
    const cardId = randomCardId();
    const key = await t.client.cardAdminKey(token, cardId);
    await t.client.confirmCardAdminKey(token, cardId, key.keyVersion);
    await t.client.submit(token, { csr: (await softKey()).csrPem, cardId, container: 'c1' });
    assert.match((await t.client.unblockResponse(op, cardId, '0102030405060708')).response, /^[0-9A-F]{16}$/);
    await t.client.transitionCard(op, cardId, { action: 'suspend' });
    await assert.rejects(t.client.unblockResponse(op, cardId, '1102030405060708'), refusedWith(409, /is suspended, not active: no unblock/));
    await t.client.transitionCard(op, cardId, { action: 'lost', reason: 'keyCompromise' });
    await assert.rejects(t.client.unblockResponse(op, cardId, '2102030405060708'), refusedWith(409, /is lost, not active: no unblock/));
  });

  test("retire-card's challenge wipe moves the card record to retired too, revoking its certificates, in one audit entry", async () => {
    const user = `wipe-${backend.name}@example.com`;
    const { token } = await t.client.createToken(op, { user, profile: 'smartcard-logon-auto' });
    const cardId = randomCardId();
    const key = await t.client.cardAdminKey(token, cardId);
    await t.client.confirmCardAdminKey(token, cardId, key.keyVersion);
    const { value: request } = await t.client.submit(token, { csr: (await softKey()).csrPem, cardId, container: 'c1' });
    const answer = await t.client.retireCard(op, cardId, '0a0b0c0d0e0f1011');
    assert.equal(answer.state, 'retired');
    const card = await t.client.card(op, cardId);
    assert.equal(card.state, 'retired');
    assert.deepEqual(card.credentials.map((c) => [c.serial, c.status, c.revocationReason]), [[request.serial, 'revoked', 'cessationOfOperation']]);
    assert.equal(crlEntries(await t.client.crl()).get(request.serial!), 5, 'published at once');
    const retired = card.history.filter((h) => h.action === 'card.retired');
    assert.equal(retired.length, 1);
    assert.deepEqual([retired[0]!.actor, retired[0]!.details.from, retired[0]!.details.to], ['operator:admin', 'active', 'retired']);
    assert.match(String(retired[0]!.details.challengeHash), /^[0-9a-f]{64}$/);
  });

  test('lost defaults to keyCompromise; --temporary gives a temporary-card token whose certificate lives 14 days', async () => {
    const bob = await enroll();
    const moved = await t.client.transitionCard(op, bob.cardId, { action: 'lost', temporary: true });
    assert.equal(crlEntries(await t.client.crl()).get(bob.request.serial!), 1, 'keyCompromise');
    assert.equal(moved.replacementToken!.profile, 'temporary-card');
    const temp = await enroll({ user: bob.user, token: moved.replacementToken!.token });
    assert.equal(temp.request.state, 'issued', 'issued at once: the operator vouched for the user when marking the card lost');
    const days = (Date.parse(temp.request.notAfter!) - Date.parse(temp.request.notBefore!)) / DAY;
    assert.ok(days > 13.9 && days < 14.1, String(days));
  });

  test('suspend puts valid certificates on hold (collect refused); resume takes them off the CRL and they are good again', async () => {
    const carol = await enroll();
    const serial = carol.request.serial!;
    const s = await t.client.transitionCard(op, carol.cardId, { action: 'suspend' });
    assert.deepEqual([s.from, s.to, s.held], ['active', 'suspended', [serial]]);
    assert.equal(crlEntries(await t.client.crl()).get(serial), 6, 'certificateHold');
    assert.equal(s.card.credentials[0]!.status, 'on-hold');
    const { nonce } = await t.client.challenge(carol.cardId);
    await assert.rejects(t.client.collect({ cardId: carol.cardId, nonce, proofs: [await proofFor(carol.key, nonce, carol.cardId, 'c1')] }), refusedWith(403, /is suspended: nothing is handed out for it until an operator resumes it/));
    await assert.rejects(t.client.transitionCard(op, carol.cardId, { action: 'suspend' }), refusedWith(409, /already suspended/));

    const r = await t.client.transitionCard(op, carol.cardId, { action: 'resume' });
    assert.deepEqual([r.from, r.to, r.released], ['suspended', 'active', [serial]]);
    assert.equal(crlEntries(await t.client.crl()).has(serial), false, 'removed from the CRL');
    assert.equal(r.card.credentials[0]!.status, 'good');
    const again = await t.client.challenge(carol.cardId);
    const got = await t.client.collect({ cardId: carol.cardId, nonce: again.nonce, proofs: [await proofFor(carol.key, again.nonce, carol.cardId, 'c1')] });
    assert.equal(got[0]?.state, 'issued', 'collect works again');
    assert.deepEqual(r.card.history.map((h) => [h.action, h.details.from, h.details.to]).slice(-2), [['card.suspended', 'active', 'suspended'], ['card.active', 'suspended', 'active']]);

    // A certificate revoked while held stays revoked: resume releases holds only.
    await t.client.transitionCard(op, carol.cardId, { action: 'suspend' });
    await t.client.revoke(op, carol.request.id, 1);
    const r2 = await t.client.transitionCard(op, carol.cardId, { action: 'resume' });
    assert.deepEqual(r2.released, []);
    assert.equal(crlEntries(await t.client.crl()).get(serial), 1);
  });

  test('retire revokes with cessationOfOperation; a retired card is enrolled again by its next user', async () => {
    const dave = await enroll();
    const moved = await t.client.transitionCard(op, dave.cardId, { action: 'retire' });
    assert.deepEqual([moved.from, moved.to, moved.revoked], ['active', 'retired', [dave.request.serial]]);
    assert.equal(crlEntries(await t.client.crl()).get(dave.request.serial!), 5);
    await assert.rejects(t.client.transitionCard(op, dave.cardId, { action: 'suspend' }), refusedWith(409, /is retired: 'suspend' applies to a card that is active/));
    const erin = await enroll({ cardId: dave.cardId });
    const card = await t.client.card(op, dave.cardId);
    assert.deepEqual([card.user, card.state], [erin.user, 'active']);
    assert.ok(card.history.some((h) => h.action === 'card.reissued' && h.details.previousUser === dave.user));
  });

  test('only operators move cards and list expiring certificates; unknown actions and bad ids are refused', async () => {
    const frank = await enroll();
    await assert.rejects(t.client.transitionCard(frank.token, frank.cardId, { action: 'suspend' }), refusedWith(403, /only operators/));
    await assert.rejects(t.client.expiringCertificates(frank.token, 30), refusedWith(403, /only operators/));
    await assert.rejects(t.client.transitionCard(op, frank.cardId, { action: 'explode' as 'lost' }), refusedWith(400, /action/));
    await assert.rejects(t.client.transitionCard(op, frank.cardId, { action: 'suspend', reason: 'keyCompromise' }), refusedWith(400, /lost only/));
    await assert.rejects(t.client.card(op, 'not-a-card'), refusedWith(404, /no card/));
    await assert.rejects(t.client.transitionCard(op, randomCardId(), { action: 'suspend' }), refusedWith(404, /no card/));
    assert.equal((await t.client.card(op, frank.cardId)).state, 'active', 'nothing moved');
  });

  test('a token SID is validated strictly, given to the CA, and inherited by the renewal', async () => {
    await assert.rejects(t.client.createToken(op, { user: 'gina@example.com', sid: 'S-1-5-32-544' }), refusedWith(400, /S-1-5-21-/));
    await assert.rejects(t.client.createToken(op, { user: 'gina@example.com', sid: `${SID}\n` }), refusedWith(400, /S-1-5-21-/));
    // The story starts 345 days ago, so its renewal (in the 30-day window) is issued about now (TLS checks real time).
    clock.advance(Date.now() - 345 * DAY - clock.now().getTime());
    op = await login(t.client);
    orders.length = 0;
    const gina = await enroll({ sid: SID });
    assert.equal(orders.length, 1);
    assert.equal(sidOf(orders[0]), SID);
    clock.advance(Date.parse(gina.request.notAfter!) - 20 * DAY - clock.now().getTime());
    op = await login(t.client);
    const { nonce } = await t.client.challenge(gina.cardId);
    const csr = await renewalCsr(gina.user, renewalBinding(nonce, gina.cardId, 'c2'));
    const c = new ServiceClient({ server: t.svc.url, ca: t.svc.caCertPem, cert: gina.request.certificate!, key: await pkcs8Pem(gina.key) });
    try {
      const res = await c.raw('POST', '/.well-known/est/simplereenroll', { body: Buffer.from(csr.csrDer).toString('base64'), contentType: 'application/pkcs10' });
      assert.equal(res.status, 200, res.body.toString());
    } finally {
      c.close();
    }
    assert.equal(orders.length, 2);
    assert.equal(sidOf(orders[1]), SID, 'the renewal keeps the SID');
    // The renewal is a credential of the same card.
    const card: CardDetail = await t.client.card(op, gina.cardId);
    assert.deepEqual(card.credentials.map((x) => [x.kind, x.container]), [['enroll', 'c1'], ['reenroll', 'c2']]);
  });

  test('a suspended card is not renewed', async () => {
    clock.advance(Date.now() - 345 * DAY - clock.now().getTime());
    op = await login(t.client);
    const hank = await enroll();
    clock.advance(Date.parse(hank.request.notAfter!) - 20 * DAY - clock.now().getTime());
    op = await login(t.client);
    await t.client.transitionCard(op, hank.cardId, { action: 'suspend' });
    const { nonce } = await t.client.challenge(hank.cardId);
    const csr = await renewalCsr(hank.user, renewalBinding(nonce, hank.cardId, 'c2'));
    const c = new ServiceClient({ server: t.svc.url, ca: t.svc.caCertPem, cert: hank.request.certificate!, key: await pkcs8Pem(hank.key) });
    try {
      const res = await c.raw('POST', '/.well-known/est/simplereenroll', { body: Buffer.from(csr.csrDer).toString('base64'), contentType: 'application/pkcs10' });
      assert.ok(res.status === 401 || res.status === 403, `${res.status} ${res.body.toString()}`);
      assert.match(res.body.toString(), /certificateHold/);
    } finally {
      c.close();
    }
    assert.equal((await t.client.card(op, hank.cardId)).credentials.length, 1, 'no renewal request was made');
  });

  test('expiring: valid certificates ending within N days, with card, user, profile, days left and renewal state', async () => {
    clock.advance(Date.now() - 345 * DAY - clock.now().getTime());
    op = await login(t.client);
    const ivan = await enroll();
    const jane = await enroll();
    const revoked = await enroll();
    await t.client.revoke(op, revoked.request.id, 0);
    const end = Date.parse(ivan.request.notAfter!);
    clock.advance(end - 20.5 * DAY - clock.now().getTime());
    op = await login(t.client);
    // Jane renews (automatic profile: issued at once).
    const { nonce } = await t.client.challenge(jane.cardId);
    const csr = await renewalCsr(jane.user, renewalBinding(nonce, jane.cardId, 'c2'));
    const c = new ServiceClient({ server: t.svc.url, ca: t.svc.caCertPem, cert: jane.request.certificate!, key: await pkcs8Pem(jane.key) });
    try {
      assert.equal((await c.raw('POST', '/.well-known/est/simplereenroll', { body: Buffer.from(csr.csrDer).toString('base64'), contentType: 'application/pkcs10' })).status, 200);
    } finally {
      c.close();
    }
    const mine = <T extends { serial: string }>(list: T[]): T[] => list.filter((x) => [ivan, jane, revoked].some((e) => e.request.serial === x.serial));
    const within30 = mine(await t.client.expiringCertificates(op, 30));
    assert.deepEqual(
      within30.map((x) => ({ ...x })).map(({ serial, cardId, user, profile, daysLeft, renewal }) => ({ serial, cardId, user, profile, daysLeft, renewal })).sort((a, b) => a.user.localeCompare(b.user)),
      [
        { serial: ivan.request.serial, cardId: ivan.cardId, user: ivan.user, profile: 'smartcard-logon-auto', daysLeft: 20, renewal: 'none' },
        { serial: jane.request.serial, cardId: jane.cardId, user: jane.user, profile: 'smartcard-logon-auto', daysLeft: 20, renewal: 'issued' },
      ].sort((a, b) => a.user.localeCompare(b.user)),
    );
    assert.deepEqual(mine(await t.client.expiringCertificates(op, 10)), [], 'not within 10 days');
    await assert.rejects(t.client.expiringCertificates(op, -1), refusedWith(400, /days/));
  });
});
