import assert from 'node:assert/strict';
import { randomBytes, webcrypto } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { renewalBinding, renewalProof, type CardDetail, type CardTransition, type CardView, type CollectedRequest, type HttpResult, type RequestView } from '../../src/service/client.js';
import { x509 } from '../../src/x509.js';
import { BACKENDS, login, makeToken, OPERATOR, proofFor, randomCardId, softKey, startTestService, type SoftKey, type TestService } from './helpers.js';

/** The operator roles (issue 15): viewer < approver < admin; `admin` is the operator made at first start. */
type Who = 'anonymous' | 'user' | 'otherUser' | 'viewer' | 'approver' | 'admin';
const WHO: Who[] = ['anonymous', 'user', 'otherUser', 'viewer', 'approver', 'admin'];
const isOperator = (w: Who): boolean => w === 'viewer' || w === 'approver' || w === 'admin';

/**
 * Per route: the status each caller gets, and optionally a check of what it saw. The routes are
 * written out as raw paths on purpose: this table pins the wire contract itself, so a path that
 * moved in protocol.ts fails here instead of following along.
 */
interface Case {
  expect: Record<Who, number>;
  call(ctx: Ctx, who: Who): Promise<HttpResult>;
  check?(who: Who, res: HttpResult, ctx: Ctx): void;
}

interface Party {
  token: string;
  key: SoftKey;
  request: RequestView;
  cardId: string;
}

interface Ctx {
  t: TestService;
  op: string;
  alice: Party;
  bob: Party;
  bearer(who: Who): string | undefined;
  credentials(who: Who): { username: string; password: string };
  /** Alice's request, except for the approver: a request of its own, so each role decides a pending one. */
  requestFor(who: Who): Promise<RequestView>;
}

const json = (r: HttpResult) => JSON.parse(r.body.toString('utf8')) as unknown;

