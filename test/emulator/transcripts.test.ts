/**
 * Replays the OpenSC ↔ GidsApplet transcripts (test/fixtures/opensc-gidsapplet) against one
 * emulated card, in the order they were recorded. Every response must be byte-identical, except:
 * the simulator's 6999 for unknown AIDs (a real card, and the emulator, answer 6A82), and what
 * randomness decides (the generated key, hence the public key read and the signature), which is
 * checked for shape and verified cryptographically instead.
 */
import { constants, createPublicKey, publicDecrypt } from 'node:crypto';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromHex, hex } from '../../src/bytes.js';
import { GidsCard } from '../../src/gids/emulator/index.js';
import { parseTlvs } from '../../src/gids/protocol/tlv.js';
import { readTrace } from '../helpers/traces.js';

/**
 * The recordings show a card reset between tool runs (the first probes find no application
 * selected: the simulator answers 6999 and 6986), except before initialize.txt, whose probes
 * reached the GIDS application still selected by opensc-n.txt (6A82, 6D00, 6984).
 */
const RUNS: ReadonlyArray<{ file: string; resetBefore: boolean }> = [
  { file: 'opensc-n.txt', resetBefore: true },
  { file: 'initialize.txt', resetBefore: false },
  { file: 'dump-empty.txt', resetBefore: true },
  { file: 'keygen.txt', resetBefore: true },
  { file: 'readpub.txt', resetBefore: true },
  { file: 'certstore.txt', resetBefore: true },
  { file: 'dump-full.txt', resetBefore: true },
  { file: 'p11sign.txt', resetBefore: true },
  { file: 'gidsonly-dump.txt', resetBefore: true },
  { file: 'gidsonly-p11sign.txt', resetBefore: true },
];

const READ_PUBLIC_KEY = '00CB3FFF0A7008840181A5037F498000';
const SIGN = /^002A9E9A/;

function publicKeyFrom(tlv: Uint8Array): { n: Uint8Array; e: Uint8Array } {
  const [outer] = parseTlvs(tlv);
  assert.equal(outer?.tag, 0x7f49);
  const [n, e, ...rest] = parseTlvs(outer.value);
  assert.equal(n?.tag, 0x81);
  assert.equal(e?.tag, 0x82);
  assert.equal(rest.length, 0);
  return { n: n.value, e: e.value };
}

test('the emulator answers the OpenSC transcripts as GidsApplet did', () => {
  const card = GidsCard.blank();
  let compared = 0;
  let shapeChecked = 0;
  let signaturesVerified = 0;
  let total = 0;
  let publicKey: { n: Uint8Array; e: Uint8Array } | undefined;
  for (const run of RUNS) {
    if (run.resetBefore) card.reset();
    const exchanges = readTrace(run.file);
    total += exchanges.length;
    assert.ok(exchanges.length > 10, `${run.file} has exchanges`);
    for (let i = 0; i < exchanges.length; i++) {
      const { command, response } = exchanges[i]!;
      const where = `${run.file} #${i} ${command.slice(0, 24)}`;
      const got = hex(card.process(fromHex(command)));
      if (command === READ_PUBLIC_KEY) {
        // 256 bytes now, the rest (14 bytes for RSA-2048) with GET RESPONSE, as recorded.
        const next = exchanges[++i]!;
        assert.equal(next.command, '00C000000E', where);
        const rest = hex(card.process(fromHex(next.command)));
        assert.equal(got.length, response.length, where);
        assert.equal(got.slice(-4), response.slice(-4), where);
        assert.equal(got.slice(0, 18), response.slice(0, 18), `${where}: 7F49 82 0109 81 82 0100 header`);
        assert.equal(rest.length, next.response.length, where);
        assert.equal(rest.slice(-14), next.response.slice(-14), `${where}: exponent 82 03 010001 then 9000`);
        const key = publicKeyFrom(fromHex(got.slice(0, -4) + rest.slice(0, -4)));
        assert.equal(key.n.length, 256);
        assert.equal(hex(key.e), '010001');
        if (publicKey !== undefined) assert.equal(hex(key.n), hex(publicKey.n), 'the same key on every read');
        publicKey = key;
        shapeChecked += 2;
        continue;
      }
      if (SIGN.test(command)) {
        assert.equal(got.length, response.length, where);
        assert.equal(got.slice(-4), '9000', where);
        assert.ok(publicKey !== undefined, 'the public key was read before signing');
        const digestInfo = fromHex(command).subarray(5, 5 + fromHex(command)[4]!);
        const keyObject = createPublicKey({
          key: { kty: 'RSA', n: Buffer.from(publicKey.n).toString('base64url'), e: Buffer.from(publicKey.e).toString('base64url') },
          format: 'jwk',
        });
        // Verifying PKCS#1 v1.5 over a ready DigestInfo: the public operation must give back
        // exactly 00 01 FF…FF 00 DigestInfo, which publicDecrypt checks and strips.
        const signature = fromHex(got.slice(0, -4));
        const recovered = publicDecrypt({ key: keyObject, padding: constants.RSA_PKCS1_PADDING }, signature);
        assert.equal(hex(recovered), hex(digestInfo), `${where}: the signature verifies with the key read from the card`);
        signaturesVerified++;
        continue;
      }
      const expected = response.endsWith('6999') ? response.slice(0, -4) + '6A82' : response;
      assert.equal(got, expected, where);
      compared++;
    }
  }
  assert.equal(shapeChecked, 8, 'four public key reads (two APDUs each)');
  assert.equal(signaturesVerified, 2);
  assert.equal(compared + shapeChecked + signaturesVerified, total, 'every exchange was checked');
  assert.ok(compared > 350, `${compared} responses compared byte for byte`);
});
