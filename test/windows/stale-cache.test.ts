// The stale cache made causal: a certificate replaced on the card without moving cardcf is served
// stale by the model exactly where Microsoft's cache rule implies (an item is valid while cardid and
// its freshness counter match). With propagation running and the store entry right (link), the
// seed's tool still gets the old certificate and propagation puts the old one back; `card check
// --repair` (which moves the counter) is what fixes it, `link` alone is not.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { MS_SCARD_PROV } from '../../src/windows/constants.js';
import { diagnose } from '../../src/windows/doctor.js';
import { linkCard } from '../../src/windows/link.js';
import { addCardCertToStore } from '../../src/windows/model/seed-tool.js';
import { MemoryCardCache, MinidriverCard } from '../../src/card/index.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { seedLoad } from '../fixtures/seed-loader.js';
import { createPublicKey } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cardConnector, openTransport } from '../../src/cli/target.js';
import { ManualScheduler } from '../../src/windows/model/clock.js';
import { WindowsMachine } from '../../src/windows/model/machine.js';
import { TEST_ADMIN_KEY, tempDir } from '../helpers/card.js';
import { cli } from '../helpers/cli.js';
import { TEST_PIN } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';
import { bench, CONTAINER, type Bench } from './fixtures/machine.js';

const PROPAGATION_MS = 30_000;

