/**
 * The PIV card image: a reopened image is the same card (objects, keys, counters, management key),
 * secrets never appear in the clear, an edited or foreign image is refused, and a save that fails
 * leaves the card as it was (6581, nothing changed) — the same rules as the GIDS image, through
 * the shared src/card-image.ts.
 */
import assert from 'node:assert/strict';
import { createHash, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { containsBytes } from '../../src/bytes.js';
import { CardImageError, cardImageApplication } from '../../src/card-image.js';
import { openCardImage } from '../../src/gids/emulator/index.js';
import { FACTORY, openPivCardImage } from '../../src/piv/emulator/index.js';
import { PivSession } from '../../src/piv/host/session.js';
import { ALG, OBJECT } from '../../src/piv/protocol/constants.js';
import { newChuid, pinBlock } from '../../src/piv/protocol/objects.js';
import { MemoryTransport } from '../../src/transport/memory.js';

const home = mkdtempSync(join(tmpdir(), 'cardlink-piv-home-'));

function imagePath(name: string): string {
  return join(mkdtempSync(join(tmpdir(), 'cardlink-piv-image-')), name);
}

async function session(path: string, create = false): Promise<PivSession> {
  const s = new PivSession(new MemoryTransport(openPivCardImage(path, { create, home })));
  await s.select();
  return s;
}

const isImageError = (code: string) => (e: unknown) => e instanceof CardImageError && e.code === code;

describe('PIV card image', () => {
  it('a reopened image is the same card: objects, keys, PIN counter, a changed management key', async () => {
    const path = imagePath('piv.json');
    const s = await session(path, true);
    await s.authenticate(FACTORY.MANAGEMENT_KEY);
    const chuid = newChuid();
    await s.putObject(OBJECT.CHUID, chuid);
    const pub = await s.generateKey(0x9a, ALG.ECC_P256);
    await assert.rejects(s.verifyPin('000000'));
    assert.equal(cardImageApplication(readFileSync(path)), 'piv');

    const again = await session(path);
    assert.deepEqual(await again.getObject(OBJECT.CHUID), chuid);
    assert.deepEqual(await again.pinStatus(), { verified: false, triesLeft: 2 }, 'the try counter survived');
    await again.verifyPin(FACTORY.PIN);
    const h = createHash('sha256').update('m').digest();
    assert.ok(verify('sha256', Buffer.from('m'), pub, await again.sign(0x9a, ALG.ECC_P256, h)), 'the reloaded key signs for the public key from GENERATE');
  });

  it('the file holds neither PIN, PUK, management key nor private key bytes in the clear', async () => {
    const path = imagePath('secret.json');
    const s = await session(path, true);
    await s.authenticate(FACTORY.MANAGEMENT_KEY);
    await s.generateKey(0x9d, ALG.RSA_2048);
    await s.changePin(FACTORY.PIN, '86420975');
    const file = new Uint8Array(readFileSync(path));
    const text = readFileSync(path, 'utf8');
    const card = openPivCardImage(path, { home });
    const state = card.snapshot();
    const jwk = state.keys.get(0x9d)!.privateKey.export({ format: 'jwk' });
    for (const part of [jwk.d, jwk.p, jwk.q, jwk.dp, jwk.dq, jwk.qi]) {
      const bytes = Buffer.from(part!, 'base64url');
      assert.ok(!containsBytes(file, bytes.subarray(0, 16)), 'private key bytes');
      assert.ok(!text.toUpperCase().includes(bytes.subarray(0, 16).toString('hex').toUpperCase()), 'private key hex');
      assert.ok(!text.includes(part!.slice(0, 20)), 'private key base64');
    }
    for (const secret of [pinBlock('86420975')!, pinBlock(FACTORY.PUK)!, FACTORY.MANAGEMENT_KEY]) {
      assert.ok(!containsBytes(file, secret));
      assert.ok(!text.toUpperCase().includes(Buffer.from(secret).toString('hex').toUpperCase()));
    }
    assert.ok(!text.includes('86420975'));
  });

  it('an edited public value breaks the seal; a foreign seal key, garbage and the wrong application are refused', async () => {
    const path = imagePath('edit.json');
    await session(path, true);
    const json = JSON.parse(readFileSync(path, 'utf8'));
    json.pinTries = 1;
    writeFileSync(path, JSON.stringify(json));
    assert.throws(() => openPivCardImage(path, { home }), isImageError('IMAGE_SEAL'));
    const other = mkdtempSync(join(tmpdir(), 'cardlink-piv-otherhome-'));
    const fresh = imagePath('fresh.json');
    await session(fresh, true);
    assert.throws(() => openPivCardImage(fresh, { home: other }), isImageError('IMAGE_SEAL'));
    writeFileSync(fresh, '{"format":"cardlink-piv-card-image"');
    assert.throws(() => openPivCardImage(fresh, { home }), (e: unknown) => isImageError('IMAGE_CORRUPT')(e) && (e as Error).message.includes(fresh));
    assert.throws(() => openPivCardImage(imagePath('none.json'), { home }), isImageError('IMAGE_NOT_FOUND'));
    const gids = imagePath('gids.json');
    openCardImage(gids, { create: true, home });
    assert.equal(cardImageApplication(readFileSync(gids)), 'gids');
    assert.throws(() => openPivCardImage(gids, { home }), isImageError('IMAGE_CORRUPT'), 'a GIDS image is not a PIV card');
  });

  it('a save that fails answers 6581 and changes nothing, counters included', async () => {
    const path = imagePath('ro.json');
    const card = openPivCardImage(path, { create: true, home });
    const s = new PivSession(new MemoryTransport(card));
    await s.select();
    await s.authenticate(FACTORY.MANAGEMENT_KEY);
    const before = readFileSync(path);
    const dir = join(path, '..');
    renameSync(dir, dir + '.away');
    try {
      await assert.rejects(s.putObject(OBJECT.CHUID, newChuid()), (e: unknown) => (e as { code?: string }).code === 'SW_6581');
      await assert.rejects(s.verifyPin('000000'), (e: unknown) => (e as { code?: string }).code === 'SW_6581');
      await assert.rejects(s.generateKey(0x9a, ALG.ECC_P256), (e: unknown) => (e as { code?: string }).code === 'SW_6982', 'a failed save ends the management key session too');
    } finally {
      renameSync(dir + '.away', dir);
    }
    assert.deepEqual(readFileSync(path), before);
    assert.equal(card.snapshot().objects.has(OBJECT.CHUID), false);
    assert.equal(card.snapshot().pinTries, 3);
    assert.deepEqual(await s.pinStatus(), { verified: false, triesLeft: 3 });
  });
});
