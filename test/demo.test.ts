import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { decodeCardImage, loadSealKey } from '../src/gids/emulator/index.js';
import { tempDir } from './helpers/card.js';

interface DemoRun {
  dir: string;
  stdout: string;
  stderr: string;
}

/** `cardlink demo` through the real binary (built by `npm run build` before the tests), all its state under one directory. */
function runDemo(json: boolean): DemoRun {
  const dir = tempDir('cardlink-demo-test-');
  const r = spawnSync(process.execPath, ['bin/cardlink', 'demo', '--dir', dir, ...(json ? ['--json'] : [])], {
    encoding: 'utf8',
    env: { ...process.env, CARDLINK_HOME: join(dir, 'home') },
  });
  assert.equal(r.status, 0, `demo failed:\n${r.stdout}\n${r.stderr}`);
  return { dir, stdout: r.stdout, stderr: r.stderr };
}

interface Secrets {
  pin: string;
  adminKey: Buffer;
  /** The private exponents of the keys generated on the card. */
  privateKeys: { d: Buffer; pkcs1: Buffer; pkcs8: Buffer }[];
}

/**
 * The secrets the demo gave its card (random each run), read back from the card image it left,
 * unsealed with the run's own seal key: the values that must appear nowhere in the clear.
 */
function cardSecrets(dir: string): Secrets {
  const imagePath = join(dir, 'card.json');
  assert.ok(existsSync(imagePath), `the demo leaves its card image at ${imagePath}`);
  const image = decodeCardImage(readFileSync(imagePath), loadSealKey(join(dir, 'home')));
  assert.ok(image.pin, 'the demo card has a PIN');
  const pin = Buffer.from(image.pin).toString('latin1');
  assert.match(pin, /^[\x20-\x7e]{4,16}$/);
  const admin = image.files.find((f) => f.fid === 0xb080)?.key;
  assert.equal(admin?.kind, 'symmetric', 'the demo card has an administrator key');
  const adminKey = Buffer.from(admin.value);
  assert.equal(adminKey.length, 24);
  const privateKeys = image.files.flatMap((f) => {
    if (f.key?.kind !== 'rsa') return [];
    const key = f.key.privateKey;
    const d = Buffer.from(key.export({ format: 'jwk' }).d!, 'base64url');
    return [{ d, pkcs1: key.export({ format: 'der', type: 'pkcs1' }), pkcs8: key.export({ format: 'der', type: 'pkcs8' }) }];
  });
  assert.equal(privateKeys.length, 2, 'two keys were generated on the card (the story and the seed way)');
  return { pin, adminKey, privateKeys };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Hex of `bytes`, any case, with or without a space or colon between the bytes. */
function hexPattern(bytes: Buffer): RegExp {
  return new RegExp([...bytes].map((b) => b.toString(16).padStart(2, '0')).join('[\\s:]?'), 'i');
}

/** Where any secret shows up, in any form a program would print or store it; empty when nowhere. */
function leaks(haystacks: { name: string; bytes: Buffer }[], s: Secrets): string[] {
  // The PIN as a word of its own (inside a longer run of letters and digits, such as a hex
  // string, six digits occur by chance), and as the hex of its ASCII bytes (an APDU trace).
  const forms: { what: string; match: (text: string, compact: string, raw: Buffer) => boolean }[] = [
    { what: 'the PIN', match: (t) => new RegExp(`(?<![0-9A-Za-z])${escapeRegExp(s.pin)}(?![0-9A-Za-z])`).test(t) },
    { what: 'the PIN as hex', match: (t) => hexPattern(Buffer.from(s.pin, 'latin1')).test(t) },
    { what: 'the admin key (raw)', match: (_t, _c, raw) => raw.includes(s.adminKey) },
    { what: 'the admin key as hex', match: (t) => hexPattern(s.adminKey).test(t) },
    { what: 'the admin key as base64', match: (_t, c) => c.includes(s.adminKey.toString('base64')) || c.includes(s.adminKey.toString('base64url')) },
  ];
  for (const [i, k] of s.privateKeys.entries()) {
    forms.push(
      { what: `private key ${i} (raw d)`, match: (_t, _c, raw) => raw.includes(k.d) },
      { what: `private key ${i} d as hex`, match: (t) => hexPattern(k.d).test(t) },
      { what: `private key ${i} d as base64`, match: (_t, c) => c.includes(k.d.toString('base64url').slice(0, 64)) || c.includes(k.d.toString('base64').slice(0, 64)) },
      { what: `private key ${i} as PEM`, match: (_t, c) => c.includes(k.pkcs1.toString('base64').slice(0, 64)) || c.includes(k.pkcs8.toString('base64').slice(0, 64)) },
    );
  }
  const found: string[] = [];
  for (const h of haystacks) {
    const text = h.bytes.toString('latin1');
    const compact = text.replace(/\s+/g, '');
    for (const f of forms) if (f.match(text, compact, h.bytes)) found.push(`${f.what} in ${h.name}`);
  }
  return found;
}

/** Every file the demo left under its directory (service data, card image, model Windows, caches). */
function filesUnder(dir: string): { name: string; bytes: Buffer }[] {
  const out: { name: string; bytes: Buffer }[] = [];
  for (const entry of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    const path = join(dir, entry);
    if (statSync(path).isFile()) out.push({ name: entry, bytes: readFileSync(path) });
  }
  return out;
}

/** The demo's whole output and every file it left must hold none of the card's secrets. */
function assertNoSecrets(run: DemoRun): void {
  const secrets = cardSecrets(run.dir);
  const files = filesUnder(run.dir);
  assert.ok(files.some((f) => f.name.endsWith('cardlink.db')), 'the service database is among the files searched');
  assert.ok(files.some((f) => f.name.includes('SystemCertificates')), 'the model Windows registry is among the files searched');
  const haystacks = [{ name: 'stdout', bytes: Buffer.from(run.stdout) }, { name: 'stderr', bytes: Buffer.from(run.stderr) }, ...files];
  assert.deepEqual(leaks(haystacks, secrets), []);

  // The search finds each secret when it is there (so an empty result above means something).
  const k = secrets.privateKeys[0]!;
  const planted = [
    `{"pin":"${secrets.pin}"}`,
    `VERIFY 00 20 00 80 ${secrets.pin.length.toString(16).padStart(2, '0')} ${[...Buffer.from(secrets.pin, 'latin1')].map((b) => b.toString(16)).join(' ')}`,
    `admin key ${secrets.adminKey.toString('hex').toUpperCase()}`,
    `admin key ${secrets.adminKey.toString('base64')}`,
    `-----BEGIN PRIVATE KEY-----\n${k.pkcs8.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END PRIVATE KEY-----`,
    `d=${k.d.toString('hex')}`,
  ];
  for (const p of planted) assert.notDeepEqual(leaks([{ name: 'probe', bytes: Buffer.from(p, 'latin1') }], secrets), [], p);
  assert.notDeepEqual(leaks([{ name: 'probe', bytes: Buffer.concat([Buffer.from([0, 1, 2]), secrets.adminKey]) }], secrets), []);
}

// The README's main job, through the real binary.
test('cardlink demo tells the whole seed story and ends with the seed tool working', () => {
  const run = runDemo(true);
  const { ok, steps } = JSON.parse(run.stdout) as { ok: boolean; steps: Array<{ step: string; text: string; detail: Record<string, unknown> }> };
  assert.equal(ok, true);
  const texts = steps.map((s) => `${s.step}: ${s.text}`).join('\n');
  const order = ['init', 'service', 'day 0', 'day 3', 'day 4', 'check', 'link', 'seed way', 'seed tool', 'doctor', 'check', 'repair', 'link', 'seed tool'];
  let at = 0;
  for (const name of order) {
    const i = steps.findIndex((s, k) => k >= at && s.step === name);
    assert.ok(i >= 0, `step ${name} after ${at} in\n${texts}`);
    at = i + 1;
  }
  assert.equal(steps.find((s) => s.step === 'day 0')!.detail.state, 'pending');
  assert.equal(steps.find((s) => s.step === 'day 3')!.detail.state, 'issued');
  const collected = steps.find((s) => s.step === 'day 4')!.detail;
  assert.deepEqual([collected.action, collected.linked, collected.reported], ['installed', true, true]);
  assert.equal((steps.find((s) => s.step === 'link')!.detail.proof as { verified: boolean }).verified, true);
  assert.deepEqual(steps.filter((s) => s.step === 'check')[0]!.detail.findings, []);
  assert.equal(steps.find((s) => s.step === 'seed tool')!.detail.hresult, 0x8009200b);
  assert.ok(steps.some((s) => s.step === 'doctor' && s.detail.code === 'STALE_CACHE'));
  assert.match(texts, /STALE_FILES_COUNTER/);
  assert.match(steps.at(-1)!.text, /succeeds at the first try/);
  // Which step fixes which cause: link the missing key link, check --repair the stale cache.
  const tools = steps.filter((s) => s.step === 'seed tool');
  assert.equal(tools.length, 4);
  assert.equal(tools[0]!.detail.name, 'CRYPT_E_NO_KEY_PROPERTY');
  assert.ok(tools[1]!.detail.thumbprint, 'after link the seed tool succeeds');
  assert.equal(tools[2]!.detail.old, true, 'after the renewal written the seed way, Windows hands out the old certificate');
  const linkAlone = steps.find((s) => s.step === 'link' && 'seedToolAfterLink' in s.detail)!;
  assert.equal(linkAlone.detail.old, true, 'link alone does not fix the stale cache');
  assert.equal(tools[3]!.detail.renewed, true, 'check --repair does');
  assert.ok(steps.some((s) => s.step === 'doctor' && s.detail.code === 'STALE_CACHE' && /caches mscp\/ksc01/.test(s.text)));
  assert.doesNotMatch(run.stdout, /"pin"/i);
  // The card's PIN, administrator key and private keys appear nowhere: not in the JSON, not on
  // stderr, not in any file the demo leaves (service database, card image, model registry).
  assertNoSecrets(run);
});

test('cardlink demo without --json prints the story and no secret either', () => {
  const run = runDemo(false);
  assert.match(run.stdout, /^init +blank GIDS card initialised/m);
  assert.match(run.stdout.trimEnd().split('\n').at(-1)!, /succeeds at the first try/);
  assertNoSecrets(run);
});
