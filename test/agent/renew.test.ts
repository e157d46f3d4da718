import assert from 'node:assert/strict';
import { verify } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Agent, type AgentLogEntry } from '../../src/agent/daemon.js';
import { enroll } from '../../src/agent/enroll.js';
import { renewPass, type RenewPassOptions } from '../../src/agent/renew.js';
import { unlinkCertificates } from '../../src/agent/store-link.js';
import { certificatesOnCard, MemoryCardCache, MinidriverCard, type CardCache } from '../../src/card/index.js';
import type { GidsCard } from '../../src/gids/emulator/index.js';
import { ServiceClient } from '../../src/service/client.js';
import { ManualClock } from '../../src/service/index.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import type { PcscReaderEvent } from '../../src/transport/pcsc.js';
import { RecordingTransport } from '../../src/transport/recorder.js';
import { ACQUIRE } from '../../src/windows/constants.js';
import { openCertStoreHost } from '../../src/windows/hosts.js';
import { linkView } from '../../src/windows/link.js';
import { TEST_PIN, initialisedCard, tempDir } from '../helpers/card.js';
import { BACKENDS, login, makeToken, pool, startTestService, type TestService } from '../service/helpers.js';

const DAY = 86_400_000;
const AUTO = 'smartcard-logon-auto';

/** A pass with renewal on `card`, linking into (and unlinking from) the model store in `storeDir` when given. */
function passOptions(clock: ManualClock, card: MinidriverCard, storeDir?: string): RenewPassOptions {
  const store = () => openCertStoreHost(`model:${storeDir}`, card.minidriver(), () => TEST_PIN);
  return {
    pin: TEST_PIN,
    host: 'ws-test',
    now: () => clock.now(),
    renew: {},
    ...(storeDir
      ? {
          link: async (view) => {
            const s = await store();
            try {
              const r = await linkView(view, s.host, { pin: TEST_PIN });
              return { linked: r.linked.map((l) => ({ container: l.container, thumbprint: l.thumbprint.toUpperCase() })) };
            } finally {
              await s.close();
            }
          },
          unlink: async (thumbprints) => {
            const s = await store();
            try {
              return await unlinkCertificates(s.host, thumbprints);
            } finally {
              await s.close();
            }
          },
        }
      : {}),
  };
}

/** Each credential on the card signs on the card, and the signature verifies with its certificate's key. */
async function workingCredentials(card: MinidriverCard): Promise<string[]> {
  await card.verifyPin(TEST_PIN);
  const ok: string[] = [];
  for (const c of await certificatesOnCard(card)) {
    const data = Buffer.from(`proof ${c.container.name}`);
    const sig = await card.sign(c.container.name, data, 'sha256');
    if (verify('sha256', data, c.cert.publicKey, sig)) ok.push(c.thumbprint);
  }
  return ok;
}

async function open(emulator: GidsCard, cache: CardCache = new MemoryCardCache()): Promise<{ card: MinidriverCard; transport: RecordingTransport }> {
  emulator.reset();
  const transport = new RecordingTransport(new MemoryTransport(emulator));
  return { card: await MinidriverCard.open(transport, { cache }), transport };
}

