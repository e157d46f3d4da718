/**
 * Pulling the card out of the reader in the middle of a command, through the real pcscd + vpcd:
 * the command fails at once with a clear "card removed" error (never a hang), and once the card is
 * back the next command works with nothing restarted.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hex } from '../../src/bytes.js';
import { GidsCard } from '../../src/gids/emulator/index.js';
import { waitForPcscCard } from '../../src/transport/pcsc.js';
import type { VpcdCard } from '../../src/vpcd/attach.js';
import { TEST_ADMIN_KEY, TEST_PIN, tempDir } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';
import { cli } from '../helpers/cli.js';
import { SLOTS, insertCard, lockPcsc, type InsertedCard } from './harness.js';
import { createPublicKey } from 'node:crypto';

const SLOT = SLOTS[0];

/** The emulator behind a hand that can pull it out of the reader just before its k-th next APDU. */
function pullable(card: GidsCard): VpcdCard & { pullBefore(k: number, pull: () => void): void; seen: number } {
  let left = Infinity;
  let pull: () => void = () => {};
  const wrapped = {
    atr: card.atr,
    seen: 0,
    reset: () => card.reset(),
    process(apdu: Uint8Array): Uint8Array {
      wrapped.seen++;
      if (--left === 0) {
        // Power is gone before the card could act: this APDU never executes or answers.
        pull();
        return new Uint8Array([0x6f, 0x00]);
      }
      return card.process(apdu);
    },
    pullBefore(k: number, fn: () => void): void {
      left = k;
      pull = fn;
    },
  };
  return wrapped;
}

describe('card removed mid-command, through pcscd + vpcd', () => {
  let release: () => void = () => {};
  let inserted: InsertedCard;
  let card: ReturnType<typeof pullable>;
  const dir = tempDir('cardlink-removal-');
  const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) };
  const args = ['--reader', SLOT.reader];

  before(async () => {
    release = await lockPcsc();
    card = pullable(GidsCard.blank());
    inserted = await insertCard(card, SLOT);
    const init = await cli(['card', 'init', ...args], env);
    assert.equal(init.code, 0, init.stderr);
  });
  after(async () => {
    await inserted.eject();
    release();
  });

  async function pulledDuring(argv: string[], k: number): Promise<void> {
    card.pullBefore(k, () => inserted.attachment.remove());
    const start = Date.now();
    const r = await cli(argv, env);
    const ms = Date.now() - start;
    assert.equal(r.code, 2, `${argv.join(' ')} with the card pulled before APDU ${k}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /card was removed from reader 'Virtual PCD 00 00' during the operation: put it back and run the command again/);
    assert.ok(ms < 10_000, `failed after ${ms} ms`);
    inserted.attachment.insert();
    await waitForPcscCard(SLOT.reader, 'present', { timeoutMs: 10_000 });
  }

  it('key generation: pulled at several points, each gives CARD_REMOVED; the next card gen and card ls work', async () => {
    for (const k of [1, 4, 9]) {
      await pulledDuring(['card', 'gen', ...args, '--container', `cut-${k}`, '--alg', 'rsa1024', '--json'], k);
    }
    const gen = await cli(['card', 'gen', ...args, '--container', 'after-removals', '--alg', 'rsa1024', '--json'], env);
    assert.equal(gen.code, 0, gen.stderr);
    const ls = await cli(['card', 'ls', ...args, '--json'], env);
    assert.equal(ls.code, 0, ls.stderr);
    assert.ok((JSON.parse(ls.stdout).containers as { name: string }[]).some((c) => c.name === 'after-removals'));
  });

  it('certificate install: pulled part-way, then installed on the next try without restarting anything', async () => {
    const gen = await cli(['card', 'gen', ...args, '--container', 'with-cert', '--alg', 'rsa1024', '--json'], env);
    assert.equal(gen.code, 0, gen.stderr);
    const der = await issueOurs(createPublicKey(JSON.parse(gen.stdout).publicKey as string), 20);
    const certFile = join(dir, 'with-cert.der');
    writeFileSync(certFile, der);
    for (const k of [3, 8]) await pulledDuring(['card', 'install', certFile, ...args], k);
    const install = await cli(['card', 'install', certFile, ...args, '--json'], env);
    assert.equal(install.code, 0, install.stderr);
    const ls = await cli(['card', 'ls', ...args, '--json'], env);
    const entry = (JSON.parse(ls.stdout).containers as { name: string; certificateFile?: string }[]).find((c) => c.name === 'with-cert');
    assert.ok(entry?.certificateFile, 'the certificate is there after the retry');
  });

  it('a command started while the card is out says there is no GIDS or PIV card, and works once it is back', async () => {
    inserted.attachment.remove();
    await waitForPcscCard(SLOT.reader, 'empty', { timeoutMs: 10_000 });
    const named = await cli(['card', 'info', ...args], env);
    assert.equal(named.code, 2);
    assert.match(named.stderr, /no usable card in reader 'Virtual PCD 00 00'/);
    const any = await cli(['card', 'info'], env);
    assert.equal(any.code, 2);
    assert.match(any.stderr, /no reader holds a GIDS or PIV card; readers seen: 'Virtual PCD 00 00' \(no card\), 'Virtual PCD 00 01' \(no card\)/);
    inserted.attachment.insert();
    await waitForPcscCard(SLOT.reader, 'present', { timeoutMs: 10_000 });
    const info = await cli(['card', 'info'], env);
    assert.equal(info.code, 0, info.stderr);
  });
});
