// The native binding, for real: the contract suite runs in the Windows build of Node.js under
// Wine 8 against Wine's crypt32, through koffi. This file prepares the harness (cached in
// .cache/wine), bundles the suite, runs it once in node.exe, and turns each case's TAP line into a
// test here. Set CARDLINK_SKIP_WINE=1 to skip it on a machine that cannot install Wine.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CONTRACT_CASES, CONTRACT_MARKER } from './contract.js';
import { makeCertificate } from './fixtures/certs.js';
import { bundle, prepareWine, runNodeExe, stopWineserver, type WineHarness } from './fixtures/wine.js';

/** The TAP block of one case: what a failure message needs, not the whole log. */
function excerpt(log: string, name: string): string {
  const at = log.indexOf(name.replace(/\\/g, '\\\\'));
  return at < 0 ? `'${name}' never ran; log ends:\n${log.slice(-3000)}` : log.slice(at, at + 1500);
}

const skip = process.env.CARDLINK_SKIP_WINE === '1' ? 'CARDLINK_SKIP_WINE=1' : false;

describe('native CertStoreHost under Wine (node.exe + koffi + Wine crypt32)', { skip }, () => {
  let w: WineHarness;
  let run: { status: number | null; log: string };
  const results = new Map<string, boolean>();

  before(async () => {
    w = prepareWine();
    const certDir = join(w.runDir, 'certs');
    rmSync(certDir, { recursive: true, force: true });
    mkdirSync(certDir);
    for (let i = 0; i < 7; i++) writeFileSync(join(certDir, `${i}.der`), (await makeCertificate(`${CONTRACT_MARKER} wine ${i}`)).der);
    const key = join(w.runDir, 'signer.key');
    const crt = join(w.runDir, 'signer.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt, '-subj', `/CN=${CONTRACT_MARKER} pfx`, '-days', '2'], { stdio: 'ignore' });
    execFileSync('openssl', ['pkcs12', '-export', '-in', crt, '-inkey', key, '-out', join(w.runDir, 'signer.pfx'), '-passout', 'pass:cardlink'], { stdio: 'ignore' });
    await bundle(w, 'test/windows/fixtures/contract-native-entry.ts', 'contract.mjs');
    await bundle(w, 'test/windows/fixtures/read-store.ts', 'read-store.mjs');
    // Entries left by an interrupted earlier run live in the cached prefix's registry.
    spawnSync('wine', ['reg', 'delete', 'HKCU\\Software\\Microsoft\\SystemCertificates\\My', '/f'], { env: w.env, stdio: 'ignore' });
    run = runNodeExe(w, ['--test-reporter=tap', 'contract.mjs'], 'contract.log');
    // TAP escapes '\\' and '#' in test names.
    for (const m of run.log.matchAll(/^\s*(not ok|ok) \d+ - (.*)$/gm)) results.set(m[2]!.trim().replace(/\\([\\#])/g, '$1'), m[1] === 'ok');
  });

  after(() => {
    if (w) stopWineserver(w);
  });

  it('node.exe ran the suite as win32 x64 and it passed', () => {
    assert.equal(run.status, 0, `node.exe exited ${run.status}; log ends:\n${run.log.slice(-4000)}`);
    assert.match(run.log, /# pass \d+/);
    assert.match(run.log, /# fail 0/);
  });

  it('the structure layouts koffi computes on Windows x64 match the documented ones', () => {
    for (const name of ['CRYPT_KEY_PROV_INFO', 'CRYPT_KEY_PROV_PARAM', 'CRYPT_DATA_BLOB', 'CERT_CONTEXT']) {
      assert.equal(results.get(`${name} matches the x64 layout`), true, excerpt(run.log, name));
    }
  });

  it('the native binding acquires a key and signs through CryptoAPI (software key under Wine)', () => {
    assert.equal(results.get('signs through the acquired handle and the signature verifies with the certificate'), true, excerpt(run.log, 'signs through the acquired handle'));
  });

  for (const name of [
    'link --store native: every provider call comes after the card is released',
    'doctor --store native: the same, and the Smart Card service cache probe says why Wine cannot answer',
    'the real winscard is reported unavailable, not crashed into',
    'SCardReadCacheW gets the card GUID (16 bytes), the freshness DWORD and the lookup name, and its data comes back',
  ]) {
    it(`no lock-out / service cache: ${name}`, () => {
      assert.equal(results.get(name), true, `case not passed under Wine:\n${excerpt(run.log, name)}`);
    });
  }

  for (const name of CONTRACT_CASES) {
    it(`contract: ${name}`, () => {
      assert.equal(results.get(name), true, `case not passed under Wine:\n${excerpt(run.log, name)}`);
    });
  }

  it('says where Wine differs from Windows', () => {
    assert.match(run.log, /Wine differs from Windows: it replaces every provider error with CRYPT_E_NO_KEY_PROPERTY/);
    assert.match(run.log, /Wine differs from Windows: with REPLACE_EXISTING_INHERIT_PROPERTIES the stored properties win/);
  });
});
