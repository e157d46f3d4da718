import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { enroll } from '../../src/agent/enroll.js';
import { purgeOnCard } from '../../src/agent/purge.js';
import { renewPass } from '../../src/agent/renew.js';
import { certificatesOnCard, MinidriverCard } from '../../src/card/index.js';
import { ManualClock } from '../../src/service/index.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { TEST_PIN, initialisedCard } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';
import { BACKENDS, login, makeToken, startTestService, type TestService } from '../service/helpers.js';

const DAY = 86_400_000;

describe('card purge: expired, revoked and superseded certificates go, valid ones stay, the default moves to the newest', () => {
  let t: TestService;
  let clock: ManualClock;
  const today = Date.now();
  before(async () => {
    clock = new ManualClock(new Date(today));
    t = await startTestService(BACKENDS[0]!, { clock });
  });
  after(async () => t.close());

  /**
   * One card of one user (a card belongs to one user): expired (400 days old), revoked (100),
   * superseded (50), valid (10; the newest), and valid C: a certificate another CA issued for a key
   * on the card, which nothing of this service supersedes.
   */
  async function mixedCard() {
    const c = await initialisedCard();
    const made: Record<string, { container: string; requestId: string }> = {};
    const at = async (daysAgo: number, user: string, label: string) => {
      clock.advance(today - daysAgo * DAY - clock.now().getTime());
      const op = await login(t.client);
      const token = await makeToken(t.client, op, user, 'smartcard-logon-auto');
      const e = await enroll(c.card, t.client, { token, pin: TEST_PIN });
      await renewPass(c.card, t.client, { pin: TEST_PIN, now: () => clock.now() });
      made[label] = { container: e.container, requestId: e.requestId };
      return op;
    };
    await at(400, 'a@example.com', 'expired');
    const op = await at(100, 'a@example.com', 'revoked');
    await t.client.revoke(op, made.revoked!.requestId, 1);
    await at(50, 'a@example.com', 'superseded');
    await at(10, 'a@example.com', 'validB');
    clock.advance(today - clock.now().getTime());
    await c.card.verifyPin(TEST_PIN);
    const foreign = await c.card.createContainer('foreign-ca');
    await c.card.installCertificate(await issueOurs(foreign.publicKey, 0, 'CN=a@example.com'));
    made.validC = { container: foreign.name, requestId: '' };
    return { ...c, made };
  }

  test('the dry run lists exactly the three with their reasons and leaves the image byte-identical; --yes --keys keeps exactly the valid ones, the default on the newest', async () => {
    const c = await mixedCard();
    const { made } = c;
    const all = await certificatesOnCard(c.card);
    assert.equal(all.length, 5);
    // The first enrolled container is the default; the newest is not.
    assert.equal((await c.card.containers()).find((x) => x.isDefault)?.name, made.expired!.container);

    const image = JSON.stringify(c.emulator.toImage());
    const fresh = async () => {
      c.emulator.reset();
      return MinidriverCard.open(new MemoryTransport(c.emulator));
    };
    const options = { expired: true, revoked: true, superseded: true, keys: true, now: clock.now(), pin: TEST_PIN, client: t.client };
    const dry = await purgeOnCard(await fresh(), { ...options, apply: false });
    assert.equal(dry.applied, false);
    assert.deepEqual(
      dry.plan.remove.map((r) => [r.container, r.reasons]).sort(),
      [
        [made.expired!.container, ['expired', 'superseded']],
        [made.revoked!.container, ['revoked', 'superseded']],
        [made.superseded!.container, ['superseded']],
      ].sort(),
    );
    assert.deepEqual(dry.plan.keep.map((k) => k.container).sort(), [made.validB!.container, made.validC!.container].sort());
    assert.equal(dry.plan.newDefault, made.validB!.container);
    assert.equal(JSON.stringify(c.emulator.toImage()), image, 'the dry run wrote nothing');

    const done = await purgeOnCard(await fresh(), { ...options, apply: true });
    assert.equal(done.applied, true);
    const card = await fresh();
    const left = await card.containers();
    assert.deepEqual(left.map((x) => x.name).sort(), [made.validB!.container, made.validC!.container].sort(), 'containers and keys of the others are gone');
    assert.equal(left.find((x) => x.isDefault)?.name, made.validB!.container);
    assert.equal(done.result?.defaultContainer, made.validB!.container);
    assert.deepEqual((await card.check()).findings, []);
    // Nothing more to do.
    const again = await purgeOnCard(card, { ...options, apply: false });
    assert.deepEqual(again.plan.remove, []);
    assert.equal(again.plan.newDefault, null);
  });

  test('without --keys only the certificates go; each criterion alone picks only its own', async () => {
    const c = await mixedCard();
    const { made } = c;
    const only = async (k: 'expired' | 'revoked' | 'superseded') =>
      (await purgeOnCard(c.card, { expired: k === 'expired', revoked: k === 'revoked', superseded: k === 'superseded', keys: false, apply: false, now: clock.now(), pin: TEST_PIN, client: t.client })).plan.remove.map((r) => r.container).sort();
    assert.deepEqual(await only('expired'), [made.expired!.container]);
    assert.deepEqual(await only('revoked'), [made.revoked!.container]);
    assert.deepEqual(await only('superseded'), [made.expired!.container, made.revoked!.container, made.superseded!.container].sort());
    await purgeOnCard(c.card, { expired: true, revoked: false, superseded: false, keys: false, apply: true, now: clock.now(), pin: TEST_PIN });
    const containers = await c.card.containers();
    assert.equal(containers.length, 5, 'the containers and keys stay');
    assert.equal(containers.find((x) => x.name === made.expired!.container)?.certificateFile, undefined);
    assert.equal((await certificatesOnCard(c.card)).length, 4);
  });
});
