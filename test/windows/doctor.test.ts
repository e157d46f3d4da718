// Every `doctor` finding, triggered: each test sets up one fault on a model machine and checks the
// finding, the error it names, what acquisition actually returned, and the fix command.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ADD, AT_SIGNATURE, MS_SCARD_PROV, PROV_TYPE } from '../../src/windows/constants.js';
import { diagnose, type DoctorCode, type DoctorReport } from '../../src/windows/doctor.js';
import { linkCard } from '../../src/windows/link.js';
import type { Hypotheses } from '../../src/windows/model/hypotheses.js';
import { seedLoad } from '../fixtures/seed-loader.js';
import { initialisedCard, TEST_PIN, moveCounters, tempDir } from '../helpers/card.js';
import { ManualScheduler } from '../../src/windows/model/clock.js';
import { WindowsMachine } from '../../src/windows/model/machine.js';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { issueOurs } from '../helpers/certs.js';
import { bench, CONTAINER, type Bench } from './fixtures/machine.js';

const TARGET = '--image card.img --store model:/tmp/m';

describe('doctor', () => {
  const benches: Bench[] = [];
  after(() => benches.forEach((b) => b.cleanup()));

  /** A card with a certificate installed properly; `fault` breaks one thing; then doctor runs. */
  async function scenario(fault: (b: Bench, der: Uint8Array) => Promise<void>, options: { link?: boolean; hypotheses?: Partial<Hypotheses> } = {}): Promise<DoctorReport> {
    const b = await bench({ bits: 1024, ...(options.hypotheses ? { hypotheses: options.hypotheses } : {}) });
    benches.push(b);
    const der = await issueOurs(b.publicKey, 0, 'CN=Doctor Patient');
    await b.admin.card.installCertificate(der);
    if (options.link !== false) await linkCard(b.windowsCard.minidriver(), b.machine.startProcess(() => TEST_PIN).host);
    await fault(b, der);
    return diagnose(b.windowsCard.minidriver(), b.machine.startProcess().host, { target: TARGET, machine: b.machine, cardCheck: () => b.windowsCard.check() });
  }

  function only(report: DoctorReport, code: DoctorCode) {
    assert.deepEqual(report.findings.map((f) => f.code), [code], JSON.stringify(report.findings, null, 2));
    return report.findings[0]!;
  }

  async function setEntryInfo(b: Bench, der: Uint8Array, info: Parameters<Bench['machine']['startProcess']>[0] extends never ? never : object | null): Promise<void> {
    const host = b.machine.startProcess().host;
    const my = await host.openCurrentUserMy();
    const ctx = (await my.find((await host.createContext(der)).thumbprint))!;
    await host.setKeyProvInfo(ctx, info as never);
  }

  it('a linked card is clean', async () => {
    const report = await scenario(async () => {});
    assert.deepEqual(report.findings, []);
    assert.equal(report.certificates.length, 1);
    assert.equal(report.certificates[0]!.linked, true);
  });

  it('NO_STORE_ENTRY: the certificate is not in CurrentUser\\My', async () => {
    const f = only(await scenario(async () => {}, { link: false }), 'NO_STORE_ENTRY');
    assert.deepEqual(f.error, { name: 'CRYPT_E_NO_KEY_PROPERTY', value: '0x8009200B' });
    assert.equal(f.fix, `cardlink link ${TARGET}`);
    assert.equal(f.container, CONTAINER);
  });

  it('NO_KEY_PROV_INFO: an entry without the link property (the seed without CryptAcquireCertificatePrivateKey)', async () => {
    // With no healing source (hypotheses.ts): the documented key identifier store would heal it.
    const f = only(await scenario(async (b, der) => setEntryInfo(b, der, null), { hypotheses: { healing: 'none' } }), 'NO_KEY_PROV_INFO');
    assert.equal(f.error.name, 'CRYPT_E_NO_KEY_PROPERTY');
    assert.deepEqual(f.observed, { name: 'CRYPT_E_NO_KEY_PROPERTY', value: '0x8009200B' });
    assert.equal(f.fix, `cardlink link ${TARGET}`);
  });

  it('WRONG_PROVIDER: a software CSP, the wrong provider type, or the wrong key spec', async () => {
    const base = { containerName: CONTAINER, providerName: MS_SCARD_PROV, providerType: PROV_TYPE.RSA_FULL, flags: 0, params: [], keySpec: AT_SIGNATURE };
    const soft = only(await scenario(async (b, der) => setEntryInfo(b, der, { ...base, providerName: 'Microsoft Enhanced Cryptographic Provider v1.0' })), 'WRONG_PROVIDER');
    assert.equal(soft.error.name, 'NTE_KEYSET_NOT_DEF');
    assert.equal(soft.observed?.name, 'NTE_KEYSET_NOT_DEF');
    const type = only(await scenario(async (b, der) => setEntryInfo(b, der, { ...base, providerType: PROV_TYPE.RSA_AES })), 'WRONG_PROVIDER');
    assert.equal(type.observed?.name, 'NTE_PROV_TYPE_NO_MATCH');
    const spec = only(await scenario(async (b, der) => setEntryInfo(b, der, { ...base, keySpec: 1 })), 'WRONG_PROVIDER');
    assert.equal(spec.error.name, 'NTE_NO_KEY');
    assert.equal(spec.observed?.name, 'NTE_NO_KEY');
  });

  it("WRONG_CONTAINER: the entry names another of the card's containers", async () => {
    const f = only(
      await scenario(async (b, der) => {
        await b.admin.card.createContainer('second-container', { keySpec: 'sig', bits: 1024 });
        await setEntryInfo(b, der, { containerName: 'second-container', providerName: MS_SCARD_PROV, providerType: 1, flags: 0, params: [], keySpec: AT_SIGNATURE });
      }),
      'WRONG_CONTAINER',
    );
    assert.equal(f.error.name, 'NTE_BAD_PUBLIC_KEY');
    assert.deepEqual(f.observed, { name: 'NTE_BAD_PUBLIC_KEY', value: '0x80090015' });
  });

  it('CONTAINER_MISSING: the entry names a container the card does not have', async () => {
    const f = only(
      await scenario(async (b, der) => setEntryInfo(b, der, { containerName: '\\\\.\\Virtual Smart Card Reader 0\\gone', providerName: MS_SCARD_PROV, providerType: 1, flags: 0, params: [], keySpec: AT_SIGNATURE })),
      'CONTAINER_MISSING',
    );
    assert.equal(f.error.name, 'NTE_BAD_KEYSET');
    assert.equal(f.observed?.name, 'NTE_BAD_KEYSET');
  });

  it("PUBLIC_KEY_MISMATCH: the card holds a certificate for another key in the container", async () => {
    const report = await scenario(async (b) => {
      const stranger = await b.admin.card.createContainer('stranger', { keySpec: 'sig', bits: 1024 });
      await b.admin.card.installCertificate(await issueOurs(stranger.publicKey, 0, 'CN=Stranger'));
      await b.admin.card.removeCertificate('stranger');
      // The seed's loader writes by container name and checks nothing.
      await seedLoad(b.admin.transport, CONTAINER, await issueOurs(stranger.publicKey, 0, 'CN=Misplaced'));
      await moveCounters(b.admin, { files: true });
    });
    const f = report.findings.find((x) => x.code === 'PUBLIC_KEY_MISMATCH');
    assert.ok(f, JSON.stringify(report.findings));
    assert.equal(f.error.name, 'NTE_BAD_PUBLIC_KEY');
    assert.match(f.fix, /cardlink card rm-cert .* --container lr-e46f1586/);
  });

  it("STALE_CACHE: the certificate changed without moving cardcf and Windows' cache holds the old one", async () => {
    const report = await scenario(async (b) => {
      await b.machine.startProcess().csp.userCertificates(true); // the cache learns the current file
      await seedLoad(b.admin.transport, CONTAINER, await issueOurs(b.publicKey, 0, 'CN=Renewed The Seed Way'));
    });
    const stale = report.findings.filter((f) => f.code === 'STALE_CACHE');
    assert.ok(stale.some((f) => /mscp\/ksc00/.test(f.message)), JSON.stringify(report.findings));
    // What a stale certificate really causes: propagation and KP_CERTIFICATE deliver the old one, so
    // the card's certificate is not found in the store (not 0x8009200B).
    assert.equal(stale[0]!.error.name, 'CRYPT_E_NOT_FOUND');
    // cardlink's own cache never saw the old certificate, so `card check --repair` would find
    // nothing to fix: doctor moves the counters itself.
    assert.match(stale[0]!.fix, /^cardlink doctor --repair --image card\.img --store model:\/tmp\/m /);
    // The renewed certificate is not linked yet either.
    assert.ok(report.findings.some((f) => f.code === 'NO_STORE_ENTRY'));
  });

  it('PROPAGATION_NOT_RUNNING: Certificate Propagation is stopped', async () => {
    const f = only(
      await scenario(async (b) => {
        b.machine.certprop.running = false;
      }),
      'PROPAGATION_NOT_RUNNING',
    );
    assert.equal(f.error.name, 'CRYPT_E_NO_KEY_PROPERTY');
    assert.match(f.fix, /^cardlink link /);
  });

  it('CAPI_CNG_MISMATCH: an RSA certificate linked to the CNG KSP fails CryptoAPI-only callers', async () => {
    const f = only(
      await scenario(async (b) => {
        await linkCard(b.windowsCard.minidriver(), b.machine.startProcess(() => TEST_PIN).host, { provider: 'ksp' });
      }),
      'CAPI_CNG_MISMATCH',
    );
    assert.equal(f.error.name, 'NTE_BAD_PROV_TYPE');
    assert.deepEqual(f.observed, { name: 'NTE_BAD_PROV_TYPE', value: '0x80090014' });
    assert.equal(f.fix, `cardlink link ${TARGET} --csp`);
  });

  it('PIN_BLOCKED: the card PIN is blocked', async () => {
    const f = only(
      await scenario(async (b) => {
        const { tryLimit } = await b.admin.card.pinStatus();
        for (let i = 0; i < tryLimit; i++) await b.admin.card.verifyPin('000000').catch(() => undefined);
      }),
      'PIN_BLOCKED',
    );
    assert.equal(f.error.name, 'SCARD_W_CHV_BLOCKED');
    assert.match(f.fix, /cardlink card pin unblock/);
  });

  it('a second certificate added the seed way shows up as unlinked next to a linked one', async () => {
    const report = await scenario(async (b) => {
      const host = b.machine.startProcess().host;
      const my = await host.openCurrentUserMy();
      await my.addEncoded(await issueOurs(b.publicKey, 0, 'CN=Unrelated'), ADD.NEW);
    });
    assert.deepEqual(report.findings, [], 'an unrelated store entry is not a finding');
  });

  it('reports the card like certutil -scinfo: containers, key match, default container, and why an AT_SIGNATURE certificate is not offered at logon', async () => {
    const report = await scenario(async () => {});
    const s = report.scinfo;
    assert.equal(s.cardId, report.cardId);
    assert.equal(s.defaultContainer, CONTAINER);
    assert.equal(s.containers.length, 1);
    const c = s.containers[0]!;
    assert.equal(c.keySpec, 'AT_SIGNATURE');
    assert.equal(c.certificate?.keyMatch, true);
    assert.equal(c.certificate?.file, 'mscp/ksc00');
    assert.equal(c.logon?.offered, false);
    assert.ok(c.logon?.why.some((w) => /AT_SIGNATURE/.test(w)), JSON.stringify(c.logon));
    // Doctor always acquires, cached and uncached, and proves with the PIN when it has one.
    assert.deepEqual(report.certificates[0]!.acquisition?.cached.name, 'S_OK');
    assert.deepEqual(report.certificates[0]!.acquisition?.uncached?.name, 'S_OK');
    assert.equal(report.certificates[0]!.acquisition?.proof, undefined, 'no PIN, no proof');
    const b = benches.at(-1)!;
    const proven = await diagnose(b.windowsCard.minidriver(), b.machine.startProcess().host, { target: TARGET, machine: b.machine, pin: TEST_PIN });
    assert.equal(proven.certificates[0]!.acquisition?.proof?.name, 'S_OK');
  });

  it('STALE_CACHE from the acquisition itself: a cardid reused by another card makes the cached acquisition fail where the uncached one works; the old entry is a DUPLICATE_ENTRY', async () => {
    const serial = new Uint8Array(randomBytes(16));
    const scheduler = new ManualScheduler();
    const dir = tempDir('cardlink-reuse-');
    const machine = new WindowsMachine({ stateDir: dir, scheduler });
    try {
      const linkedCard = async () => {
        const t = await initialisedCard({ serial });
        await t.card.verifyPin(TEST_PIN);
        const { publicKey } = await t.card.createContainer(CONTAINER, { keySpec: 'sig', bits: 1024 });
        await t.card.installCertificate(await issueOurs(publicKey, 0, 'CN=Same cardid'));
        machine.insert(t.card.minidriver());
        return linkCard(t.card.minidriver(), machine.startProcess(() => TEST_PIN).host).then(
          () => t,
          (e: unknown) => ({ ...t, failed: e }),
        );
      };
      const first = await linkedCard();
      assert.equal((first as { failed?: unknown }).failed, undefined);
      machine.remove();
      const second = await linkedCard();
      // The Base CSP compares the new certificate with the key it cached for the first card.
      assert.ok(second && (second as { failed?: { code?: string } }).failed, 'link cannot prove the second card while the cache holds the first');
      const report = await diagnose(second.card.minidriver(), machine.startProcess().host, { target: TARGET, machine });
      const acquisition = report.certificates[0]!.acquisition!;
      assert.equal(acquisition.cached.name, 'NTE_BAD_PUBLIC_KEY');
      assert.equal(acquisition.uncached?.name, 'S_OK');
      const stale = report.findings.filter((f) => f.code === 'STALE_CACHE');
      assert.ok(stale.some((f) => f.error.name === 'NTE_BAD_PUBLIC_KEY' && /uncached acquisition/.test(f.message)), JSON.stringify(report.findings, null, 2));
      assert.ok(stale.some((f) => /caches a public key for container 0/.test(f.message)));
      const duplicate = report.findings.find((f) => f.code === 'DUPLICATE_ENTRY');
      assert.equal(duplicate?.error.name, 'NTE_BAD_PUBLIC_KEY');
      assert.equal(duplicate?.container, CONTAINER);
    } finally {
      machine.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
