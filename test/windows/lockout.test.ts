// No lock-out: the model's Base CSP and KSP open their own (shared) connection to the card per
// transaction, like on Windows, so a card cardlink holds exclusively makes them fail with
// SCARD_E_SHARING_VIOLATION; link and doctor read the card, release it, and only then call the
// providers. The PIN reaches the provider silently (CRYPT_SILENT + PP_*_PIN / NCRYPT_PIN_PROPERTY).
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { MinidriverCard, DiskCardCache } from '../../src/card/index.js';
import { cardConnector, openTransport } from '../../src/cli/target.js';
import { readCardFresh } from '../../src/windows/card-view.js';
import { HRESULT } from '../../src/windows/constants.js';
import { diagnose } from '../../src/windows/doctor.js';
import { WinError } from '../../src/windows/errors.js';
import { linkCard, linkView } from '../../src/windows/link.js';
import { ManualScheduler } from '../../src/windows/model/clock.js';
import { WindowsMachine } from '../../src/windows/model/machine.js';
import { TEST_ADMIN_KEY, TEST_PIN, tempDir } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';
import { cli } from '../helpers/cli.js';

const dir = tempDir('cardlink-lockout-');
const image = join(dir, 'card.img');
const env = { CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: Buffer.from(TEST_ADMIN_KEY).toString('hex'), CARDLINK_HOME: join(dir, 'home') };
const CONTAINER = 'lockout-container';

const sharing = (e: unknown) => e instanceof WinError && e.hresult === HRESULT.SCARD_E_SHARING_VIOLATION && e.hresult === 0x8010000b;

describe('no lock-out of the providers cardlink tests', () => {
  const machines: WindowsMachine[] = [];
  after(() => {
    machines.forEach((m) => m.shutdown());
    rmSync(dir, { recursive: true, force: true });
  });

  /** A model machine whose providers reach the image through connections of their own. */
  function machine(name: string): WindowsMachine {
    const m = new WindowsMachine({ stateDir: join(dir, name), scheduler: new ManualScheduler() });
    m.insert(cardConnector({ image }, env));
    machines.push(m);
    return m;
  }

  /** cardlink's own connection, exclusive, as every command opens it. */
  async function hold(): Promise<{ card: MinidriverCard; release(): Promise<void> }> {
    const transport = await openTransport({ image }, { env });
    const card = await MinidriverCard.open(transport, { cache: DiskCardCache.forUser(env) });
    return { card, release: () => transport.close() };
  }

  it('sets up a card with a linked-to-be certificate', async () => {
    assert.equal((await cli(['card', 'init', '--image', image], env)).code, 0);
    const gen = await cli(['card', 'gen', '--image', image, '--container', CONTAINER, '--keyspec', 'sig', '--json'], env);
    assert.equal(gen.code, 0, gen.stderr);
    const der = await issueOurs(createPublicKey((JSON.parse(gen.stdout) as { publicKey: string }).publicKey), 0, 'CN=Lockout User');
    writeFileSync(join(dir, 'user.der'), der);
    assert.equal((await cli(['card', 'install', join(dir, 'user.der'), '--image', image], env)).code, 0);
  });

  it("with cardlink holding the card exclusively, the model's CSP fails with SCARD_E_SHARING_VIOLATION", async () => {
    const m = machine('held');
    const held = await hold();
    try {
      // The old flow: reading and proving under one exclusive hold.
      await assert.rejects(linkCard(held.card.minidriver(), m.startProcess(() => TEST_PIN).host), sharing);
      // Every provider operation contends, the KSP's too, and propagation finds nothing to read.
      await assert.rejects(m.startProcess().ksp.userCertificates(true), sharing);
      // Doctor under the same hold sees its own acquisition fail for that reason, and says so.
      const r = await diagnose(held.card.minidriver(), m.startProcess().host, { target: `--image ${image}`, machine: m });
      const f = r.findings.find((x) => x.code === 'ACQUISITION_FAILED');
      assert.deepEqual(f?.observed, { name: 'SCARD_E_SHARING_VIOLATION', value: '0x8010000B' }, JSON.stringify(r.findings));
      assert.match(f.fix, /holds the card exclusively/);
    } finally {
      await held.release();
    }
  });

  it('the released flow passes: read the card, let it go, then link through the providers', async () => {
    const m = machine('released');
    const held = await hold();
    const view = await readCardFresh(held.card.minidriver());
    await held.release();
    // Nobody answers a PIN dialog: the PIN goes to the provider of a silent context.
    const report = await linkView(view, m.startProcess(() => undefined).host, { pin: TEST_PIN });
    assert.equal(report.linked.length, 1);
    assert.equal(report.linked[0]!.proof.verified, true);
    // Through CNG too: NCRYPT_PIN_PROPERTY on a silent key.
    const cng = await linkView(view, machine('ksp').startProcess(() => undefined).host, { pin: TEST_PIN, provider: 'ksp' });
    assert.equal(cng.linked[0]!.proof.api, 'CNG');
    // Without the PIN the same process would need a dialog nobody answers.
    const again = machine('no-pin');
    await assert.rejects(linkView(view, again.startProcess(() => undefined).host), (e: unknown) => e instanceof WinError && e.code === 'SCARD_W_CANCELLED_BY_USER');
  });

  it('cardlink link and doctor (which release the card) work against providers with their own connections', async () => {
    const store = `model:${join(dir, 'cli-machine')}`;
    const linked = await cli(['link', '--image', image, '--store', store, '--json'], env);
    assert.equal(linked.code, 0, linked.stderr);
    assert.equal((JSON.parse(linked.stdout) as { linked: { proof: { verified: boolean } }[] }).linked[0]!.proof.verified, true);
    const doctor = await cli(['doctor', '--image', image, '--store', store, '--json'], env);
    assert.equal(doctor.code, 0, doctor.stdout);
    const report = JSON.parse(doctor.stdout) as { certificates: { acquisition: { cached: { name: string }; uncached: { name: string }; proof: { name: string } } }[] };
    assert.deepEqual(report.certificates[0]!.acquisition, { cached: { name: 'S_OK', value: '0x00000000' }, uncached: { name: 'S_OK', value: '0x00000000' }, proof: { name: 'S_OK', value: '0x00000000' } });
  });

  it('an in-process card is shared like a PC/SC one: exclusive excludes everyone, shared excludes exclusive', async () => {
    const first = await openTransport({ image }, { env, share: 'shared' });
    const second = await openTransport({ image }, { env, share: 'shared' });
    await assert.rejects(openTransport({ image }, { env }), (e: unknown) => e instanceof Error && (e as { code?: string }).code === 'SHARING_VIOLATION');
    await first.close();
    await second.close();
    const exclusive = await openTransport({ image }, { env });
    await assert.rejects(openTransport({ image }, { env, share: 'shared' }), (e: unknown) => (e as { code?: string }).code === 'SHARING_VIOLATION');
    await exclusive.close();
    await (await openTransport({ image }, { env, share: 'shared' })).close();
  });
});
