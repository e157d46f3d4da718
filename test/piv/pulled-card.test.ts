/**
 * The card pulled after every APDU of a certificate write and of a key generation, at the PIV
 * session level: the slot is either as before or as intended, never half-written, and the next
 * session (after a reset, as a re-inserted card) reads a well-formed object. The card-level
 * freshness rules on top of this are the card layer's (docs/piv.md).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { equalBytes } from '../../src/bytes.js';
import { PivCard } from '../../src/piv/emulator/index.js';
import { PivSession } from '../../src/piv/host/session.js';
import { ALG, certificateObjectOf } from '../../src/piv/protocol/constants.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { RecordingTransport } from '../../src/transport/recorder.js';
import { issueOurs } from '../helpers/certs.js';
import { MGMT_KEY } from './helpers.js';

async function run(card: PivCard, cutAfter: number, fn: (s: PivSession) => Promise<void>): Promise<boolean> {
  card.reset();
  const t = new RecordingTransport(new MemoryTransport(card));
  t.failAfter(cutAfter);
  try {
    await fn(new PivSession(t));
    return true;
  } catch (e) {
    assert.equal((e as { code?: string }).code, 'CARD_REMOVED');
    return false;
  }
}

describe('PIV: the card pulled after every APDU', () => {
  it('a certificate write leaves the slot with the old certificate or the new one', async () => {
    const card = PivCard.blank();
    const old = await issueOurs(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey, 0, 'CN=old');
    const next = await issueOurs(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey, 30, 'CN=new');
    assert.ok(next.length > 2 * 255, 'the new certificate needs a chain of several APDUs');
    const write = (der: Uint8Array) => async (s: PivSession): Promise<void> => {
      await s.select();
      await s.authenticate(MGMT_KEY);
      await s.writeCertificate(0x9a, der);
    };
    assert.ok(await run(card, Infinity, write(old)));
    const before = card.snapshot().objects.get(certificateObjectOf(0x9a))!;
    let cuts = 0;
    for (let k = 0; ; k++) {
      const fresh = PivCard.fromState({ ...card.snapshot() });
      const done = await run(fresh, k, write(next));
      fresh.reset();
      const s = new PivSession(new MemoryTransport(fresh));
      await s.select();
      const now = (await s.readCertificate(0x9a))!.der;
      if (done) {
        assert.ok(equalBytes(now, next), 'complete: the new certificate');
        break;
      }
      cuts++;
      assert.ok(equalBytes(fresh.snapshot().objects.get(certificateObjectOf(0x9a))!, before), `cut after ${k} APDUs: the old object, untouched`);
      assert.ok(equalBytes(now, old));
    }
    assert.ok(cuts >= 5, `${cuts} cut points (select, two authentication steps, the chain's pieces)`);
  });

  it('a key generation leaves the slot with the old key or a complete new one', async () => {
    const card = PivCard.blank();
    const gen = async (s: PivSession): Promise<void> => {
      await s.select();
      await s.authenticate(MGMT_KEY);
      await s.generateKey(0x9c, ALG.ECC_P256);
    };
    assert.ok(await run(card, Infinity, gen));
    const before = card.snapshot().keys.get(0x9c)!;
    for (let k = 0; k < 10; k++) {
      const fresh = PivCard.fromState({ ...card.snapshot() });
      const done = await run(fresh, k, gen);
      const after = fresh.snapshot().keys.get(0x9c)!;
      if (done) {
        assert.notEqual(after, before, 'complete: a new key');
        assert.equal(after.alg, ALG.ECC_P256);
        return;
      }
      assert.equal(after, before, `cut after ${k} APDUs: the old key`);
    }
    assert.fail('the generation never completed');
  });
});
