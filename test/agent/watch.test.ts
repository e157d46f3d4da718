import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { hex } from '../../src/bytes.js';
import { MinidriverCard, PinError } from '../../src/card/index.js';
import { backoffDelay, watch } from '../../src/agent/watch.js';
import type { CollectReport } from '../../src/agent/collect.js';
import { main } from '../../src/cli/main.js';
import { openCardImage } from '../../src/gids/emulator/index.js';
import { ServiceClientError } from '../../src/service/client.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { TEST_ADMIN_KEY, TEST_PIN } from '../helpers/card.js';
import { cli } from '../helpers/cli.js';
import { BACKENDS, startTestService, tempDir } from '../service/helpers.js';

const card = {} as MinidriverCard;
const nothing: CollectReport = { cardId: 'c', items: [], retryAfter: null };

describe('collect --watch, the loop', () => {
  test('the service being down is retried with a growing, bounded, jittered wait, and a success resets it', async () => {
    let clock = 0;
    const passesAt: number[] = [];
    const waits: Array<number | undefined> = [];
    const controller = new AbortController();
    const downUntil = 10 * 60_000;
    let failedAgain = false;
    await watch({
      signal: controller.signal,
      open: async () => ({ card, close: async () => undefined }),
      pass: async () => {
        passesAt.push(clock);
        if (clock < downUntil) throw new ServiceClientError('SERVICE_UNREACHABLE', 'cannot reach https://127.0.0.1:8443: connect ECONNREFUSED');
        if (clock >= 11 * 60_000 && !failedAgain) {
          failedAgain = true;
          throw new ServiceClientError('SERVICE_TIMEOUT', 'no answer');
        }
        return { ...nothing, retryAfter: 1 };
      },
      now: () => clock,
      random: () => 0.5,
      sleep: async (ms) => {
        clock += ms;
        if (clock > 12 * 60_000) controller.abort();
      },
      onReport: () => undefined,
      onError: (_err, retryInMs) => waits.push(retryInMs),
      onWrongPin: async () => assert.fail('no PIN was refused'),
    });
    // One card present throughout, polled every second: without backoff that is a pass a second.
    const down = passesAt.filter((t) => t < 10 * 60_000);
    assert.ok(down.length < 25, `${down.length} attempts in 10 minutes while the service was down`);
    assert.deepEqual(waits.slice(0, 8), [750, 1500, 3000, 6000, 12000, 24000, 45000, 45000]);
    for (let i = 1; i < down.length; i++) assert.ok(down[i]! - down[i - 1]! >= waits[i - 1]!, `attempt ${i} came before its wait was over`);
    // Back up: a pass succeeds within the bounded wait, and passes follow Retry-After again.
    const after = passesAt.filter((t) => t >= 10 * 60_000);
    assert.ok(after[0]! - 10 * 60_000 <= 45_000 + 1000);
    assert.ok(after.length > 10);
    // A later failure starts again from the first wait.
    assert.equal(waits.at(-1), 750);
  });

  test('the jitter stays within half to all of the bounded wait', () => {
    const o = { firstMs: 1000, maxMs: 60_000 };
    assert.equal(backoffDelay(1, o, () => 0), 500);
    assert.equal(backoffDelay(1, o, () => 0.999999), 1000);
    assert.equal(backoffDelay(40, o, () => 0), 30_000);
    assert.equal(backoffDelay(40, o, () => 0.999999), 60_000);
  });

  test('a wrong PIN is never tried again by the watch: it asks, and stops when told to', async () => {
    const controller = new AbortController();
    let passes = 0;
    let asked = 0;
    const end = await watch({
      signal: controller.signal,
      open: async () => ({ card, close: async () => undefined }),
      pass: async () => {
        passes++;
        throw new PinError('PIN_INCORRECT', 'wrong PIN, 2 tries left', 2);
      },
      sleep: async () => undefined,
      onReport: () => assert.fail('no report'),
      onError: (err) => assert.fail(String(err)),
      onWrongPin: async () => (asked++, 'stop'),
    });
    assert.equal(end.reason, 'pin');
    assert.deepEqual([passes, asked], [1, 1]);
  });
});

/** A card image with one container (so collect has a key to prove, and needs the PIN). */
async function cardWithContainer(dir: string): Promise<{ image: string; env: { CARDLINK_HOME: string } }> {
  const image = join(dir, 'card.json');
  const env = { CARDLINK_HOME: join(dir, 'home') };
  const keys = { ...env, CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) };
  assert.equal((await cli(['card', 'init', '--image', image], keys)).code, 0);
  assert.equal((await cli(['card', 'gen', '--image', image, '--container', 'lr-1', '--alg', 'rsa1024'], keys)).code, 0);
  return { image, env };
}

async function pinTriesLeft(image: string, home: string): Promise<{ triesLeft: number; tryLimit: number }> {
  const transport = new MemoryTransport(openCardImage(image, { home }));
  try {
    return await (await MinidriverCard.open(transport)).pinStatus();
  } finally {
    await transport.close();
  }
}

describe('collect --watch against the service, on an emulated card', () => {
  test('a wrong PIN from CARDLINK_PIN costs exactly one try, then the watch stops and says why', { timeout: 60_000 }, async () => {
    const t = await startTestService(BACKENDS[0]!);
    try {
      const dir = tempDir();
      const caFile = join(dir, 'ca.pem');
      writeFileSync(caFile, t.svc.caCertPem);
      const { image, env } = await cardWithContainer(dir);
      const before = await pinTriesLeft(image, env.CARDLINK_HOME);
      const r = await cli(['collect', '--watch', '--server', t.svc.url, '--cacert', caFile, '--image', image], { ...env, CARDLINK_PIN: '999999' });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /the PIN in CARDLINK_PIN was refused: stopped watching so the card is not blocked \(wrong PIN, \d tries? left\)/);
      const after = await pinTriesLeft(image, env.CARDLINK_HOME);
      assert.equal(after.triesLeft, before.triesLeft - 1);
    } finally {
      await t.close();
    }
  });

  test('on a terminal, a wrong PIN is asked for again; the new one collects; one try was spent and then restored', { timeout: 60_000 }, async () => {
    const t = await startTestService(BACKENDS[0]!);
    try {
      const dir = tempDir();
      const caFile = join(dir, 'ca.pem');
      writeFileSync(caFile, t.svc.caCertPem);
      const { image, env } = await cardWithContainer(dir);
      const answers = ['999999', TEST_PIN];
      const questions: string[] = [];
      const controller = new AbortController();
      let stdout = '';
      let stderr = '';
      const code = await main(['collect', '--watch', '--server', t.svc.url, '--cacert', caFile, '--image', image, '--json'], {
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
        stdout: (text) => {
          stdout += text;
          controller.abort(); // one report is enough
        },
        stderr: (text) => {
          stderr += text;
        },
        promptSecret: async (q) => {
          questions.push(q);
          const next = answers.shift();
          if (next === undefined) throw new Error('asked for a PIN a third time');
          return next;
        },
        signal: controller.signal,
      });
      assert.equal(code, 0, stderr);
      assert.deepEqual(questions, ['PIN: ', 'PIN (again): ']);
      assert.match(stderr, /wrong PIN, 2 tries left/);
      assert.deepEqual((JSON.parse(stdout) as CollectReport & { ok: boolean }).items, []);
      assert.equal((await pinTriesLeft(image, env.CARDLINK_HOME)).triesLeft, 3);
    } finally {
      await t.close();
    }
  });
});