for (const backend of BACKENDS.slice(0, 1)) describe(`renewal by the agent, service on ${backend.name}`, () => {
  let t: TestService;
  let op: string;
  let clock: ManualClock;
  before(async () => {
    clock = new ManualClock();
    t = await startTestService(backend, { clock });
    op = await login(t.client);
  });
  after(async () => t.close());

  /** Days later: the operator logs in again (sessions last hours). */
  async function later(days: number): Promise<void> {
    clock.advanceDays(days);
    op = await login(t.client);
  }

  let n = 0;
  /** A card with one issued, installed certificate of a new user, the clock back at its issuance (340 days ago). */
  async function enrolledCard(profile = AUTO) {
    clock.advance(Date.now() - 340 * DAY - clock.now().getTime());
    op = await login(t.client);
    return enrolledCardToday(profile);
  }

  /** The same, on the service's today. */
  async function enrolledCardToday(profile = AUTO) {
    const user = `renew${++n}@example.com`;
    const token = await makeToken(t.client, op, user, profile);
    const c = await initialisedCard();
    const e = await enroll(c.card, t.client, { token, pin: TEST_PIN });
    if (profile !== AUTO) await t.client.approve(op, e.requestId);
    const first = await renewPass(c.card, t.client, passOptions(clock, c.card));
    assert.deepEqual(first.items.map((i) => i.action), ['installed']);
    assert.deepEqual(first.renewals, [], 'nothing is due on the day of issuance');
    return { ...c, user, requestId: e.requestId, container: e.container };
  }

  test('past the renewal window: new key, new container, new certificate linked as the default, the old one gone from card and store; card check clean; the store signs with the new one', async () => {
    const c = await enrolledCard();
    const storeDir = tempDir();
    const o = passOptions(clock, c.card, storeDir);
    // Day 0: linked, 365 days left, nothing to renew.
    const day0 = await renewPass(c.card, t.client, o);
    assert.equal(day0.certificates?.length, 1);
    assert.ok(day0.certificates![0]!.daysLeft >= 364 && day0.certificates![0]!.daysLeft <= 365, `days left ${day0.certificates![0]!.daysLeft}`);
    const [old] = await certificatesOnCard(c.card);
    assert.ok(old);
    {
      const s = await openCertStoreHost(`model:${storeDir}`, c.card.minidriver(), () => TEST_PIN);
      const my = await s.host.openCurrentUserMy();
      assert.ok(await my.find(old.thumbprint), 'the first certificate is linked');
      await my.close();
      await s.close();
    }

    await later(340); // 25 days left: inside the 30-day window
    const report = await renewPass(c.card, t.client, o);
    assert.equal(report.renewals?.length, 1, JSON.stringify(report.renewals));
    const r = report.renewals![0]!;
    assert.equal(r.action, 'issued');
    assert.equal(r.container, c.container);
    assert.match(r.newContainer!, /^lr-[0-9a-f-]{36}$/);
    assert.notEqual(r.newContainer, c.container);
    assert.deepEqual(report.removed, [{ container: c.container, thumbprint: old.thumbprint, unlinked: true }]);

    // The card: one container, the new one, default, with a new key and a certificate that ends a year on.
    const containers = await c.card.containers();
    assert.deepEqual(containers.map((x) => [x.name, x.isDefault]), [[r.newContainer, true]]);
    const [fresh] = await certificatesOnCard(c.card);
    assert.ok(fresh);
    assert.notEqual(fresh.thumbprint, old.thumbprint);
    assert.notEqual(fresh.cert.publicKey.export({ type: 'spki', format: 'der' }).toString('hex'), old.cert.publicKey.export({ type: 'spki', format: 'der' }).toString('hex'), 'a new key');
    assert.equal(fresh.cert.subject, old.cert.subject);
    assert.ok(report.certificates![0]!.daysLeft >= 364, 'days left of the new certificate');
    assert.deepEqual((await c.card.check()).findings, []);

    // The service: the renewal delivered, the old certificate superseded (revoked) by the delivery.
    const renewal = (await t.client.request(op, r.requestId!)).value;
    assert.equal(renewal.kind, 'reenroll');
    assert.equal(renewal.state, 'delivered');
    assert.equal(renewal.container, r.newContainer);
    assert.equal((await t.client.request(op, c.requestId)).value.state, 'revoked');

    // The model store: the old entry is gone; the new one acquires its key and signs with the card.
    const s = await openCertStoreHost(`model:${storeDir}`, c.card.minidriver(), () => TEST_PIN);
    try {
      const my = await s.host.openCurrentUserMy();
      assert.equal(await my.find(old.thumbprint), undefined, 'the old certificate is unlinked');
      const ctx = await my.find(fresh.thumbprint);
      assert.ok(ctx, 'the new certificate is linked');
      const key = await s.host.acquirePrivateKey(ctx, ACQUIRE.SILENT | ACQUIRE.COMPARE_KEY);
      await key.setPin(TEST_PIN);
      const hash = Buffer.from(await crypto.subtle.digest('SHA-256', Buffer.from('logon')));
      const sig = await key.signHash('SHA256', hash);
      assert.ok(verify('sha256', Buffer.from('logon'), fresh.cert.publicKey, sig));
      await key.release();
      await my.close();
    } finally {
      await s.close();
    }

    // Nothing more to do: the next pass renews nothing and removes nothing.
    const again = await renewPass(c.card, t.client, o);
    assert.deepEqual(again.renewals, []);
    assert.deepEqual(again.removed, []);
  });

  test('agent run: the pass on insertion renews; its record and the status carry each certificate with its days left', async () => {
    const c = await enrolledCard();
    await later(340);
    const reader = { name: 'Test Reader 0', card: 'present' as const, inUse: false, exclusive: false, atr: undefined };
    const logs: AgentLogEntry[] = [];
    let send: (e: PcscReaderEvent) => void = () => {};
    const agent = new Agent({
      watchReaders: (o) =>
        new Promise<void>((resolve) => {
          send = o.onEvent;
          o.onEvent({ type: 'service-up' });
          o.onEvent({ type: 'reader-attached', reader: { ...reader, card: 'empty' } });
          o.signal.addEventListener('abort', () => resolve(), { once: true });
        }),
      openCard: async () => {
        c.emulator.reset();
        const transport = new MemoryTransport(c.emulator);
        return { card: await MinidriverCard.open(transport), close: () => transport.close() };
      },
      client: t.client,
      pin: TEST_PIN,
      host: 'ws-test',
      version: 'test',
      log: (e) => logs.push(e),
    });
    const ac = new AbortController();
    const done = agent.run(ac.signal);
    send({ type: 'card-inserted', reader });
    const deadline = Date.now() + 60_000;
    while (!logs.some((e) => e.event === 'pass') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    await done;
    const pass = logs.find((e): e is Extract<AgentLogEntry, { event: 'pass' }> => e.event === 'pass')?.pass;
    assert.ok(pass?.ok, JSON.stringify(pass?.error));
    assert.equal(pass.report?.renewals?.[0]?.action, 'issued');
    assert.deepEqual(pass.report?.removed?.map((r) => r.container), [c.container]);
    const newContainer = pass.report!.renewals![0]!.newContainer!;
    assert.deepEqual(pass.report?.certificates?.map((x) => x.container), [newContainer]);
    assert.ok(pass.report!.certificates![0]!.daysLeft >= 364);
    const status = agent.status().cards[0]!;
    assert.deepEqual(status.certificates.map((x) => [x.container, x.daysLeft >= 364]), [[newContainer, true]]);
    assert.deepEqual((await (await open(c.emulator)).card.containers()).map((x) => x.name), [newContainer]);
  });

  test('operator approval: the first pass requests, the key waits in its container; after approval the next pass installs, switches and removes the old one', async () => {
    const c = await enrolledCard('smartcard-logon');
    await later(340);
    const o = passOptions(clock, c.card);
    const first = await renewPass(c.card, t.client, o);
    assert.equal(first.renewals?.[0]?.action, 'requested');
    const newContainer = first.renewals![0]!.newContainer!;
    assert.deepEqual((await c.card.containers()).map((x) => x.name).sort(), [c.container, newContainer].sort());
    assert.ok(first.items.some((i) => i.container === newContainer && i.action === 'waiting'), 'the waiting renewal is found again by its key');
    assert.notEqual(first.retryAfter, null);
    // A pass while it waits starts nothing new.
    const waiting = await renewPass(c.card, t.client, o);
    assert.deepEqual(waiting.renewals?.map((x) => [x.action, x.newContainer]), [['waiting', newContainer]]);
    assert.equal((await c.card.containers()).length, 2);

    await t.client.approve(op, first.renewals![0]!.requestId!);
    const done = await renewPass(c.card, t.client, o);
    assert.deepEqual((await c.card.containers()).map((x) => [x.name, x.isDefault]), [[newContainer, true]]);
    assert.equal(done.removed?.[0]?.container, c.container);
    assert.deepEqual((await c.card.check()).findings, []);
  });

  test("outside the profile's window the service refuses in words, and the new key is deleted again", async () => {
    const c = await enrolledCard();
    await later(300); // 65 days left: the agent asks from 70 days, the profile's window is 30
    const report = await renewPass(c.card, t.client, { ...passOptions(clock, c.card), renew: { windowDays: 70 } });
    assert.equal(report.renewals?.[0]?.action, 'refused');
    assert.match(report.renewals![0]!.reason!, /can be renewed from .* 30 days before it expires/);
    assert.deepEqual((await c.card.containers()).map((x) => x.name), [c.container]);
    assert.deepEqual((await c.card.check()).findings, []);
  });

  test('declined at the prompt: nothing is generated or deleted', async () => {
    const c = await enrolledCard();
    await later(340);
    let asked: string[] = [];
    const report = await renewPass(c.card, t.client, { ...passOptions(clock, c.card), renew: { confirm: async (plan) => ((asked = plan), false) } });
    assert.match(asked.join('\n'), /renew certificate/);
    assert.deepEqual(report.renewals, []);
    assert.deepEqual((await c.card.containers()).map((x) => x.name), [c.container]);
  });

  test('the card pulled after every APDU of a renewal: one of old and new always signs and verifies; the next renew completes', async (tc) => {
    // One card per APDU index, all enrolled on the same day and renewed together 340 days later.
    const probe = await enrolledCard();
    await later(340);
    const counted = await open(probe.emulator);
    await renewPass(counted.card, t.client, passOptions(clock, counted.card));
    const total = counted.transport.count;
    assert.ok(total > 20, `a renewal takes ${total} APDUs`);
    tc.diagnostic(`a renewal pass (collect, new key, request, collect, install, switch, remove) takes ${total} APDUs: the card is pulled after each`);
    assert.equal((await counted.card.containers()).length, 1);

    clock.advance(Date.now() - 340 * DAY - clock.now().getTime());
    const indices = Array.from({ length: total }, (_, k) => k);
    const cards = await pool(indices, 4, () => enrolledCardToday());
    await later(340);
    await pool(indices, 8, async (k) => {
      const c = cards[k]!;
      // A client of its own: a connection shared with the other cards may sit idle past the
      // service's keep-alive while this card works, and be reset under the next request.
      const client = new ServiceClient({ server: t.svc.url, ca: t.svc.caCertPem });
      try {
      const [old] = await certificatesOnCard(c.card);
      const cache = new MemoryCardCache();
      const s = await open(c.emulator, cache);
      s.transport.failAfter(k);
      // Users' names differ in length from card to card, so a pass may take a few APDUs less than the probe's.
      const cut = await renewPass(s.card, client, passOptions(clock, s.card)).then(
        () => false,
        (err: { code?: string }) => {
          assert.equal(err.code, 'CARD_REMOVED', `k=${k}: ${String(err)}`);
          return true;
        },
      );
      assert.ok(cut || k >= total - 8, `k=${k}: the pass ended before the card was pulled (it takes ${total})`);

      // Re-inserted: at least one of old and new works.
      const after = await open(c.emulator, cache);
      const working = await workingCredentials(after.card);
      assert.ok(working.length >= 1, `k=${k}: no working credential (old ${old!.thumbprint})`);

      // The next renew finishes: exactly one container, the renewed certificate, default, card clean.
      const next = await open(c.emulator, cache);
      const report = await renewPass(next.card, client, passOptions(clock, next.card)).catch((err: Error) => {
        throw new Error(`k=${k}: the next renew failed: ${err.message}`, { cause: err });
      });
      assert.deepEqual((await next.card.check()).findings, [], `k=${k}`);
      const certs = await certificatesOnCard(next.card);
      assert.equal(certs.length, 1, `k=${k}: ${JSON.stringify(report)}`);
      assert.equal((await next.card.containers()).length, 1, `k=${k}: one container`);
      assert.notEqual(certs[0]!.thumbprint, old!.thumbprint, `k=${k}: renewed`);
      assert.ok(certs[0]!.container.isDefault, `k=${k}: default`);
      assert.deepEqual(await workingCredentials(next.card), [certs[0]!.thumbprint], `k=${k}`);
      } finally {
        client.close();
      }
    });
  });
});
