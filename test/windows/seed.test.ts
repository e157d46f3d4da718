// The seed, reproduced on the model: key generated on the card, days pass, the certificate written
// with the seed's loader (mscp/kscNN compressed, cardcf untouched), then the seed's
// addCardCertToStore — and the same story done right with `card install` and `link`.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { seedLoad } from '../fixtures/seed-loader.js';
import { issueOurs } from '../helpers/certs.js';
import { TEST_PIN } from '../helpers/card.js';
import { ACQUIRE, AT_SIGNATURE, HRESULT, MS_SCARD_PROV } from '../../src/windows/constants.js';
import { WinError } from '../../src/windows/errors.js';
import { addCardCertToStore } from '../../src/windows/model/seed-tool.js';
import { bench, CONTAINER, type Bench } from './fixtures/machine.js';

const DAY = 86_400_000;

async function rejectsNoKeyProperty(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof WinError && err.hresult === HRESULT.CRYPT_E_NO_KEY_PROPERTY && err.hresult === 0x8009200b);
}

describe('the seed, reproduced (healing from My by SHA-1)', () => {
  let b: Bench;
  after(() => b?.cleanup());

  it('0x8009200B first, success after re-insertion, the certificate appearing on its own, failure again after deleting it', async () => {
    // Under the hypothesis that fits the seed: healing from the copy in My (hypotheses.ts). The
    // symptom × hypothesis table (hypotheses.test.ts) shows what the other sets reproduce.
    b = await bench({ propagation: { delayMs: 40_000 }, hypotheses: { healing: 'my-by-sha1' } });
    await b.scheduler.advance(60_000); // propagation of the first insertion: no certificate yet
    await b.scheduler.advance(3 * DAY); // the CA answers days later
    const der = await issueOurs(b.publicKey, 0, 'CN=Seed User');
    assert.equal(await seedLoad(b.admin.transport, CONTAINER, der), 'mscp/ksc00');
    const tool = () => addCardCertToStore(b.machine, { container: CONTAINER, pin: TEST_PIN });

    // First try: the context made from KP_CERTIFICATE has no KEY_PROV_INFO, and nothing in My to heal from.
    await rejectsNoKeyProperty(tool());

    // Re-insertion triggers propagation, asynchronously: re-running at once still fails.
    b.machine.reinsert();
    await b.scheduler.advance(10_000);
    await rejectsNoKeyProperty(tool());
    const host = b.machine.startProcess().host;
    const my = await host.openCurrentUserMy();
    assert.equal((await my.enumerate()).length, 0);

    // Later the certificate appears on its own, linked to the card by propagation...
    await b.scheduler.advance(30_000);
    const appeared = await my.enumerate();
    assert.equal(appeared.length, 1);
    const info = await host.getKeyProvInfo(appeared[0]!);
    assert.deepEqual(info, { containerName: CONTAINER, providerName: MS_SCARD_PROV, providerType: 1, flags: 0, params: [], keySpec: AT_SIGNATURE });
    // ...and the tool now succeeds.
    assert.equal((await tool()).thumbprint, appeared[0]!.thumbprint);

    // Deleting the entry makes the next attempt fail again.
    await my.delete(appeared[0]!);
    await rejectsNoKeyProperty(tool());
    // Healing can also be switched off: then even a propagated entry does not help a bare context.
    b.machine.reinsert();
    await b.scheduler.advance(40_000);
    const ctx = await host.createContext(der);
    await assert.rejects(host.acquirePrivateKey(ctx, ACQUIRE.NO_HEALING), (e: unknown) => e instanceof WinError && e.code === 'CRYPT_E_NO_KEY_PROPERTY');
    assert.equal((await host.acquirePrivateKey(ctx, 0)).keySpec, AT_SIGNATURE);
    await my.close();
  });
});
