import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { apiPath } from '../../src/service/client.js';
import { ManualClock } from '../../src/service/index.js';
import { x509 } from '../../src/x509.js';
import { OID } from '../../src/service/ca/pki.js';
import { BACKENDS, login, makeToken, proofFor, randomCardId, softKey, startTestService } from './helpers.js';

const DAY = 86_400_000;

for (const backend of BACKENDS) {
  describe(`the whole flow over HTTPS on ${backend.name}`, () => {
    test('request on day 0, approved on day 3, collected with the card key on another machine, revoked on day 10', async () => {
      const clock = new ManualClock(new Date(Date.UTC(2026, 2, 2, 9, 0, 0)));
      const t = await startTestService(backend, { clock });
      try {
        const { client } = t;
        const op = await login(client);
        const token = await makeToken(client, op, 'alice@example.com', 'smartcard-logon', 86_400);
        const cardId = randomCardId();
        const key = await softKey('CN=ignored by the CA');

        // Day 0: the agent submits; the profile wants an operator, so it waits.
        const submitted = await client.submit(token, { csr: key.csrPem, cardId, container: 'lr-e46f1586-7133-4284-895d-557e2261c24d' });
        assert.equal(submitted.status, 202);
        assert.equal(submitted.retryAfter, 7);
        assert.equal(submitted.value.state, 'pending');
        assert.equal(submitted.value.certificate, null);
        const id = submitted.value.id;

        // The token is spent: a second request with it is refused.
        const other = await softKey();
        await assert.rejects(client.submit(token, { csr: other.csrPem }), { status: 401 });

        // Day 3: the operator's session from day 0 has expired; a new login approves.
        clock.advanceDays(3);
        await assert.rejects(client.requests(op), { status: 401 });
        const op2 = await login(client);
        const approved = await client.approve(op2, id);
        assert.equal(approved.state, 'issued');
        assert.equal(approved.decidedBy, 'operator:admin');
        const cert = new x509.X509Certificate(approved.certificate!);
        assert.equal(cert.notBefore.getTime(), clock.now().getTime() - 5 * 60_000, 'validity starts at approval, days after the request');
        assert.equal(cert.notAfter.getTime() - cert.notBefore.getTime(), 365 * DAY + 5 * 60_000);
        assert.ok(await cert.verify({ publicKey: t.svc.service.caCertificates()[0]!.publicKey, signatureOnly: true }));
        assert.deepEqual([...(cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? [])], [OID.clientAuth, OID.smartcardLogon]);
        assert.deepEqual(cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON(), [{ type: 'upn', value: 'alice@example.com' }]);
        assert.equal(cert.subject, 'CN=alice@example.com');

        // Day 4: a second workstation (it knows only the server) collects by proving the card key.
        clock.advanceDays(1);
        const challenge = await client.challenge(cardId);
        const wrong = await softKey();
        const none = await client.collect({ cardId, nonce: challenge.nonce, proofs: [await proofFor(wrong, challenge.nonce, cardId, 'lr-e46f1586-7133-4284-895d-557e2261c24d')] });
        assert.deepEqual(none, [], 'another key gets nothing');
        await assert.rejects(
          client.collect({ cardId, nonce: challenge.nonce, proofs: [await proofFor(key, challenge.nonce, cardId, 'lr-e46f1586-7133-4284-895d-557e2261c24d')] }),
          { status: 401 },
          'a challenge is good for one answer',
        );
        const c2 = await client.challenge(cardId);
        const collected = await client.collect({ cardId, nonce: c2.nonce, proofs: [await proofFor(key, c2.nonce, cardId, 'lr-e46f1586-7133-4284-895d-557e2261c24d')] });
        assert.equal(collected.length, 1);
        assert.equal(collected[0]!.id, id);
        assert.equal(collected[0]!.certificate, approved.certificate);
        const ticket = collected[0]!.deliveryTicket!;
        await assert.rejects(client.delivered(id, { ticket: 'clt_forged' }), { status: 401 });
        const delivered = await client.delivered(id, { ticket, host: 'ws-2', thumbprint: 'ab' });
        assert.equal(delivered.state, 'delivered');
        assert.equal(delivered.deliveredAt, clock.now().toISOString());

        // Day 10: revoked; the CRL lists it, signed by the CA, with a number that grew.
        clock.advanceDays(6);
        const op3 = await login(client);
        const crlBefore = new x509.X509Crl(await client.crl());
        const revoked = await client.revoke(op3, id, 1);
        assert.equal(revoked.state, 'revoked');
        const crlRes = await client.raw('GET', apiPath('crl'));
        assert.equal(crlRes.headers['content-type'], 'application/pkix-crl');
        const crl = new x509.X509Crl(crlRes.body);
        assert.ok(await crl.verify({ publicKey: t.svc.service.caCertificates()[0]!.publicKey }));
        assert.ok(crl.findRevoked(cert), 'the serial is on the CRL');
        assert.equal(crlBefore.findRevoked(cert), null);
        const crlNumber = (c: x509.X509Crl) => Buffer.from(c.getExtension('2.5.29.20')!.value).readUIntBE(2, Buffer.from(c.getExtension('2.5.29.20')!.value)[1]!);
        assert.ok(crlNumber(crl) > crlNumber(crlBefore));
        assert.equal(crl.thisUpdate.getTime(), Math.floor(clock.now().getTime() / 1000) * 1000);

        // The audit log tells the whole story: who, when, what, in order.
        const log = await client.audit(op3, { subject: `request:${id}` });
        assert.deepEqual(
          log.map((e) => [e.action, e.actor.replace(/\(token [^)]+\)/, '(token)'), e.at.slice(0, 10)]),
          [
            ['request.submitted', 'user:alice@example.com (token)', '2026-03-02'],
            ['request.approved', 'operator:admin', '2026-03-05'],
            ['request.issued', 'ca:embedded', '2026-03-05'],
            ['request.delivered', 'card-holder:alice@example.com', '2026-03-06'],
            ['request.revoked', 'operator:admin', '2026-03-12'],
          ],
        );
      } finally {
        await t.close();
      }
    });

    test('an automatic profile issues at once; a token used after its expiry is refused', async () => {
      const clock = new ManualClock(new Date(Date.UTC(2026, 5, 1)));
      const t = await startTestService(backend, { clock });
      try {
        const op = await login(t.client);
        const auto = await makeToken(t.client, op, 'bob@example.com', 'smartcard-logon-auto', 3600);
        const late = await makeToken(t.client, op, 'carol@example.com', 'smartcard-logon-auto', 3600);
        const key = await softKey();
        const res = await t.client.submit(auto, { csr: key.csrPem });
        assert.equal(res.status, 200);
        assert.equal(res.value.state, 'issued');
        assert.equal(res.value.decidedBy, 'policy:smartcard-logon-auto');
        clock.advanceDays(2);
        await assert.rejects(t.client.submit(late, { csr: (await softKey()).csrPem }), { status: 401 });
        // The spent token still shows its own request, days later.
        const again = await t.client.request(auto, res.value.id);
        assert.equal(again.value.certificate, res.value.certificate);
      } finally {
        await t.close();
      }
    });
  });
}
