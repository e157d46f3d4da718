/**
 * The minidriver port over a PIV card (src/card/piv-minidriver.ts) against the PIV emulator in
 * process: containers named, ordered, defaulted and key-specced as docs/piv.md says Windows' PIV
 * minidriver does; cmapfile and the certificate files built from the slots; cardid from the CHUID;
 * signing (PKCS#1 v1.5, PSS, ECDSA) and RSA decryption through the port, checked with node:crypto.
 */
import assert from 'node:assert/strict';
import { constants, createHash, publicEncrypt, randomBytes, verify, X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { equalBytes } from '../../src/bytes.js';
import { ecdsaDerToRaw, pivContainerName, pivContainerSlotTag } from '../../src/card/piv-minidriver.js';
import { decodeCertificateFile, isDefaultContainer, isValidContainer, parseCardId, parseCmapfile } from '../../src/minidriver/index.js';
import { ALG, KEY_REF, OBJECT } from '../../src/piv/protocol/constants.js';
import { encodeKeyHistory } from '../../src/piv/protocol/objects.js';
import { EXAMPLE_GUID, PIV_MGMT_KEY, PIV_PIN, pivFixture } from '../helpers/piv-card.js';

const code = (c: string) => (e: unknown) => e instanceof Error && (e as { code?: string }).code === c;
const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest());

