/**
 * The PIV application of the card API (src/card/piv-application.ts): slots as Windows' PIV
 * minidriver presents them, the management key, check and repair of what careless writers leave,
 * and the card pulled after every APDU of gen and install.
 */
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { equalBytes } from '../../src/bytes.js';
import { MinidriverCard, pivContainerName, PUBLIC_KEY_RECORD, type ManagementKeySource } from '../../src/card/index.js';
import { FACTORY, PivCard } from '../../src/piv/emulator/index.js';
import { PivSession } from '../../src/piv/host/session.js';
import { ALG, certificateObjectOf, OBJECT } from '../../src/piv/protocol/constants.js';
import { encodeKeyHistory, parseChuid } from '../../src/piv/protocol/objects.js';
import { encodeTlv } from '../../src/ber-tlv.js';
import { concat } from '../../src/bytes.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { RecordingTransport } from '../../src/transport/recorder.js';
import { issueOurs } from '../helpers/certs.js';
import { pivCardWithCertificate } from './helpers.js';

const rightKey: ManagementKeySource = async () => ({ key: FACTORY.MANAGEMENT_KEY.slice(), alg: ALG.TDES });

async function open(emulator: PivCard, managementKey: ManagementKeySource = rightKey): Promise<MinidriverCard> {
  emulator.reset();
  return MinidriverCard.open(new MemoryTransport(emulator), { app: 'piv', managementKey });
}

/** A writer that knows PIV but not Windows: GENERATE and PUT DATA of the certificate, nothing else. */
async function carelessWriter(emulator: PivCard, slot: number, der?: (key: KeyObject) => Promise<Uint8Array>): Promise<KeyObject> {
  emulator.reset();
  const s = new PivSession(new MemoryTransport(emulator));
  await s.select();
  await s.authenticate(FACTORY.MANAGEMENT_KEY);
  const key = await s.generateKey(slot, ALG.ECC_P256);
  await s.writeCertificate(slot, der ? await der(key) : await issueOurs(key));
  return key;
}

function slotPublicKey(emulator: PivCard, slot: number): string | undefined {
  const k = emulator.snapshot().keys.get(slot);
  return k ? createPublicKey(k.privateKey).export({ type: 'spki', format: 'pem' }).toString() : undefined;
}

