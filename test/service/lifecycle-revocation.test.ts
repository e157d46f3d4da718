/**
 * Issue 13 acceptance, "Lost card": the life-cycle move and the relying parties' view joined.
 * An operator marks a card lost (`POST /api/v1/cards/:id/transitions`), and OpenSSL — as a
 * relying party would, through the OCSP URL and CRL the certificates name — sees every
 * certificate of that card revoked with the reason chosen, while another user's card stays good;
 * a suspended card's certificates are on hold and good again after resume.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ServiceClient } from '../../src/service/client.js';
import { startService, type RunningService } from '../../src/service/index.js';
import { x509 } from '../../src/x509.js';
import { opensslAsync } from '../helpers/openssl.js';
import { CA_PASSPHRASE, OPERATOR, login, makeToken, randomCardId, softKey, tempDir } from './helpers.js';

const openssl = opensslAsync;

describe('a card marked lost, suspended or resumed, as relying parties see it', () => {
  let svc: RunningService;
  let client: ServiceClient;
  let op: string;
  const dir = tempDir();
  const caFile = join(dir, 'ca.pem');

  before(async () => {
    svc = await startService({ dataDir: join(dir, 'data'), port: 0, revocationPort: 0, passphrase: CA_PASSPHRASE, operator: OPERATOR, sweepIntervalMs: 0 });
    client = new ServiceClient({ server: svc.url, ca: svc.caCertPem });
    op = await login(client);
    writeFileSync(caFile, svc.caCertPem);
  });
  after(async () => {
    client.close();
    await svc.close();
  });

  /** A card with `n` certificates of `user`, issued at once (automatic profile), as PEM files. */
  async function card(user: string, n: number): Promise<{ cardId: string; files: string[] }> {
    const cardId = randomCardId();
    const files: string[] = [];
    for (let i = 0; i < n; i++) {
      const token = await makeToken(client, op, user, 'smartcard-logon-auto');
      const key = await softKey(`CN=${user}`);
      const { value } = await client.submit(token, { csr: key.csrPem, cardId, container: `c${i}` });
      assert.equal(value.state, 'issued');
      const file = join(dir, `${value.serial}.pem`);
      writeFileSync(file, value.certificate!);
      files.push(file);
    }
    return { cardId: cardId.toLowerCase(), files };
  }

  async function ocsp(file: string): Promise<string> {
    const url = new x509.X509Certificate(readFileSync(file, 'utf8')).getExtension(x509.AuthorityInfoAccessExtension)!.ocsp[0]!.value;
    const r = await openssl(['ocsp', '-issuer', caFile, '-cert', file, '-url', url, '-CAfile', caFile, '-resp_text']);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /Response verify OK/);
    return r.out;
  }

  test('lost (keyCompromise): both certificates of the card revoked with the reason; another card stays good; a replacement token once', async () => {
    const lost = await card('dora@example.com', 2);
    const other = await card('erin@example.com', 1);
    const moved = await client.transitionCard(op, lost.cardId, { action: 'lost', reason: 'keyCompromise' });
    assert.equal(moved.to, 'lost');
    assert.equal(moved.revoked.length, 2);
    assert.match(moved.replacementToken?.token ?? '', /^cle_/);
    for (const f of lost.files) {
      const out = await ocsp(f);
      assert.match(out, /: revoked/);
      assert.match(out, /Reason: keyCompromise/);
    }
    assert.match(await ocsp(other.files[0]!), /: good/);
  });

  test('suspend puts the card\'s certificates on hold (certificateHold); resume makes them good again', async () => {
    const away = await card('finn@example.com', 1);
    await client.transitionCard(op, away.cardId, { action: 'suspend' });
    const held = await ocsp(away.files[0]!);
    assert.match(held, /: revoked/);
    assert.match(held, /Reason: certificateHold/);
    await client.transitionCard(op, away.cardId, { action: 'resume' });
    assert.match(await ocsp(away.files[0]!), /: good/);
  });
});