const CASES: Record<string, Case> = {
  health: { expect: { anonymous: 200, user: 200, otherUser: 200, viewer: 200, approver: 200, admin: 200 }, call: (c, w) => get(c, w, '/api/v1/health') },
  openapi: { expect: { anonymous: 200, user: 200, otherUser: 200, viewer: 200, approver: 200, admin: 200 }, call: (c, w) => get(c, w, '/api/v1/openapi.json') },
  login: {
    expect: { anonymous: 200, user: 200, otherUser: 200, viewer: 200, approver: 200, admin: 200 },
    call: (c, w) => c.t.client.raw('POST', '/api/v1/sessions', { ...auth(c, w), json: { username: 'admin', password: 'correct horse battery staple' } }),
  },
  logout: {
    expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 204, approver: 204, admin: 204 },
    call: async (c, w) => c.t.client.raw('DELETE', '/api/v1/sessions/current', isOperator(w) ? { bearer: await login(c.t.client, c.credentials(w)) } : auth(c, w)),
  },
  createOperator: {
    expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 403, approver: 403, admin: 201 },
    call: (c, w) => c.t.client.raw('POST', '/api/v1/operators', { ...auth(c, w), json: { username: `op-${w}`, password: 'another long password' } }),
  },
  listProfiles: { expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 200, approver: 200, admin: 200 }, call: (c, w) => get(c, w, '/api/v1/profiles') },
  updateProfile: {
    expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 403, approver: 403, admin: 200 },
    call: (c, w) => c.t.client.raw('PUT', '/api/v1/profiles/smartcard-logon', { ...auth(c, w), json: { validityDays: 200 } }),
  },
  createToken: { expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 403, approver: 201, admin: 201 }, call: (c, w) => c.t.client.raw('POST', '/api/v1/tokens', { ...auth(c, w), json: { user: 'eve@example.com' } }) },
  listTokens: { expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 200, approver: 200, admin: 200 }, call: (c, w) => get(c, w, '/api/v1/tokens') },
  revokeToken: {
    expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 403, approver: 200, admin: 200 },
    call: async (c, w) => c.t.client.raw('DELETE', `/api/v1/tokens/${(await c.t.client.createToken(c.op, { user: 'victor@example.com' })).id}`, auth(c, w)),
  },
  submitRequest: {
    // The user sends her request again (its state comes back); another user cannot claim it.
    expect: { anonymous: 401, user: 202, otherUser: 409, viewer: 403, approver: 403, admin: 403 },
    call: (c, w) => c.t.client.raw('POST', '/api/v1/requests', { ...auth(c, w), json: { csr: c.alice.key.csrPem } }),
    check: (w, r, c) => {
      if (w === 'user') assert.equal((json(r) as RequestView).id, c.alice.request.id);
    },
  },
  listRequests: {
    expect: { anonymous: 401, user: 200, otherUser: 200, viewer: 200, approver: 200, admin: 200 },
    call: (c, w) => get(c, w, '/api/v1/requests'),
    check: (w, r, c) => {
      const body = json(r);
      assert.ok(Array.isArray(body), JSON.stringify(body).slice(0, 300));
      const ids = (body as RequestView[]).map((v) => v.id);
      if (w === 'user') assert.deepEqual(ids, [c.alice.request.id]);
      if (w === 'otherUser') assert.deepEqual(ids, [c.bob.request.id]);
      if (isOperator(w)) assert.ok(ids.includes(c.alice.request.id) && ids.includes(c.bob.request.id));
    },
  },
  getRequest: {
    expect: { anonymous: 401, user: 202, otherUser: 404, viewer: 202, approver: 202, admin: 202 },
    call: (c, w) => get(c, w, `/api/v1/requests/${c.alice.request.id}`),
  },
  approveRequest: { expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 403, approver: 200, admin: 200 }, call: async (c, w) => c.t.client.raw('POST', `/api/v1/requests/${(await c.requestFor(w)).id}/approve`, auth(c, w)) },
  rejectRequest: {
    expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 403, approver: 200, admin: 200 },
    call: async (c, w) => c.t.client.raw('POST', `/api/v1/requests/${(await c.requestFor(w)).id}/reject`, { ...auth(c, w), json: { reason: 'test' } }),
  },
  revokeRequest: {
    expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 403, approver: 200, admin: 200 },
    call: async (c, w) => {
      if (w === 'anonymous') await c.t.client.approve(c.op, c.alice.request.id);
      const request = await c.requestFor(w);
      if (w === 'approver') await c.t.client.approve(c.op, request.id);
      return c.t.client.raw('POST', `/api/v1/requests/${request.id}/revoke`, { ...auth(c, w), json: { reason: 0 } });
    },
  },
  collectChallenge: {
    expect: { anonymous: 200, user: 200, otherUser: 200, viewer: 200, approver: 200, admin: 200 },
    call: (c, w) => c.t.client.raw('POST', '/api/v1/collect/challenge', { ...auth(c, w), json: { cardId: c.alice.cardId } }),
  },
  collect: {
    // Here "user" is whoever holds Alice's card key, "otherUser" Bob's key on Alice's card id.
    expect: { anonymous: 200, user: 200, otherUser: 200, viewer: 200, approver: 200, admin: 200 },
    call: async (c, w) => {
      await c.t.client.approve(c.op, c.alice.request.id).catch(() => undefined);
      const value = await c.t.client.challenge(c.alice.cardId);
      const key = w === 'user' ? c.alice.key : w === 'otherUser' ? c.bob.key : undefined;
      const proofs = key ? [await proofFor(key, value.nonce, c.alice.cardId, 'c1')] : [];
      return c.t.client.raw('POST', '/api/v1/collect', { ...auth(c, w), json: { cardId: c.alice.cardId, nonce: value.nonce, proofs } });
    },
    check: (w, r, c) => {
      const ids = (json(r) as CollectedRequest[]).map((v) => v.id);
      assert.deepEqual(ids, w === 'user' ? [c.alice.request.id] : []);
    },
  },
  reportDelivery: {
    expect: { anonymous: 401, user: 200, otherUser: 401, viewer: 401, approver: 401, admin: 401 },
    call: async (c, w) => {
      await c.t.client.approve(c.op, c.alice.request.id).catch(() => undefined);
      const party = w === 'otherUser' ? c.bob : c.alice;
      if (w === 'otherUser') await c.t.client.approve(c.op, c.bob.request.id).catch(() => undefined);
      const value = await c.t.client.challenge(party.cardId);
      const got = await c.t.client.collect({ cardId: party.cardId, nonce: value.nonce, proofs: [await proofFor(party.key, value.nonce, party.cardId, 'c1')] });
      // Anonymous and the operator have no ticket of their own; Bob has one, for his own request only.
      const ticket = w === 'user' || w === 'otherUser' ? got[0]!.deliveryTicket! : 'clt_guess';
      return c.t.client.raw('POST', `/api/v1/requests/${c.alice.request.id}/delivered`, { ...auth(c, w), json: { ticket } });
    },
  },
  renewCertificate: {
    // Issue 13. "user" proves Alice's current certificate with her key; "otherUser" signs for
    // Alice's certificate with Bob's key; anonymous and the operator bring no proof that verifies.
    expect: { anonymous: 401, user: 202, otherUser: 401, viewer: 401, approver: 401, admin: 401 },
    call: async (c, w) => {
      await c.t.client.approve(c.op, c.alice.request.id).catch(() => undefined);
      const { value: current } = await c.t.client.request(c.op, c.alice.request.id);
      const { nonce } = await c.t.client.challenge(c.alice.cardId);
      const next = await boundKey('alice@example.com', renewalBinding(nonce, c.alice.cardId, `c-${w}`));
      const signer = w === 'user' ? c.alice.key : w === 'otherUser' ? c.bob.key : undefined;
      const signature = signer ? await signWith(signer, renewalProof(current.serial!, next.csrDer)) : Buffer.from('not a signature').toString('base64');
      // The window is opened for this call only (the profile's whole validity), so the rules let it through.
      const profile = (await c.t.client.profiles(c.op)).find((p) => p.name === 'smartcard-logon')!;
      await c.t.client.updateProfile(c.op, 'smartcard-logon', { renewalWindowDays: profile.validityDays });
      try {
        return await c.t.client.raw('POST', '/api/v1/renewals', { ...auth(c, w), json: { serial: current.serial, csr: next.csrPem, signature } });
      } finally {
        await c.t.client.updateProfile(c.op, 'smartcard-logon', { renewalWindowDays: profile.renewalWindowDays });
      }
    },
    check: (w, r, c) => {
      const v = json(r) as RequestView;
      assert.equal(v.kind, 'reenroll');
      assert.equal(v.user, 'alice@example.com');
      assert.equal(v.cardId, c.alice.cardId);
    },
  },
  queryAudit: { expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 200, approver: 200, admin: 200 }, call: (c, w) => get(c, w, '/api/v1/audit') },
  listWorkstations: { expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 200, approver: 200, admin: 200 }, call: (c, w) => get(c, w, '/api/v1/workstations') },
  caCertificates: { expect: { anonymous: 200, user: 200, otherUser: 200, viewer: 200, approver: 200, admin: 200 }, call: (c, w) => get(c, w, '/api/v1/ca/certificates') },
  crl: { expect: { anonymous: 200, user: 200, otherUser: 200, viewer: 200, approver: 200, admin: 200 }, call: (c, w) => get(c, w, '/api/v1/crl') },
  estCacerts: { expect: { anonymous: 200, user: 200, otherUser: 200, viewer: 200, approver: 200, admin: 200 }, call: (c, w) => get(c, w, '/.well-known/est/cacerts') },
  estCsrattrs: { expect: { anonymous: 200, user: 200, otherUser: 200, viewer: 200, approver: 200, admin: 200 }, call: (c, w) => get(c, w, '/.well-known/est/csrattrs') },
  estSimpleenroll: {
    expect: { anonymous: 401, user: 202, otherUser: 409, viewer: 403, approver: 403, admin: 403 },
    call: (c, w) => c.t.client.raw('POST', '/.well-known/est/simpleenroll', { ...auth(c, w), body: Buffer.from(c.alice.key.csrDer).toString('base64'), contentType: 'application/pkcs10' }),
  },
  estLabelCacerts: { expect: { anonymous: 200, user: 200, otherUser: 200, viewer: 200, approver: 200, admin: 200 }, call: (c, w) => get(c, w, '/.well-known/est/smartcard-logon/cacerts') },
  estLabelCsrattrs: { expect: { anonymous: 200, user: 200, otherUser: 200, viewer: 200, approver: 200, admin: 200 }, call: (c, w) => get(c, w, '/.well-known/est/smartcard-logon/csrattrs') },
  estLabelSimpleenroll: {
    expect: { anonymous: 401, user: 202, otherUser: 409, viewer: 403, approver: 403, admin: 403 },
    call: (c, w) => c.t.client.raw('POST', '/.well-known/est/smartcard-logon/simpleenroll', { ...auth(c, w), body: Buffer.from(c.alice.key.csrDer).toString('base64'), contentType: 'application/pkcs10' }),
  },
  estLabelSimplereenroll: {
    expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 403, approver: 403, admin: 403 },
    call: (c, w) => c.t.client.raw('POST', '/.well-known/est/smartcard-logon/simplereenroll', { ...auth(c, w), body: Buffer.from(c.alice.key.csrDer).toString('base64'), contentType: 'application/pkcs10' }),
  },
  estSimplereenroll: {
    // Tokens and sessions are not certificates: only a TLS client certificate renews (see est.test.ts).
    expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 403, approver: 403, admin: 403 },
    call: (c, w) => c.t.client.raw('POST', '/.well-known/est/simplereenroll', { ...auth(c, w), body: Buffer.from(c.alice.key.csrDer).toString('base64'), contentType: 'application/pkcs10' }),
  },
  // Issue 14. "user" uses a fresh (unspent) token of Alice where a token is the credential.
  cardAdminKey: {
    // Only the card's own user, with an unspent token; Bob's fresh token is refused for Alice's card.
    expect: { anonymous: 401, user: 200, otherUser: 403, viewer: 403, approver: 403, admin: 403 },
    call: async (c, w) => c.t.client.raw('POST', '/api/v1/cards/admin-key', { ...(await freshAuth(c, w)), json: { cardId: c.alice.cardId } }),
    check: (w, r) => {
      if (w === 'user') assert.match((json(r) as { newKey: string }).newKey, /^[0-9A-F]{48}$/);
    },
  },
  confirmCardAdminKey: {
    expect: { anonymous: 401, user: 200, otherUser: 404, viewer: 403, approver: 403, admin: 403 },
    call: async (c, w) => {
      const a = await freshAuth(c, w);
      if (w === 'user') await c.t.client.raw('POST', '/api/v1/cards/admin-key', { ...a, json: { cardId: c.alice.cardId } });
      return c.t.client.raw('POST', '/api/v1/cards/admin-key/confirm', { ...a, json: { cardId: c.alice.cardId, keyVersion: 1 } });
    },
  },
  unblockResponse: {
    expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 403, approver: 200, admin: 200 },
    call: async (c, w) => {
      if (isOperator(w)) await activateCard(c);
      return c.t.client.raw('POST', '/api/v1/cards/unblock-response', { ...auth(c, w), json: { cardId: c.alice.cardId, challenge: randomChallenge() } });
    },
    check: (w, r) => assert.match((json(r) as { response: string }).response, /^[0-9A-F]{16}$/),
  },
  createUnblockTicket: {
    expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 403, approver: 201, admin: 201 },
    call: async (c, w) => {
      if (isOperator(w)) await activateCard(c);
      return c.t.client.raw('POST', '/api/v1/cards/unblock-tickets', { ...auth(c, w), json: { cardId: c.alice.cardId } });
    },
  },
  unblockResponseWithTicket: {
    // "user" holds the ticket made for Alice's card; "otherUser" one made for Bob's card; the others none.
    expect: { anonymous: 401, user: 200, otherUser: 401, viewer: 401, approver: 401, admin: 401 },
    call: async (c, w) => {
      await activateCard(c);
      let ticket = 'clu_guess';
      if (w === 'user' || w === 'otherUser') {
        const party = w === 'user' ? c.alice : c.bob;
        if (w === 'otherUser') await activateCard(c, c.bob);
        ticket = (await c.t.client.createUnblockTicket(c.op, party.cardId)).ticket;
      }
      return c.t.client.raw('POST', '/api/v1/cards/unblock-response/ticket', { ...auth(c, w), json: { cardId: c.alice.cardId, challenge: randomChallenge(), ticket } });
    },
  },
  retireCard: {
    expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 403, approver: 403, admin: 200 },
    call: async (c, w) => {
      if (isOperator(w)) await activateCard(c);
      return c.t.client.raw('POST', '/api/v1/cards/retire', { ...auth(c, w), json: { cardId: c.alice.cardId, challenge: randomChallenge() } });
    },
    check: (w, r) => assert.equal((json(r) as { state: string }).state, 'retired'),
  },
  // Issue 13: revocation for relying parties, anonymous whatever credentials come along.
  crlStable: {
    expect: { anonymous: 200, user: 200, otherUser: 200, viewer: 200, approver: 200, admin: 200 }, call: (c, w) => get(c, w, '/crl'),
    check: (_w, r) => assert.equal(r.headers['content-type'], 'application/pkix-crl'),
  },
  caCertificateDer: {
    expect: { anonymous: 200, user: 200, otherUser: 200, viewer: 200, approver: 200, admin: 200 }, call: (c, w) => get(c, w, '/ca.crt'),
    check: (_w, r) => assert.equal(r.headers['content-type'], 'application/pkix-cert'),
  },
  ocspPost: {
    expect: { anonymous: 200, user: 200, otherUser: 200, viewer: 200, approver: 200, admin: 200 },
    call: (c, w) => c.t.client.raw('POST', '/ocsp', { ...auth(c, w), body: Buffer.from('not a request'), contentType: 'application/ocsp-request' }),
    // An OCSPResponse with status malformedRequest: SEQUENCE { ENUMERATED 1 }.
    check: (_w, r) => assert.equal(r.body.toString('hex'), '30030a0101'),
  },
  ocspGet: {
    expect: { anonymous: 200, user: 200, otherUser: 200, viewer: 200, approver: 200, admin: 200 }, call: (c, w) => get(c, w, '/ocsp/MAA='),
    check: (_w, r) => assert.equal(r.headers['content-type'], 'application/ocsp-response'),
  },
  rotateAdminMasterKey: { expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 403, approver: 403, admin: 200 }, call: (c, w) => c.t.client.raw('POST', '/api/v1/admin-keys/rotate', auth(c, w)) },
  // Issue 13: cards as records. Alice's and Bob's cards were made by their enrollments.
  listCards: {
    expect: { anonymous: 401, user: 200, otherUser: 200, viewer: 200, approver: 200, admin: 200 },
    call: (c, w) => get(c, w, '/api/v1/cards?limit=10000'),
    check: (w, r, c) => {
      // Every test's parties are alice@ and bob@: a user sees all of their own cards, none of the other's.
      const cards = json(r) as CardView[];
      const ids = cards.map((v) => v.cardId);
      const users = new Set(cards.map((v) => v.user));
      if (w === 'user') assert.ok(ids.includes(c.alice.cardId) && !ids.includes(c.bob.cardId) && users.size === 1 && users.has('alice@example.com'), JSON.stringify([...users]));
      if (w === 'otherUser') assert.ok(ids.includes(c.bob.cardId) && !ids.includes(c.alice.cardId) && users.size === 1 && users.has('bob@example.com'), JSON.stringify([...users]));
      if (w === 'viewer' || w === 'approver' || w === 'admin') assert.ok(ids.includes(c.alice.cardId) && ids.includes(c.bob.cardId));
    },
  },
  getCard: {
    // Bob gets "not found" for Alice's card: its existence does not leak.
    expect: { anonymous: 401, user: 200, otherUser: 404, viewer: 200, approver: 200, admin: 200 },
    call: (c, w) => get(c, w, `/api/v1/cards/${c.alice.cardId}`),
    check: (w, r, c) => assert.deepEqual((json(r) as CardDetail).credentials.map((x) => x.requestId), [c.alice.request.id]),
  },
  transitionCard: {
    // Only approvers and admins move cards; the others' attempts leave Alice's card active (the admin's call finds it so;
    // the approver moves a card of its own, Carol's).
    expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 403, approver: 200, admin: 200 },
    call: async (c, w) => {
      const cardId = w === 'approver' ? (await c.requestFor(w)).cardId! : c.alice.cardId;
      return c.t.client.raw('POST', `/api/v1/cards/${cardId}/transitions`, { ...auth(c, w), json: { action: 'suspend' } });
    },
    check: (w, r) => assert.deepEqual([(json(r) as CardTransition).from, (json(r) as CardTransition).to], ['active', 'suspended']),
  },
  expiringCertificates: { expect: { anonymous: 401, user: 403, otherUser: 403, viewer: 200, approver: 200, admin: 200 }, call: (c, w) => get(c, w, '/api/v1/certificates/expiring?days=30') },
};

