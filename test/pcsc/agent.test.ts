/**
 * The always-on agent through the real pcscd + vpcd (issue 17's acceptance): reacting to insertion
 * events without holding the card in between, staying out of another program's way, surviving a
 * pcscd restart, and finishing a collection by itself once the service comes back.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { AgentLogEntry, PassRecord } from '../../src/agent/daemon.js';
import { storeLinker } from '../../src/agent/store-link.js';
import { cardConnector } from '../../src/cli/target.js';
import { GidsCard } from '../../src/gids/emulator/index.js';
import { ServiceClient } from '../../src/service/client.js';
import { startService } from '../../src/service/index.js';
import { listPcscReaders, openPcscTransport, waitForPcscCard } from '../../src/transport/pcsc.js';
import { TEST_ADMIN_KEY, TEST_PIN } from '../helpers/card.js';
import { MinidriverCard } from '../../src/card/index.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { cardWithWaitingCertificates, passOn, startAgent } from '../agent/fixture.js';
import { BACKENDS, CA_PASSPHRASE, OPERATOR, login, startTestService, tempDir, type TestService } from '../service/helpers.js';
import { SLOTS, STATE_DIR, insertCard, lockPcsc, runTool } from './harness.js';

const SLOT = SLOTS[0];

async function blankInitialised(): Promise<GidsCard> {
  const emulator = GidsCard.blank();
  const t = new MemoryTransport(emulator);
  await MinidriverCard.initialize(t, { pin: TEST_PIN, adminKey: TEST_ADMIN_KEY });
  await t.close();
  emulator.reset();
  return emulator;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts the shared pcscd again when it is not running (after the restart test, whatever happened). */
function startPcscd(): void {
  const pid = Number(readFileSync(join(STATE_DIR, 'pcscd.pid'), 'utf8').trim());
  if (alive(pid)) return;
  const started = spawnSync('bash', ['scripts/pcsc-up.sh'], { env: { ...process.env, PCSC_STATE_DIR: STATE_DIR }, encoding: 'utf8' });
  assert.equal(started.status, 0, started.stderr);
}

function passOf(e: AgentLogEntry): PassRecord {
  assert.equal(e.event, 'pass');
  return (e as Extract<AgentLogEntry, { event: 'pass' }>).pass;
}

