/**
 * One card-API suite, two card applications: every operation `MinidriverCard` offers on both
 * GIDS and PIV (gen, public key, sign, csr, install, read, ls, rm-cert, PIN, check) runs the same
 * steps with the same assertions on an emulated GIDS card and an emulated PIV card. What differs
 * is only how a card is made and what a write needs (GIDS: the PIN; PIV: the management key).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { verify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MinidriverCard, type CreateContainerOptions } from '../../src/card/index.js';
import { GidsCard } from '../../src/gids/emulator/index.js';
import { FACTORY, PivCard } from '../../src/piv/emulator/index.js';
import { ALG } from '../../src/piv/protocol/constants.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { RecordingTransport } from '../../src/transport/recorder.js';
import { TEST_ADMIN_KEY, TEST_PIN, tempDir } from '../helpers/card.js';
import { issueOurs, issueWithOpenssl } from '../helpers/certs.js';

interface Application {
  kind: 'gids' | 'piv';
  /** A fresh card with the application, opened; PIN is TEST_PIN on both. */
  make(): Promise<{ card: MinidriverCard; reopen(): Promise<MinidriverCard> }>;
  /** The container name `createContainer` is given for a new key. */
  newContainer: string;
  /** The second PIN-related credential: GIDS unblocks with the administrator key, PIV with the PUK. */
  unblock(card: MinidriverCard, newPin: string): Promise<void>;
  keys: CreateContainerOptions[];
}

const managementKey = async () => ({ key: FACTORY.MANAGEMENT_KEY.slice(), alg: ALG.TDES });

const APPLICATIONS: Application[] = [
  {
    kind: 'gids',
    async make() {
      const emulator = GidsCard.blank();
      const card = await MinidriverCard.initialize(new RecordingTransport(new MemoryTransport(emulator)), { pin: TEST_PIN, adminKey: TEST_ADMIN_KEY });
      return {
        card,
        reopen: async () => {
          emulator.reset();
          return MinidriverCard.open(new MemoryTransport(emulator), { app: 'detect' });
        },
      };
    },
    newContainer: 'alice',
    unblock: (card, newPin) => card.unblockPin(TEST_ADMIN_KEY, newPin),
    keys: [{ bits: 2048 }],
  },
  {
    kind: 'piv',
    async make() {
      const emulator = PivCard.blank();
      assert.equal(FACTORY.PIN, TEST_PIN, 'the suite uses one PIN for both applications');
      const card = await MinidriverCard.open(new RecordingTransport(new MemoryTransport(emulator)), { app: 'piv', managementKey });
      return {
        card,
        reopen: async () => {
          emulator.reset();
          return MinidriverCard.open(new MemoryTransport(emulator), { app: 'detect', managementKey });
        },
      };
    },
    newContainer: '9a',
    unblock: (card, newPin) => card.unblockPinWithPuk(FACTORY.PUK, newPin),
    keys: [{ curve: 'p256' }, { bits: 2048 }],
  },
];

