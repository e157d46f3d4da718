/**
 * Subjects as people write them (issue 12, point 3): `card csr --subject` is RFC 4514, so
 * `openssl req -subject -nameopt RFC2253` prints back what was typed.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { hex } from '../../src/bytes.js';
import { TEST_ADMIN_KEY, TEST_PIN, tempDir } from '../helpers/card.js';
import { cli } from '../helpers/cli.js';

async function cardWithKey() {
  const dir = tempDir();
  const image = join(dir, 'card.json');
  const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) };
  assert.equal((await cli(['card', 'init', '--image', image], env)).code, 0);
  assert.equal((await cli(['card', 'gen', '--image', image, '--container', 'k', '--alg', 'rsa1024'], env)).code, 0);
  return { dir, image, env };
}

describe('card csr --subject follows RFC 4514', () => {
  test('openssl req -subject -nameopt RFC2253 prints what was typed, UID, SERIALNUMBER, DC and E included', async () => {
    const { dir, image, env } = await cardWithKey();
    const subjects = [
      'CN=Alice Example,O=Example,C=DE',
      'CN=Alice,OU=People,DC=example,DC=com',
      'UID=alice,serialNumber=12345,O=Example',
      'CN=Bob,emailAddress=bob@example.com',
      'CN=Smith\\, John,O=ACME',
    ];
    for (const [i, subject] of subjects.entries()) {
      const out = join(dir, `req-${i}.pem`);
      // Typed as certreq and Windows write them (E, SERIALNUMBER); openssl names them its way.
      const typed = subject.replace('emailAddress=', 'E=').replace('serialNumber=', 'SERIALNUMBER=');
      const r = await cli(['card', 'csr', '--image', image, '--container', 'k', '--subject', typed, '--out', out], env);
      assert.equal(r.code, 0, r.stderr);
      const printed = execFileSync('openssl', ['req', '-in', out, '-noout', '-subject', '-nameopt', 'RFC2253'], { encoding: 'utf8' }).trim();
      assert.equal(printed, `subject=${subject}`);
    }
  });

  const REFUSED: Array<[string, RegExp]> = [
    ['/CN=Alice/O=Example', /openssl's "\/CN=…\/O=…" form; write it as RFC 4514, most specific first: "O=Example,CN=Alice"/],
    ['Alice', /a subject is ATTRIBUTE=value pairs, e\.g\. "CN=Alice" for a name alone/],
    ['CN=Alice,XX=1', /unsupported attribute 'XX' \(supported: CN, O, OU/],
    ['CN=Alice,C=USA', /C is a two-letter country code \(ISO 3166\), e\.g\. C=DE, not 'USA'/],
  ];
  for (const [subject, why] of REFUSED) {
    test(`refuses ${subject}, saying why`, async () => {
      const { dir, image, env } = await cardWithKey();
      const r = await cli(['card', 'csr', '--image', image, '--container', 'k', '--subject', subject, '--out', join(dir, 'x.pem'), '--json'], env);
      assert.equal(r.code, 2);
      const answer = JSON.parse(r.stdout) as { error: { code: string; message: string } };
      assert.equal(answer.error.code, 'BAD_SUBJECT');
      assert.match(answer.error.message, why);
    });
  }
});
