import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { isUserPrincipalName, userSubject } from '../../src/service/ca/pki.js';
import { EmbeddedCa } from '../../src/service/ca/embedded.js';
import { x509 } from '../../src/x509.js';
import { BACKENDS, login, makeToken, randomCardId, softKey, startTestService, type TestService } from './helpers.js';

const INJECTION = 'eve@example.com,CN=Administrator,O=Corp';

describe('user principal names and subjects', () => {
  test('the token user is a validated UPN: DN syntax, NUL, controls, spaces and 200 KB are refused', () => {
    for (const good of ['alice@example.com', 'a.b-c_d+e@sub.example.co.uk', "o'brien@corp"]) assert.ok(isUserPrincipalName(good), good);
    for (const bad of [INJECTION, 'x@y+CN=admin', 'admin@example.com\u0000.evil', 'a b@example.com', 'a@b\n', 'noat', '@example.com', `${'a'.repeat(200_000)}@example.com`, 'a"@example.com', 'a@exa=mple.com']) {
      assert.ok(!isUserPrincipalName(bad), JSON.stringify(bad.slice(0, 60)));
    }
  });

  test('a subject is one RDN with one CN, whatever the name holds', async () => {
    // Even a name that gets past validation cannot add attributes: the Name is built from the attribute.
    const name = userSubject(INJECTION);
    const json = name.toJSON();
    assert.equal(json.length, 1, 'one RDN');
    assert.deepEqual(Object.keys(json[0]!), ['CN']);
    assert.deepEqual(json[0]!.CN, [INJECTION]);
    const ca = await EmbeddedCa.inMemory();
    const key = await softKey();
    const cert = await ca.issue({
      serial: '4a01', notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000), subject: name,
      publicKey: new x509.PublicKey(await webcrypto.subtle.exportKey('spki', key.keys.publicKey)),
      template: { kind: 'smartcard-logon', userPrincipalName: 'eve@example.com' },
    });
    const rdns = cert.subjectName.toJSON();
    assert.equal(rdns.length, 1);
    assert.deepEqual(rdns[0]!.CN, [INJECTION]);
    assert.equal(rdns.some((r) => 'O' in r), false);
  });
});

for (const backend of BACKENDS) {
  describe(`refused input on ${backend.name}: NUL everywhere, DN injection, container names`, () => {
    let t: TestService;
    let op: string;
    before(async () => {
      t = await startTestService(backend);
      op = await login(t.client);
    });
    after(async () => t.close());

    test(`the token user ${INJECTION} is refused`, async () => {
      const res = await t.client.raw('POST', '/api/v1/tokens', { bearer: op, json: { user: INJECTION } });
      assert.equal(res.status, 400);
      assert.match(res.body.toString(), /user principal name/);
      assert.equal((await t.client.tokens(op)).length, 0);
    });

    test('NUL is a 400 everywhere, never the database error', async () => {
      const token = await makeToken(t.client, op, 'nul@example.com');
      const key = await softKey();
      const cases: Array<[string, Promise<{ status: number; body: Buffer }>]> = [
        ['login', t.client.raw('POST', '/api/v1/sessions', { json: { username: 'adm\u0000in', password: 'whatever it is' } })],
        ['token user', t.client.raw('POST', '/api/v1/tokens', { bearer: op, json: { user: 'admin@example.com\u0000.evil' } })],
        ['token profile', t.client.raw('POST', '/api/v1/tokens', { bearer: op, json: { user: 'a@example.com', profile: 'smartcard-logon\u0000' } })],
        ['?user=', t.client.raw('GET', '/api/v1/requests?user=a%00b', { bearer: op })],
        ['?actor=', t.client.raw('GET', '/api/v1/audit?actor=a%00b', { bearer: op })],
        ['container', t.client.raw('POST', '/api/v1/requests', { bearer: token, json: { csr: key.csrPem, cardId: randomCardId(), container: 'a\u0000b' } })],
        ['profile path', t.client.raw('PUT', '/api/v1/profiles/smartcard-logon%00', { bearer: op, json: { validityDays: 10 } })],
        ['reject reason', t.client.raw('POST', '/api/v1/requests/00000000-0000-0000-0000-000000000000/reject', { bearer: op, json: { reason: 'a\u0000' } })],
      ];
      for (const [what, pending] of cases) {
        const res = await pending;
        assert.equal(res.status, 400, `${what}: ${res.status} ${res.body.toString()}`);
        assert.doesNotMatch(res.body.toString(), /PostgreSQL|SQLite|invalid byte sequence/, what);
      }
      const audit = await t.client.audit(op, {});
      assert.ok(!JSON.stringify(audit).includes('\\u0000'), 'no NUL reached the audit log');
    });

    test('container names are printable and bounded', async () => {
      for (const container of ['a\nb', 'c\u001b[2J', 'a\u202eb', 'with space', 'x'.repeat(40), '']) {
        const token = await makeToken(t.client, op, 'box@example.com');
        const res = await t.client.raw('POST', '/api/v1/requests', { bearer: token, json: { csr: (await softKey()).csrPem, cardId: randomCardId(), container } });
        assert.equal(res.status, 400, JSON.stringify(container));
      }
      const token = await makeToken(t.client, op, 'box@example.com');
      const ok = await t.client.submit(token, { csr: (await softKey()).csrPem, cardId: randomCardId(), container: '{3f2504e0-4f89-11d3-9a0c-0305e82c3301}' });
      assert.equal(ok.status, 202);
    });

    test('unknown JSON keys are refused, and types are not coerced', async () => {
      const extra = await t.client.raw('POST', '/api/v1/tokens', { bearer: op, json: { user: 'k@example.com', admin: true } });
      assert.equal(extra.status, 400);
      assert.match(extra.body.toString(), /additional properties/);
      const token = await makeToken(t.client, op, 'k@example.com');
      const coerced = await t.client.raw('POST', '/api/v1/requests', { bearer: token, json: { csr: 12345 } });
      assert.equal(coerced.status, 400);
      assert.match(coerced.body.toString(), /must be string/);
      const query = await t.client.raw('GET', '/api/v1/requests?colour=red', { bearer: op });
      assert.equal(query.status, 400);
    });
  });
}
