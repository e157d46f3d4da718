/**
 * `cardlink card retire` through the real pcscd + vpcd (issue 13): the card handed back is left
 * without any container, key or certificate of its user, OpenSC sees no certificate, the service
 * has revoked its certificates, the workstation's store forgot them, and it enrolls again.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hex } from '../../src/bytes.js';
import { GidsCard } from '../../src/gids/emulator/index.js';
import { openCertStoreHost } from '../../src/windows/hosts.js';
import { TEST_ADMIN_KEY, TEST_PIN, tempDir } from '../helpers/card.js';
import { cli } from '../helpers/cli.js';
import { BACKENDS, login, makeToken, OPERATOR, startTestService, type TestService } from '../service/helpers.js';
import { SLOTS, insertCard, lockPcsc, runTool } from './harness.js';

const SLOT = SLOTS[0];
const NEW_PIN = '246810';

async function tool(command: string, args: string[]): Promise<string> {
  const r = await runTool(command, args, { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `${command} ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout + r.stderr;
}

describe('card retire through pcscd + vpcd', () => {
  let release: () => void = () => {};
  let t: TestService;
  before(async () => {
    release = await lockPcsc();
    t = await startTestService(BACKENDS[0]!);
  });
  after(async () => {
    await t.close();
    release();
  });

  it('revokes, wipes every container with its key and certificate, moves cardcf, unlinks; OpenSC sees no certificate; the card enrolls again', async () => {
    const dir = tempDir('cardlink-retire-');
    const caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, t.svc.caCertPem);
    const server = ['--server', t.svc.url, '--cacert', caFile];
    const store = ['--store', `model:${join(dir, 'store')}`];
    const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) };
    const op = await login(t.client);
    const inserted = await insertCard(GidsCard.blank(), SLOT);
    try {
      const init = await cli(['card', 'init', '--reader', SLOT.reader, '--json'], env);
      assert.equal(init.code, 0, init.stderr);
      const cardId = (JSON.parse(init.stdout) as { cardId: string }).cardId;
      const requests: string[] = [];
      for (const user of ['ann@example.com', 'ann@example.com']) {
        const token = await makeToken(t.client, op, user, 'smartcard-logon-auto');
        const e = await cli(['enroll', ...server, '--reader', SLOT.reader, '--json'], { ...env, CARDLINK_TOKEN: token });
        assert.equal(e.code, 0, e.stderr);
        requests.push((JSON.parse(e.stdout) as { requestId: string }).requestId);
      }
      const collected = await cli(['collect', ...server, ...store, '--reader', SLOT.reader, '--json'], env);
      assert.equal(collected.code, 0, collected.stderr);
      const linked = (JSON.parse(collected.stdout) as { items: { linked: boolean; thumbprint: string }[] }).items;
      assert.deepEqual(linked.map((i) => i.linked), [true, true]);
      const before = await tool('pkcs15-tool', ['-r', '0', '--dump']);
      assert.equal(before.match(/X\.509 Certificate \[/g)?.length, 2, before);
      const cardcfBefore = (JSON.parse((await cli(['card', 'info', '--reader', SLOT.reader, '--json'], env)).stdout) as { cardcf: { containersFreshness: number; filesFreshness: number } }).cardcf;

      const opEnv = { ...env, CARDLINK_OPERATOR_PASSWORD: OPERATOR.password, CARDLINK_NEW_PIN: NEW_PIN };
      const refused = await cli(['card', 'retire', ...server, ...store, '--card', cardId, '--reader', SLOT.reader], opEnv);
      assert.equal(refused.code, 2, 'no terminal and no --yes: nothing is done');
      assert.match(refused.stderr, /--yes/);
      const declined = await cli(['card', 'retire', ...server, ...store, '--card', cardId, '--reader', SLOT.reader, '--json'], opEnv, { confirm: async () => false });
      assert.equal(declined.code, 1);
      assert.equal((await t.client.request(op, requests[0]!)).value.state, 'delivered', 'declined: nothing revoked');

      const r = await cli(['card', 'retire', ...server, ...store, '--card', cardId, '--reader', SLOT.reader, '--yes', '--json'], opEnv);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { revoked: string[]; deletedContainers: string[]; unlinked: string[]; cardcf: { containersFreshness: number; filesFreshness: number } };
      assert.deepEqual([...out.revoked].sort(), [...requests].sort());
      assert.equal(out.deletedContainers.length, 2);
      assert.deepEqual([...out.unlinked].sort(), linked.map((i) => i.thumbprint.toUpperCase()).sort());
      assert.ok(out.cardcf.containersFreshness > cardcfBefore.containersFreshness && out.cardcf.filesFreshness > cardcfBefore.filesFreshness, 'cardcf moved');
      for (const id of requests) assert.equal((await t.client.request(op, id)).value.state, 'revoked');

      // The card: nothing of Ann's; clean; OpenSC lists no certificate and no key.
      const newEnv = { ...env, CARDLINK_PIN: NEW_PIN };
      const ls = JSON.parse((await cli(['card', 'ls', '--reader', SLOT.reader, '--json'], newEnv)).stdout) as { containers: unknown[] };
      assert.deepEqual(ls.containers, []);
      const check = await cli(['card', 'check', '--reader', SLOT.reader, '--json'], newEnv);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      const dump = await tool('pkcs15-tool', ['-r', '0', '--dump']);
      assert.match(dump, /PKCS#15 Card \[GIDS card\]/);
      assert.doesNotMatch(dump, /X\.509 Certificate/);
      assert.doesNotMatch(dump, /Private RSA Key/);

      // The store on this workstation forgot them.
      const s = await openCertStoreHost(`model:${join(dir, 'store')}`, async () => {
        throw new Error('the store check does not need the card');
      }, () => NEW_PIN);
      try {
        const my = await s.host.openCurrentUserMy();
        assert.deepEqual(await my.enumerate(), []);
        await my.close();
      } finally {
        await s.close();
      }

      // The next user enrolls and collects on the same card.
      const token = await makeToken(t.client, await login(t.client), 'bea@example.com', 'smartcard-logon-auto');
      const again = await cli(['enroll', ...server, '--reader', SLOT.reader, '--json'], { ...newEnv, CARDLINK_TOKEN: token });
      assert.equal(again.code, 0, again.stderr);
      const got = await cli(['collect', ...server, '--reader', SLOT.reader, '--json'], newEnv);
      assert.equal(got.code, 0, got.stderr);
      assert.deepEqual((JSON.parse(got.stdout) as { items: { action: string }[] }).items.map((i) => i.action), ['installed']);
    } finally {
      await inserted.eject();
    }
  });
});
