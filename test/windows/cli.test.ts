// `cardlink link` and `cardlink doctor` end to end on an emulated card image and a model store.
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { MY_STORE_PATH } from '../../src/windows/model/store.js';
import { TEST_ADMIN_KEY, TEST_PIN, tempDir } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';
import { cli } from '../helpers/cli.js';

const dir = tempDir('cardlink-wincli-');
const image = join(dir, 'card.img');
const model = join(dir, 'machine');
const env = { CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: Buffer.from(TEST_ADMIN_KEY).toString('hex'), CARDLINK_HOME: join(dir, 'home') };
const CONTAINER = 'cli-container';

describe('cardlink link / doctor', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('links an installed certificate, twice with the same result, and doctor is then happy', async () => {
    assert.equal((await cli(['card', 'init', '--image', image], env)).code, 0);
    const gen = await cli(['card', 'gen', '--image', image, '--container', CONTAINER, '--keyspec', 'sig', '--json'], env);
    assert.equal(gen.code, 0, gen.stderr);
    const der = await issueOurs(createPublicKey((JSON.parse(gen.stdout) as { publicKey: string }).publicKey), 0, 'CN=CLI User');
    writeFileSync(join(dir, 'user.der'), der);
    assert.equal((await cli(['card', 'install', join(dir, 'user.der'), '--image', image], env)).code, 0);

    const before = await cli(['doctor', '--image', image, '--store', `model:${model}`, '--json'], env);
    assert.equal(before.code, 1);
    const findings = (JSON.parse(before.stdout) as { findings: { code: string; error: { value: string }; fix: string }[] }).findings;
    assert.deepEqual(findings.map((f) => f.code), ['NO_STORE_ENTRY']);
    assert.equal(findings[0]!.error.value, '0x8009200B');
    assert.equal(findings[0]!.fix, `cardlink link --image ${image} --store model:${model}`);

    const first = await cli(['link', '--image', image, '--store', `model:${model}`, '--json'], env);
    assert.equal(first.code, 0, first.stderr);
    const report = JSON.parse(first.stdout) as { linked: { action: string; container: string; keyProvInfo: { providerName: string }; proof: { verified: boolean } }[] };
    assert.equal(report.linked.length, 1);
    assert.equal(report.linked[0]!.action, 'added');
    assert.equal(report.linked[0]!.container, CONTAINER);
    assert.equal(report.linked[0]!.keyProvInfo.providerName, 'Microsoft Base Smart Card Crypto Provider');
    assert.equal(report.linked[0]!.proof.verified, true);

    const second = await cli(['link', '--image', image, '--store', `model:${model}`], env);
    assert.equal(second.code, 0);
    assert.match(second.stdout, /^unchanged /);
    assert.match(second.stdout, /proof: signature by the card verified \(CryptoAPI\)/);

    const healthy = await cli(['doctor', '--image', image, '--store', `model:${model}`], env);
    assert.equal(healthy.code, 0, healthy.stdout);
    assert.match(healthy.stdout, /1 certificate, all linked and usable/);
  });

  it('doctor explains a missing link in text, with the error and the fix', async () => {
    rmSync(join(model, ...MY_STORE_PATH), { recursive: true, force: true });
    const r = await cli(['doctor', '--image', image, '--store', `model:${model}`], env);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /NO_STORE_ENTRY \[cli-container\]/);
    assert.match(r.stdout, /causes CRYPT_E_NO_KEY_PROPERTY \(0x8009200B\)/);
    assert.match(r.stdout, /fix: cardlink link --image /);
  });

  it('refuses a bad or missing --store, and native off Windows', async () => {
    const none = await cli(['link', '--image', image], env);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--store model:DIR/);
    const bad = await cli(['doctor', '--image', image, '--store', 'registry'], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /'native' or 'model:DIR'/);
    const native = await cli(['link', '--image', image, '--store', 'native', '--json'], env);
    assert.equal(native.code, 2);
    assert.equal((JSON.parse(native.stdout) as { error: { code: string } }).error.code, 'NATIVE_UNAVAILABLE');
    assert.equal((await cli(['link', '--image', image, '--store', `model:${model}`, '--ksp', '--csp'], env)).code, 2);
  });
});
