/**
 * One suite for the card API, run twice on the same kind of emulated card: once with the emulator
 * in process (MemoryTransport) and once with it in a vpcd slot behind the real pcscd (PcscTransport).
 * What passes in memory must pass unchanged through a reader.
 */
import assert from 'node:assert/strict';
import { constants, createVerify, publicEncrypt, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { MemoryCardCache, MinidriverCard, PinError } from '../../src/card/index.js';
import { GidsCard } from '../../src/gids/emulator/index.js';
import { openPcscTransport } from '../../src/transport/pcsc.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import type { Transport } from '../../src/transport/transport.js';
import { TEST_ADMIN_KEY, TEST_PIN } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';
import { SLOTS, insertCard, lockPcsc, type InsertedCard } from './harness.js';

interface Rig {
  /** A new connection to the same card, as the next command would open it. */
  connect(): Promise<Transport>;
  close(): Promise<void>;
}

function memoryRig(): Rig {
  const emulator = GidsCard.blank();
  return {
    async connect() {
      emulator.reset();
      return new MemoryTransport(emulator, 'memory');
    },
    async close() {},
  };
}

async function pcscRig(): Promise<Rig> {
  const release = await lockPcsc();
  let inserted: InsertedCard | undefined;
  try {
    inserted = await insertCard(GidsCard.blank(), SLOTS[0]);
  } catch (err) {
    release();
    throw err;
  }
  return {
    connect: () => openPcscTransport({ reader: SLOTS[0].reader }),
    async close() {
      await inserted?.eject();
      release();
    },
  };
}

function cardApiSuite(label: string, makeRig: () => Promise<Rig>): void {
  describe(`card API over ${label}`, () => {
    let rig: Rig;
    const open: Transport[] = [];
    /** Ends the previous connection first: through a reader, the default connection is exclusive. */
    const reconnect = async (): Promise<Transport> => {
      for (const t of open.splice(0)) await t.close();
      const t = await rig.connect();
      open.push(t);
      return t;
    };
    const connect = async (): Promise<MinidriverCard> => MinidriverCard.open(await reconnect(), { cache: new MemoryCardCache() });
    before(async () => {
      rig = await makeRig();
    });
    after(async () => {
      for (const t of open) await t.close();
      await rig.close();
    });

    it('initialises a blank card: fresh cardid, zeroed counters, PIN with 3 tries', async () => {
      const card = await MinidriverCard.initialize(await reconnect(), { pin: TEST_PIN, adminKey: TEST_ADMIN_KEY });
      const { cardId, cardcf } = await card.refresh();
      assert.equal(cardId.length, 16);
      assert.notDeepEqual(cardId, new Uint8Array(16));
      assert.equal(cardcf.containersFreshness, 0);
      assert.deepEqual(await card.pinStatus(), { triesLeft: 3, tryLimit: 3 });
      assert.deepEqual(await card.containers(), []);
    });

    it('a wrong PIN costs a try and says how many are left; the right one restores them', async () => {
      const card = await connect();
      await assert.rejects(card.verifyPin('000000'), (e) => e instanceof PinError && /2/.test(e.message));
      assert.equal((await card.pinStatus()).triesLeft, 2);
      await card.verifyPin(TEST_PIN);
      assert.equal((await card.pinStatus()).triesLeft, 3);
    });

    it('generates a key-exchange key: signs (verified with its public key) and deciphers', async () => {
      const card = await connect();
      await card.verifyPin(TEST_PIN);
      const c = await card.createContainer('kx-container', { bits: 1024, keySpec: 'kx' });
      assert.deepEqual([c.index, c.keySpec, c.keyBits, c.isDefault], [0, 'kx', 1024, true]);
      const data = new TextEncoder().encode('signed on a card');
      const signature = await card.sign('kx-container', data);
      assert.ok(createVerify('sha256').update(data).verify(c.publicKey, signature));
      const secret = randomBytes(32);
      const cryptogram = publicEncrypt({ key: c.publicKey, padding: constants.RSA_PKCS1_PADDING }, secret);
      assert.deepEqual(Buffer.from(await card.decipher('kx-container', cryptogram)), secret);
    });

    it('a second session sees the container and the same public key; a signature key cannot decipher', async () => {
      const card = await connect();
      const [first] = await card.containers();
      assert.equal(first?.name, 'kx-container');
      await card.verifyPin(TEST_PIN);
      const sig = await card.createContainer('sig-container', { bits: 1024, keySpec: 'sig' });
      assert.equal(sig.index, 1);
      await assert.rejects(card.decipher('sig-container', new Uint8Array(128)), (e: Error & { code?: string }) => e.code === 'WRONG_KEY_SPEC');
      const again = await connect();
      const names = (await again.containers()).map((c) => `${c.index}:${c.name}:${c.keySpec}`);
      assert.deepEqual(names, ['0:kx-container:kx', '1:sig-container:sig']);
      assert.equal(
        (await again.publicKey('sig-container')).export({ type: 'spki', format: 'pem' }),
        sig.publicKey.export({ type: 'spki', format: 'pem' }),
      );
    });

    it('installs a certificate that comes back byte-identical, and check finds the card clean', async () => {
      const card = await connect();
      await card.verifyPin(TEST_PIN);
      const cert = await issueOurs(await card.publicKey('kx-container'), 3);
      const result = await card.installCertificate(cert);
      assert.equal(result.container.name, 'kx-container');
      assert.equal(result.file, 'mscp/kxc00');
      const fresh = await connect();
      assert.deepEqual(await fresh.readCertificate('kx-container'), cert);
      assert.deepEqual((await fresh.check()).findings, []);
    });

    it('writes, lists, reads and deletes a logical file; long files survive chaining and 61xx', async () => {
      const card = await connect();
      await card.verifyPin(TEST_PIN);
      const body = new Uint8Array(3000).map((_, i) => (i * 7) & 0xff);
      await card.writeFile('mscp/test', body);
      const other = await connect();
      assert.ok((await other.listFiles()).some((f) => f.path === 'mscp/test' && f.size === body.length));
      assert.deepEqual(await other.readFile('mscp/test'), body);
      await other.verifyPin(TEST_PIN);
      await other.deleteFile('mscp/test');
      await assert.rejects((await connect()).readFile('mscp/test'), (e: Error & { code?: string }) => e.code === 'FILE_NOT_FOUND');
    });

    it('a new connection starts logged out (the last one reset the card): signing needs the PIN again', async () => {
      const card = await connect();
      await assert.rejects(card.sign('kx-container', new Uint8Array([1])));
      await card.verifyPin(TEST_PIN);
      assert.equal((await card.sign('kx-container', new Uint8Array([1]))).length, 128);
    });

    it('removes a certificate and changes the PIN', async () => {
      const card = await connect();
      await card.verifyPin(TEST_PIN);
      await card.removeCertificate('kx-container');
      assert.equal(await card.readCertificate('kx-container'), undefined);
      await card.changePin(TEST_PIN, '654321');
      const again = await connect();
      await again.verifyPin('654321');
      assert.deepEqual((await again.check()).findings, []);
    });
  });
}

cardApiSuite('the in-process emulator (MemoryTransport)', async () => memoryRig());
cardApiSuite('pcscd + vpcd (PcscTransport)', pcscRig);
