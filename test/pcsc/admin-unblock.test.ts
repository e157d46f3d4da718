/**
 * Issue 14 through a real reader: the emulator in a vpcd slot behind pcscd. The challenge/response
 * unblock as cardlink does it, and the card-side exchange OpenSC has: gids-tool knows only GIDS
 * mutual authentication (`--unblock`, `--change-admin-key`), not the external-authentication
 * challenge; so OpenSC is checked on what it supports — it unblocks and re-keys a card that
 * cardlink gave its own key, and cardlink's challenge/response works with the key gids-tool set.
 */
import assert from 'node:assert/strict';
import { createVerify } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminChallengeResponse } from '../../src/admin-challenge.js';
import { main } from '../../src/cli/main.js';
import { ServiceClient } from '../../src/service/client.js';
import { startService } from '../../src/service/index.js';
import { cli } from '../helpers/cli.js';
import { CA_PASSPHRASE, OPERATOR, login, makeToken, tempDir } from '../service/helpers.js';
import { hex } from '../../src/bytes.js';
import { MemoryCardCache, MinidriverCard } from '../../src/card/index.js';
import { GidsCard } from '../../src/gids/emulator/index.js';
import { openPcscTransport } from '../../src/transport/pcsc.js';
import type { Transport } from '../../src/transport/transport.js';
import { TEST_ADMIN_KEY, TEST_PIN } from '../helpers/card.js';
import { SLOTS, insertCard, lockPcsc, runTool, type InsertedCard } from './harness.js';

const SLOT = SLOTS[0];
const CARD_KEY = Buffer.from('8a1f3c5e7d9b2a4c6e8f0b1d3f5a7c9e2b4d6f8a0c1e3a5c', 'hex');
const GIDS_TOOL_KEY = Buffer.from('5f4e3d2c1b0a99887766554433221100aabbccddeeff0011', 'hex');

