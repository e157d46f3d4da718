/**
 * Issue 12 point 7: `doctor` flags revoked certificates still on the card or in the store. The
 * real service (HTTPS, SQLite) issues two certificates to an emulated card, one is revoked, and
 * doctor — given the service — names exactly that one, with its reason, from the service's
 * signature-checked CRL; a CRL signed by another key is refused, not half-used.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CrlError, readRevocationList } from '../../src/crl.js';
import { ServiceClient } from '../../src/service/client.js';
import { startService, type RunningService } from '../../src/service/index.js';
import { TEST_ADMIN_KEY, TEST_PIN } from '../helpers/card.js';
import { cli } from '../helpers/cli.js';
import { hex } from '../../src/bytes.js';
import { CA_PASSPHRASE, OPERATOR, login, makeToken, tempDir } from '../service/helpers.js';

interface DoctorJson {
  ok: boolean;
  revocation?: { source: string; checked: number; note?: string };
  findings: { code: string; container?: string; thumbprint?: string; message: string; error: { name: string } }[];
}

describe('doctor checks the certificates against the service CRL', () => {
  let svc: RunningService;
  let client: ServiceClient;
  let op: string;
  const dir = tempDir();
  const home = join(dir, 'home');
  const caFile = join(dir, 'ca.pem');
  const image = join(dir, 'card.json');
  const store = `model:${join(dir, 'machine')}`;
  const env = { CARDLINK_HOME: home, CARDLINK_PIN: TEST_PIN };
  const enrolled: { requestId: string; container: string; thumbprint: string }[] = [];

  before(async () => {
    svc = await startService({ dataDir: join(dir, 'data'), port: 0, passphrase: CA_PASSPHRASE, operator: OPERATOR, sweepIntervalMs: 0 });
    client = new ServiceClient({ server: svc.url, ca: svc.caCertPem });
    writeFileSync(caFile, svc.caCertPem);
    op = await login(client);
    assert.equal((await cli(['card', 'init', '--image', image], { ...env, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) })).code, 0);
    // Two certificates of one user (a card belongs to one user).
    for (const user of ['alice@example.com', 'alice@example.com']) {
      const token = await makeToken(client, op, user, 'smartcard-logon-auto');
      const r = await cli(['enroll', '--server', svc.url, '--cacert', caFile, '--image', image, '--bits', '2048', '--json'], { ...env, CARDLINK_TOKEN: token });
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { requestId: string; container: string; certificate: string };
      enrolled.push({ requestId: out.requestId, container: out.container, thumbprint: new X509Certificate(out.certificate).fingerprint.replaceAll(':', '') });
    }
    // collect installs both on the card and links them into the model store.
    const collected = await cli(['collect', '--server', svc.url, '--cacert', caFile, '--image', image, '--store', store], env);
    assert.equal(collected.code, 0, collected.stdout + collected.stderr);
  });
  after(async () => {
    client.close();
    await svc.close();
  });

  async function doctor(extra: string[] = []): Promise<{ code: number; report: DoctorJson; stdout: string }> {
    const r = await cli(['doctor', '--image', image, '--store', store, '--json', ...extra], env);
    return { code: r.code, report: JSON.parse(r.stdout) as DoctorJson, stdout: r.stdout };
  }

  test('nothing revoked: both certificates checked, no finding', async () => {
    const r = await doctor(['--server', svc.url, '--cacert', caFile]);
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.report.revocation?.checked, 2, r.stdout);
    assert.equal(r.report.revocation?.note, undefined);
  });

  test('one revoked (keyCompromise): doctor names it on the card, with the reason and the fix; the other stays clean', async () => {
    await client.revoke(op, enrolled[0]!.requestId, 1);
    const r = await doctor(['--server', svc.url, '--cacert', caFile]);
    assert.equal(r.code, 1);
    const revoked = r.report.findings.filter((f) => f.code === 'REVOKED_CERTIFICATE');
    assert.equal(revoked.length, 1, JSON.stringify(r.report.findings));
    assert.equal(revoked[0]!.container, enrolled[0]!.container);
    assert.equal(revoked[0]!.thumbprint, enrolled[0]!.thumbprint);
    assert.equal(revoked[0]!.error.name, 'CRYPT_E_REVOKED');
    assert.match(revoked[0]!.message, /keyCompromise/);
    assert.match(revoked[0]!.message, /still on the card/);
    // The same through CARDLINK_SERVER, and the text form says so.
    const text = await cli(['doctor', '--image', image, '--store', store], { ...env, CARDLINK_SERVER: svc.url, CARDLINK_CACERT: caFile });
    assert.equal(text.code, 1);
    assert.match(text.stdout, /REVOKED_CERTIFICATE/);
    assert.match(text.stdout, /2 certificate\(s\) checked/);
  });

  test('removed from the card but still in the store: doctor names the store entry', async () => {
    const rm = await cli(['card', 'rm-cert', '--image', image, '--container', enrolled[0]!.container], env);
    assert.equal(rm.code, 0, rm.stdout + rm.stderr);
    const r = await doctor(['--server', svc.url, '--cacert', caFile]);
    const revoked = r.report.findings.filter((f) => f.code === 'REVOKED_CERTIFICATE');
    assert.equal(revoked.length, 1, JSON.stringify(r.report.findings));
    assert.equal(revoked[0]!.thumbprint, enrolled[0]!.thumbprint);
    assert.match(revoked[0]!.message, /still in CurrentUser\\My/);
  });

  test('without a service doctor does not claim to have checked; an unreachable one is a note, not a failure', async () => {
    const none = await doctor();
    assert.equal(none.report.revocation, undefined);
    assert.ok(!none.report.findings.some((f) => f.code === 'REVOKED_CERTIFICATE'));
    const down = await doctor(['--server', 'https://127.0.0.1:9', '--cacert', caFile]);
    assert.match(down.report.revocation?.note ?? '', /revocation not checked/);
    assert.ok(!down.report.findings.some((f) => f.code === 'REVOKED_CERTIFICATE'));
  });

  test('a CRL is only believed when the CA signed it', async () => {
    const crl = new Uint8Array(await client.crl());
    const cas = (await client.caCertificates()).map((p) => new X509Certificate(p));
    const list = readRevocationList(crl, cas);
    assert.equal(list.entries.size, 1);
    // Another issuer's certificate (here: the service's TLS CA) is never judged by this list.
    const other = new X509Certificate(svc.caCertPem);
    if (!other.checkIssued(cas[0]!)) assert.equal(list.revocationOf(other), undefined);
    const tampered = crl.slice();
    tampered[tampered.length - 5]! ^= 0xff;
    assert.throws(() => readRevocationList(tampered, cas), CrlError);
    assert.throws(() => readRevocationList(crl, []), /not signed by the CA/);
    assert.throws(() => readRevocationList(new TextEncoder().encode('garbage'), cas), /not a CRL/);
  });
});
