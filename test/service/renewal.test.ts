import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { renewalBinding, ServiceClient, type HttpResult, type RequestView } from '../../src/service/client.js';
import { ManualClock } from '../../src/service/index.js';
import { x509 } from '../../src/x509.js';
import { BACKENDS, login, makeToken, pkcs8Pem, proofFor, randomCardId, renewalCsr, softKey, startTestService, type SoftKey, type TestService } from './helpers.js';

const DAY = 86_400_000;
const PROFILE = 'smartcard-logon-auto';

/** A holder of an issued certificate: its key, its PEM, its request and card. */
interface Holder {
  user: string;
  key: SoftKey;
  cert: string;
  request: RequestView;
  cardId: string;
  container: string;
}

for (const backend of BACKENDS) describe(`renewal ends on ${backend.name}: window, once per certificate, superseded, cascade on key compromise, same card`, () => {
  let t: TestService;
  let op: string;
  let clock: ManualClock;
  before(async () => {
    clock = new ManualClock();
    t = await startTestService(backend, { clock });
    op = await login(t.client);
  });
  after(async () => t.close());

  let n = 0;
  async function enroll(): Promise<Holder> {
    // The TLS stack checks client certificates against the real time: each story starts 345 days
    // ago, so that its renewals (20 days before the end) are issued about now.
    clock.advance(Date.now() - 345 * DAY - clock.now().getTime());
    op = await login(t.client);
    const user = `holder${++n}@example.com`;
    const token = await makeToken(t.client, op, user, PROFILE);
    const key = await softKey(`CN=${user}`);
    const cardId = randomCardId();
    const { value: request } = await t.client.submit(token, { csr: key.csrPem, cardId, container: 'c0' });
    assert.equal(request.state, 'issued');
    return { user, key, cert: request.certificate!, request, cardId, container: 'c0' };
  }

  async function renew(h: Holder, csr: SoftKey): Promise<HttpResult> {
    const c = new ServiceClient({ server: t.svc.url, ca: t.svc.caCertPem, cert: h.cert, key: await pkcs8Pem(h.key) });
    try {
      return await c.raw('POST', '/.well-known/est/simplereenroll', { body: Buffer.from(csr.csrDer).toString('base64'), contentType: 'application/pkcs10' });
    } finally {
      c.close();
    }
  }

  /** A renewal bound to the holder's card in container `container`, as the agent would make it. */
  async function boundCsr(h: Holder, container: string, cardId = h.cardId): Promise<SoftKey> {
    const { nonce } = await t.client.challenge(cardId);
    return renewalCsr(h.user, renewalBinding(nonce, cardId, container));
  }

  /** Renewed: the newest request of the user, with its certificate. */
  async function renewed(h: Holder, key: SoftKey, container: string): Promise<Holder> {
    const [newest] = await t.client.requests(op, { user: h.user, limit: 1 });
    assert.equal(newest!.kind, 'reenroll');
    assert.ok(newest!.certificate);
    return { ...h, key, cert: newest!.certificate!, request: newest!, container };
  }

  async function refusedInAudit(h: Holder, pattern: RegExp): Promise<void> {
    const serial = new x509.X509Certificate(h.cert).serialNumber.toLowerCase();
    const entries = await t.client.audit(op, { action: 'renewal.refused', subject: `serial:${serial}` });
    assert.ok(entries.some((e) => pattern.test(String(e.details.reason))), `audit of ${serial}: ${JSON.stringify(entries.map((e) => e.details))}`);
  }

  const toEnd = async (h: Holder): Promise<void> => {
    // Into the renewal window: 30 days before the end of 365.
    const end = Date.parse(h.request.notAfter!);
    clock.advance(end - 20 * DAY - clock.now().getTime());
    op = await login(t.client);
  };

  test('chaining: a fresh certificate is outside the renewal window; a renewed one cannot renew at once', async () => {
    const gen0 = await enroll();
    const early = await renew(gen0, await boundCsr(gen0, 'c1'));
    assert.equal(early.status, 403);
    assert.match(early.body.toString(), /can be renewed from .* 30 days before it expires/);
    await refusedInAudit(gen0, /can be renewed from/);

    await toEnd(gen0);
    const key1 = await boundCsr(gen0, 'c1');
    const ok = await renew(gen0, key1);
    assert.equal(ok.status, 200, ok.body.toString());
    const gen1 = await renewed(gen0, key1, 'c1');
    assert.equal(gen1.request.cardId, gen0.cardId, 'the renewal is bound to the same card');
    assert.equal(gen1.request.container, 'c1');

    const again = await renew(gen1, await boundCsr(gen1, 'c2'));
    assert.equal(again.status, 403, `gen1 -> gen2 straight away is refused: ${again.body.toString()}`);
    assert.match(again.body.toString(), /can be renewed from/);
    await refusedInAudit(gen1, /can be renewed from/);
  });

  test('superseded: a renewed certificate cannot renew again, and delivery of its successor revokes it as superseded', async () => {
    const gen0 = await enroll();
    await toEnd(gen0);
    const key1 = await boundCsr(gen0, 'c1');
    assert.equal((await renew(gen0, key1)).status, 200);
    const gen1 = await renewed(gen0, key1, 'c1');

    const twice = await renew(gen0, await boundCsr(gen0, 'c3'));
    assert.equal(twice.status, 403);
    assert.match(twice.body.toString(), /is superseded: it was renewed by request/);
    await refusedInAudit(gen0, /superseded/);

    // The agent collects the renewal with the card key and reports it delivered.
    const challenge = await t.client.challenge(gen0.cardId);
    const [got] = await t.client.collect({ cardId: gen0.cardId, nonce: challenge.nonce, proofs: [await proofFor(key1, challenge.nonce, gen0.cardId, 'c1')] });
    assert.equal(got!.id, gen1.request.id);
    await t.client.delivered(got!.id, { ticket: got!.deliveryTicket! });
    const old = (await t.client.request(op, gen0.request.id)).value;
    assert.equal(old.state, 'revoked');
    const crl = new x509.X509Crl(await t.client.crl());
    const entry = crl.findRevoked(new x509.X509Certificate(gen0.cert));
    assert.equal(entry?.reason, x509.X509CrlReason.superseded);

    const afterDelivery = await renew(gen0, await boundCsr(gen0, 'c4'));
    assert.equal(afterDelivery.status, 401);
    assert.match(afterDelivery.body.toString(), /revoked \(superseded\)/);
    await refusedInAudit(gen0, /revoked \(superseded\)/);
  });

  test('superseded after the grace period when the successor is never reported delivered', async () => {
    const gen0 = await enroll();
    await toEnd(gen0);
    const key1 = await boundCsr(gen0, 'c1');
    assert.equal((await renew(gen0, key1)).status, 200);
    await t.svc.service.sweep();
    assert.equal((await t.client.request(op, gen0.request.id)).value.state, 'issued', 'still valid inside the grace period');
    clock.advanceDays(7);
    op = await login(t.client);
    await t.svc.service.sweep();
    assert.equal((await t.client.request(op, gen0.request.id)).value.state, 'revoked');
    const entry = new x509.X509Crl(await t.client.crl()).findRevoked(new x509.X509Certificate(gen0.cert));
    assert.equal(entry?.reason, x509.X509CrlReason.superseded);
  });

  test('key compromise: revoking the original revokes what was renewed from it, which then cannot renew', async () => {
    const gen0 = await enroll();
    await toEnd(gen0);
    const key1 = await boundCsr(gen0, 'c1');
    assert.equal((await renew(gen0, key1)).status, 200);
    const gen1 = await renewed(gen0, key1, 'c1');

    await t.client.revoke(op, gen0.request.id, 1);
    assert.equal((await t.client.request(op, gen1.request.id)).value.state, 'revoked', 'the renewal goes with its compromised ancestor');
    const crl = new x509.X509Crl(await t.client.crl());
    assert.equal(crl.findRevoked(new x509.X509Certificate(gen1.cert))?.reason, x509.X509CrlReason.keyCompromise);

    // Even inside gen1's own renewal window.
    await toEnd(gen1);
    const refused = await renew(gen1, await boundCsr(gen1, 'c2'));
    assert.equal(refused.status, 401);
    assert.match(refused.body.toString(), /revoked \(keyCompromise\)/);
    await refusedInAudit(gen1, /revoked \(keyCompromise\)/);
  });

  test('key compromise: a renewal still waiting for an operator is rejected with the reason', async () => {
    const gen0 = await enroll();
    await toEnd(gen0);
    await t.client.updateProfile(op, PROFILE, { approval: 'operator', supersedeGraceDays: 90 });
    try {
      // The longest grace period in the sweep's arithmetic (milliseconds beyond 32 bits on PostgreSQL).
      await t.svc.service.sweep();
      const waiting = await renew(gen0, await boundCsr(gen0, 'c1'));
      assert.equal(waiting.status, 202);
      const [pending] = await t.client.requests(op, { user: gen0.user, state: 'pending' });
      await t.client.revoke(op, gen0.request.id, 1);
      const after = (await t.client.request(op, pending!.id)).value;
      assert.equal(after.state, 'rejected');
      assert.match(after.reason ?? '', /revoked for key compromise/);
    } finally {
      await t.client.updateProfile(op, PROFILE, { approval: 'automatic', supersedeGraceDays: 7 });
    }
  });

  test('software keys: a renewal not bound to the same card is refused unless the profile allows software keys', async () => {
    const gen0 = await enroll();
    await toEnd(gen0);
    const unbound = await renew(gen0, await renewalCsr(gen0.user));
    assert.equal(unbound.status, 403);
    assert.match(unbound.body.toString(), /not bound to a card/);
    await refusedInAudit(gen0, /not bound to a card/);

    const otherCard = randomCardId();
    const foreign = await renew(gen0, await boundCsr(gen0, 'c1', otherCard));
    assert.equal(foreign.status, 403);
    assert.match(foreign.body.toString(), /a renewal stays on the same card/);
    await refusedInAudit(gen0, /same card/);

    const forged = await renew(gen0, await renewalCsr(gen0.user, renewalBinding(`clc_${'A'.repeat(43)}`, gen0.cardId, 'c1')));
    assert.equal(forged.status, 403, 'a binding needs a challenge the service handed out');
    assert.match(forged.body.toString(), /challenge is unknown, used or expired/);

    await t.client.updateProfile(op, PROFILE, { allowSoftwareKeys: true });
    try {
      const soft = await renewalCsr(gen0.user);
      assert.equal((await renew(gen0, soft)).status, 200, 'explicitly allowed');
      const r = await renewed(gen0, soft, '');
      assert.equal(r.request.cardId, null, 'an unbound key is not recorded as on the card');
    } finally {
      await t.client.updateProfile(op, PROFILE, { allowSoftwareKeys: false });
    }
  });
});
