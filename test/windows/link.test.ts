// `link` on the model: every card certificate into CurrentUser\My with its key provider info,
// proven by a signature made on the card (checked with node and with openssl); idempotent; stale
// entries removed; and the seed's story done right — `card install` then `link` — succeeding at
// the first try in 100 of 100 runs with random propagation timing and random cache state.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { ACQUIRE, ADD, AT_SIGNATURE, CERT_NCRYPT_KEY_SPEC, MS_SCARD_PROV, MS_SMART_CARD_KSP, PROV_TYPE } from '../../src/windows/constants.js';
import { linkCard } from '../../src/windows/link.js';
import { MY_STORE_PATH } from '../../src/windows/model/store.js';
import { addCardCertToStore } from '../../src/windows/model/seed-tool.js';
import { seedLoad } from '../fixtures/seed-loader.js';
import { TEST_PIN, tempDir } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';
import { bench, CONTAINER, type Bench } from './fixtures/machine.js';

const DAY = 86_400_000;

function storeSnapshot(b: Bench): Record<string, string> {
  const dir = join(b.dir, ...MY_STORE_PATH);
  return Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f)).toString('hex')]));
}

describe('link', () => {
  const benches: Bench[] = [];
  after(() => benches.forEach((b) => b.cleanup()));
  const fresh = async (options: Parameters<typeof bench>[0] = {}): Promise<Bench> => {
    const b = await bench(options);
    benches.push(b);
    return b;
  };

  it('links the certificate with Base CSP provider info and proves it; openssl verifies the proof', async () => {
    const b = await fresh();
    const der = await issueOurs(b.publicKey, 0, 'CN=Link User');
    await b.admin.card.installCertificate(der);
    const p = b.machine.startProcess(() => TEST_PIN);
    const report = await linkCard(b.windowsCard.minidriver(), p.host);
    assert.equal(report.linked.length, 1);
    const l = report.linked[0]!;
    assert.equal(l.action, 'added');
    assert.deepEqual(l.keyProvInfo, { containerName: CONTAINER, providerName: MS_SCARD_PROV, providerType: PROV_TYPE.RSA_FULL, flags: 0, params: [], keySpec: AT_SIGNATURE });
    assert.equal(l.proof.api, 'CryptoAPI');
    assert.equal(l.proof.keySpec, AT_SIGNATURE);

    const my = await p.host.openCurrentUserMy();
    const stored = await my.find(l.thumbprint);
    assert.ok(stored);
    assert.deepEqual(await p.host.getKeyProvInfo(stored), l.keyProvInfo);
    assert.equal((await p.host.acquirePrivateKey(stored, ACQUIRE.COMPARE_KEY | ACQUIRE.SILENT)).keySpec, AT_SIGNATURE);

    const dir = tempDir('cardlink-openssl-');
    writeFileSync(join(dir, 'cert.der'), der);
    writeFileSync(join(dir, 'challenge.bin'), Buffer.from(l.proof.challenge, 'hex'));
    writeFileSync(join(dir, 'sig.bin'), Buffer.from(l.proof.signature, 'hex'));
    execFileSync('openssl', ['x509', '-inform', 'DER', '-in', join(dir, 'cert.der'), '-pubkey', '-noout', '-out', join(dir, 'pub.pem')]);
    const out = execFileSync('openssl', ['dgst', '-sha256', '-verify', join(dir, 'pub.pem'), '-signature', join(dir, 'sig.bin'), join(dir, 'challenge.bin')], { encoding: 'utf8' });
    assert.match(out, /Verified OK/);
    // A flipped bit must not verify: the check above is real.
    const bad = Buffer.from(l.proof.signature, 'hex');
    bad[5]! ^= 1;
    writeFileSync(join(dir, 'sig.bin'), bad);
    assert.throws(() => execFileSync('openssl', ['dgst', '-sha256', '-verify', join(dir, 'pub.pem'), '-signature', join(dir, 'sig.bin'), join(dir, 'challenge.bin')], { stdio: 'pipe' }));
  });

  it('running it twice leaves the same store', async () => {
    const b = await fresh();
    await b.admin.card.installCertificate(await issueOurs(b.publicKey));
    await linkCard(b.windowsCard.minidriver(), b.machine.startProcess(() => TEST_PIN).host);
    const first = storeSnapshot(b);
    const again = await linkCard(b.windowsCard.minidriver(), b.machine.startProcess(() => TEST_PIN).host);
    assert.equal(again.linked[0]!.action, 'unchanged');
    assert.deepEqual(again.removed, []);
    assert.deepEqual(storeSnapshot(b), first);
    assert.equal(Object.keys(first).length, 1);
  });

  it("removes this card's entries whose certificate is gone, and leaves other cards' entries alone", async () => {
    const b = await fresh();
    const oldDer = await issueOurs(b.publicKey, 0, 'CN=Old');
    await b.admin.card.installCertificate(oldDer);
    const p = b.machine.startProcess(() => TEST_PIN);
    const first = await linkCard(b.windowsCard.minidriver(), p.host);
    // Someone else's card entry in the same store.
    const other = await p.host.createContext(await issueOurs(b.publicKey, 0, 'CN=Other card'));
    await p.host.setKeyProvInfo(other, { containerName: 'another-cards-container', providerName: MS_SCARD_PROV, providerType: 1, flags: 0, params: [], keySpec: AT_SIGNATURE });
    const my = await p.host.openCurrentUserMy();
    await my.add(other, ADD.NEW);

    await b.admin.card.installCertificate(await issueOurs(b.publicKey, 0, 'CN=Renewed'));
    const second = await linkCard(b.windowsCard.minidriver(), p.host);
    assert.deepEqual(second.removed, [{ thumbprint: first.linked[0]!.thumbprint, container: CONTAINER }]);
    assert.ok(await my.find(other.thumbprint), "the other card's entry stays");

    await b.admin.card.removeCertificate(CONTAINER);
    const third = await linkCard(b.windowsCard.minidriver(), p.host);
    assert.deepEqual(third.linked, []);
    assert.deepEqual(third.removed, [{ thumbprint: second.linked[0]!.thumbprint, container: CONTAINER }]);
    assert.deepEqual((await my.enumerate()).map((c) => c.thumbprint), [other.thumbprint]);
  });

  it('--ksp links through the Smart Card KSP and proves through CNG', async () => {
    const b = await fresh();
    await b.admin.card.installCertificate(await issueOurs(b.publicKey));
    const report = await linkCard(b.windowsCard.minidriver(), b.machine.startProcess(() => TEST_PIN).host, { provider: 'ksp' });
    const l = report.linked[0]!;
    assert.deepEqual(l.keyProvInfo, { containerName: CONTAINER, providerName: MS_SMART_CARD_KSP, providerType: PROV_TYPE.CNG, flags: 0, params: [], keySpec: AT_SIGNATURE });
    assert.equal(l.proof.api, 'CNG');
    assert.equal(l.proof.keySpec, CERT_NCRYPT_KEY_SPEC);
  });

  it('the seed story done right: card install + link succeed at the first try, 100 of 100 runs, random timing and cache state', async (t) => {
    const cacheStates = ['empty', 'warm', 'old-certificate-cached', 'service-restarted', 'seed-loaded-then-installed'] as const;
    let runs = 0;
    let seedFailures = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          propagationDelay: fc.integer({ min: 0, max: 60_000 }),
          cache: fc.constantFrom(...cacheStates),
          daysLater: fc.integer({ min: 0, max: 30 }),
          linkAfter: fc.integer({ min: 0, max: 90_000 }),
          reinsert: fc.boolean(),
        }),
        async (r) => {
          const b = await bench({ propagation: { delayMs: r.propagationDelay }, bits: 1024 });
          try {
            const reader = b.machine.startProcess(() => TEST_PIN);
            if (r.cache === 'old-certificate-cached' || r.cache === 'seed-loaded-then-installed') {
              await seedLoad(b.admin.transport, CONTAINER, await issueOurs(b.publicKey, 0, 'CN=Earlier'));
              await reader.csp.userCertificates(true);
            }
            if (r.cache === 'warm') await reader.csp.userCertificates(true);
            if (r.cache === 'service-restarted') {
              await reader.csp.userCertificates(true);
              b.machine.scardsvr.restart();
            }
            await b.scheduler.advance(r.daysLater * DAY);
            const der = await issueOurs(b.publicKey, 0, 'CN=Issued Later');
            await b.admin.card.installCertificate(der);
            if (r.reinsert) b.machine.reinsert();
            await b.scheduler.advance(r.linkAfter);
            // The seed's tool, in the same state, for comparison: it depends on propagation.
            seedFailures += await addCardCertToStore(b.machine, { container: CONTAINER, pin: TEST_PIN }).then(
              () => 0,
              () => 1,
            );
            const report = await linkCard(b.windowsCard.minidriver(), b.machine.startProcess(() => TEST_PIN).host);
            assert.equal(report.linked.length, 1);
            assert.equal(report.linked[0]!.proof.verified, true);
            const p = b.machine.startProcess();
            const stored = await (await p.host.openCurrentUserMy()).find(report.linked[0]!.thumbprint);
            assert.ok(stored);
            assert.equal(stored.thumbprint, report.linked[0]!.thumbprint);
            // Propagation catching up later changes nothing that matters.
            await b.scheduler.advance(120_000);
            assert.equal((await p.host.acquirePrivateKey(stored, ACQUIRE.COMPARE_KEY | ACQUIRE.SILENT)).keySpec, AT_SIGNATURE);
            runs++;
          } finally {
            b.cleanup();
          }
        },
      ),
      { numRuns: 100 },
    );
    assert.equal(runs, 100);
    t.diagnostic(`seed tool failed at the first try in ${seedFailures} of 100 of the same runs`);
    assert.ok(seedFailures > 0, "in the same states the seed's way fails at least sometimes");
  });
});