describe('the agent as a service, through pcscd + vpcd', () => {
  let release: () => void = () => {};
  let t: TestService;
  before(async () => {
    release = await lockPcsc();
    t = await startTestService(BACKENDS[0]!, { retryAfterSeconds: 1 });
  });
  after(async () => {
    await t.close();
    release();
  });

  test('insertion: 3 waiting certificates installed, linked and proven; between passes the agent holds no connection', async () => {
    const dir = tempDir('cardlink-agent-');
    const a = startAgent(t.client, dir);
    try {
      // A card with nothing waiting: one pass, then the agent only waits on reader events.
      const idle = await insertCard(await blankInitialised(), SLOT);
      const first = passOf(await a.next((e) => e.event === 'pass' && e.pass.reader === SLOT.reader));
      assert.equal(first.ok, true, JSON.stringify(first.error));
      assert.deepEqual(first.report?.items, []);
      // Waiting costs nothing: a second of it takes a small share of one core (a polling or spinning
      // watch would take most of it).
      const cpu0 = process.cpuUsage();
      await new Promise((r) => setTimeout(r, 1000));
      const cpu = process.cpuUsage(cpu0);
      assert.ok(cpu.user + cpu.system < 200_000, `idle agent used ${(cpu.user + cpu.system) / 1000} ms of CPU in 1 s`);
      const [reader] = (await listPcscReaders()).filter((r) => r.name === SLOT.reader);
      assert.equal(reader?.inUse, false, 'pcscd shows nobody connected to the card while the agent waits');
      // Another program takes the card exclusively, without waiting: it would fail were the agent holding it.
      const other = await openPcscTransport({ reader: SLOT.reader, share: 'exclusive', busyTimeoutMs: 0 });
      await other.close();
      await idle.eject();

      const card = await cardWithWaitingCertificates(t.client, 3);
      const done = a.next(passOn(card.cardId));
      const start = Date.now();
      const inserted = await insertCard(card.emulator, SLOT);
      const pass = passOf(await done);
      const ms = Date.now() - start;
      assert.equal(pass.ok, true, JSON.stringify(pass.error));
      assert.equal(pass.kind, 'cold');
      assert.deepEqual(
        pass.report!.items.map((i) => [i.id, i.container, i.action, i.linked, i.reported, i.state]).sort(),
        card.requests.map((r) => [r.id, r.container, 'installed', true, true, 'delivered']).sort(),
      );
      // The model store holds all three, tied to their containers (checked by a fresh look at the store).
      const expected = pass.report!.items.map((i) => ({ container: i.container, thumbprint: i.thumbprint! }));
      assert.equal(await storeLinker(`model:${join(dir, 'store')}`, () => TEST_PIN, (reader) => cardConnector({ reader }, process.env)).holds(card.cardId, expected), true);
      assert.ok(ms < 10_000, `insertion to linked took ${ms} ms`);

      // Pulled and put back unchanged: the warm path, nothing asked of the service, nothing re-linked.
      inserted.attachment.remove();
      await waitForPcscCard(SLOT.reader, 'empty', { timeoutMs: 10_000 });
      const apdusBefore = inserted.attachment.counters.apdus;
      const warmDone = a.next(passOn(card.cardId));
      inserted.attachment.insert();
      const warm = passOf(await warmDone);
      assert.equal(warm.kind, 'warm');
      assert.equal(warm.report, undefined);
      // SELECT, then cardid and cardcf (each a READ BINARY, possibly chained): a handful, not a collection.
      const apdus = inserted.attachment.counters.apdus - apdusBefore;
      assert.ok(apdus <= 6, `warm pass sent ${apdus} APDUs`);
      await inserted.eject();
    } finally {
      await a.stop();
    }
  });

  test('another program signing in a loop for 10 s never fails because of the agent; the agent waits its turn', async () => {
    const dir = tempDir('cardlink-agent-');
    const card = await cardWithWaitingCertificates(t.client, 1, { approve: false });
    const a = startAgent(t.client, dir, { busyBackoff: { firstMs: 100, maxMs: 1000 } });
    try {
      const first = a.next(passOn(card.cardId));
      const inserted = await insertCard(card.emulator, SLOT);
      const waiting = passOf(await first);
      // Pending approval: the service asks again in 1 s, so the agent keeps wanting the card.
      assert.deepEqual(waiting.report?.items.map((i) => i.action), ['waiting']);
      const signer = runTool(process.execPath, ['--import', 'tsx', 'test/pcsc/signer.ts', SLOT.reader, card.requests[0]!.container, '10'], { timeoutMs: 60_000 });
      const busy = await a.next((e) => e.event === 'card-busy', 15_000);
      assert.equal(busy.event, 'card-busy');
      const r = await signer;
      assert.equal(r.code, 0, r.stderr);
      const result = JSON.parse(r.stdout) as { ok: number; failed: number; errors: string[] };
      assert.equal(result.failed, 0, `signer errors: ${result.errors.join('; ')}`);
      assert.ok(result.ok > 20, `only ${result.ok} signatures in 10 s`);
      // Once the other program is gone and the request approved, the agent collects without a new insertion.
      const collected = a.next((e) => e.event === 'pass' && e.pass.cardId === card.cardId && e.pass.report?.items[0]?.action === 'installed', 15_000);
      await t.client.approve(await login(t.client), card.requests[0]!.id);
      assert.equal(passOf(await collected).report!.items[0]!.linked, true);
      await inserted.eject();
    } finally {
      await a.stop();
    }
  });

  test('pcscd killed and restarted while the agent runs: the next insertion is handled', async () => {
    const dir = tempDir('cardlink-agent-');
    const a = startAgent(t.client, dir);
    try {
      await a.next((e) => e.event === 'service-up');
      const pid = Number(readFileSync(join(STATE_DIR, 'pcscd.pid'), 'utf8').trim());
      const down = a.next((e) => e.event === 'service-down');
      process.kill(pid, 'SIGKILL');
      await down;
      for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
      const up = a.next((e) => e.event === 'service-up');
      startPcscd();
      await up;
      const card = await cardWithWaitingCertificates(t.client, 1);
      const done = a.next(passOn(card.cardId));
      const inserted = await insertCard(card.emulator, SLOT);
      const pass = passOf(await done);
      assert.deepEqual(pass.report?.items.map((i) => [i.action, i.linked]), [['installed', true]]);
      await inserted.eject();
    } finally {
      await a.stop();
      startPcscd();
    }
  });

  test('the service is down at insertion and comes back: collected within the backoff bound, no new insertion', async () => {
    const dir = tempDir('cardlink-agent-');
    const svc = await startTestService(BACKENDS[0]!);
    const card = await cardWithWaitingCertificates(svc.client, 1);
    const url = svc.svc.url;
    const port = Number(new URL(url).port);
    const client = new ServiceClient({ server: url, ca: svc.svc.caCertPem, timeoutMs: 2000 });
    await svc.svc.close();
    const maxMs = 2000;
    const a = startAgent(client, dir, { backoff: { firstMs: 250, maxMs } });
    let restarted: Awaited<ReturnType<typeof startService>> | undefined;
    try {
      const failed = a.next(passOn(card.cardId));
      const inserted = await insertCard(card.emulator, SLOT);
      const f = passOf(await failed);
      assert.equal(f.ok, false);
      assert.equal(f.error?.code, 'SERVICE_UNREACHABLE');
      assert.ok(f.nextAt !== null, 'a retry is scheduled');
      // Let it fail a few times, then bring the service back on the same address and data.
      await a.next((e) => e.event === 'pass' && e.pass.cardId === card.cardId && e.pass.error?.code === 'SERVICE_UNREACHABLE');
      const collected = a.next((e) => e.event === 'pass' && e.pass.cardId === card.cardId && e.pass.ok, 15_000);
      restarted = await startService({ dataDir: svc.dataDir, port, passphrase: CA_PASSPHRASE, operator: OPERATOR, sweepIntervalMs: 0 });
      const back = Date.now();
      const ok = passOf(await collected);
      const waited = Date.now() - back;
      assert.deepEqual(ok.report?.items.map((i) => [i.action, i.linked, i.reported]), [['installed', true, true]]);
      assert.ok(waited < maxMs + 3000, `collected ${waited} ms after the service came back (backoff bound ${maxMs} ms)`);
      await inserted.eject();
    } finally {
      await a.stop();
      client.close();
      await restarted?.close();
      await svc.close().catch(() => undefined);
    }
  });
});
