/**
 * cardlink's card commands on a PIV card written by yubico-piv-tool, through the real pcscd +
 * vpcd: `--reader` detects the application (GIDS first, then PIV), `card ls` lists the key and
 * certificate yubico-piv-tool made, `card check` names what it left out (no CHUID, as
 * yubico-piv-tool does not set one unless asked) and `--repair` fixes it; a CHUID written by
 * yubico-piv-tool makes the check clean and names the container after its GUID.
 */
import assert from 'node:assert/strict';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pivContainerName } from '../../src/card/index.js';
import { FACTORY, PivCard } from '../../src/piv/emulator/index.js';
import { OBJECT } from '../../src/piv/protocol/constants.js';
import { parseChuid } from '../../src/piv/protocol/objects.js';
import { tempDir } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';
import { cli } from '../helpers/cli.js';
import { SLOTS, insertCard, lockPcsc, runTool } from './harness.js';

const SLOT = SLOTS[0];

async function tool(command: string, args: string[]): Promise<string> {
  const r = await runTool(command, args, { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `${command} ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout + r.stderr;
}

describe('cardlink card commands on what yubico-piv-tool wrote, through pcscd + vpcd', () => {
  let release: () => void = () => {};
  before(async () => {
    release = await lockPcsc();
  });
  after(() => release());

  it('a key generated and a certificate imported by yubico-piv-tool: ls lists them, check names the missing CHUID, repair and set-chuid fix it', async () => {
    const dir = tempDir('cardlink-piv-api-');
    const env = { CARDLINK_HOME: join(dir, 'home') };
    const emulator = PivCard.blank();
    const inserted = await insertCard(emulator, SLOT);
    try {
      const r = ['-r', SLOT.reader];
      const pubFile = join(dir, 'pub.pem');
      const certFile = join(dir, 'cert.pem');
      await tool('yubico-piv-tool', [...r, '-a', 'generate', '-s', '9a', '-A', 'ECCP256', '-o', pubFile]);
      const generated = createPublicKey(readFileSync(pubFile, 'utf8'));
      const issued = await issueOurs(generated, 0, 'CN=yubico-piv-tool user');
      writeFileSync(certFile, new X509Certificate(issued).toString());
      await tool('yubico-piv-tool', [...r, '-a', 'import-certificate', '-s', '9a', '-i', certFile]);
      // A key without a certificate: PIV cannot return its public key, so cardlink does not list it.
      await tool('yubico-piv-tool', [...r, '-a', 'generate', '-s', '9c', '-A', 'RSA2048', '-o', join(dir, 'rsa.pem')]);

      const ls = await cli(['card', 'ls', '--reader', SLOT.reader, '--json'], env);
      assert.equal(ls.code, 0, ls.stderr);
      const listed = JSON.parse(ls.stdout);
      assert.equal(listed.app, 'piv', 'detected: not GIDS, so PIV');
      assert.deepEqual(
        listed.containers.map((c: { slot: number; name: string; algorithm: string; isDefault: boolean }) => [c.slot, c.name, c.algorithm, c.isDefault]),
        [[0x9a, 'piv-9a', 'ECC P-256', true]],
      );
      assert.equal(listed.containers[0].certificate.subject, 'CN=yubico-piv-tool user');
      assert.equal(listed.containers[0].certificate.thumbprint, new X509Certificate(issued).fingerprint.replace(/:/g, ''));

      const check = await cli(['card', 'check', '--reader', SLOT.reader, '--json'], env);
      assert.equal(check.code, 1, check.stdout);
      assert.deepEqual(JSON.parse(check.stdout).findings.map((f: { code: string }) => f.code), ['CHUID_MISSING']);

      const repair = await cli(['card', 'check', '--reader', SLOT.reader, '--repair', '--default-mgmt-key'], env);
      assert.equal(repair.code, 0, repair.stdout + repair.stderr);
      assert.match(repair.stdout, /CHUID_MISSING.*\n.*links made by 'cardlink link' must be redone\) \(done\)/);
      assert.match(repair.stdout, /after repair: clean/);
      const guid = parseChuid(emulator.snapshot().objects.get(OBJECT.CHUID)!).guid;
      const after = JSON.parse((await cli(['card', 'ls', '--reader', SLOT.reader, '--json'], env)).stdout);
      assert.equal(after.containers[0].name, pivContainerName(guid, 0x9a));

      // yubico-piv-tool's own CHUID (a new GUID): cardlink names the container after it, check is clean.
      await tool('yubico-piv-tool', [...r, '-a', 'set-chuid']);
      const guid2 = parseChuid(emulator.snapshot().objects.get(OBJECT.CHUID)!).guid;
      assert.notDeepEqual(guid2, guid);
      const ls2 = JSON.parse((await cli(['card', 'ls', '--reader', SLOT.reader, '--json'], env)).stdout);
      assert.equal(ls2.containers[0].name, pivContainerName(guid2, 0x9a));
      const clean = await cli(['card', 'check', '--reader', SLOT.reader, '--json'], env);
      assert.equal(clean.code, 0, clean.stdout);
      assert.equal(JSON.parse(clean.stdout).cardId, Buffer.from(guid2).toString('hex').toUpperCase());

      // cardlink installs into the slot yubico-piv-tool's key is in, and yubico-piv-tool reads it.
      const renewed = await issueOurs(generated, 2, 'CN=renewed by cardlink');
      const renewedFile = join(dir, 'renewed.der');
      writeFileSync(renewedFile, renewed);
      const install = await cli(['card', 'install', renewedFile, '--reader', SLOT.reader, '--json'], { ...env, CARDLINK_MGMT_KEY: Buffer.from(FACTORY.MANAGEMENT_KEY).toString('hex') });
      assert.equal(install.code, 0, install.stdout + install.stderr);
      assert.equal(JSON.parse(install.stdout).container.slot, 0x9a);
      assert.match(await tool('yubico-piv-tool', [...r, '-a', 'status']), /Subject DN:\s*CN\s*=\s*renewed by cardlink/);
    } finally {
      await inserted.eject();
    }
  });
});