describe('PIV minidriver port: containers and files', () => {
  it('names containers from the CHUID GUID and the object tag (docs/piv.md example), 9A default kx, 9C sig, 9D kx, 9E sig', async () => {
    const f = await pivFixture();
    const k9a = await f.gen(KEY_REF.AUTHENTICATION, ALG.RSA_2048);
    const k9c = await f.gen(KEY_REF.SIGNATURE, ALG.ECC_P256);
    const k9d = await f.gen(KEY_REF.KEY_MANAGEMENT, ALG.ECC_P384);
    const k9e = await f.gen(KEY_REF.CARD_AUTHENTICATION, ALG.ECC_P256);
    // Written out of order: the container order is the slots', not the writes'.
    await f.install(KEY_REF.CARD_AUTHENTICATION, k9e, 'CN=9E');
    await f.install(KEY_REF.KEY_MANAGEMENT, k9d, 'CN=9D');
    await f.install(KEY_REF.SIGNATURE, k9c, 'CN=9C');
    await f.install(KEY_REF.AUTHENTICATION, k9a, 'CN=9A');

    const fresh = await f.port.begin();
    assert.equal(fresh.freshnessSource, 'host');
    assert.ok(equalBytes(fresh.cardId, EXAMPLE_GUID));
    const cs = await f.port.containers();
    assert.deepEqual(
      cs.map((c) => [c.index, c.name, c.keySpec, c.keyBits, c.isDefault]),
      [
        [0, '1d8ac658-e065-92a0-85af-090b075fc105', 'kx', 2048, true],
        [1, '1d8ac658-e065-92a0-85af-090b075fc10a', 'sig', 256, false],
        [2, '1d8ac658-e065-92a0-85af-090b075fc10b', 'kx', 384, false],
        [3, '1d8ac658-e065-92a0-85af-090b075fc101', 'sig', 256, false],
      ],
    );
    assert.equal(pivContainerSlotTag(cs[2]!.name), '5fc10b');
    assert.equal(pivContainerSlotTag('not-a-piv-name'), undefined);

    const cmap = parseCmapfile((await f.port.readFile('mscp/cmapfile'))!);
    assert.equal(cmap.length, 4);
    assert.deepEqual(cmap.map((r) => [r.name, isValidContainer(r), isDefaultContainer(r), r.kxKeyBits, r.sigKeyBits]), [
      [cs[0]!.name, true, true, 2048, 0],
      [cs[1]!.name, true, false, 0, 256],
      [cs[2]!.name, true, false, 384, 0],
      [cs[3]!.name, true, false, 0, 256],
    ]);
    assert.ok(equalBytes(parseCardId((await f.port.readFile('cardid'))!), EXAMPLE_GUID));
    assert.equal(await f.port.readFile('cardcf'), undefined, 'a PIV card has no cardcf');

    const subjects = ['CN=9A', 'CN=9C', 'CN=9D', 'CN=9E'];
    const files = ['mscp/kxc00', 'mscp/ksc01', 'mscp/kxc02', 'mscp/ksc03'];
    for (const [i, file] of files.entries()) {
      const der = decodeCertificateFile((await f.port.readFile(file))!, file).der;
      assert.equal(new X509Certificate(der).subject, subjects[i]);
    }
    // The other key spec of a container, and a container that does not exist, have no file.
    assert.equal(await f.port.readFile('mscp/ksc00'), undefined);
    assert.equal(await f.port.readFile('mscp/kxc01'), undefined);
    assert.equal(await f.port.readFile('mscp/kxc04'), undefined);
  });

  it('only slots with a certificate are containers, numbered in slot order; a key without a certificate is not one', async () => {
    const f = await pivFixture();
    await f.gen(KEY_REF.AUTHENTICATION, ALG.ECC_P256);
    const k9d = await f.gen(KEY_REF.KEY_MANAGEMENT, ALG.RSA_2048);
    await f.install(KEY_REF.KEY_MANAGEMENT, k9d);
    await f.port.begin();
    const cs = await f.port.containers();
    assert.deepEqual(cs.map((c) => [c.index, c.name.slice(-6), c.isDefault]), [[0, '5fc10b', false]]);
    assert.equal(await f.port.readFile('mscp/kxc00').then((b) => b && new X509Certificate(b).subject), 'CN=PIV User');
  });

  it('a gzip-compressed certificate object is presented decompressed', async () => {
    const f = await pivFixture();
    const k = await f.gen(KEY_REF.AUTHENTICATION, ALG.RSA_2048);
    const der = await f.install(KEY_REF.AUTHENTICATION, k, 'CN=Compressed', { compress: true });
    await f.port.begin();
    assert.ok(equalBytes((await f.port.readFile('mscp/kxc00'))!, der));
  });

  it('retired slots appear when the key history counts on-card retired certificates', async () => {
    const f = await pivFixture();
    const k = await f.gen(0x82, ALG.ECC_P256);
    await f.install(0x82, k, 'CN=Retired 1');
    await f.port.begin();
    assert.deepEqual(await f.port.containers(), [], 'no key history: the retired slots are not read');
    await f.writer.select();
    await f.writer.authenticate(PIV_MGMT_KEY);
    await f.writer.putObject(OBJECT.KEY_HISTORY, encodeKeyHistory({ onCard: 1, offCard: 0 }));
    await f.port.begin();
    const cs = await f.port.containers();
    assert.deepEqual(cs.map((c) => [c.index, c.name.slice(-6), c.keySpec]), [[0, '5fc10d', 'kx']]);
  });

  it('a new CHUID GUID renames every container and changes cardid', async () => {
    const f = await pivFixture();
    const k = await f.gen(KEY_REF.AUTHENTICATION, ALG.ECC_P256);
    await f.install(KEY_REF.AUTHENTICATION, k);
    await f.port.begin();
    const before = (await f.port.containers())[0]!.name;
    const other = new Uint8Array(randomBytes(16));
    await f.setChuid(other);
    const { cardId } = await f.port.begin();
    assert.ok(equalBytes(cardId, other));
    const after = (await f.port.containers())[0]!.name;
    assert.notEqual(after, before);
    assert.equal(after, pivContainerName(other, KEY_REF.AUTHENTICATION));
    assert.equal(pivContainerSlotTag(after), pivContainerSlotTag(before));
  });

  it('no CHUID: begin refuses with PIV_NO_CHUID, naming the repair', async () => {
    const f = await pivFixture(null);
    await assert.rejects(f.port.begin(), (e: unknown) => code('PIV_NO_CHUID')(e) && /no CHUID/.test((e as Error).message) && /check --repair/.test((e as Error).message));
  });
});

