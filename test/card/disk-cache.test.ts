import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { DiskCardCache } from '../../src/card/index.js';
import { TEST_ADMIN_KEY, TEST_PIN, initialisedCard, tempDir } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';

const ID_A = new Uint8Array(16).fill(0xa);
const ID_B = new Uint8Array(16).fill(0xb);

test('an item is valid only under the freshness value it was stored with, per card', () => {
  const c = new DiskCardCache(join(tempDir(), 'c.json'));
  c.put(ID_A, 'mscp/cmapfile', 7, new Uint8Array([1, 2, 3]));
  assert.deepEqual(c.get(ID_A, 'mscp/cmapfile', 7), new Uint8Array([1, 2, 3]));
  assert.equal(c.get(ID_A, 'mscp/cmapfile', 8), undefined);
  assert.equal(c.get(ID_B, 'mscp/cmapfile', 7), undefined);
});

test('the cache survives the process (flush + reload), file mode 0600, and a corrupt file is an empty cache', () => {
  const path = join(tempDir(), 'sub', 'cards.json');
  const c = new DiskCardCache(path);
  c.put(ID_A, 'x', 1, new Uint8Array([9]));
  c.flush();
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.deepEqual(new DiskCardCache(path).get(ID_A, 'x', 1), new Uint8Array([9]));
  writeFileSync(path, '{ not json');
  assert.equal(new DiskCardCache(path).get(ID_A, 'x', 1), undefined);
});

test('bounded: past the total size the least recently used items go, items over the per-item bound are not kept', () => {
  const c = new DiskCardCache(join(tempDir(), 'c.json'), { maxBytesTotal: 4000, maxBytesPerItem: 1000 });
  c.put(ID_A, 'too-big', 1, new Uint8Array(1001));
  assert.equal(c.get(ID_A, 'too-big', 1), undefined);
  for (let i = 0; i < 10; i++) c.put(ID_A, `item-${i}`, 1, new Uint8Array(600));
  assert.ok(c.size <= 4000, `size ${c.size}`);
  assert.equal(c.get(ID_A, 'item-0', 1), undefined, 'oldest evicted');
  assert.ok(c.get(ID_A, 'item-9', 1), 'newest kept');
  // Using an item makes it recent.
  c.get(ID_A, 'item-6', 1);
  for (let i = 10; i < 13; i++) c.put(ID_A, `item-${i}`, 1, new Uint8Array(600));
  assert.ok(c.get(ID_A, 'item-6', 1));
});

test('after PIN-protected work the cache file holds no PIN, admin key or private key, only public card data', async () => {
  const path = join(tempDir(), 'cards.json');
  const cache = new DiskCardCache(path);
  const t = await initialisedCard({ cache });
  await t.card.verifyPin(TEST_PIN);
  const created = await t.card.createContainer('k', { bits: 1024 });
  await t.card.installCertificate(await issueOurs(created.publicKey));
  await t.card.containers();
  await t.card.check();
  cache.flush();
  const text = readFileSync(path, 'utf8');
  const decodedValues = Object.values(JSON.parse(text) as Record<string, Record<string, { v: string }>>).flatMap((items) =>
    Object.values(items).map((it) => Buffer.from(it.v, 'base64')),
  );
  const everything = Buffer.concat([Buffer.from(text), ...decodedValues]);
  assert.equal(everything.includes(Buffer.from(TEST_PIN)), false, 'no PIN');
  assert.equal(everything.includes(TEST_ADMIN_KEY), false, 'no admin key');
  // The public key is there (that is the point), the private exponent is not.
  const spki = created.publicKey.export({ type: 'spki', format: 'der' });
  assert.ok(everything.includes(spki));
  const image = t.emulator.toImage();
  const keyFile = image.files.find((f) => f.key?.kind === 'rsa');
  assert.ok(keyFile?.key?.kind === 'rsa');
  const jwk = keyFile.key.privateKey.export({ format: 'jwk' });
  for (const part of [jwk.d, jwk.p, jwk.q]) assert.equal(everything.includes(Buffer.from(part!, 'base64url')), false);
});
