/**
 * `doctor` on a PIV card (through the PIV minidriver port, on a model machine): each PIV cause of
 * a stale or missing certificate is named, in words, with the error it causes and the next step —
 * the card not re-inserted since an offline write, the CHUID changed since link, no CHUID at all —
 * and a properly linked PIV card is clean.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { diagnose, type DoctorReport } from '../../src/windows/doctor.js';
import { linkCard } from '../../src/windows/link.js';
import { ManualScheduler } from '../../src/windows/model/clock.js';
import type { Hypotheses } from '../../src/windows/model/hypotheses.js';
import { WindowsMachine } from '../../src/windows/model/machine.js';
import { ALG, KEY_REF } from '../../src/piv/protocol/constants.js';
import { randomBytes } from 'node:crypto';
import { tempDir } from '../helpers/card.js';
import { EXAMPLE_GUID, PIV_PIN, pivFixture, type PivFixture } from '../helpers/piv-card.js';

const TARGET = '--image piv.img --store model:/tmp/m';

describe('doctor on a PIV card', () => {
  const cleanups: (() => void)[] = [];
  after(() => cleanups.forEach((c) => c()));

  async function linked(guid: Uint8Array | null = EXAMPLE_GUID, hypotheses: Partial<Hypotheses> = {}): Promise<{ f: PivFixture; machine: WindowsMachine }> {
    const f = await pivFixture(guid);
    const dir = tempDir('cardlink-piv-doctor-');
    const machine = new WindowsMachine({ stateDir: dir, scheduler: new ManualScheduler(), hypotheses });
    cleanups.push(() => {
      machine.shutdown();
      rmSync(dir, { recursive: true, force: true });
    });
    machine.insert(f.port);
    const k = await f.gen(KEY_REF.AUTHENTICATION, ALG.ECC_P256);
    await f.install(KEY_REF.AUTHENTICATION, k, 'CN=PIV Patient');
    if (guid) await linkCard(f.port, machine.startProcess(() => PIV_PIN).host);
    return { f, machine };
  }
  const doctor = (f: PivFixture, machine: WindowsMachine): Promise<DoctorReport> => diagnose(f.port, machine.startProcess().host, { target: TARGET, machine, pin: PIV_PIN });

  it('a linked PIV card is clean; scinfo says its freshness is kept on the host', async () => {
    const { f, machine } = await linked();
    const report = await doctor(f, machine);
    assert.deepEqual(report.findings, []);
    assert.equal(report.scinfo.freshnessSource, 'host');
    assert.equal(report.scinfo.defaultContainer, '1d8ac658-e065-92a0-85af-090b075fc105');
    assert.equal(report.certificates[0]!.acquisition?.proof?.name, 'S_OK');
    assert.ok((report.serviceCache?.compared ?? 0) > 0, 'the cache was compared with the card');
  });

  it('PIV_NOT_REINSERTED: a certificate replaced while the card stayed in the reader; gone after re-insertion', async () => {
    const { f, machine } = await linked();
    const k2 = await f.gen(KEY_REF.AUTHENTICATION, ALG.ECC_P256);
    await f.install(KEY_REF.AUTHENTICATION, k2, 'CN=PIV Replacement');
    const report = await doctor(f, machine);
    const stale = report.findings.filter((x) => x.code === 'PIV_NOT_REINSERTED');
    assert.ok(stale.length > 0, JSON.stringify(report.findings, null, 2));
    assert.ok(!report.findings.some((x) => x.code === 'STALE_CACHE'), 'a PIV card is not told to move cardcf counters it does not have');
    for (const s of stale) {
      assert.match(s.message, /has not been re-inserted since/);
      assert.match(s.fix, /remove the card from the reader and insert it again/);
    }
    // link's proof went through the KSP, which cached the container's public key: now the old key.
    assert.ok(stale.some((s) => /public key for container 0/.test(s.message) && s.error.name === 'NTE_BAD_PUBLIC_KEY'));
    assert.ok(report.findings.some((x) => x.code === 'NO_STORE_ENTRY' && x.fix === `cardlink link ${TARGET}`));

    machine.reinsert();
    const after = await doctor(f, machine);
    assert.deepEqual(after.findings.filter((x) => x.code === 'PIV_NOT_REINSERTED'), []);
    assert.ok(after.findings.some((x) => x.code === 'NO_STORE_ENTRY'), 'the new certificate still needs its link');
    await linkCard(f.port, machine.startProcess(() => PIV_PIN).host);
    assert.deepEqual((await doctor(f, machine)).findings, []);
  });

  it('under the chuid-only hypothesis the same write is STALE_CACHE, fixed by a new CHUID (re-insertion would not help)', async () => {
    const { f, machine } = await linked(EXAMPLE_GUID, { pivFreshness: 'chuid-only' });
    const k2 = await f.gen(KEY_REF.AUTHENTICATION, ALG.ECC_P256);
    await f.install(KEY_REF.AUTHENTICATION, k2, 'CN=PIV Replacement');
    machine.reinsert();
    const report = await doctor(f, machine);
    assert.ok(!report.findings.some((x) => x.code === 'PIV_NOT_REINSERTED'));
    const stale = report.findings.filter((x) => x.code === 'STALE_CACHE');
    assert.ok(stale.length > 0, JSON.stringify(report.findings, null, 2));
    for (const s of stale) assert.equal(s.fix, `cardlink card check --repair --image piv.img (a new CHUID GUID: Windows reads the card afresh under it), then cardlink link ${TARGET}`);
  });

  it('PIV_CHUID_CHANGED: the entry names the container under the old GUID; link fixes it', async () => {
    const { f, machine } = await linked();
    await f.setChuid(new Uint8Array(randomBytes(16)));
    const report = await doctor(f, machine);
    const found = report.findings.find((x) => x.code === 'PIV_CHUID_CHANGED');
    assert.ok(found, JSON.stringify(report.findings, null, 2));
    assert.match(found.message, /CHUID changed since this certificate was linked/);
    assert.match(found.message, /1d8ac658-e065-92a0-85af-090b075fc105/);
    assert.equal(found.error.name, 'NTE_BAD_KEYSET');
    assert.equal(found.observed?.name, 'NTE_BAD_KEYSET');
    assert.equal(found.fix, `cardlink link ${TARGET}`);
    assert.ok(!report.findings.some((x) => x.code === 'CONTAINER_MISSING'));
    await linkCard(f.port, machine.startProcess(() => PIV_PIN).host);
    assert.deepEqual((await doctor(f, machine)).findings, []);
  });

  it('PIV_NO_CHUID: no identity, named with the repair command', async () => {
    const { f, machine } = await linked(null);
    const report = await doctor(f, machine);
    assert.deepEqual(report.findings.map((x) => x.code), ['PIV_NO_CHUID']);
    const x = report.findings[0]!;
    assert.match(x.message, /no CHUID/);
    assert.equal(x.error.name, 'SCARD_E_CARD_UNSUPPORTED');
    assert.equal(x.fix, `cardlink card check --repair --image piv.img (writes a CHUID with a new GUID), then cardlink link ${TARGET}`);
    assert.equal(report.scinfo.pin.triesLeft, 3);
  });
});