/** A new key's request carrying a card binding, as the agent makes it for a renewal. */
async function boundKey(user: string, binding: string): Promise<SoftKey> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${user}`, keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' }, attributes: [new x509.ChallengePasswordAttribute(binding)] });
  return { keys, csrPem: csr.toString('pem'), csrDer: new Uint8Array(csr.rawData) };
}

async function signWith(key: SoftKey, data: Uint8Array): Promise<string> {
  return Buffer.from(await webcrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key.keys.privateKey, data)).toString('base64');
}

function randomChallenge(): string {
  return randomBytes(8).toString('hex');
}

/** A fresh, unspent token of the caller's user (Alice or Bob); the operator's session and anonymous as they are. */
async function freshAuth(c: Ctx, w: Who): Promise<{ bearer?: string }> {
  if (w === 'user') return { bearer: await makeToken(c.t.client, c.op, 'alice@example.com') };
  if (w === 'otherUser') return { bearer: await makeToken(c.t.client, c.op, 'bob@example.com') };
  return auth(c, w);
}

/** Enrolls the party's card key with the service (what the agent does), so the card is active. */
async function activateCard(c: Ctx, party: Party = c.alice): Promise<void> {
  const user = party === c.alice ? 'alice@example.com' : 'bob@example.com';
  const token = await makeToken(c.t.client, c.op, user);
  const key = await c.t.client.cardAdminKey(token, party.cardId);
  if (!key.upToDate) await c.t.client.confirmCardAdminKey(token, party.cardId, key.keyVersion);
}

function auth(c: Ctx, w: Who): { bearer?: string } {
  const b = c.bearer(w);
  return b === undefined ? {} : { bearer: b };
}

function get(c: Ctx, w: Who, path: string): Promise<HttpResult> {
  return c.t.client.raw('GET', path, auth(c, w));
}

describe('authorization of every route: anonymous, user, other user, and each operator role', () => {
  let t: TestService;
  let op: string;
  const sessions: Partial<Record<Who, string>> = {};
  const credentials = (w: Who): { username: string; password: string } => (w === 'admin' ? OPERATOR : { username: `role-${w}`, password: 'a long enough role password' });
  before(async () => {
    t = await startTestService(BACKENDS[0]!);
    op = await login(t.client);
    sessions.admin = op;
    for (const role of ['viewer', 'approver'] as const) {
      const made = await t.client.createOperator(op, { ...credentials(role), role });
      assert.equal(made.role, role);
      sessions[role] = await login(t.client, credentials(role));
    }
  });
  after(async () => t.close());

  async function party(user: string): Promise<Party> {
    const token = await makeToken(t.client, op, user);
    const key = await softKey();
    const cardId = randomCardId();
    const { value: request } = await t.client.submit(token, { csr: key.csrPem, cardId, container: 'c1' });
    return { token, key, request, cardId };
  }

  test('the table covers every operation the OpenAPI document lists', () => {
    const doc = t.svc.openapi as { paths: Record<string, Record<string, { operationId: string }>> };
    const ops = Object.values(doc.paths).flatMap((methods) => Object.values(methods).map((m) => m.operationId));
    assert.deepEqual([...ops].sort(), Object.keys(CASES).sort());
  });

  for (const [operationId, c] of Object.entries(CASES)) {
    test(operationId, async () => {
      const ctx: Ctx = {
        t, op,
        alice: await party('alice@example.com'),
        bob: await party('bob@example.com'),
        bearer: (w) => (w === 'user' ? ctx.alice.token : w === 'otherUser' ? ctx.bob.token : sessions[w]),
        credentials,
        requestFor: async (w) => (w === 'approver' ? (await party('carol@example.com')).request : ctx.alice.request),
      };
      const got: Partial<Record<Who, number>> = {};
      for (const w of WHO) {
        const res = await c.call(ctx, w);
        got[w] = res.status;
        if (res.status === c.expect[w] && res.status < 300) c.check?.(w, res, ctx);
      }
      assert.deepEqual(got, c.expect);
    });
  }
});
