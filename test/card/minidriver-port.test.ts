// The GIDS card behind the minidriver port (what windows/ sees): fresh reads only, signatures over
// a caller's digest with PKCS#1 v1.5 and PSS padding, PIN status and verification.
import assert from 'node:assert/strict';
import { constants, createHash, verify } from 'node:crypto';
import { test } from 'node:test';
import { hex } from '../../src/bytes.js';
import { MemoryCardCache, PinError } from '../../src/card/index.js';
import { decodeCertificateFile } from '../../src/minidriver/index.js';
import { TEST_PIN, initialisedCard, reopen } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';
import { seedLoad } from '../fixtures/seed-loader.js';

async function twoContainers() {
  const t = await initialisedCard();
  await t.card.verifyPin(TEST_PIN);
  const kx = await t.card.createContainer('kx-container', { keySpec: 'kx', bits: 1024 });
  const sig = await t.card.createContainer('sig-container', { keySpec: 'sig', bits: 2048 });
  return { ...t, kx, sig };
}

test('begin reads exactly cardid and cardcf; containers, files and public keys are what the card holds', async () => {
  const t = await twoContainers();
  await t.card.installCertificate(await issueOurs(t.sig.publicKey));
  const u = await reopen(t);
  const port = u.card.minidriver();
  u.transport.clear();
  const begun = await port.begin();
  assert.deepEqual(u.transport.records.map((r) => hex(r.command)), ['00CBA012045C02DF2000', '00CBA010045C02DF2200']);
  assert.equal(hex(begun.cardId), hex(await u.card.cardId()));
  assert.deepEqual(begun.cardcf, await u.card.cardcf());

  assert.deepEqual(await port.containers(), [
    { index: 0, name: 'kx-container', keySpec: 'kx', keyBits: 1024, isDefault: true },
    { index: 1, name: 'sig-container', keySpec: 'sig', keyBits: 2048, isDefault: false },
  ]);
  assert.equal(hex((await port.readFile('mscp/ksc01'))!), hex(await u.card.readFile('mscp/ksc01')));
  assert.equal(hex((await port.readFile('MSCP/KSC01'))!), hex(await u.card.readFile('mscp/ksc01')), 'names are case-insensitive');
  assert.equal(await port.readFile('mscp/kxc00'), undefined);
  assert.equal(hex(await port.publicKey(0)), hex(new Uint8Array(t.kx.publicKey.export({ type: 'spki', format: 'der' }))));
  assert.equal(hex(await port.publicKey(1)), hex(new Uint8Array(t.sig.publicKey.export({ type: 'spki', format: 'der' }))));
});

test("the port reads the card as it is, where cardlink's own cache would serve what it remembered", async () => {
  const t = await twoContainers();
  const cache = new MemoryCardCache();
  const user = await reopen(t, cache);
  assert.equal((await user.card.containers())[1]!.certificateFile, undefined); // the cache learns "no certificate"
  const der = await issueOurs(t.sig.publicKey, 0, 'CN=Loaded Without Moving cardcf');
  await t.card.verifyPin(TEST_PIN); // reopen() reset the card
  await seedLoad(t.transport, 'sig-container', der);

  const again = await reopen(t, cache);
  assert.equal((await again.card.containers())[1]!.certificateFile, undefined, 'the card API serves its cache (cardcf did not move)');
  const port = again.card.minidriver();
  await port.begin();
  const raw = await port.readFile('mscp/ksc01');
  assert.ok(raw, 'the port reads the file the loader wrote');
  assert.equal(hex(decodeCertificateFile(raw, 'mscp/ksc01').der), hex(der));
});

test('signDigest: PKCS#1 v1.5 and PSS over a digest the caller computed, made on the card (verified with the public key); the PIN is needed', async () => {
  const t = await twoContainers();
  const u = await reopen(t);
  const port = u.card.minidriver();
  const message = Buffer.from('signed through the minidriver port');
  const digest = new Uint8Array(createHash('sha256').update(message).digest());
  await assert.rejects(port.signDigest(1, { hash: 'sha256', digest }), (e: Error & { sw?: number }) => e.sw === 0x6982);

  await assert.rejects(port.verifyPin('000000'), (e: unknown) => e instanceof PinError && e.code === 'PIN_INCORRECT');
  assert.deepEqual(await port.pinStatus(), { triesLeft: 2, tryLimit: 3 });
  await port.verifyPin(TEST_PIN);
  assert.deepEqual(await port.pinStatus(), { triesLeft: 3, tryLimit: 3 });

  u.transport.clear();
  const pkcs1 = await port.signDigest(1, { hash: 'sha256', digest });
  assert.equal(u.transport.count, 3, 'key map, MSE SET, PSO: no file read on the signing path');
  assert.ok(verify('sha256', message, t.sig.publicKey, pkcs1));
  assert.equal(verify('sha256', Buffer.from('another message'), t.sig.publicKey, pkcs1), false);

  for (const [index, key] of [[1, t.sig.publicKey], [0, t.kx.publicKey]] as const) {
    const pss = await port.signDigest(index, { hash: 'sha256', digest, padding: 'pss' });
    const options = { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
    assert.ok(verify('sha256', message, options, pss), `PSS with container ${index}`);
    assert.equal(verify('sha256', message, { key, padding: constants.RSA_PKCS1_PADDING }, pss), false, 'not a PKCS#1 v1.5 signature');
  }
  const sha1 = new Uint8Array(createHash('sha1').update(message).digest());
  assert.ok(verify('sha1', message, t.kx.publicKey, await port.signDigest(0, { hash: 'sha1', digest: sha1 })));
  await assert.rejects(port.signDigest(5, { hash: 'sha256', digest }), { code: 'NO_CONTAINER' });
});