describe('PIV containers as Windows presents them', () => {
  it('names come from the CHUID GUID and the certificate object tag (docs/piv.md example)', () => {
    const guid = new Uint8Array([0x58, 0xc6, 0x8a, 0x1d, 0x65, 0xe0, 0xa0, 0x92, 0x85, 0xaf, 0x09, 0x0b, 0x07, 0xaa, 0xbb, 0xcc]);
    assert.equal(pivContainerName(guid, 0x9a), '1d8ac658-e065-92a0-85af-090b075fc105');
    assert.equal(pivContainerName(guid, 0x9c), '1d8ac658-e065-92a0-85af-090b075fc10a');
    assert.equal(pivContainerName(guid, 0x82), '1d8ac658-e065-92a0-85af-090b075fc10d');
  });

  it('gen writes a CHUID on a blank card; slots are listed 9A, 9C, …, 82 with their key specs, 9A default', async () => {
    const emulator = PivCard.blank();
    const card = await open(emulator);
    assert.equal(emulator.snapshot().objects.get(OBJECT.CHUID), undefined, 'blank: no CHUID');
    await card.createContainer('82', { bits: 2048 });
    await card.createContainer('9C', { curve: 'p384' });
    const a = await card.createContainer('9a', { curve: 'p256' });
    const guid = parseChuid(emulator.snapshot().objects.get(OBJECT.CHUID)!).guid;
    const list = await (await open(emulator)).containers();
    assert.deepEqual(
      list.map((c) => [c.index, c.slot, c.name, c.keySpec, c.algorithm, c.isDefault]),
      [
        [0, 0x9a, pivContainerName(guid, 0x9a), 'kx', 'ECC P-256', true],
        [1, 0x9c, pivContainerName(guid, 0x9c), 'sig', 'ECC P-384', false],
        [2, 0x82, pivContainerName(guid, 0x82), 'kx', 'RSA-2048', false],
      ],
    );
    assert.equal(a.name, pivContainerName(guid, 0x9a));
    assert.equal(slotPublicKey(emulator, 0x9a), a.publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'the recorded key is the slot key');
    assert.ok(emulator.snapshot().objects.get(PUBLIC_KEY_RECORD), "the public keys are recorded in cardlink's object");
  });

  it('a slot is also addressed by its container name; 3072-bit RSA and a slot with a certificate are refused', async () => {
    const emulator = PivCard.blank();
    const card = await open(emulator);
    const made = await card.createContainer('9d', { bits: 2048 });
    await assert.rejects(card.createContainer('9a', { bits: 3072 }), { code: 'BAD_ALGORITHM' });
    await assert.rejects(card.createContainer('9a', { keySpec: 'sig' }), { code: 'WRONG_KEY_SPEC' });
    await assert.rejects(card.createContainer('alice'), { code: 'BAD_CONTAINER_NAME' });
    await card.installCertificate(await issueOurs(made.publicKey));
    const before = slotPublicKey(emulator, 0x9d);
    await assert.rejects(card.createContainer(made.name, { bits: 2048 }), { code: 'CONTAINER_EXISTS' });
    assert.equal(slotPublicKey(emulator, 0x9d), before, 'the key is untouched');
  });

  it('9C (PIN always): csr and sign verify the PIN again right before the key is used', async () => {
    const emulator = PivCard.blank();
    const card = await open(emulator);
    const made = await card.createContainer('9c', { curve: 'p256' });
    await card.verifyPin(FACTORY.PIN);
    const csr = await card.csr(made.name, 'CN=Signer');
    assert.ok(csr.der.length > 100);
    const sig = await card.sign(made.name, new Uint8Array([1, 2, 3]));
    assert.ok((await import('node:crypto')).verify('sha256', new Uint8Array([1, 2, 3]), made.publicKey, sig));
  });

  it('the test hook for the link/model half: a card with a generated key and its certificate, listed', async () => {
    const { card, certificate, publicKey, container } = await pivCardWithCertificate();
    const [c] = await card.containers();
    assert.equal(c?.name, container);
    assert.deepEqual(await card.readCertificate(container), certificate);
    assert.equal((await card.publicKey(container)).export({ type: 'spki', format: 'pem' }), publicKey.export({ type: 'spki', format: 'pem' }));
    assert.deepEqual((await card.check()).findings, []);
  });

  it('data objects stand in for files; GIDS-only operations say so', async () => {
    const emulator = PivCard.blank();
    const card = await open(emulator);
    await card.createContainer('9a', { curve: 'p256' });
    const objects = await card.dataObjects();
    assert.deepEqual(
      objects.map((o) => o.tag),
      ['5FC102', '7E', '5FFF20'],
    );
    await assert.rejects(card.listFiles(), { code: 'NOT_ON_THIS_CARD', message: /GIDS cards only; this card speaks PIV/ });
    await assert.rejects(card.adminChallenge(), { code: 'NOT_ON_THIS_CARD' });
  });
});

describe('which application: GIDS first, then PIV', () => {
  it('detect opens a GIDS card as GIDS, a PIV card as PIV, and names a card with neither', async () => {
    const { GidsCard } = await import('../../src/gids/emulator/index.js');
    const gids = await MinidriverCard.open(new MemoryTransport(GidsCard.blank()), { app: 'detect' });
    assert.equal(gids.kind, 'gids');
    const piv = await MinidriverCard.open(new MemoryTransport(PivCard.blank()), { app: 'detect' });
    assert.equal(piv.kind, 'piv');
    await assert.rejects(MinidriverCard.open(new MemoryTransport(PivCard.blank())), { code: 'NOT_GIDS' }, 'without app: GIDS only, as before');
    const neither = { process: () => new Uint8Array([0x6a, 0x82]), reset: () => {}, atr: new Uint8Array([0x3b, 0x00]) };
    await assert.rejects(MinidriverCard.open(new MemoryTransport(neither as unknown as PivCard), { app: 'detect' }), { code: 'NO_CARD_APPLICATION', message: /neither a GIDS nor a PIV application/ });
  });
});

