/**
 * The always-on agent's decisions, driven by hand-made reader events over in-memory cards and a
 * real service: the warm path, waiting while another program holds the card, malformed service
 * answers, the lock against a second agent, and the service definitions it writes.
 * (Through the real pcscd + vpcd: test/pcsc/agent.test.ts.)
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent, type AgentLogEntry, type AgentOptions, type OpenedCard, type PassRecord } from '../../src/agent/daemon.js';
import { systemdUnit, windowsTaskXml } from '../../src/agent/install.js';
import { acquireAgentLock } from '../../src/agent/lock.js';
import { storeLinker } from '../../src/agent/store-link.js';
import { MemoryCardCache, MinidriverCard } from '../../src/card/index.js';
import type { GidsCard } from '../../src/gids/emulator/index.js';
import type { ServiceClient } from '../../src/service/client.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import type { PcscReaderEvent, PcscReaderInfo } from '../../src/transport/pcsc.js';
import { RecordingTransport } from '../../src/transport/recorder.js';
import { TransportError } from '../../src/transport/transport.js';
import type { CardConnector } from '../../src/windows/model/smartcard.js';
import { TEST_PIN } from '../helpers/card.js';
import { cli } from '../helpers/cli.js';
import { BACKENDS, login, startTestService, tempDir, type TestService } from '../service/helpers.js';
import { cardWithWaitingCertificates, passOn } from './fixture.js';

const READER = 'Test Reader 0';
const info = (inUse = false): PcscReaderInfo => ({ name: READER, card: 'present', inUse, exclusive: false, atr: undefined });

/**
 * The providers' own connection to an in-memory card, opened per transaction as Windows' Base CSP
 * and KSP do; `share` makes it take part in PC/SC-style sharing under the card's `name`.
 */
function connectTo(emulator: () => GidsCard, share?: { name: string }): () => CardConnector {
  return () => async () => {
    const t = share ? new MemoryTransport(emulator(), share.name, 'shared') : new MemoryTransport(emulator());
    try {
      const c = await MinidriverCard.open(t, { cache: new MemoryCardCache() });
      return { port: c.minidriver(), close: () => t.close() };
    } catch (err) {
      await t.close();
      throw err;
    }
  };
}