describe('a certificate replaced without moving cardcf', () => {
  const benches: Bench[] = [];
  after(() => benches.forEach((b) => b.cleanup()));

  /** Certificate A installed properly and seen by Windows; then B (same key, a renewal) written the seed's way. */
  async function renewedTheSeedsWay() {
    const b = await bench({ propagation: { delayMs: PROPAGATION_MS }, bits: 1024 });
    benches.push(b);
    const a = await issueOurs(b.publicKey, 0, 'CN=First issue');
    await b.admin.card.installCertificate(a);
    b.machine.reinsert();
    await b.scheduler.advance(2 * PROPAGATION_MS); // propagation reads mscp/ksc00 = A through the cache
    const host = b.machine.startProcess().host;
    const tpA = (await host.createContext(a)).thumbprint;
    const renewed = await issueOurs(b.publicKey, 0, 'CN=Renewed');
    const tpB = (await host.createContext(renewed)).thumbprint;
    await seedLoad(b.admin.transport, CONTAINER, renewed);
    const tool = async () => (await addCardCertToStore(b.machine, { container: CONTAINER, pin: TEST_PIN })).thumbprint;
    const inMy = async () => {
      const my = await host.openCurrentUserMy();
      try {
        return (await my.enumerate()).map((c) => c.thumbprint).sort();
      } finally {
        await my.close();
      }
    };
    return { b, tpA, tpB, tool, inMy, host };
  }

  it('is served stale: propagation and KP_CERTIFICATE give the old certificate while the card holds the new one', async () => {
    const { b, tpA, tpB, tool, inMy } = await renewedTheSeedsWay();
    assert.deepEqual(await inMy(), [tpA]);
    b.machine.reinsert();
    await b.scheduler.advance(2 * PROPAGATION_MS);
    assert.deepEqual(await inMy(), [tpA], 'propagation ran and copied the cached (old) certificate');
    assert.equal(await tool(), tpA, "the seed's tool is handed the old certificate");
    assert.notEqual(tpA, tpB);
    // The same without a cache (CP_CACHE_MODE_NO_CACHE) reads the card: the failure is the cache's.
    const uncached = await bench({ propagation: { delayMs: PROPAGATION_MS }, bits: 1024, hypotheses: { cacheMode: 'no-cache' } });
    benches.push(uncached);
    await uncached.admin.card.installCertificate(await issueOurs(uncached.publicKey, 0, 'CN=First issue'));
    uncached.machine.reinsert();
    await uncached.scheduler.advance(2 * PROPAGATION_MS);
    const renewed = await issueOurs(uncached.publicKey, 0, 'CN=Renewed');
    await seedLoad(uncached.admin.transport, CONTAINER, renewed);
    const fresh = await addCardCertToStore(uncached.machine, { container: CONTAINER, pin: TEST_PIN });
    assert.equal(fresh.thumbprint, (await uncached.machine.startProcess().host.createContext(renewed)).thumbprint);
  });

  it('link alone does not fix it: the store entry is right and proven, yet Windows still serves the old certificate', async () => {
    const { b, tpA, tpB, tool, inMy, host } = await renewedTheSeedsWay();
    const linked = await linkCard(b.windowsCard.minidriver(), b.machine.startProcess(() => TEST_PIN).host);
    assert.equal(linked.linked[0]!.thumbprint, tpB);
    assert.equal(linked.linked[0]!.proof.verified, true);
    assert.deepEqual(await inMy(), [tpB], 'link put the new certificate in and removed the old entry');
    const my = await host.openCurrentUserMy();
    assert.deepEqual((await host.getKeyProvInfo((await my.find(tpB))!))?.providerName, MS_SCARD_PROV);
    await my.close();
    assert.equal(await tool(), tpA, 'the seed tool still gets the old certificate');
    b.machine.reinsert();
    await b.scheduler.advance(2 * PROPAGATION_MS);
    assert.deepEqual(await inMy(), [tpA, tpB].sort(), 'propagation (running) puts the old certificate back');
  });

  it('card check --repair fixes it: the counter moves, Windows reads the card again', async () => {
    const { b, tpA, tpB, tool, inMy } = await renewedTheSeedsWay();
    const checked = await b.admin.card.check();
    assert.deepEqual(checked.findings.map((f) => f.code), ['STALE_FILES_COUNTER']);
    await b.admin.card.verifyPin(TEST_PIN);
    const { after: repaired } = await b.admin.card.repair();
    assert.deepEqual(repaired.findings, []);
    assert.equal(await tool(), tpB, 'the seed tool now gets the certificate on the card');
    b.machine.reinsert();
    await b.scheduler.advance(2 * PROPAGATION_MS);
    assert.ok((await inMy()).includes(tpB), 'propagation copies the new certificate');
    assert.ok((await inMy()).includes(tpA), 'the old entry stays until link removes it (propagation never deletes)');
  });

  it('doctor finds it on a first run, with no earlier cardlink view of the card, from the Smart Card service cache', async () => {
    const { b } = await renewedTheSeedsWay();
    const newcomer = await MinidriverCard.open(new MemoryTransport(b.admin.emulator, 'newcomer'), { cache: new MemoryCardCache() });
    const report = await diagnose(newcomer.minidriver(), b.machine.startProcess().host, { target: '--image card.json --store model:m', machine: b.machine, cardCheck: () => newcomer.check() });
    const stale = report.findings.filter((f) => f.code === 'STALE_CACHE');
    assert.equal(stale.length, 1, JSON.stringify(report.findings, null, 2));
    assert.match(stale[0]!.message, /mscp\/ksc00/);
    assert.equal((await newcomer.check()).findings.length, 0, "cardlink's own check has nothing to compare with");
  });

  it('cardlink doctor --repair moves cardcf when only Windows\' cache shows the staleness; afterwards Windows reads the card', async () => {
    const dir = tempDir('cardlink-doctor-repair-');
    const image = join(dir, 'card.img');
    const state = join(dir, 'machine');
    const env = { CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: Buffer.from(TEST_ADMIN_KEY).toString('hex'), CARDLINK_HOME: join(dir, 'home') };
    try {
      assert.equal((await cli(['card', 'init', '--image', image], env)).code, 0);
      const gen = await cli(['card', 'gen', '--image', image, '--container', CONTAINER, '--keyspec', 'sig', '--json'], env);
      const publicKey = createPublicKey((JSON.parse(gen.stdout) as { publicKey: string }).publicKey);
      writeFileSync(join(dir, 'a.der'), await issueOurs(publicKey, 0, 'CN=First'));
      assert.equal((await cli(['card', 'install', join(dir, 'a.der'), '--image', image], env)).code, 0);
      assert.equal((await cli(['link', '--image', image, '--store', `model:${state}`], env)).code, 0);
      // Windows reads the certificate through its cache (propagation would), and keeps it across restarts.
      const m = new WindowsMachine({ stateDir: state, scheduler: new ManualScheduler() });
      m.insert(cardConnector({ image }, env));
      await m.startProcess().csp.userCertificates(true);
      m.shutdown();
      // The seed's loader renews the certificate on another connection, cardcf untouched.
      const transport = await openTransport({ image }, { env });
      const card = await MinidriverCard.open(transport, { cache: new MemoryCardCache() });
      await card.verifyPin(TEST_PIN);
      const renewed = await issueOurs(publicKey, 0, 'CN=Renewed');
      await seedLoad(transport, CONTAINER, renewed);
      await transport.close();

      const before = await cli(['doctor', '--image', image, '--store', `model:${state}`, '--json'], env);
      const found = JSON.parse(before.stdout) as { findings: { code: string; fix: string; message: string }[] };
      assert.ok(found.findings.some((f) => f.code === 'STALE_CACHE' && /mscp\/ksc00/.test(f.message)), before.stdout);
      const repaired = await cli(['doctor', '--image', image, '--store', `model:${state}`, '--repair', '--json'], env);
      const after = JSON.parse(repaired.stdout) as { movedCounters?: { files: boolean }; findings: { code: string }[] };
      assert.equal(after.movedCounters?.files, true, repaired.stdout);
      assert.deepEqual(after.findings.filter((f) => f.code === 'STALE_CACHE'), []);
      // Windows now serves the renewed certificate.
      const m2 = new WindowsMachine({ stateDir: state, scheduler: new ManualScheduler() });
      m2.insert(cardConnector({ image }, env));
      const seen = await m2.startProcess().csp.userCertificates(true);
      m2.shutdown();
      assert.deepEqual(Buffer.from(seen[0]!.der), Buffer.from(renewed));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
