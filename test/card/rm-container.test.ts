import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { hex } from '../../src/bytes.js';
import { MemoryCardCache, MinidriverCard } from '../../src/card/index.js';
import { GidsCard } from '../../src/gids/emulator/index.js';
import { KEY_STATE_USED, parseKeyMap } from '../../src/minidriver/index.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { RecordingTransport } from '../../src/transport/recorder.js';
import { keyId } from '../../src/thumbprint.js';
import { TEST_ADMIN_KEY, TEST_PIN, gidsSession, initialisedCard, reopen, tempDir } from '../helpers/card.js';
import { cli } from '../helpers/cli.js';
import { issueOurs } from '../helpers/certs.js';

describe('MinidriverCard.deleteContainer (card rm-container)', () => {
  test('removes the record, the key map entry, the key and the certificate; counters move; check stays clean; the slot is reused', async () => {
    const t = await initialisedCard();
    await t.card.verifyPin(TEST_PIN);
    const a = await t.card.createContainer('a', { bits: 1024 });
    const b = await t.card.createContainer('b', { bits: 1024 });
    await t.card.createContainer('c', { bits: 1024, keySpec: 'sig' });
    await t.card.installCertificate(await issueOurs(b.publicKey, 0, 'CN=b'));
    await t.card.installCertificate(await issueOurs(a.publicKey, 0, 'CN=a'));
    const before = await t.card.cardcf();

    const removed = await t.card.deleteContainer('b');
    assert.deepEqual([removed.container.name, removed.container.index, removed.certificateFile], ['b', 1, 'mscp/kxc01']);

    // A fresh session with an empty cache sees what the card holds.
    const r = await reopen(t);
    assert.deepEqual((await r.card.containers()).map((c) => c.name), ['a', 'c']);
    assert.ok(!(await r.card.listFiles()).some((f) => f.path === 'mscp/kxc01'), 'the certificate file is gone');
    assert.deepEqual((await r.card.check()).findings, []);
    const after = await r.card.cardcf();
    assert.ok(after.filesFreshness > before.filesFreshness && after.containersFreshness > before.containersFreshness, 'both counters moved');
    const keymap = parseKeyMap((await gidsSession(r).getData(0xa000, 0xdf20))!);
    assert.notEqual(keymap[1]!.state, KEY_STATE_USED);
    assert.deepEqual([keymap[1]!.keyFid, keymap[0]!.state, keymap[2]!.state], [0xffff, KEY_STATE_USED, KEY_STATE_USED]);
    // The key itself is gone: the card refuses to read its public key.
    await assert.rejects(gidsSession(r).publicKey(b.keyRef));

    // The others kept their keys and certificates; a new container takes the freed slot.
    assert.equal(keyId(await r.card.publicKey('a')), keyId(a.publicKey));
    assert.ok(await r.card.readCertificate('a'));
    await r.card.verifyPin(TEST_PIN);
    const d = await r.card.createContainer('d', { bits: 1024 });
    assert.equal(d.index, 1);
    assert.deepEqual((await r.card.check()).findings, []);
  });

  test('deleting the default container makes the first remaining one the default; an unknown name is a typed error', async () => {
    const t = await initialisedCard();
    await t.card.verifyPin(TEST_PIN);
    await t.card.createContainer('first', { bits: 1024 });
    const second = await t.card.createContainer('second', { bits: 1024 });
    await t.card.installCertificate(await issueOurs(second.publicKey, 0, 'CN=second'));
    assert.equal((await t.card.container('first')).isDefault, true);
    await t.card.deleteContainer('first');
    assert.deepEqual((await t.card.containers()).map((c) => [c.name, c.isDefault]), [['second', true]]);
    assert.deepEqual((await t.card.check()).findings, []);
    await assert.rejects(t.card.deleteContainer('first'), { code: 'NO_CONTAINER' });
    await t.card.deleteContainer('second');
    assert.deepEqual(await t.card.containers(), []);
    assert.deepEqual((await t.card.check()).findings, []);
  });

  test('needs the PIN', async () => {
    const t = await initialisedCard();
    await t.card.verifyPin(TEST_PIN);
    await t.card.createContainer('x', { bits: 1024 });
    const r = await reopen(t);
    await assert.rejects(r.card.deleteContainer('x'));
    assert.deepEqual((await (await reopen(t)).card.containers()).map((c) => c.name), ['x']);
  });

  test('a card pulled at any APDU of the deletion: never a valid container without its key; after check --repair the card is clean, the other container intact, and the slot usable', async () => {
    const t = await initialisedCard();
    await t.card.verifyPin(TEST_PIN);
    const keep = await t.card.createContainer('keep-me', { bits: 1024 });
    const target = await t.card.createContainer('target', { bits: 1024 });
    const keepCert = await issueOurs(keep.publicKey, 0, 'CN=keep');
    await t.card.installCertificate(keepCert);
    await t.card.installCertificate(await issueOurs(target.publicKey, 0, 'CN=target'));
    const image = t.emulator.toImage();

    async function session(emulator: GidsCard, cache: MemoryCardCache) {
      emulator.reset();
      const transport = new RecordingTransport(new MemoryTransport(emulator));
      const card = await MinidriverCard.open(transport, { cache });
      await card.verifyPin(TEST_PIN);
      transport.clear();
      return { card, transport };
    }
    const probe = await session(GidsCard.fromImage(image), new MemoryCardCache());
    await probe.card.deleteContainer('target');
    const total = probe.transport.count;
    assert.ok(total >= 5, `deletion takes ${total} APDUs`);

    for (let k = 0; k < total; k++) {
      const emu = GidsCard.fromImage(image);
      const cache = new MemoryCardCache();
      const s = await session(emu, cache);
      s.transport.failAfter(k);
      await assert.rejects(s.card.deleteContainer('target'), { code: 'CARD_REMOVED' }, `k=${k}`);

      // Whatever the cut, a container still listed still has its key on the card (read with no cache).
      const fresh = await session(emu, new MemoryCardCache());
      for (const c of await fresh.card.containers()) await fresh.card.publicKey(c.name);
      const r = await session(emu, cache);
      await r.card.repair();
      assert.deepEqual((await r.card.check()).findings, [], `k=${k}: clean after repair`);
      assert.equal(hex((await r.card.readCertificate('keep-me'))!), hex(keepCert), `k=${k}: the other container keeps its certificate`);
      if ((await r.card.containers()).some((c) => c.name === 'target')) await r.card.deleteContainer('target');
      await r.card.createContainer('again', { bits: 1024 });
      assert.deepEqual((await r.card.containers()).map((c) => c.name).sort(), ['again', 'keep-me'], `k=${k}`);
      assert.deepEqual((await r.card.check()).findings, [], `k=${k}: clean after deleting and creating again`);
    }
  });
});

