/**
 * `cardlink admin operator add NAME --role R`: the console's operators made from the command line.
 * The real service: the new operator signs in with the role given (an approver may decide but not
 * rotate keys), only an admin may create operators, and the password never is an option.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { OPERATOR_ROLES as CLI_ROLES } from '../../src/cli/catalog.js';
import { ServiceClient, ServiceClientError } from '../../src/service/client.js';
import { startService, type RunningService } from '../../src/service/index.js';
import { OPERATOR_ROLES } from '../../src/service/protocol.js';
import { cli } from '../helpers/cli.js';
import { CA_PASSPHRASE, OPERATOR, tempDir } from '../service/helpers.js';

describe('admin operator add', () => {
  let svc: RunningService;
  let client: ServiceClient;
  const dir = tempDir();
  const caFile = join(dir, 'ca.pem');
  const server = (): string[] => ['--server', svc.url, '--cacert', caFile];
  const asAdmin = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_OPERATOR_PASSWORD: OPERATOR.password };

  before(async () => {
    svc = await startService({ dataDir: join(dir, 'data'), port: 0, passphrase: CA_PASSPHRASE, operator: OPERATOR, sweepIntervalMs: 0 });
    client = new ServiceClient({ server: svc.url, ca: svc.caCertPem });
    writeFileSync(caFile, svc.caCertPem);
  });
  after(async () => {
    client.close();
    await svc.close();
  });

  test("the help's roles are the service's", () => {
    assert.deepEqual([...CLI_ROLES], [...OPERATOR_ROLES]);
  });

  test('an admin creates an approver, who signs in with that role: decides, but may not rotate keys', async () => {
    const r = await cli(['admin', 'operator', 'add', 'helpdesk1', '--role', 'approver', ...server(), '--json'], { ...asAdmin, CARDLINK_NEW_OPERATOR_PASSWORD: 'help desk password 1' });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { operator: unknown }).operator, { username: 'helpdesk1', role: 'approver' });
    const session = (await client.login({ username: 'helpdesk1', password: 'help desk password 1' })).token;
    assert.ok(Array.isArray(await client.requests(session)));
    await assert.rejects(client.rotateAdminMasterKey(session), (e: unknown) => e instanceof ServiceClientError && e.status === 403);
    await client.logout(session);
  });

  test('without --role: a viewer; a viewer may not create operators; a short password is refused before anything is sent', async () => {
    assert.equal((await cli(['admin', 'operator', 'add', 'auditor1', ...server()], { ...asAdmin, CARDLINK_NEW_OPERATOR_PASSWORD: 'auditor password 1' })).code, 0);
    const asViewer = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_OPERATOR: 'auditor1', CARDLINK_OPERATOR_PASSWORD: 'auditor password 1', CARDLINK_NEW_OPERATOR_PASSWORD: 'another password 1' };
    const refused = await cli(['admin', 'operator', 'add', 'eve', '--role', 'admin', ...server()], asViewer);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /admin role/);
    await assert.rejects(client.login({ username: 'eve', password: 'another password 1' }));
    const short = await cli(['admin', 'operator', 'add', 'shorty', ...server()], { ...asAdmin, CARDLINK_NEW_OPERATOR_PASSWORD: 'short' });
    assert.equal(short.code, 2);
    assert.match(short.stderr, /12 characters/);
    const bad = await cli(['admin', 'operator', 'add', 'x', '--role', 'root', ...server()], asAdmin);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /viewer, approver, admin/);
  });
});
