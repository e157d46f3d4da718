import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { hex } from '../../src/bytes.js';
import type { CollectReport } from '../../src/agent/collect.js';
import { ManualClock } from '../../src/service/index.js';
import { TEST_ADMIN_KEY, TEST_PIN } from '../helpers/card.js';
import { cli } from '../helpers/cli.js';
import { BACKENDS, login, makeToken, startTestService, tempDir, type TestService } from '../service/helpers.js';

const DAY = 86_400_000;

describe('cardlink renew and card purge on the command line', () => {
  let t: TestService;
  let clock: ManualClock;
  before(async () => {
    clock = new ManualClock();
    t = await startTestService(BACKENDS[0]!, { clock });
  });
  after(async () => t.close());

  test('renew asks (or wants --yes), then renews end to end; collect --json reports days left; purge lists, and its dry run changes nothing', async () => {
    const dir = tempDir();
    const caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, t.svc.caCertPem);
    const server = ['--server', t.svc.url, '--cacert', caFile];
    const image = join(dir, 'card.json');
    const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) };
    assert.equal((await cli(['card', 'init', '--image', image], env)).code, 0);
    // Enrolled 340 days ago: 25 days are left today, inside the 30-day window.
    clock.advance(-340 * DAY);
    const token = await makeToken(t.client, await login(t.client), 'cli@example.com', 'smartcard-logon-auto');
    const e = await cli(['enroll', ...server, '--image', image, '--json'], { ...env, CARDLINK_TOKEN: token });
    assert.equal(e.code, 0, e.stderr);
    const oldContainer = (JSON.parse(e.stdout) as { container: string }).container;
    clock.advance(340 * DAY);

    const collected = await cli(['collect', ...server, '--image', image, '--json'], env);
    assert.equal(collected.code, 0, collected.stderr);
    const days = (JSON.parse(collected.stdout) as CollectReport).certificates!;
    assert.deepEqual(days.map((d) => [d.container, d.daysLeft]), [[oldContainer, 24]]);

    const noTerminal = await cli(['renew', ...server, '--image', image], env);
    assert.equal(noTerminal.code, 2, noTerminal.stdout);
    assert.match(noTerminal.stderr, /add --yes/);
    const declined = await cli(['renew', ...server, '--image', image, '--json'], env, { confirm: async () => false });
    assert.equal(declined.code, 1, declined.stderr);
    assert.deepEqual((JSON.parse(declined.stdout) as CollectReport).renewals, []);
    assert.equal((JSON.parse(declined.stdout) as { ok: boolean; declined?: boolean }).declined, true);
    const ls = async () => (JSON.parse((await cli(['card', 'ls', '--image', image, '--json'], env)).stdout) as { containers: { name: string; isDefault: boolean }[] }).containers;
    assert.deepEqual((await ls()).map((c) => c.name), [oldContainer], 'declined: nothing generated');

    const renewed = await cli(['renew', ...server, '--image', image, '--yes', '--json'], env);
    assert.equal(renewed.code, 0, renewed.stderr);
    const r = JSON.parse(renewed.stdout) as CollectReport & { ok: boolean };
    assert.equal(r.ok, true);
    assert.equal(r.renewals?.[0]?.action, 'issued');
    const newContainer = r.renewals![0]!.newContainer!;
    assert.deepEqual(r.removed?.map((x) => x.container), [oldContainer]);
    assert.deepEqual((await ls()).map((c) => [c.name, c.isDefault]), [[newContainer, true]]);
    assert.ok(r.certificates![0]!.daysLeft >= 364);
    const text = await cli(['renew', ...server, '--image', image], env);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /nothing to renew/);

    // Purge: nothing expired or superseded now; the dry run says so and writes nothing.
    const purge = await cli(['card', 'purge', '--image', image, '--json'], env);
    assert.equal(purge.code, 0, purge.stderr);
    const p = JSON.parse(purge.stdout) as { applied: boolean; plan: { remove: unknown[]; keep: { container: string }[] } };
    assert.equal(p.applied, false);
    assert.deepEqual(p.plan.remove, []);
    assert.deepEqual(p.plan.keep.map((k) => k.container), [newContainer]);
    const revokedWithoutServer = await cli(['card', 'purge', '--image', image, '--revoked'], env);
    assert.equal(revokedWithoutServer.code, 2);
    assert.match(revokedWithoutServer.stderr, /--server/);
  });
});
