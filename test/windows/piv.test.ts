/**
 * A PIV card in the model Windows machine, through the PIV minidriver port: the PIV cache rule
 * (freshness kept on the host, moved by re-insertion, keyed by the CHUID GUID; model/piv-cache.ts)
 * and the link acceptance of issue 16 — keys made in 9A (P-256 and RSA-2048) on a blank card,
 * a certificate from the test CA written to the slot, `link`, then CryptAcquireCertificatePrivateKey
 * and a challenge signature verified with the certificate.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, verify, X509Certificate } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { hex } from '../../src/bytes.js';
import { ACQUIRE, AT_KEYEXCHANGE, MS_SCARD_PROV, MS_SMART_CARD_KSP, PROV_TYPE } from '../../src/windows/constants.js';
import { linkCard } from '../../src/windows/link.js';
import { ManualScheduler } from '../../src/windows/model/clock.js';
import { WindowsMachine } from '../../src/windows/model/machine.js';
import type { Hypotheses } from '../../src/windows/model/hypotheses.js';
import { bumpPivCounter, pivCardCf } from '../../src/windows/model/piv-cache.js';
import { pivContainerName, PivMinidriver } from '../../src/card/piv-minidriver.js';
import { PivSession } from '../../src/piv/host/session.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { RecordingTransport } from '../../src/transport/recorder.js';
import { ALG, KEY_REF } from '../../src/piv/protocol/constants.js';
import { tempDir } from '../helpers/card.js';
import { EXAMPLE_GUID, PIV_PIN, pivFixture, type PivFixture } from '../helpers/piv-card.js';

const code = (c: string) => (e: unknown) => e instanceof Error && (e as { code?: string; hresultName?: string }).hresultName === c;
const subjects = async (m: WindowsMachine): Promise<string[]> => (await m.startProcess().ksp.userCertificates(true)).map((c) => new X509Certificate(c.der).subject);

interface PivMachine {
  f: PivFixture;
  machine: WindowsMachine;
  scheduler: ManualScheduler;
}

describe('the PIV cache rule in the model', () => {
  const dirs: string[] = [];
  const machines: WindowsMachine[] = [];
  after(() => {
    machines.forEach((m) => m.shutdown());
    dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
  });
  const setup = async (guid: Uint8Array | null = EXAMPLE_GUID, hypotheses: Partial<Hypotheses> = {}): Promise<PivMachine> => {
    const f = await pivFixture(guid);
    const dir = tempDir('cardlink-piv-machine-');
    dirs.push(dir);
    const scheduler = new ManualScheduler();
    const machine = new WindowsMachine({ stateDir: dir, scheduler, hypotheses });
    machines.push(machine);
    machine.insert(f.port);
    return { f, machine, scheduler };
  };

  it('a certificate written while the card stays in the reader is not seen until the card is re-inserted, then it is', async () => {
    const { f, machine, scheduler } = await setup();
    const k9d = await f.gen(KEY_REF.KEY_MANAGEMENT, ALG.ECC_P256);
    await f.install(KEY_REF.KEY_MANAGEMENT, k9d, 'CN=Already There');
    await scheduler.advance(10_000); // propagation of the first insertion: caches the container map
    const key = await f.gen(KEY_REF.AUTHENTICATION, ALG.ECC_P256);
    await f.install(KEY_REF.AUTHENTICATION, key, 'CN=Written Offline');
    assert.deepEqual(await subjects(machine), ['CN=Already There'], 'same insertion: the minidriver\'s freshness did not move, the cached container map is served');
    machine.reinsert();
    assert.deepEqual(await subjects(machine), ['CN=Written Offline', 'CN=Already There']);
    // Certificate Propagation, which runs after the insertion, now copies it too.
    await scheduler.advance(10_000);
    const my = await machine.startProcess().host.openCurrentUserMy();
    assert.equal((await my.enumerate()).length, 2);
    await my.close();
  });

  it('an empty container map is not cacheable (an empty write deletes an item [SSPI]): a first certificate is seen at once', async () => {
    const { f, machine } = await setup();
    const key = await f.gen(KEY_REF.AUTHENTICATION, ALG.ECC_P256);
    assert.deepEqual(await subjects(machine), []);
    await f.install(KEY_REF.AUTHENTICATION, key, 'CN=First');
    assert.deepEqual(await subjects(machine), ['CN=First']);
  });

  it('under the chuid-only hypothesis a re-insertion refreshes nothing; a new CHUID does', async () => {
    const { f, machine } = await setup(EXAMPLE_GUID, { pivFreshness: 'chuid-only' });
    const k1 = await f.gen(KEY_REF.AUTHENTICATION, ALG.ECC_P256);
    await f.install(KEY_REF.AUTHENTICATION, k1, 'CN=Old');
    assert.deepEqual(await subjects(machine), ['CN=Old']);
    const k2 = await f.gen(KEY_REF.AUTHENTICATION, ALG.ECC_P256);
    await f.install(KEY_REF.AUTHENTICATION, k2, 'CN=New');
    machine.reinsert();
    assert.deepEqual(await subjects(machine), ['CN=Old']);
    await f.setChuid(new Uint8Array(randomBytes(16)));
    assert.deepEqual(await subjects(machine), ['CN=New']);
  });

  it('a replaced certificate: the old one is served until re-insertion', async () => {
    const { f, machine } = await setup();
    const k1 = await f.gen(KEY_REF.AUTHENTICATION, ALG.ECC_P256);
    await f.install(KEY_REF.AUTHENTICATION, k1, 'CN=Old');
    assert.deepEqual(await subjects(machine), ['CN=Old']);
    const k2 = await f.gen(KEY_REF.AUTHENTICATION, ALG.ECC_P256);
    await f.install(KEY_REF.AUTHENTICATION, k2, 'CN=New');
    assert.deepEqual(await subjects(machine), ['CN=Old']);
    machine.reinsert();
    assert.deepEqual(await subjects(machine), ['CN=New']);
  });

  it('a warm listing in the same insertion costs the port\'s begin only: SELECT and the CHUID (2 APDUs)', async () => {
    const f = await pivFixture();
    const k = await f.gen(KEY_REF.AUTHENTICATION, ALG.RSA_2048);
    await f.install(KEY_REF.AUTHENTICATION, k);
    const t = new RecordingTransport(new MemoryTransport(f.card, 'counted'));
    const dir = tempDir('cardlink-piv-machine-');
    dirs.push(dir);
    const machine = new WindowsMachine({ stateDir: dir, scheduler: new ManualScheduler() });
    machines.push(machine);
    machine.insert(new PivMinidriver(new PivSession(t)));
    await subjects(machine);
    const cold = t.count;
    t.clear();
    await subjects(machine);
    assert.equal(t.count, 2);
    assert.ok(cold >= 7, `cold listing read the slots (${cold} APDUs)`);
  });

  it('the minidriver\'s own counters live in the cache under the card GUID; moving one refreshes without re-insertion', async () => {
    const { f, machine } = await setup();
    const k = await f.gen(KEY_REF.AUTHENTICATION, ALG.ECC_P256);
    assert.deepEqual(await subjects(machine), []);
    await f.install(KEY_REF.AUTHENTICATION, k, 'CN=Counted');
    const before = pivCardCf(machine.scardsvr, EXAMPLE_GUID, machine.reader.insertions);
    bumpPivCounter(machine.scardsvr, EXAMPLE_GUID, 'files');
    const now = pivCardCf(machine.scardsvr, EXAMPLE_GUID, machine.reader.insertions);
    assert.equal(now.filesFreshness, before.filesFreshness + 1);
    assert.equal(now.containersFreshness, before.containersFreshness);
    assert.ok(machine.scardsvr.list().some((i) => i.name === 'Cached_CardmodFile/Cached_File_Freshness' && i.cardId === hex(EXAMPLE_GUID)));
    assert.deepEqual(await subjects(machine), ['CN=Counted']);
  });

  it('a new CHUID GUID: nothing cached is found again, containers are renamed, and earlier links must be redone', async () => {
    const { f, machine } = await setup();
    const k = await f.gen(KEY_REF.AUTHENTICATION, ALG.ECC_P256);
    await f.install(KEY_REF.AUTHENTICATION, k, 'CN=Linked');
    const p = machine.startProcess(() => PIV_PIN);
    const first = await linkCard(f.port, p.host);
    assert.equal(first.linked[0]!.container, pivContainerName(EXAMPLE_GUID, KEY_REF.AUTHENTICATION));
    const newGuid = new Uint8Array(randomBytes(16));
    await f.setChuid(newGuid);
    // Even without a re-insertion the new GUID is a new card to the cache: the renamed container is seen at once.
    const now = await machine.startProcess().ksp.userCertificates(true);
    assert.equal(now[0]!.container, pivContainerName(newGuid, KEY_REF.AUTHENTICATION));
    const my = await p.host.openCurrentUserMy();
    const stored = await my.find(first.linked[0]!.thumbprint);
    await my.close();
    assert.ok(stored);
    await assert.rejects(p.host.acquirePrivateKey(stored, ACQUIRE.COMPARE_KEY | ACQUIRE.SILENT | ACQUIRE.ONLY_NCRYPT_KEY), code('NTE_BAD_KEYSET'));
    const again = await linkCard(f.port, p.host);
    assert.equal(again.linked[0]!.action, 'updated');
    assert.equal(again.linked[0]!.container, pivContainerName(newGuid, KEY_REF.AUTHENTICATION));
  });

  it('no CHUID: the providers refuse the card (no identity), and propagation adds nothing', async () => {
    const { f, machine, scheduler } = await setup(null);
    const k = await f.gen(KEY_REF.AUTHENTICATION, ALG.ECC_P256);
    await f.install(KEY_REF.AUTHENTICATION, k);
    await assert.rejects(machine.startProcess().ksp.userCertificates(true), code('SCARD_E_CARD_UNSUPPORTED'));
    await scheduler.advance(10_000);
    assert.match(machine.certprop.runs.at(-1)?.skipped ?? '', /no CHUID/);
  });
});

describe('issue 16 acceptance (link half): blank PIV card, key in 9A, certificate from the test CA, link, acquire, verify', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  for (const [label, alg, provider, type] of [
    ['P-256', ALG.ECC_P256, MS_SMART_CARD_KSP, PROV_TYPE.CNG],
    ['RSA-2048', ALG.RSA_2048, MS_SCARD_PROV, PROV_TYPE.RSA_FULL],
  ] as const) {
    it(`${label}: link links 9A and CryptAcquireCertificatePrivateKey signs a challenge that verifies`, async () => {
      const f = await pivFixture();
      const publicKey = await f.gen(KEY_REF.AUTHENTICATION, alg);
      const der = await f.install(KEY_REF.AUTHENTICATION, publicKey, `CN=PIV ${label}`);
      const dir = tempDir('cardlink-piv-link-');
      dirs.push(dir);
      const machine = new WindowsMachine({ stateDir: dir, scheduler: new ManualScheduler() });
      try {
        machine.insert(f.port);
        const p = machine.startProcess(() => PIV_PIN);
        const report = await linkCard(f.port, p.host);
        assert.equal(report.cardId, hex(EXAMPLE_GUID));
        assert.equal(report.linked.length, 1);
        const l = report.linked[0]!;
        assert.deepEqual(l.keyProvInfo, { containerName: '1d8ac658-e065-92a0-85af-090b075fc105', providerName: provider, providerType: type, flags: 0, params: [], keySpec: AT_KEYEXCHANGE });
        assert.ok(l.proof.verified);

        // A new process acquires the key through the store entry, as an application would.
        const app = machine.startProcess(() => PIV_PIN);
        const my = await app.host.openCurrentUserMy();
        const stored = (await my.find(l.thumbprint))!;
        await my.close();
        assert.equal(Buffer.compare(Buffer.from(stored.encoded), Buffer.from(der)), 0);
        const key = await app.host.acquirePrivateKey(stored, ACQUIRE.COMPARE_KEY | (type === PROV_TYPE.CNG ? ACQUIRE.ONLY_NCRYPT_KEY : 0));
        const challenge = new Uint8Array(randomBytes(32));
        const signature = await key.signHash('SHA256', new Uint8Array(createHash('sha256').update(challenge).digest()));
        await key.release();
        const pub = alg === ALG.ECC_P256 ? { key: publicKey, dsaEncoding: 'ieee-p1363' as const } : publicKey;
        assert.ok(verify('sha256', challenge, pub, signature));
        assert.ok(!verify('sha256', new Uint8Array([...challenge, 1]), pub, signature));
      } finally {
        machine.shutdown();
      }
    });
  }
});