describe('PIN unblock by challenge/response through pcscd + vpcd, and OpenSC gids-tool on the re-keyed card', () => {
  let release: () => void = () => {};
  let inserted: InsertedCard | undefined;
  let transport: Transport | undefined;
  const connect = async (): Promise<MinidriverCard> => {
    await transport?.close();
    transport = await openPcscTransport({ reader: SLOT.reader });
    return MinidriverCard.open(transport, { cache: new MemoryCardCache() });
  };
  /** gids-tool needs the reader: our connection is exclusive. */
  const disconnect = async (): Promise<void> => {
    await transport?.close();
    transport = undefined;
  };
  const block = async (card: MinidriverCard): Promise<void> => {
    for (let i = 0; i < 3; i++) await assert.rejects(card.verifyPin('999999'));
    assert.equal((await card.pinStatus()).triesLeft, 0);
  };

  before(async () => {
    release = await lockPcsc();
    inserted = await insertCard(GidsCard.blank(), SLOT);
  });
  after(async () => {
    await transport?.close();
    await inserted?.eject();
    release();
  });

  it('re-key from the transport key, block, challenge, response, new PIN: the key still signs', async () => {
    transport = await openPcscTransport({ reader: SLOT.reader });
    const init = await MinidriverCard.initialize(transport, { pin: TEST_PIN, adminKey: TEST_ADMIN_KEY });
    await init.changeAdminKey(TEST_ADMIN_KEY, CARD_KEY);
    await init.verifyPin(TEST_PIN);
    const created = await init.createContainer('c1', { bits: 1024 });
    const card = await connect();
    await block(card);
    const challenge = await card.adminChallenge();
    // Another card's key is refused, and the challenge is spent.
    await assert.rejects(card.unblockPinWithResponse(adminChallengeResponse(TEST_ADMIN_KEY, challenge), '555555'), { code: 'ADMIN_RESPONSE_REFUSED' });
    await assert.rejects(card.unblockPinWithResponse(adminChallengeResponse(CARD_KEY, challenge), '555555'), { code: 'ADMIN_CHALLENGE_USED' });
    const fresh = await card.adminChallenge();
    await card.unblockPinWithResponse(adminChallengeResponse(CARD_KEY, fresh), '555555');
    const again = await connect();
    assert.deepEqual(await again.pinStatus(), { triesLeft: 3, tryLimit: 3 });
    await again.verifyPin('555555');
    const data = Buffer.from('through a reader');
    assert.ok(createVerify('sha256').update(data).verify(created.publicKey, await again.sign('c1', data)));
  });

  it("gids-tool --unblock with the card's own key, and --change-admin-key; cardlink's challenge/response with the key gids-tool set", async () => {
    const card = await connect();
    await block(card);
    await disconnect();
    const unblock = await runTool('gids-tool', ['-r', '0', '--unblock', '--admin-key', hex(CARD_KEY), '--pin', '246802'], { timeoutMs: 60_000 });
    assert.equal(unblock.code, 0, unblock.stdout + unblock.stderr);
    const after1 = await connect();
    await after1.verifyPin('246802');
    await disconnect();
    const change = await runTool('gids-tool', ['-r', '0', '--change-admin-key', '--admin-key', hex(CARD_KEY), '--new-admin-key', hex(GIDS_TOOL_KEY)], { timeoutMs: 60_000 });
    assert.equal(change.code, 0, change.stdout + change.stderr);
    const c = await connect();
    assert.equal(await c.adminKeyWorks(CARD_KEY), false);
    await block(c);
    await c.unblockPinWithResponse(adminChallengeResponse(GIDS_TOOL_KEY, await c.adminChallenge()), '135799');
    await c.verifyPin('135799');
  });

  it('the whole help-desk unblock through the reader: enroll hands the card to the service, card unblock --challenge + admin unblock-response', async () => {
    await disconnect();
    const dir = tempDir('cardlink-pcsc-unblock-');
    const svc = await startService({ dataDir: join(dir, 'data'), port: 0, passphrase: CA_PASSPHRASE, operator: OPERATOR, sweepIntervalMs: 0 });
    const client = new ServiceClient({ server: svc.url, ca: svc.caCertPem });
    try {
      const caFile = join(dir, 'ca.pem');
      writeFileSync(caFile, svc.caCertPem);
      const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: '135799' };
      const server = ['--server', svc.url, '--cacert', caFile];
      const op = await login(client);
      const token = await makeToken(client, op, 'alice@example.com', 'smartcard-logon-auto');
      // The card still has the key gids-tool set: given once, enrollment replaces it with the card's own.
      const enrolled = await cli(['enroll', ...server, '--reader', SLOT.reader, '--bits', '2048', '--json'], { ...env, CARDLINK_TOKEN: token, CARDLINK_ADMIN_KEY: hex(GIDS_TOOL_KEY) });
      assert.equal(enrolled.code, 0, enrolled.stderr);
      assert.deepEqual((JSON.parse(enrolled.stdout) as { adminKey: unknown }).adminKey, { managed: true, keyVersion: 1, changed: true });
      for (let i = 0; i < 3; i++) assert.equal((await cli(['card', 'pin', 'verify', '--reader', SLOT.reader], { ...env, CARDLINK_PIN: '000000' })).code, 2);

      let stdout = '';
      let stderr = '';
      const code = await main(['card', 'unblock', '--challenge', '--reader', SLOT.reader], {
        stdout: (t) => (stdout += t),
        stderr: (t) => (stderr += t),
        env: { PATH: process.env.PATH ?? '', ...env, CARDLINK_NEW_PIN: '864209' },
        promptSecret: async () => {
          const cardId = /card\s+([0-9A-F]{32})/.exec(stdout)![1]!;
          const challenge = /challenge ([0-9A-F ]{19})\n/.exec(stdout)![1]!;
          const r = await cli(['admin', 'unblock-response', ...server, '--card', cardId, '--challenge', challenge, '--json'], { ...env, CARDLINK_OPERATOR_PASSWORD: OPERATOR.password });
          assert.equal(r.code, 0, r.stderr);
          return (JSON.parse(r.stdout) as { response: string }).response;
        },
      });
      assert.equal(code, 0, stderr);
      assert.match(stdout, /PIN unblocked and set: 3 of 3 tries left/);
      assert.equal((await cli(['card', 'pin', 'verify', '--reader', SLOT.reader], { ...env, CARDLINK_PIN: '864209' })).code, 0);
      // OpenSC with the old key gids-tool set: refused now, the card has its own.
      const old = await runTool('gids-tool', ['-r', '0', '--unblock', '--admin-key', hex(GIDS_TOOL_KEY), '--pin', '111111'], { timeoutMs: 60_000 });
      assert.notEqual(old.code, 0);
    } finally {
      client.close();
      await svc.close();
    }
  });
});