function opensslVerifies(der: Uint8Array): string {
  const dir = tempDir();
  const path = join(dir, 'req.der');
  writeFileSync(path, der);
  const r = spawnSync('openssl', ['req', '-inform', 'DER', '-in', path, '-verify', '-noout'], { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`;
}

for (const app of APPLICATIONS) {
  describe(`card API on ${app.kind.toUpperCase()}`, () => {
    for (const keyOptions of app.keys) {
      const label = keyOptions.curve ?? `rsa${keyOptions.bits}`;

      it(`${label}: gen, csr (openssl verifies), a test CA's certificate installed, ls shows it, a fresh session reads it`, async () => {
        const { card, reopen } = await app.make();
        assert.equal(card.kind, app.kind);
        await card.verifyPin(TEST_PIN);
        const made = await card.createContainer(app.newContainer, keyOptions);
        assert.equal(made.publicKey.asymmetricKeyType, keyOptions.curve ? 'ec' : 'rsa');
        const listed = await card.containers();
        assert.equal(listed.length, 1);
        assert.equal(listed[0]!.name, made.name);
        assert.equal(listed[0]!.isDefault, true);
        assert.equal(listed[0]!.certificateFile, undefined);
        assert.equal((await card.publicKey(made.name)).export({ type: 'spki', format: 'pem' }), made.publicKey.export({ type: 'spki', format: 'pem' }));

        await card.verifyPin(TEST_PIN);
        const csr = await card.csr(made.name, 'CN=Alice Example,O=cardlink');
        assert.match(opensslVerifies(csr.der), /self-signature verify OK/);
        const tampered = csr.der.slice();
        tampered[tampered.length - 5]! ^= 0xff;
        assert.doesNotMatch(opensslVerifies(tampered), /self-signature verify OK/, 'the verification can fail');

        const cert = issueWithOpenssl(csr.pem);
        const result = await card.installCertificate(cert);
        assert.equal(result.unchanged, false);
        assert.equal(result.container.name, (await card.containers())[0]!.name);
        const again = await card.installCertificate(cert);
        assert.equal(again.unchanged, true, 'the same certificate again writes nothing');

        const fresh = await reopen();
        assert.equal(fresh.kind, app.kind, 'detection finds the same application');
        const [c] = await fresh.containers();
        assert.ok(c?.certificateFile, 'ls: the container has its certificate');
        assert.deepEqual(await fresh.readCertificate(c.name), cert);
        assert.deepEqual((await fresh.check()).findings, []);
      });
    }

    it('sign: the signature verifies with the container key; wrong key refused at install', async () => {
      const { card } = await app.make();
      await card.verifyPin(TEST_PIN);
      const made = await card.createContainer(app.newContainer, app.keys[0]!);
      const data = new TextEncoder().encode('challenge from the model');
      await card.verifyPin(TEST_PIN);
      const sig = await card.sign(made.name, data, 'sha256');
      assert.ok(verify('sha256', data, made.publicKey, sig));
      assert.ok(!verify('sha256', new TextEncoder().encode('other'), made.publicKey, sig));
      const stranger = await issueOurs((await import('node:crypto')).generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
      await assert.rejects(card.installCertificate(stranger), { code: 'NO_MATCHING_CONTAINER' });
      await assert.rejects(card.installCertificate(stranger, { container: made.name }), { code: 'KEY_MISMATCH' });
      assert.equal((await card.containers())[0]!.certificateFile, undefined, 'nothing was written');
    });

    it('rm-cert: the certificate goes, the key stays; again is a no-op', async () => {
      const { card } = await app.make();
      await card.verifyPin(TEST_PIN);
      const made = await card.createContainer(app.newContainer, app.keys[0]!);
      await card.installCertificate(await issueOurs(made.publicKey));
      const name = (await card.containers())[0]!.name;
      const removed = await card.removeCertificate(name);
      assert.ok(removed.file);
      assert.equal(await card.readCertificate(name), undefined);
      assert.equal((await card.publicKey(name)).export({ format: 'jwk' }).x ?? 'rsa', made.publicKey.export({ format: 'jwk' }).x ?? 'rsa');
      assert.equal((await card.removeCertificate(name)).file, undefined);
    });

    it('PIN: wrong PIN counts down, blocks, and the unblock credential sets a new one', async () => {
      const { card } = await app.make();
      const start = await card.pinStatus();
      assert.equal(start.triesLeft, start.tryLimit);
      await assert.rejects(card.verifyPin('999999'), { code: 'PIN_INCORRECT' });
      assert.equal((await card.pinStatus()).triesLeft, start.tryLimit - 1);
      for (let i = start.tryLimit - 1; i > 0; i--) await assert.rejects(card.verifyPin('999999'));
      assert.equal((await card.pinStatus()).triesLeft, 0);
      await assert.rejects(card.verifyPin(TEST_PIN), { code: 'PIN_BLOCKED' });
      await app.unblock(card, '654321');
      await card.verifyPin('654321');
      await card.changePin('654321', '1234567');
      await assert.rejects(card.verifyPin('654321'), { code: 'PIN_INCORRECT' });
      await card.verifyPin('1234567');
      assert.equal((await card.pinStatus()).triesLeft, start.tryLimit);
    });
  });
}