/** An agent whose reader events the test sends by hand, over an in-memory card. */
function harness(client: ServiceClient, dir: string, emulator: () => GidsCard, extra: Partial<AgentOptions> = {}, prepare: (t: RecordingTransport, index: number) => void = () => {}) {
  const logs: AgentLogEntry[] = [];
  const waiters: { match: (e: AgentLogEntry) => boolean; resolve: (e: AgentLogEntry) => void }[] = [];
  let send: (e: PcscReaderEvent) => void = () => {};
  const transports: RecordingTransport[] = [];
  const cache = new MemoryCardCache();
  const calls: string[] = [];
  const counted = new Proxy(client, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        calls.push(String(prop));
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  const agent = new Agent({
    watchReaders: (o) =>
      new Promise<void>((resolve) => {
        send = o.onEvent;
        o.onEvent({ type: 'service-up' });
        o.onEvent({ type: 'reader-attached', reader: { ...info(), card: 'empty' } });
        o.signal.addEventListener('abort', () => resolve(), { once: true });
      }),
    openCard: async (): Promise<OpenedCard> => {
      const e = emulator();
      e.reset();
      const t = new RecordingTransport(new MemoryTransport(e));
      prepare(t, transports.length);
      transports.push(t);
      return { card: await MinidriverCard.open(t, { cache }), close: () => t.close() };
    },
    client: counted,
    pin: TEST_PIN,
    linker: storeLinker(`model:${join(dir, 'store')}`, () => TEST_PIN, connectTo(emulator)),
    version: 'test',
    host: 'ws-unit',
    log: (e) => {
      logs.push(e);
      for (const w of [...waiters]) {
        if (!w.match(e)) continue;
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    },
    ...extra,
  });
  const ac = new AbortController();
  const done = agent.run(ac.signal);
  return {
    agent,
    logs,
    calls,
    transports,
    insert: () => send({ type: 'card-inserted', reader: info() }),
    remove: () => send({ type: 'card-removed', name: READER }),
    send: (e: PcscReaderEvent) => send(e),
    next(match: (e: AgentLogEntry) => boolean): Promise<AgentLogEntry> {
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no matching log entry; last: ${JSON.stringify(logs.slice(-3))}`)), 20_000);
        waiters.push({ match, resolve: (e) => (clearTimeout(t), resolve(e)) });
      });
    },
    async stop() {
      ac.abort();
      await done;
    },
  };
}

const passOf = (e: AgentLogEntry): PassRecord => (e as Extract<AgentLogEntry, { event: 'pass' }>).pass;

describe('the always-on agent', () => {
  let t: TestService;
  before(async () => {
    t = await startTestService(BACKENDS[0]!);
  });
  after(async () => {
    await t.close();
  });

  test("the card is released before linking: providers with their own (shared) connection prove every link, no sharing violation", async () => {
    const card = await cardWithWaitingCertificates(t.client, 2);
    const dir = tempDir('cardlink-agent-unit-');
    // The agent's connection is exclusive, as openCardForPass opens it; the model machine's CSP and
    // KSP open shared ones of their own, which fail with SCARD_E_SHARING_VIOLATION while it is held.
    const share = { name: `agent-release-${card.cardId}` };
    const h = harness(t.client, dir, () => card.emulator, {
      openCard: async (): Promise<OpenedCard> => {
        const tr = new MemoryTransport(card.emulator, share.name, 'exclusive');
        return { card: await MinidriverCard.open(tr, { cache: new MemoryCardCache() }), close: () => tr.close() };
      },
      linker: storeLinker(`model:${join(dir, 'store')}`, () => TEST_PIN, connectTo(() => card.emulator, share)),
    });
    try {
      const cold = h.next(passOn(card.cardId));
      h.insert();
      const c = passOf(await cold);
      assert.equal(c.ok, true, JSON.stringify(c.error));
      assert.deepEqual(c.report!.items.map((i) => [i.action, i.linked, i.reported]), [['installed', true, true], ['installed', true, true]]);
      const expected = c.report!.items.map((i) => ({ container: i.container, thumbprint: i.thumbprint! }));
      const linker = storeLinker(`model:${join(dir, 'store')}`, () => TEST_PIN, connectTo(() => card.emulator, share));
      assert.equal(await linker.holds(card.cardId, expected), true);

      // The re-link of the warm path too: the store lost its entries, the card is unchanged.
      const { openCertStoreHost } = await import('../../src/windows/hosts.js');
      const store = await openCertStoreHost(`model:${join(dir, 'store')}`, {} as never, () => TEST_PIN);
      const my = await store.host.openCurrentUserMy();
      for (const e of expected) await my.delete((await my.find(e.thumbprint))!);
      await my.close();
      await store.close();
      assert.equal(await linker.holds(card.cardId, expected), false);
      h.remove();
      const relinked = h.next(passOn(card.cardId));
      h.insert();
      const r = passOf(await relinked);
      assert.equal(r.kind, 'relinked', JSON.stringify(r.error));
      assert.equal(await linker.holds(card.cardId, expected), true);
    } finally {
      await h.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('warm path: an unchanged card costs the cardid and cardcf reads, no service call; a store that lost a link is re-linked', async () => {
    const card = await cardWithWaitingCertificates(t.client, 2);
    const dir = tempDir('cardlink-agent-unit-');
    const h = harness(t.client, dir, () => card.emulator);
    try {
      const cold = h.next(passOn(card.cardId));
      h.insert();
      const c = passOf(await cold);
      assert.equal(c.kind, 'cold');
      assert.deepEqual(c.report!.items.map((i) => [i.action, i.linked]), [['installed', true], ['installed', true]]);
      // The service saw this workstation's agent: its host name, version and last contact.
      const seen = (await t.client.workstations(await login(t.client))).find((w) => w.host === 'ws-unit');
      assert.equal(seen?.agentVersion, 'test');
      assert.ok(Date.now() - Date.parse(seen!.lastContact) < 60_000);
      assert.ok(card.requests.some((r) => r.id === seen!.lastRequest));
      h.remove();
      const callsBefore = h.calls.length;
      const warmDone = h.next(passOn(card.cardId));
      h.insert();
      const w = passOf(await warmDone);
      assert.equal(w.kind, 'warm');
      assert.equal(h.calls.length, callsBefore, `service calls on the warm path: ${h.calls.slice(callsBefore).join(', ')}`);
      // SELECT, cardid, cardcf: nothing else reached the card.
      const apdus = h.transports.at(-1)!.records.map((r) => Buffer.from(r.command.subarray(0, 2)).toString('hex'));
      assert.ok(apdus.length <= 4, `warm pass APDUs: ${apdus.join(' ')}`);

      // Someone deleted one entry from the store: the next insertion links it again.
      const expected = c.report!.items.map((i) => ({ container: i.container, thumbprint: i.thumbprint! }));
      const linker = storeLinker(`model:${join(dir, 'store')}`, () => TEST_PIN, connectTo(() => card.emulator));
      assert.equal(await linker.holds(card.cardId, expected), true);
      const { openCertStoreHost } = await import('../../src/windows/hosts.js');
      const store = await openCertStoreHost(`model:${join(dir, 'store')}`, {} as never, () => TEST_PIN);
      const my = await store.host.openCurrentUserMy();
      await my.delete((await my.find(expected[0]!.thumbprint))!);
      await my.close();
      await store.close();
      assert.equal(await linker.holds(card.cardId, expected), false);
      h.remove();
      const relinkDone = h.next(passOn(card.cardId));
      h.insert();
      assert.equal(passOf(await relinkDone).kind, 'relinked');
      assert.equal(await linker.holds(card.cardId, expected), true);
    } finally {
      await h.stop();
    }
  });

  test('a card another program holds: the agent waits and retries (no failure), and goes as soon as it is released', async () => {
    const card = await cardWithWaitingCertificates(t.client, 1);
    const dir = tempDir('cardlink-agent-unit-');
    let busy = 3;
    const base = harness(t.client, dir, () => card.emulator);
    await base.stop();
    const h = harness(t.client, dir, () => card.emulator, {
      busyBackoff: { firstMs: 20, maxMs: 50 },
    });
    // Wrap openCard: the first tries meet another program's connection.
    const open = (h.agent as unknown as { o: AgentOptions }).o.openCard;
    (h.agent as unknown as { o: AgentOptions }).o.openCard = async (reader) => {
      if (busy-- > 0) throw new TransportError('SHARING_VIOLATION', 'held by another program');
      return open(reader);
    };
    try {
      const done = h.next(passOn(card.cardId));
      h.insert();
      const p = passOf(await done);
      assert.equal(p.ok, true);
      assert.equal(h.logs.filter((e) => e.event === 'card-busy').length, 3);
      assert.equal(h.logs.filter((e) => e.event === 'pass').length, 1, 'a busy card is not a failed pass');
    } finally {
      await h.stop();
    }
  });

  test('a card pulled in the middle of a pass: no retry on its own, and the next insertion finishes the job', async () => {
    const card = await cardWithWaitingCertificates(t.client, 3);
    const dir = tempDir('cardlink-agent-unit-');
    // The first pass loses the card after 60 APDUs: past the proofs, among the installs.
    const h = harness(t.client, dir, () => card.emulator, {}, (tr, i) => i === 0 && tr.failAfter(60));
    try {
      const cut = h.next(passOn(card.cardId));
      h.insert();
      const first = passOf(await cut);
      assert.equal(first.ok, false);
      assert.equal(first.error?.code, 'CARD_REMOVED');
      assert.equal(first.nextAt, null, 'nothing to do until the card is back');
      const between = await MinidriverCard.open(new MemoryTransport(card.emulator));
      // What the pull left: some certificates complete, one possibly half-written (the loader's business).
      const left = await Promise.all(card.requests.map((r) => between.readCertificate(r.container).then((c) => (c ? 'complete' : 'none'), () => 'partial')));
      assert.ok(left.includes('complete') && left.filter((x) => x === 'complete').length < 3, `pulled half-way through the installs: ${left.join(', ')}`);
      card.emulator.reset();
      h.remove();
      const again = h.next(passOn(card.cardId));
      h.insert();
      const second = passOf(await again);
      assert.equal(second.ok, true, JSON.stringify(second.error));
      assert.deepEqual(second.report!.items.map((i) => [i.linked, i.reported, i.state]), [[true, true, 'delivered'], [true, true, 'delivered'], [true, true, 'delivered']]);
      const check = await MinidriverCard.open(new MemoryTransport(card.emulator));
      for (const r of card.requests) assert.ok(await check.readCertificate(r.container), `${r.container} has its certificate`);
    } finally {
      await h.stop();
    }
  });

  test('readers to watch: a card in a reader the configuration leaves out is never touched', async () => {
    const card = await cardWithWaitingCertificates(t.client, 1);
    const dir = tempDir('cardlink-agent-unit-');
    const h = harness(t.client, dir, () => card.emulator, { readers: ['Other Reader'] });
    const w = harness(t.client, dir, () => card.emulator, { readers: ['reader 0'] });
    try {
      const watched = w.next(passOn(card.cardId));
      h.insert();
      w.insert();
      // The one that watches 'Test Reader 0' (a case-insensitive part of the name) collects...
      assert.equal(passOf(await watched).ok, true);
      // ...while the other has not opened the card at all.
      assert.equal(h.transports.length, 0);
      assert.equal(h.logs.filter((e) => e.event === 'card-inserted' || e.event === 'pass').length, 0);
    } finally {
      await h.stop();
      await w.stop();
    }
  });

  test('a malformed answer from the service is logged and skipped: nothing is written to the card, a retry is scheduled', async () => {
    const card = await cardWithWaitingCertificates(t.client, 2);
    const dir = tempDir('cardlink-agent-unit-');
    const bad = new Proxy(t.client, {
      get(target, prop, receiver) {
        if (prop === 'collect') {
          return async (body: Parameters<ServiceClient['collect']>[0]) => {
            const got = await target.collect(body);
            // The second certificate arrives mangled.
            return got.map((r, i) => (i === 1 ? { ...r, certificate: '-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n' } : r));
          };
        }
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    const h = harness(bad, dir, () => card.emulator, { backoff: { firstMs: 60_000, maxMs: 60_000 } });
    try {
      const done = h.next(passOn(card.cardId));
      h.insert();
      const p = passOf(await done);
      assert.equal(p.ok, false);
      assert.equal(p.error?.code, 'SERVICE_BAD_ANSWER');
      assert.ok(p.nextAt !== null, 'tried again later');
      assert.equal(h.logs.find((e) => e.event === 'pass')?.level, 'error');
      const check = await MinidriverCard.open(new MemoryTransport(card.emulator));
      for (const r of card.requests) assert.equal(await check.readCertificate(r.container), undefined, `${r.container} untouched`);
    } finally {
      await h.stop();
    }
  });
});

describe('one agent at a time', () => {
  test('a second lock on the same state directory is refused while the first holder lives; a dead holder\'s lock is taken over', () => {
    const dir = tempDir('cardlink-agent-lock-');
    const path = join(dir, 'agent.lock');
    const first = acquireAgentLock(path);
    assert.throws(() => acquireAgentLock(path), (err: Error & { code?: string }) => err.code === 'AGENT_RUNNING' && err.message.includes(`pid ${process.pid}`));
    first.release();
    // A lock file left by a process that has exited.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeFileSync(path, `${dead.stdout}\n`);
    const taken = acquireAgentLock(path);
    assert.equal(readFileSync(path, 'utf8').trim(), String(process.pid));
    taken.release();
  });

  test('cardlink agent run: a second agent with the same configuration exits with AGENT_RUNNING', async () => {
    const dir = tempDir('cardlink-agent-run-');
    const config = join(dir, 'agent.json');
    writeFileSync(config, JSON.stringify({ server: 'https://127.0.0.1:9', stateDir: join(dir, 'state') }));
    const ac = new AbortController();
    const env = { CARDLINK_PIN: TEST_PIN, CARDLINK_HOME: join(dir, 'home') };
    const first = cli(['agent', 'run', '--config', config, '--json'], env, { signal: ac.signal });
    for (let i = 0; i < 100; i++) {
      try {
        readFileSync(join(dir, 'state', 'agent.lock'));
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    const second = await cli(['agent', 'run', '--config', config, '--json'], env);
    assert.notEqual(second.code, 0);
    assert.match(second.stderr, /another cardlink agent \(pid \d+\) already runs/);
    ac.abort();
    const r = await first;
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as AgentLogEntry);
    assert.equal(lines[0]!.event, 'started');
    assert.equal(lines.at(-1)!.event, 'stopped');
    assert.ok(!r.stdout.includes(TEST_PIN), 'the PIN never reaches the log');
    // What it left for `agent status`: who it was, that it no longer runs, what it saw.
    const status = await cli(['agent', 'status', '--config', config, '--json'], env);
    assert.equal(status.code, 0, status.stderr);
    const st = JSON.parse(status.stdout) as { running: boolean; pid: number; version: string; passes: unknown[] };
    assert.equal(st.running, true, 'this test process (the agent ran in it) still runs');
    assert.equal(st.pid, process.pid);
    assert.equal(st.version, (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version);
    assert.deepEqual(st.passes, []);
    const text = await cli(['agent', 'status', '--config', config], env);
    assert.match(text.stdout, /^agent \S+ on \S+, pid \d+ running since /);
    writeFileSync(config, JSON.stringify({ server: 'https://127.0.0.1:9', stateDir: join(dir, 'never-ran') }));
    const missing = await cli(['agent', 'status', '--config', config], env);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /no agent status in .*never-ran.*has the agent run with this configuration/);
  });
});

describe('agent configuration and service definitions', () => {
  test('config check: a good file passes; a bad one lists every problem, exit 1, --json for scripts', async () => {
    const dir = tempDir('cardlink-agent-cfg-');
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ server: 'https://cardlink.example', store: `model:${dir}`, readers: ['Virtual PCD'], schedule: { recheckHours: 12 } }));
    const ok = await cli(['agent', 'config', 'check', '--config', good]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /OK \(service https:\/\/cardlink\.example, store model:/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ server: 'http://plain.example', caFile: join(dir, 'missing.pem'), readers: 'all', schedule: { backoffFirstSeconds: -1, every: 3 }, pin: '1234' }));
    const r = await cli(['agent', 'config', 'check', '--config', bad, '--json']);
    assert.equal(r.code, 1);
    const out = JSON.parse(r.stdout) as { ok: boolean; problems: { field: string }[] };
    assert.equal(out.ok, false);
    assert.deepEqual(out.problems.map((p) => p.field).sort(), ['caFile', 'pin', 'readers', 'schedule.backoffFirstSeconds', 'schedule.every', 'server'].sort());
    rmSync(good);
    const missing = await cli(['agent', 'config', 'check', '--config', good]);
    assert.equal(missing.code, 1);
    assert.match(missing.stdout, /cannot be read/);
  });

  test('install --systemd writes a hardened unit that systemd-analyze verify accepts', async () => {
    const dir = tempDir('cardlink-agent-unit-');
    const out = join(dir, 'cardlink-agent.service');
    const r = await cli(['agent', 'install', '--systemd', '--config', join(dir, 'agent.json'), '--output', out, '--pin-credential', join(dir, 'pin')]);
    assert.equal(r.code, 0, r.stderr);
    const unit = readFileSync(out, 'utf8');
    for (const directive of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'StateDirectory=cardlink-agent', 'PrivateTmp=yes', `LoadCredential=cardlink-pin:${join(dir, 'pin')}`]) assert.ok(unit.includes(`\n${directive}\n`), directive);
    assert.match(unit, /\nExecStart=\/\S+ \/\S+\/bin\/cardlink agent run --config \S+agent\.json --json\n/);
    const verify = spawnSync('systemd-analyze', ['verify', out], { encoding: 'utf8' });
    // Only warnings about units this machine lacks (pcscd.socket in a container) are acceptable.
    const complaints = verify.stderr.split('\n').filter((l) => l.trim() !== '' && !/pcscd\.socket|network-online\.target/.test(l));
    assert.deepEqual(complaints, [], verify.stderr);
    assert.equal(verify.status, 0, verify.stderr);
    // Already there: replaced only with --force (no terminal to ask).
    const again = await cli(['agent', 'install', '--systemd', '--output', out]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists: give --force/);
  });

  test('install --windows-task writes UTF-16 Task Scheduler XML, well-formed, started by this user\'s logon and run as them', async () => {
    const dir = tempDir('cardlink-agent-task-');
    const out = join(dir, 'cardlink-agent.xml');
    const r = await cli(['agent', 'install', '--windows-task', '--user', 'CORP\\alice & bob', '--config', 'C:\\Program Data\\cardlink\\agent.json', '--output', out]);
    assert.equal(r.code, 0, r.stderr);
    const bytes = readFileSync(out);
    assert.deepEqual([...bytes.subarray(0, 2)], [0xff, 0xfe], 'UTF-16LE with a BOM, as schtasks writes');
    // xmllint parses it (well-formed, UTF-16 per its declaration) and pulls out the trigger and principal.
    const xpath = (expr: string): string =>
      execFileSync('xmllint', ['--xpath', `string(${expr})`, out], { encoding: 'utf8' }).trim();
    const ns = "*[local-name()='Task']";
    assert.equal(xpath(`/${ns}/@version`), '1.2');
    assert.equal(xpath(`namespace-uri(/${ns})`), 'http://schemas.microsoft.com/windows/2004/02/mit/task');
    assert.equal(xpath(`/${ns}/*[local-name()='Triggers']/*[local-name()='LogonTrigger']/*[local-name()='UserId']`), 'CORP\\alice & bob');
    assert.equal(xpath(`/${ns}/*[local-name()='Principals']/*[local-name()='Principal']/*[local-name()='LogonType']`), 'InteractiveToken');
    assert.equal(xpath(`/${ns}/*[local-name()='Principals']/*[local-name()='Principal']/*[local-name()='RunLevel']`), 'LeastPrivilege');
    assert.equal(xpath(`/${ns}/*[local-name()='Settings']/*[local-name()='ExecutionTimeLimit']`), 'PT0S');
    assert.match(xpath(`/${ns}/*[local-name()='Actions']/*[local-name()='Exec']/*[local-name()='Arguments']`), /bin\/cardlink agent run --config "C:\\Program Data\\cardlink\\agent\.json" --json$/);
    // The generators themselves: the same input gives the same text (what the files hold).
    const cmd = { node: '/usr/bin/node', script: '/opt/cardlink/bin/cardlink', config: '/etc/cardlink/agent.json' };
    assert.match(systemdUnit(cmd), /ExecStart=\/usr\/bin\/node \/opt\/cardlink\/bin\/cardlink agent run --config \/etc\/cardlink\/agent\.json --json/);
    assert.match(windowsTaskXml(cmd, { user: 'u', now: new Date(0) }), /<Date>1970-01-01T00:00:00<\/Date>/);
  });
});