describe('PIV minidriver port: private key operations', () => {
  it('signs PKCS#1 v1.5 and PSS with an RSA-2048 9A key; decrypts a PKCS#1 v1.5 cryptogram', async () => {
    const f = await pivFixture();
    const k = await f.gen(KEY_REF.AUTHENTICATION, ALG.RSA_2048);
    await f.install(KEY_REF.AUTHENTICATION, k);
    await f.port.begin();
    await assert.rejects(f.port.signDigest(0, { hash: 'sha256', digest: sha256(new Uint8Array([1])) }), code('SW_6982'), 'the PIN first');
    await f.port.verifyPin(PIV_PIN);
    const data = new Uint8Array(randomBytes(40));
    const sig = await f.port.signDigest(0, { hash: 'sha256', digest: sha256(data) });
    assert.ok(verify('sha256', data, k, sig));
    assert.ok(!verify('sha256', new Uint8Array([...data, 0]), k, sig));
    const pss = await f.port.signDigest(0, { hash: 'sha256', digest: sha256(data), padding: 'pss' });
    assert.ok(verify('sha256', data, { key: k, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, pss));
    const secret = new Uint8Array(randomBytes(32));
    const cryptogram = publicEncrypt({ key: k, padding: constants.RSA_PKCS1_PADDING }, secret);
    assert.ok(equalBytes(await f.port.rsaDecrypt!(0, cryptogram), secret));
    assert.deepEqual(await f.port.publicKey(0), new Uint8Array(k.export({ type: 'spki', format: 'der' })));
  });

  it('signs ECDSA P-256 (9A) and P-384 (9C, PIN Always) and returns r‖s', async () => {
    const f = await pivFixture();
    const k256 = await f.gen(KEY_REF.AUTHENTICATION, ALG.ECC_P256);
    const k384 = await f.gen(KEY_REF.SIGNATURE, ALG.ECC_P384);
    await f.install(KEY_REF.AUTHENTICATION, k256);
    await f.install(KEY_REF.SIGNATURE, k384);
    await f.port.begin();
    await f.port.verifyPin(PIV_PIN);
    const data = new Uint8Array(randomBytes(64));
    const s256 = await f.port.signDigest(0, { hash: 'sha256', digest: sha256(data) });
    assert.equal(s256.length, 64);
    assert.ok(verify('sha256', data, { key: k256, dsaEncoding: 'ieee-p1363' }, s256));
    await f.port.verifyPin(PIV_PIN);
    const d384 = new Uint8Array(createHash('sha384').update(data).digest());
    const s384 = await f.port.signDigest(1, { hash: 'sha384', digest: d384 });
    assert.equal(s384.length, 96);
    assert.ok(verify('sha384', data, { key: k384, dsaEncoding: 'ieee-p1363' }, s384));
    // PIN Always: a second signature without a new VERIFY is refused by the card.
    await assert.rejects(f.port.signDigest(1, { hash: 'sha384', digest: d384 }), code('SW_6982'));
    await assert.rejects(f.port.rsaDecrypt!(0, new Uint8Array(32)), code('BAD_ALGORITHM'));
  });

  it('PIN status and a wrong PIN are reported in the port\'s terms', async () => {
    const f = await pivFixture();
    await f.port.begin();
    assert.deepEqual(await f.port.pinStatus(), { triesLeft: 3, tryLimit: 3 });
    await assert.rejects(f.port.verifyPin('654321'), code('PIN_INCORRECT'));
    assert.deepEqual(await f.port.pinStatus(), { triesLeft: 2, tryLimit: 3 });
    await f.port.verifyPin(PIV_PIN);
    assert.deepEqual(await f.port.pinStatus(), { triesLeft: 3, tryLimit: 3 });
  });

  it('ecdsaDerToRaw pads short integers and refuses what is not an ECDSA-Sig-Value', () => {
    const raw = ecdsaDerToRaw(new Uint8Array([0x30, 0x07, 0x02, 0x01, 0x05, 0x02, 0x02, 0x00, 0x80]), 4);
    assert.deepEqual([...raw], [0, 0, 0, 5, 0, 0, 0, 0x80]);
    assert.throws(() => ecdsaDerToRaw(new Uint8Array([0x04, 0x01, 0x00]), 4), code('PIV_BAD_SIGNATURE'));
  });
});
