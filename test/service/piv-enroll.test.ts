/**
 * Issue 16 (Deliver 3): enroll and collect on a PIV card — the real service (HTTPS, SQLite), the
 * real CLI in process, emulated PIV cards in image files. The key goes into the first free slot
 * (9A, then 9D), the request is bound to the CHUID GUID and the slot's container name as Windows'
 * PIV minidriver names it, the collected certificate is installed into that slot and linked, and
 * the GIDS administrator key step is skipped with a note.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { enroll } from '../../src/agent/enroll.js';
import { hex } from '../../src/bytes.js';
import { MinidriverCard, pivContainerName } from '../../src/card/index.js';
import { FACTORY, openPivCardImage } from '../../src/piv/emulator/index.js';
import { PivSession } from '../../src/piv/host/session.js';
import { ALG, OBJECT } from '../../src/piv/protocol/constants.js';
import { parseChuid } from '../../src/piv/protocol/objects.js';
import { ServiceClient, ServiceClientError } from '../../src/service/client.js';
import { startService, type RunningService } from '../../src/service/index.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { cli } from '../helpers/cli.js';
import { blankPivImage } from '../helpers/piv-card.js';
import { CA_PASSPHRASE, OPERATOR, login, makeToken, tempDir } from './helpers.js';

describe('enroll and collect on a PIV card', () => {
  let svc: RunningService;
  let client: ServiceClient;
  let op: string;
  const dir = tempDir();
  const caFile = join(dir, 'ca.pem');
  const server = (): string[] => ['--server', svc.url, '--cacert', caFile];

  /** The CHUID GUID and a slot's certificate, read with a plain PIV session (not cardlink's card API). */
  async function onCard(image: string, home: string): Promise<{ guid: string | undefined; certificate(slot: number): Promise<Uint8Array | undefined> }> {
    const transport = new MemoryTransport(openPivCardImage(image, { home }));
    const session = new PivSession(transport);
    await session.select();
    const chuid = await session.getObject(OBJECT.CHUID);
    return {
      guid: chuid && chuid.length > 0 ? hex(parseChuid(chuid).guid).toLowerCase() : undefined,
      certificate: async (slot) => (await session.readCertificate(slot))?.der,
    };
  }

  before(async () => {
    svc = await startService({ dataDir: join(dir, 'data'), port: 0, passphrase: CA_PASSPHRASE, operator: OPERATOR, sweepIntervalMs: 0, log: () => {} });
    client = new ServiceClient({ server: svc.url, ca: svc.caCertPem });
    writeFileSync(caFile, svc.caCertPem);
    op = await login(client);
  });
  after(async () => {
    client.close();
    await svc.close();
  });

  test('9A then 9D: bound to the CHUID GUID and the slot container, collected into the slot, linked; doctor clean', async () => {
    const { image, home } = blankPivImage();
    const env = { CARDLINK_HOME: home, CARDLINK_PIN: FACTORY.PIN };
    const mgmt = { CARDLINK_MGMT_KEY: hex(FACTORY.MANAGEMENT_KEY) };
    const store = `model:${join(home, '..', 'store')}`;

    // Without a management key nothing is generated, and the token is not spent.
    const token = await makeToken(client, op, 'alice@example.com', 'smartcard-logon-auto');
    const noKey = await cli(['enroll', ...server(), '--image', image, '--json'], { ...env, CARDLINK_TOKEN: token });
    assert.equal(noKey.code, 2, noKey.stdout);
    assert.match(JSON.parse(noKey.stdout).error.message, /needs the PIV management key/);
    assert.equal((await onCard(image, home)).guid, undefined, 'no CHUID written either');
    assert.deepEqual(await client.requests(token), []);

    const first = await cli(['enroll', ...server(), '--image', image, '--json'], { ...env, ...mgmt, CARDLINK_TOKEN: token });
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const a = JSON.parse(first.stdout);
    const card = await onCard(image, home);
    assert.ok(card.guid, 'enrollment wrote a CHUID');
    assert.equal(a.app, 'piv');
    assert.equal(a.slot, '9A');
    assert.equal(a.cardId, card.guid, 'the card id is the CHUID GUID');
    assert.equal(a.container, pivContainerName(Buffer.from(card.guid, 'hex'), 0x9a));
    assert.equal(a.adminKey.managed, false);
    assert.match(a.adminKey.reason, /PIV card has no GIDS administrator key.*PUK/);
    const [request] = await client.requests(token);
    assert.equal(request!.cardId, card.guid);
    assert.equal(request!.container, a.container);

    const collected = await cli(['collect', ...server(), '--image', image, '--store', store, '--json'], { ...env, ...mgmt });
    assert.equal(collected.code, 0, collected.stdout + collected.stderr);
    const c = JSON.parse(collected.stdout);
    assert.equal(c.cardId, card.guid);
    assert.equal(c.items.length, 1);
    assert.deepEqual([c.items[0].container, c.items[0].action, c.items[0].linked, c.items[0].reported], [a.container, 'installed', true, true]);
    const der = await (await onCard(image, home)).certificate(0x9a);
    assert.ok(der, 'the certificate is in slot 9A');
    const cert = new X509Certificate(der);
    assert.match(cert.subjectAltName ?? '', /alice@example\.com/);
    assert.equal(cert.fingerprint.replaceAll(':', ''), c.items[0].thumbprint);

    const doctor = await cli(['doctor', '--image', image, '--store', store, '--json'], env);
    assert.equal(doctor.code, 0, doctor.stdout);
    assert.deepEqual(JSON.parse(doctor.stdout).findings, []);

    // A second enrollment takes the next free key exchange slot, 9D; the card keeps its identity.
    const token2 = await makeToken(client, op, 'alice@example.com', 'smartcard-logon-auto');
    const second = await cli(['enroll', ...server(), '--image', image], { ...env, ...mgmt, CARDLINK_TOKEN: token2 });
    assert.equal(second.code, 0, second.stdout + second.stderr);
    assert.match(second.stdout, /\(PIV slot 9D\)/);
    assert.match(second.stdout, /administrator key: a PIV card has no GIDS administrator key/);
    const [request2] = await client.requests(token2);
    assert.equal(request2!.cardId, card.guid);
    assert.equal(request2!.container, pivContainerName(Buffer.from(card.guid, 'hex'), 0x9d));
    const collected2 = await cli(['collect', ...server(), '--image', image, '--store', store, '--json'], { ...env, ...mgmt });
    assert.equal(collected2.code, 0, collected2.stdout + collected2.stderr);
    const again = JSON.parse(collected2.stdout);
    const byContainer = new Map(again.items.map((i: { container: string; action: string }) => [i.container, i.action]));
    assert.equal(byContainer.get(request2!.container), 'installed');
    assert.equal(byContainer.get(a.container), 'delivered-before');
    assert.ok(await (await onCard(image, home)).certificate(0x9d), 'the second certificate is in slot 9D');
    const ls = await cli(['card', 'ls', '--image', image], env);
    assert.match(ls.stdout, /default +5FC105 +slot 9A/);
    assert.match(ls.stdout, /5FC10B +slot 9D/);
  });

  test('a refused submission frees the slot again: the next enrollment takes 9A', async () => {
    const { image, home } = blankPivImage();
    const token = await makeToken(client, op, 'bob@example.com', 'smartcard-logon-auto');
    const refusing = new ServiceClient({ server: svc.url, ca: svc.caCertPem });
    refusing.submit = async () => {
      throw new ServiceClientError('SERVICE_REFUSED', 'the service refused the request (test)', { status: 400 });
    };
    const transport = new MemoryTransport(openPivCardImage(image, { home }));
    try {
      const card = await MinidriverCard.open(transport, { app: 'piv', managementKey: async () => ({ key: FACTORY.MANAGEMENT_KEY.slice(), alg: ALG.TDES }) });
      await assert.rejects(enroll(card, refusing, { token, pin: FACTORY.PIN }), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'SERVICE_REFUSED');
        assert.match(e.message, /slot 9A is free again/);
        return true;
      });
      assert.deepEqual(await card.containers(), [], 'the slot is no longer listed');
      const ok = await enroll(card, client, { token, pin: FACTORY.PIN });
      assert.equal(ok.container, pivContainerName(await card.cardId(), 0x9a));
      assert.equal((await card.container(ok.container)).slot, 0x9a);
    } finally {
      refusing.close();
      await transport.close();
    }
  });
});