describe('cardlink card rm-container', () => {
  async function imageWith(names: string[]): Promise<{ image: string; env: Record<string, string> }> {
    const dir = tempDir();
    const image = join(dir, 'card.json');
    const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) };
    assert.equal((await cli(['card', 'init', '--image', image], env)).code, 0);
    for (const n of names) assert.equal((await cli(['card', 'gen', '--image', image, '--container', n, '--alg', 'rsa1024'], env)).code, 0);
    return { image, env };
  }
  const names = async (image: string, env: Record<string, string>): Promise<string[]> =>
    (JSON.parse((await cli(['card', 'ls', '--image', image, '--json'], env)).stdout) as { containers: { name: string }[] }).containers.map((c) => c.name);

  test('without a terminal it wants --yes; on a terminal it asks, and "no" deletes nothing', async () => {
    const { image, env } = await imageWith(['keep', 'old']);
    const refused = await cli(['card', 'rm-container', '--image', image, '--container', 'old'], env);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /add --yes to confirm/);
    const questions: string[] = [];
    const declined = await cli(['card', 'rm-container', '--image', image, '--container', 'old'], env, { confirm: async (q) => (questions.push(q), false) });
    assert.equal(declined.code, 1);
    assert.deepEqual(questions, ["Delete container 'old' (RSA-1024, AT_KEYEXCHANGE, no certificate) and its key? The key cannot be recovered."]);
    assert.deepEqual(await names(image, env), ['keep', 'old']);
  });

  test('confirmed (on the terminal or by --yes) it deletes, and card check is clean after', async () => {
    const { image, env } = await imageWith(['keep', 'old', 'older']);
    const asked = await cli(['card', 'rm-container', '--image', image, '--container', 'old'], env, { confirm: async () => true });
    assert.equal(asked.code, 0, asked.stderr);
    assert.equal(asked.stdout, "deleted container 1 'old' and its key\n");
    const yes = await cli(['card', 'rm-container', '--image', image, '--container', 'older', '--yes', '--json'], env);
    assert.equal(yes.code, 0, yes.stderr);
    assert.equal((JSON.parse(yes.stdout) as { deleted: boolean }).deleted, true);
    assert.deepEqual(await names(image, env), ['keep']);
    const check = await cli(['card', 'check', '--image', image], env);
    assert.equal(check.code, 0, check.stdout);
    const missing = await cli(['card', 'rm-container', '--image', image, '--container', 'old', '--yes'], env);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no container 'old' on the card/);
  });
});
