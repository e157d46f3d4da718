import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { hex } from '../../src/bytes.js';
import { MinidriverCard } from '../../src/card/index.js';
import { SEAL_KEY_FILE, openCardImage } from '../../src/gids/emulator/index.js';
import { ManualClock, type RequestView } from '../../src/service/index.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { x509 } from '../../src/x509.js';
import { watch } from '../../src/agent/watch.js';
import type { CollectReport } from '../../src/agent/collect.js';
import { cli } from '../helpers/cli.js';
import { TEST_ADMIN_KEY, TEST_PIN } from '../helpers/card.js';
import { BACKENDS, OPERATOR, startTestService, tempDir } from '../service/helpers.js';

async function cardImage(dir: string): Promise<{ image: string; cardId: string }> {
  const image = join(dir, 'card.json');
  const init = await cli(['card', 'init', '--image', image, '--json'], { CARDLINK_HOME: join(dir, 'home-init'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) });
  assert.equal(init.code, 0, init.stderr);
  // The emulated card's secure element key travels with the card: each workstation gets a copy.
  for (const ws of ['ws-a', 'ws-b']) {
    mkdirSync(join(dir, ws), { recursive: true, mode: 0o700 });
    copyFileSync(join(dir, 'home-init', SEAL_KEY_FILE), join(dir, ws, SEAL_KEY_FILE));
    chmodSync(join(dir, ws, SEAL_KEY_FILE), 0o600);
  }
  return { image, cardId: (JSON.parse(init.stdout) as { cardId: string }).cardId.toLowerCase() };
}

async function onCard<T>(image: string, fn: (card: MinidriverCard) => Promise<T>): Promise<T> {
  const transport = new MemoryTransport(openCardImage(image, { home: join(dirname(image), 'home-init') }));
  try {
    return await fn(await MinidriverCard.open(transport));
  } finally {
    await transport.close();
  }
}