describe('PIV management key', () => {
  it('a wrong key is refused in plain terms, changes nothing, and is not counted (the right key works after many wrong ones)', async () => {
    const emulator = PivCard.blank();
    const wrong: ManagementKeySource = async () => ({ key: new Uint8Array(24).fill(7), alg: ALG.TDES });
    for (let i = 0; i < 5; i++) {
      const card = await open(emulator, wrong);
      await assert.rejects(card.createContainer('9a', { curve: 'p256' }), { code: 'MGMT_KEY_REFUSED', message: /refused the management key.*CARDLINK_MGMT_KEY/ });
    }
    assert.equal(emulator.snapshot().keys.size, 0);
    assert.equal(emulator.snapshot().objects.get(OBJECT.CHUID), undefined);
    await (await open(emulator)).createContainer('9a', { curve: 'p256' });
    assert.equal(emulator.snapshot().keys.size, 1);
  });

  it('an AES key for a 3DES card is refused as the wrong algorithm; no key source is a clear error', async () => {
    const emulator = PivCard.blank();
    const aes: ManagementKeySource = async () => ({ key: new Uint8Array(16), alg: ALG.AES_128 });
    await assert.rejects((await open(emulator, aes)).createContainer('9a'), { code: 'MGMT_KEY_REFUSED', message: /not a AES-128 key/ });
    const none = await MinidriverCard.open(new MemoryTransport(emulator), { app: 'piv' });
    await assert.rejects(none.createContainer('9a'), { code: 'MGMT_KEY_NEEDED', message: /CARDLINK_MGMT_KEY/ });
  });

  it('the key source is zeroed after use', async () => {
    const emulator = PivCard.blank();
    const given = FACTORY.MANAGEMENT_KEY.slice();
    const card = await open(emulator, async () => ({ key: given, alg: ALG.TDES }));
    await card.createContainer('9a', { curve: 'p256' });
    assert.ok(given.every((b) => b === 0));
  });
});

describe('PIV check and repair', () => {
  it('a careless writer (no CHUID): check names it, repair writes a CHUID and says links must be redone', async () => {
    const emulator = PivCard.blank();
    const key = await carelessWriter(emulator, 0x9a);
    const card = await open(emulator);
    const [c] = await card.containers();
    assert.equal(c?.name, 'piv-9a', 'listed by its certificate key, without a CHUID name');
    assert.equal((await card.publicKey('9a')).export({ type: 'spki', format: 'pem' }), key.export({ type: 'spki', format: 'pem' }));
    const report = await card.check();
    assert.deepEqual(report.findings.map((f) => f.code), ['CHUID_MISSING']);
    assert.match(report.findings[0]!.fix, /links made by 'cardlink link' must be redone/);
    const repaired = await card.repair();
    assert.equal(repaired.before.findings[0]!.fixed, true);
    assert.deepEqual(repaired.after.findings, []);
    const guid = parseChuid(emulator.snapshot().objects.get(OBJECT.CHUID)!).guid;
    assert.equal((await (await open(emulator)).containers())[0]!.name, pivContainerName(guid, 0x9a));
  });

  it('key history disagreeing with the retired slots is found and rewritten', async () => {
    const emulator = PivCard.blank();
    const card = await open(emulator);
    await card.createContainer('9a', { curve: 'p256' });
    await carelessWriter(emulator, 0x82);
    await carelessWriter(emulator, 0x83);
    let report = await (await open(emulator)).check();
    assert.deepEqual(report.findings.map((f) => f.code), ['KEY_HISTORY_MISMATCH']);
    assert.match(report.findings[0]!.message, /but 2 retired slots hold one/);
    const repaired = await (await open(emulator)).repair();
    assert.equal(repaired.before.findings[0]!.fixed, true);
    assert.deepEqual(repaired.after.findings, []);
    // The other way: the object claims retired keys the card does not hold.
    const s = new PivSession(new MemoryTransport(emulator));
    emulator.reset();
    await s.select();
    await s.authenticate(FACTORY.MANAGEMENT_KEY);
    await s.putObject(OBJECT.KEY_HISTORY, encodeKeyHistory({ onCard: 5, offCard: 0 }));
    report = await (await open(emulator)).check();
    assert.deepEqual(report.findings.map((f) => f.code), ['KEY_HISTORY_MISMATCH']);
  });

  it('a certificate that does not decompress and a certificate for another key are named, not "repaired"', async () => {
    const emulator = PivCard.blank();
    const card = await open(emulator);
    await card.createContainer('9a', { curve: 'p256' });
    await card.createContainer('9d', { curve: 'p256' });
    emulator.reset();
    const s = new PivSession(new MemoryTransport(emulator));
    await s.select();
    await s.authenticate(FACTORY.MANAGEMENT_KEY);
    // CertInfo says gzip, the body is not gzip.
    await s.putObject(certificateObjectOf(0x9a), concat(encodeTlv(0x70, new Uint8Array(40).fill(0x41)), encodeTlv(0x71, new Uint8Array([1])), new Uint8Array([0xfe, 0x00])));
    await s.writeCertificate(0x9d, await issueOurs(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey));
    const fresh = await open(emulator);
    const report = await fresh.check();
    assert.deepEqual(report.findings.map((f) => [f.code, f.file]).sort(), [
      ['CERT_KEY_MISMATCH', '5FC10B'],
      ['CERT_MALFORMED', '5FC105'],
    ]);
    assert.match(report.findings.find((f) => f.code === 'CERT_MALFORMED')!.message, /does not decompress/);
    assert.equal((await fresh.containers()).length, 2, 'ls still lists both slots');
    await assert.rejects(fresh.readCertificate('9a'), { code: 'CERT_UNREADABLE' });
    const repaired = await fresh.repair();
    assert.ok(repaired.before.findings.every((f) => f.fixed === false));
    assert.equal(repaired.after.findings.length, 2);
  });
});

describe('PIV: the card pulled after every APDU of gen and install (card layer)', () => {
  async function cut(emulator: PivCard, k: number, fn: (card: MinidriverCard) => Promise<unknown>): Promise<boolean> {
    emulator.reset();
    const t = new RecordingTransport(new MemoryTransport(emulator));
    t.failAfter(k);
    try {
      await fn(await MinidriverCard.open(t, { app: 'piv', managementKey: rightKey }));
      return true;
    } catch (e) {
      assert.equal((e as { code?: string }).code, 'CARD_REMOVED', String(e));
      return false;
    }
  }

  it('gen on a blank card: the slot is unlisted (as before) or listed with the key it holds; check stays clean', async () => {
    const base = PivCard.blank().snapshot();
    let cuts = 0;
    for (let k = 0; ; k++) {
      const emulator = PivCard.fromState({ ...base });
      const done = await cut(emulator, k, (card) => card.createContainer('9a', { curve: 'p256' }));
      const card = await open(emulator);
      const list = await card.containers();
      if (list.length > 0) {
        assert.equal((await card.publicKey('9a')).export({ type: 'spki', format: 'pem' }), slotPublicKey(emulator, 0x9a), `cut after ${k}: the recorded key is the slot's key`);
      } else {
        assert.ok(!done, 'a finished gen lists the slot');
      }
      assert.deepEqual((await card.check()).findings.filter((f) => f.code !== 'CHUID_MISSING'), [], `cut after ${k}`);
      if (done) break;
      cuts++;
    }
    assert.ok(cuts >= 5, `${cuts} cut points`);
  });

  it('gen over a slot with an earlier key: never the new key paired with the old record', async () => {
    const first = PivCard.blank();
    await (await open(first)).createContainer('9a', { curve: 'p256' });
    const base = first.snapshot();
    for (let k = 0; ; k++) {
      const emulator = PivCard.fromState({ ...base });
      const done = await cut(emulator, k, (card) => card.createContainer('9a', { curve: 'p384' }));
      const card = await open(emulator);
      const known = await card.publicKey('9a').then(
        (key) => key.export({ type: 'spki', format: 'pem' }),
        () => undefined,
      );
      if (known !== undefined) assert.equal(known, slotPublicKey(emulator, 0x9a), `cut after ${k}`);
      if (done) break;
    }
  });

  it('install: the slot holds the old certificate or the new one, and check is clean either way', async () => {
    const first = PivCard.blank();
    const card0 = await open(first);
    const made = await card0.createContainer('9a', { curve: 'p256' });
    const old = await issueOurs(made.publicKey, 0, 'CN=old');
    await card0.installCertificate(old);
    const next = await issueOurs(made.publicKey, 30, 'CN=new');
    const base = first.snapshot();
    let cuts = 0;
    for (let k = 0; ; k++) {
      const emulator = PivCard.fromState({ ...base });
      const done = await cut(emulator, k, (card) => card.installCertificate(next, { force: true }));
      const card = await open(emulator);
      const now = (await card.readCertificate('9a'))!;
      if (done) assert.ok(equalBytes(now, next), 'complete: the new certificate');
      else assert.ok(equalBytes(now, old) || equalBytes(now, next), `cut after ${k}: the old certificate or the new one, whole`);
      assert.deepEqual((await card.check()).findings, [], `cut after ${k}`);
      if (done) break;
      cuts++;
    }
    assert.ok(cuts >= 5, `${cuts} cut points`);
  });
});