for (const backend of BACKENDS) {
  describe(`agents on two workstations, service on ${backend.name}`, () => {
    test('enroll on workstation A; days later an operator approves; collect on workstation B installs, links, proves and reports', async () => {
      const clock = new ManualClock(new Date(Date.UTC(2026, 3, 1, 8)));
      const t = await startTestService(backend, { clock });
      try {
        const dir = tempDir();
        const caFile = join(dir, 'ca.pem');
        writeFileSync(caFile, t.svc.caCertPem);
        const { image, cardId } = await cardImage(dir);
        // Each workstation has its own data directory (card cache, Windows store); only the card moves.
        const server = ['--server', t.svc.url, '--cacert', caFile];
        const admin = { CARDLINK_OPERATOR_PASSWORD: OPERATOR.password };
        const wsA = { CARDLINK_HOME: join(dir, 'ws-a'), CARDLINK_PIN: TEST_PIN };
        const wsB = { CARDLINK_HOME: join(dir, 'ws-b'), CARDLINK_PIN: TEST_PIN };

        const tok = await cli(['admin', 'token', ...server, '--user', 'alice@example.com', '--ttl', '86400', '--json'], admin);
        assert.equal(tok.code, 0, tok.stderr);
        const token = (JSON.parse(tok.stdout) as { token: string }).token;

        const enrolled = await cli(['enroll', ...server, '--image', image, '--json'], { ...wsA, CARDLINK_TOKEN: token });
        assert.equal(enrolled.code, 0, enrolled.stderr);
        const e = JSON.parse(enrolled.stdout) as { requestId: string; state: string; cardId: string; container: string; retryAfter: number };
        assert.equal(e.state, 'pending');
        assert.equal(e.cardId, cardId);
        assert.match(e.container, /^lr-[0-9a-f-]{36}$/);
        assert.equal(e.retryAfter, 7);

        // Before approval, collecting on B finds the request waiting and installs nothing.
        const early = await cli(['collect', ...server, '--image', image, '--store', `model:${join(dir, 'store-b')}`, '--json'], wsB);
        assert.equal(early.code, 0, early.stderr);
        const earlyReport = JSON.parse(early.stdout) as CollectReport;
        assert.deepEqual(earlyReport.items.map((i) => [i.id, i.action]), [[e.requestId, 'waiting']]);
        assert.equal(earlyReport.retryAfter, 7);
        assert.equal(await onCard(image, (card) => card.readCertificate(e.container)), undefined);

        clock.advanceDays(3);
        const listed = await cli(['admin', 'requests', ...server, '--state', 'pending', '--json'], admin);
        assert.deepEqual((JSON.parse(listed.stdout) as { requests: RequestView[] }).requests.map((r) => [r.id, r.cardId, r.container]), [[e.requestId, cardId, e.container]]);
        const approved = await cli(['admin', 'approve', ...server, e.requestId], admin);
        assert.equal(approved.code, 0, approved.stderr);
        assert.match(approved.stdout, /issued \(serial [0-9a-f]{32}\)/);

        const got = await cli(['collect', ...server, '--image', image, '--store', `model:${join(dir, 'store-b')}`, '--json'], wsB);
        assert.equal(got.code, 0, got.stderr);
        const report = JSON.parse(got.stdout) as CollectReport;
        assert.equal(report.cardId, cardId);
        assert.equal(report.items.length, 1);
        const item = report.items[0]!;
        assert.deepEqual([item.action, item.linked, item.reported, item.state], ['installed', true, true, 'delivered']);

        // The card holds the certificate in the enrolled container; it is the CA's and names Alice.
        const der = await onCard(image, (card) => card.readCertificate(e.container));
        const cert = new x509.X509Certificate(der!);
        assert.equal(cert.subject, 'CN=alice@example.com');
        assert.ok(await cert.verify({ publicKey: t.svc.service.caCertificates()[0]!.publicKey, signatureOnly: true }));
        assert.equal(cert.notBefore.toISOString(), new Date(clock.now().getTime() - 5 * 60_000).toISOString());
        assert.equal(Buffer.from(await cert.getThumbprint('SHA-1')).toString('hex').toUpperCase(), item.thumbprint);

        // Workstation B's store has it linked to the card key; `link` proves it again with a signature.
        const link = await cli(['link', '--image', image, '--store', `model:${join(dir, 'store-b')}`, '--json'], wsB);
        assert.equal(link.code, 0, link.stderr);
        const linked = (JSON.parse(link.stdout) as { linked: { container: string; thumbprint: string; action: string; proof: { verified: boolean } }[] }).linked;
        assert.deepEqual(linked.map((l) => [l.container, l.thumbprint.toUpperCase(), l.action, l.proof.verified]), [[e.container, item.thumbprint, 'unchanged', true]]);

        // Collecting again changes nothing; the service saw the delivery once.
        const again = JSON.parse((await cli(['collect', ...server, '--image', image, '--json'], wsB)).stdout) as CollectReport;
        assert.deepEqual(again.items.map((i) => i.action), ['delivered-before']);
        const audit = await cli(['admin', 'audit', ...server, '--subject', `request:${e.requestId}`, '--json'], admin);
        assert.deepEqual((JSON.parse(audit.stdout) as { entries: { action: string }[] }).entries.map((x) => x.action), ['request.submitted', 'request.approved', 'request.issued', 'request.delivered']);
      } finally {
        await t.close();
      }
    });
  });
}

describe('collect --watch', () => {
  test('collects on insertion, again after Retry-After while something waits, and again on re-insertion', async () => {
    const reports: CollectReport[] = [];
    const waiting: CollectReport = { cardId: 'c', items: [], retryAfter: 0 };
    const done: CollectReport = { cardId: 'c', items: [], retryAfter: null };
    // Polls: present, present (retry due: pass), present (nothing due), absent, present (re-insertion: pass).
    const presence = [true, true, true, false, true];
    const answers = [waiting, done, done];
    const controller = new AbortController();
    let polls = 0;
    await watch({
      signal: controller.signal,
      open: async () => {
        const here = presence[polls++];
        if (polls >= presence.length) controller.abort();
        return here ? { card: {} as MinidriverCard, close: async () => undefined } : undefined;
      },
      pass: async () => answers[reports.length]!,
      sleep: async () => undefined,
      onReport: (r) => reports.push(r),
      onError: (err) => assert.fail(String(err)),
      onWrongPin: async () => assert.fail('no PIN was refused'),
    });
    assert.deepEqual(reports, [waiting, done, done]);
  });
});
