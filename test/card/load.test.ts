import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { hex } from '../../src/bytes.js';
import { DiskCardCache, MemoryCardCache, MinidriverCard, type CardCache, type FindingCode } from '../../src/card/index.js';
import { keyId as keyIdOf } from '../../src/thumbprint.js';
import { parseCmapfile, serializeCmapfile, setDefaultContainer, serializeMasterFileTable, encodeCertificateFile } from '../../src/minidriver/index.js';
import { GidsCard, type CardImageData } from '../../src/gids/emulator/index.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { RecordingTransport } from '../../src/transport/recorder.js';
import { TEST_ADMIN_KEY, TEST_PIN, gidsSession, initialisedCard, reopen, tempDir } from '../helpers/card.js';
import { issueOurs, issueWithOpenssl } from '../helpers/certs.js';
import { seedLoad } from '../fixtures/seed-loader.js';

async function cardWithContainers() {
  const t = await initialisedCard();
  await t.card.verifyPin(TEST_PIN);
  const kx = await t.card.createContainer('kx-container', { keySpec: 'kx', bits: 2048 });
  const sig = await t.card.createContainer('sig-container', { keySpec: 'sig', bits: 1024 });
  return { ...t, kx, sig };
}

test('install round trip: 600 B to 8 KB certificates from our CA and from OpenSSL come back byte-identical in the right file', async () => {
  const t = await cardWithContainers();
  const cases: Array<{ der: Uint8Array; container: 'kx' | 'sig'; from: string }> = [
    { der: await issueOurs(t.sig.publicKey, 0, 'CN=a'), container: 'sig', from: 'ours' },
    { der: await issueOurs(t.kx.publicKey, 10), container: 'kx', from: 'ours' },
    { der: await issueOurs(t.kx.publicKey, 240), container: 'kx', from: 'ours' },
    { der: issueWithOpenssl((await t.card.csr('sig-container', 'CN=b')).pem), container: 'sig', from: 'openssl' },
    { der: issueWithOpenssl((await t.card.csr('kx-container', 'CN=OpenSSL user')).pem, 250), container: 'kx', from: 'openssl' },
  ];
  const sizes = cases.map((c) => c.der.length);
  assert.ok(Math.min(...sizes) < 700, `smallest ${Math.min(...sizes)}`);
  assert.ok(Math.max(...sizes) >= 8000, `largest ${Math.max(...sizes)}`);
  for (const c of cases) {
    await t.card.verifyPin(TEST_PIN); // reopen() below resets the card, which logs everyone out
    const result = await t.card.installCertificate(c.der);
    const expected = c.container === 'kx' ? 'mscp/kxc00' : 'mscp/ksc01';
    assert.equal(result.file, expected, `${c.from} ${c.der.length} B goes to ${expected}`);
    // A fresh session with an empty cache reads it back from the card itself.
    const fresh = await reopen(t);
    const back = await fresh.card.readCertificate(c.container === 'kx' ? 'kx-container' : 'sig-container');
    assert.equal(hex(back!), hex(c.der), `${c.from} ${c.der.length} B read back`);
    const raw = await fresh.card.readFile(expected);
    assert.equal(hex(raw.subarray(0, 4)), `0100${hex(new Uint8Array([c.der.length & 0xff, c.der.length >> 8]))}`, 'compressed header 01 00 + LE16 length');
    assert.deepEqual((await fresh.card.check()).findings, []);
  }
});

test('install finds the container by key, refuses a foreign key with the key and the containers tried, and by name refuses a mismatch', async () => {
  const t = await cardWithContainers();
  const other = await initialisedCard();
  await other.card.verifyPin(TEST_PIN);
  const stranger = await other.card.createContainer('x', { bits: 1024 });
  const foreign = await issueOurs(stranger.publicKey);
  await assert.rejects(t.card.installCertificate(foreign), (e: Error & { code: string }) => {
    assert.equal(e.code, 'NO_MATCHING_CONTAINER');
    assert.match(e.message, new RegExp(keyIdOf(stranger.publicKey).slice(0, 16)));
    assert.match(e.message, /'kx-container'.*'sig-container'/);
    return true;
  });
  await assert.rejects(t.card.installCertificate(await issueOurs(t.sig.publicKey), { container: 'kx-container' }), { code: 'KEY_MISMATCH' });
  const byName = await t.card.installCertificate(await issueOurs(t.sig.publicKey), { container: 'sig-container' });
  assert.equal(byName.file, 'mscp/ksc01');
  // PEM works as well as DER.
  const pem = (await import('../../src/x509.js')).x509;
  const asPem = new pem.X509Certificate(await issueOurs(t.kx.publicKey)).toString('pem');
  assert.equal((await t.card.installCertificate(asPem)).file, 'mscp/kxc00');
});

test('install moves cardcf files (not containers), keeps one default, replace and rm-cert', async () => {
  const t = await cardWithContainers();
  const cf0 = await t.card.cardcf();
  const r1 = await t.card.installCertificate(await issueOurs(t.sig.publicKey), { makeDefault: true });
  assert.equal(r1.replaced, false);
  const cf1 = await t.card.cardcf();
  assert.equal(cf1.filesFreshness, cf0.filesFreshness + 1);
  assert.equal(cf1.containersFreshness, cf0.containersFreshness);
  let list = await t.card.containers();
  assert.deepEqual(list.map((c) => [c.name, c.isDefault]), [
    ['kx-container', false],
    ['sig-container', true],
  ]);
  const second = await issueOurs(t.sig.publicKey, 3, 'CN=renewed');
  const r2 = await t.card.installCertificate(second);
  assert.equal(r2.replaced, true);
  assert.equal(hex((await t.card.readCertificate('sig-container'))!), hex(second));
  await t.card.removeCertificate('sig-container');
  list = await t.card.containers();
  assert.equal(list[1]!.certificateFile, undefined);
  assert.ok((await t.card.cardcf()).filesFreshness > cf1.filesFreshness);
  assert.equal((await t.card.removeCertificate('sig-container')).file, undefined, 'removing again is a no-op');
  assert.deepEqual((await t.card.check()).findings, []);
});

// ---- a pulled card at every APDU ------------------------------------------------------------

interface Base {
  image: CardImageData;
  kxKey: string;
  kxCert: Uint8Array;
  sigCertDer: Uint8Array;
  sigCert2: Uint8Array;
}

async function baseCard(extendedLength: boolean, cache?: DiskCardCache): Promise<Base> {
  const t = await initialisedCard({ extendedLength, ...(cache ? { cache } : {}) });
  await t.card.verifyPin(TEST_PIN);
  const kx = await t.card.createContainer('keep-me', { keySpec: 'kx', bits: 1024 });
  const sig = await t.card.createContainer('target', { keySpec: 'sig', bits: 1024 });
  const kxCert = await issueOurs(kx.publicKey, 2, 'CN=keep');
  await t.card.installCertificate(kxCert);
  cache?.flush();
  return {
    image: t.emulator.toImage(),
    kxKey: keyIdOf(kx.publicKey),
    kxCert,
    sigCertDer: await issueOurs(sig.publicKey, 20, 'CN=target'),
    sigCert2: await issueOurs(sig.publicKey, 40, 'CN=target v2'),
  };
}

type Op = (card: MinidriverCard, base: Base) => Promise<unknown>;

const OPS: Record<string, { prepare?: Op; run: Op }> = {
  install: { run: (c, b) => c.installCertificate(b.sigCertDer) },
  replace: { prepare: (c, b) => c.installCertificate(b.sigCertDer), run: (c, b) => c.installCertificate(b.sigCert2) },
  'rm-cert': { prepare: (c, b) => c.installCertificate(b.sigCertDer), run: (c) => c.removeCertificate('target') },
  gen: { run: (c) => c.createContainer('new-one', { keySpec: 'kx', bits: 1024 }) },
};

async function session(emulator: GidsCard, cache: CardCache) {
  emulator.reset();
  const transport = new RecordingTransport(new MemoryTransport(emulator));
  const card = await MinidriverCard.open(transport, { cache });
  await card.verifyPin(TEST_PIN);
  transport.clear();
  return { card, transport };
}

// Both ways a card takes long data (short APDUs with chaining, extended lengths), each with a cold
// cache and with the cache cardlink's own last write left (the trusted, shortest sequence): each
// sequence has its own APDU indices to pull the card at.
const MODES = [false, true].flatMap((extendedLength) => [false, true].map((warm) => ({ extendedLength, warm })));
for (const [name, op] of Object.entries(OPS)) for (const { extendedLength, warm } of MODES) {
  const mode = `${extendedLength ? 'extended-length' : 'short'} APDUs, ${warm ? 'warm' : 'cold'} cache`;
  test(`pulled card at every APDU of ${name} (${mode}): check --repair gives a clean card, nothing else lost, the operation then succeeds`, async () => {
    // The warm cache lives in a file that is never flushed again: each reload is a fresh copy of it.
    const warmPath = join(tempDir(), 'cards.json');
    const cacheFor = (): CardCache => (warm ? new DiskCardCache(warmPath) : new MemoryCardCache());
    const base = await baseCard(extendedLength, warm ? new DiskCardCache(warmPath) : undefined);
    let prepared = base.image;
    if (op.prepare) {
      const emu = GidsCard.fromImage(base.image);
      const cache = cacheFor();
      await op.prepare((await session(emu, cache)).card, base);
      cache.flush?.();
      prepared = emu.toImage();
    }
    // How many APDUs the whole operation takes.
    const probe = GidsCard.fromImage(prepared);
    const full = await session(probe, cacheFor());
    await op.run(full.card, base);
    const total = full.transport.count;
    assert.ok(total >= 3, `${name} takes ${total} APDUs`);

    for (let k = 0; k < total; k++) {
      const emu = GidsCard.fromImage(prepared);
      const cache = cacheFor();
      const s = await session(emu, cache);
      s.transport.failAfter(k);
      await assert.rejects(op.run(s.card, base), { code: 'CARD_REMOVED' }, `k=${k}`);

      // Reconnect (a new session after a reset, same user cache), repair, and look again.
      const r = await session(emu, cache);
      await r.card.repair();
      const after = await r.card.check();
      assert.deepEqual(after.findings, [], `k=${k}: clean after repair`);
      const keep = (await r.card.containers()).find((c) => c.name === 'keep-me');
      assert.ok(keep, `k=${k}: the other container survives`);
      assert.equal(keyIdOf(await r.card.publicKey('keep-me')), base.kxKey, `k=${k}: its key survives`);
      assert.equal(hex((await r.card.readCertificate('keep-me'))!), hex(base.kxCert), `k=${k}: its certificate survives`);

      await op.run(r.card, base);
      assert.deepEqual((await r.card.check()).findings, [], `k=${k}: clean after running ${name} again`);
    }
  });
}

// ---- the cache ------------------------------------------------------------------------------

test('warm card ls of an unchanged card reads only cardid and cardcf (3 APDUs with the select), from the per-user disk cache', async () => {
  const t = await cardWithContainers();
  await t.card.installCertificate(await issueOurs(t.kx.publicKey));
  const path = join(tempDir(), 'cache', 'cards.json');
  const cold = await reopen(t, new DiskCardCache(path));
  const coldList = await cold.card.containers();
  (cold.cache as DiskCardCache).flush();
  const coldCount = cold.transport.count;

  const warm = await reopen(t, new DiskCardCache(path));
  const warmList = await warm.card.containers();
  assert.deepEqual(warmList, coldList);
  assert.equal(warm.transport.count, 3, 'SELECT + GET DATA cardid + GET DATA cardcf');
  assert.ok(coldCount > warm.transport.count, `cold ${coldCount} > warm ${warm.transport.count}`);
  const { statSync } = await import('node:fs');
  assert.equal(statSync(path).mode & 0o777, 0o600);
});

test('a change by another writer that moved cardcf is always seen by a warm cache', async () => {
  const t = await cardWithContainers();
  const cache = new MemoryCardCache();
  const reader = await reopen(t, cache);
  const steps: Array<(c: MinidriverCard) => Promise<unknown>> = [
    async (c) => c.installCertificate(await issueOurs(t.kx.publicKey, 1)),
    async (c) => c.installCertificate(await issueOurs(t.sig.publicKey, 2), { makeDefault: true }),
    (c) => c.createContainer('third', { bits: 1024 }),
    (c) => c.removeCertificate('kx-container'),
    async (c) => c.writeFile('mscp/msroots', Buffer.from('x')),
  ];
  for (const step of steps) {
    await reader.card.containers(); // warm the cache
    const writer = await reopen(t); // another process, its own cache
    await writer.card.verifyPin(TEST_PIN);
    await step(writer.card);
    const truth = await (await reopen(t)).card.containers();
    const seen = await (await reopen(t, cache)).card.containers();
    assert.deepEqual(seen, truth);
  }
});

test("the seed's loader: a warm cache would serve stale data; check reports it, repair moves the counter", async () => {
  const t = await cardWithContainers();
  const cache = new MemoryCardCache();
  const user = await reopen(t, cache);
  assert.equal((await user.card.containers())[1]!.certificateFile, undefined);
  const cf = await user.card.cardcf();

  const loader = await reopen(t);
  await loader.card.verifyPin(TEST_PIN);
  const der = await issueOurs(t.sig.publicKey, 4);
  assert.equal(await seedLoad(loader.transport, 'sig-container', der), 'mscp/ksc01');
  assert.deepEqual(await loader.card.cardcf(), cf, 'the seed loader leaves cardcf alone');

  // The stale risk, shown: the warm cache still says "no certificate".
  const stale = await reopen(t, cache);
  assert.equal((await stale.card.containers())[1]!.certificateFile, undefined);

  const report = await (await reopen(t, cache)).card.check();
  assert.deepEqual(report.findings.map((f) => f.code), ['STALE_FILES_COUNTER']);
  const fixer = await reopen(t, cache);
  await fixer.card.verifyPin(TEST_PIN);
  await fixer.card.repair();
  assert.deepEqual((await (await reopen(t, cache)).card.check()).findings, []);
  assert.equal((await (await reopen(t, cache)).card.containers())[1]!.certificateFile, 'mscp/ksc01');
  assert.equal((await (await reopen(t)).card.cardcf()).filesFreshness, cf.filesFreshness + 1);
});

// ---- every check finding, set up and repaired ------------------------------------------------

type Fault = (t: Awaited<ReturnType<typeof cardWithContainers>>) => Promise<void>;

const FAULTS: Array<[FindingCode, Fault]> = [
  [
    'CERT_ORPHAN',
    async (t) => {
      await gidsSession(t).createFile('mscp', 'kxc05', encodeCertificateFile(await issueOurs(t.kx.publicKey)));
    },
  ],
  [
    'CERT_KEY_MISMATCH',
    async (t) => {
      await t.card.installCertificate(await issueOurs(t.kx.publicKey));
      await gidsSession(t).createFile('mscp', 'ksc01', encodeCertificateFile(await issueOurs(t.kx.publicKey, 1)));
    },
  ],
  [
    'CERT_WRONG_KEYSPEC',
    async (t) => {
      await gidsSession(t).createFile('mscp', 'ksc00', encodeCertificateFile(await issueOurs(t.kx.publicKey)));
    },
  ],
  [
    'CERT_MALFORMED',
    async (t) => {
      await gidsSession(t).createFile('mscp', 'kxc00', new Uint8Array([0x02, 0x00, 0x10, 0x00, 1, 2, 3]));
    },
  ],
  [
    'CERT_UNCOMPRESSED',
    async (t) => {
      await gidsSession(t).createFile('mscp', 'kxc00', await issueOurs(t.kx.publicKey));
    },
  ],
  [
    'DEFAULT_MISSING',
    async (t) => {
      await t.card.installCertificate(await issueOurs(t.kx.publicKey));
      const cmap = parseCmapfile((await gidsSession(t).readFile('mscp', 'cmapfile'))!);
      for (const r of cmap) setDefaultContainer(r, false);
      await gidsSession(t).writeFile('mscp', 'cmapfile', serializeCmapfile(cmap));
    },
  ],
  [
    'DEFAULT_MULTIPLE',
    async (t) => {
      const cmap = parseCmapfile((await gidsSession(t).readFile('mscp', 'cmapfile'))!);
      for (const r of cmap) setDefaultContainer(r, true);
      await gidsSession(t).writeFile('mscp', 'cmapfile', serializeCmapfile(cmap));
    },
  ],
  [
    'KEYMAP_OUT_OF_STEP',
    async (t) => {
      const km = await gidsSession(t).keyMap();
      await gidsSession(t).putKeyMap(km.slice(0, 1));
    },
  ],
  [
    'FILE_DANGLING',
    async (t) => {
      // A file table record whose data object was never written (another tool stopped half-way).
      const s = gidsSession(t);
      const table = await s.masterTable();
      table.push({ directory: 'mscp', filename: 'ghost', efid: 0xa010, doTag: 0xdf3f });
      await s.putData(0xa000, 0xdf1f, serializeMasterFileTable(table));
    },
  ],
  [
    'CONTAINER_WITHOUT_KEY',
    async (t) => {
      const cmap = parseCmapfile((await gidsSession(t).readFile('mscp', 'cmapfile'))!);
      cmap.push({ name: 'ghost', flags: 1, sigKeyBits: 0, kxKeyBits: 2048 });
      const km = await gidsSession(t).keyMap();
      km.push({ state: 1, algId: 7, keyType: 0x9a, keyFid: 0xb083 });
      await gidsSession(t).writeFile('mscp', 'cmapfile', serializeCmapfile(cmap));
      await gidsSession(t).putKeyMap(km);
    },
  ],
];

for (const [code, fault] of FAULTS) {
  test(`check finds ${code}; check --repair fixes it without losing the valid containers`, async () => {
    const t = await cardWithContainers();
    const keys = [keyIdOf(t.kx.publicKey), keyIdOf(t.sig.publicKey)];
    await fault(t);
    const u = await reopen(t);
    const report = await u.card.check();
    assert.ok(report.findings.some((f) => f.code === code), `${code} in ${JSON.stringify(report.findings.map((f) => f.code))}`);
    for (const f of report.findings) {
      assert.ok(f.message.length > 10 && f.fix.length > 5 && ['error', 'warning'].includes(f.severity));
    }
    await u.card.verifyPin(TEST_PIN);
    const repaired = await u.card.repair();
    assert.ok(repaired.before.findings.some((f) => f.code === code));
    assert.ok(repaired.before.findings.every((f) => f.fixed === true), JSON.stringify(repaired.before.findings));
    assert.deepEqual(repaired.after.findings, []);
    const v = await reopen(t);
    assert.deepEqual((await v.card.check()).findings, []);
    const names = (await v.card.containers()).map((c) => c.name);
    assert.deepEqual(names.slice(0, 2), ['kx-container', 'sig-container']);
    assert.deepEqual([keyIdOf(await v.card.publicKey(0)), keyIdOf(await v.card.publicKey(1))], keys);
  });
}

test('check finds a cardid seen before on another card; repair gives it a new cardid with the admin key', async () => {
  const serial = Buffer.from('0F0E0D0C0B0A09080706050403020100', 'hex');
  const cache = new MemoryCardCache();
  const a = await initialisedCard({ serial, cache });
  await a.card.verifyPin(TEST_PIN);
  await a.card.createContainer('same-name', { bits: 1024 });
  assert.deepEqual((await a.card.check()).findings, []);

  const b = await initialisedCard({ serial, cache: new MemoryCardCache() });
  await b.card.verifyPin(TEST_PIN);
  await b.card.createContainer('same-name', { bits: 1024 });
  const onB = await reopen(b, cache);
  const report = await onB.card.check();
  assert.deepEqual(report.findings.map((f) => f.code), ['CARDID_REUSED']);
  await onB.card.verifyPin(TEST_PIN);
  const withoutKey = await onB.card.repair();
  assert.equal(withoutKey.before.findings[0]!.code, 'CARDID_REUSED');
  assert.equal(withoutKey.before.findings[0]!.fixed, undefined, 'needs the admin key');
  // The administrator key alone is enough: it also satisfies the write conditions of cardcf.
  const fixed = await (await reopen(b, cache)).card.repair({ adminKey: TEST_ADMIN_KEY });
  assert.equal(fixed.before.findings[0]!.code, 'CARDID_REUSED');
  assert.equal(fixed.before.findings[0]!.fixed, true);
  const id = await (await reopen(b)).card.cardId();
  assert.notEqual(hex(id), hex(serial));
  assert.deepEqual((await (await reopen(b, cache)).card.check()).findings, []);
});

test('cardcf counters are only read at the transaction start: cardid+cardcf', async () => {
  const t = await cardWithContainers();
  const u = await reopen(t);
  u.transport.clear();
  await u.card.refresh();
  assert.deepEqual(
    u.transport.records.map((r) => hex(r.command)),
    [`00CBA012045C02DF2000`, `00CBA010045C02DF2200`],
  );
});

test('CLI: card install / rm-cert / check exit 0 clean, 1 findings (and after --repair 0), 2 could not check', async () => {
  const dir = tempDir();
  const image = join(dir, 'card.json');
  const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) };
  const { cli } = await import('../helpers/cli.js');
  const { writeFileSync } = await import('node:fs');
  const { createPublicKey } = await import('node:crypto');
  assert.equal((await cli(['card', 'init', '--image', image], env)).code, 0);
  const gen = JSON.parse((await cli(['card', 'gen', '--image', image, '--container', 'alice', '--alg', 'rsa1024', '--json'], env)).stdout);
  await cli(['card', 'gen', '--image', image, '--container', 'bob', '--alg', 'rsa1024', '--keyspec', 'sig'], env);
  const certPath = join(dir, 'alice.pem');
  const { x509 } = await import('../../src/x509.js');
  writeFileSync(certPath, new x509.X509Certificate(await issueOurs(createPublicKey(gen.publicKey))).toString('pem'));

  const install = await cli(['card', 'install', certPath, '--image', image, '--json'], env);
  assert.equal(install.code, 0, install.stderr);
  assert.equal(JSON.parse(install.stdout).file, 'mscp/kxc00');
  const clean = await cli(['card', 'check', '--image', image, '--json'], env);
  assert.equal(clean.code, 0, clean.stdout);
  assert.deepEqual(JSON.parse(clean.stdout).findings, []);

  // The seed's way, on a card this user's cache has seen: exit 1, then --repair: exit 0.
  const { MinidriverCard } = await import('../../src/card/index.js');
  const { openCardImage } = await import('../../src/gids/emulator/index.js');
  const rawTransport = new MemoryTransport(openCardImage(image, { home: env.CARDLINK_HOME }));
  const raw = await MinidriverCard.open(rawTransport);
  await raw.verifyPin(TEST_PIN);
  const bobKey = await raw.publicKey('bob');
  await seedLoad(rawTransport, 'bob', await issueOurs(bobKey));
  const found = await cli(['card', 'check', '--image', image], env);
  assert.equal(found.code, 1);
  assert.match(found.stdout, /STALE_FILES_COUNTER/);
  const fixed = await cli(['card', 'check', '--image', image, '--repair', '--json'], env);
  assert.equal(fixed.code, 0, fixed.stdout);
  assert.equal(JSON.parse(fixed.stdout).findings[0].fixed, true);

  const rm = await cli(['card', 'rm-cert', '--image', image, '--container', 'alice', '--json'], env);
  assert.equal(rm.code, 0);
  assert.equal(JSON.parse(rm.stdout).removed, true);
  const ls = JSON.parse((await cli(['card', 'ls', '--image', image, '--json'], env)).stdout);
  assert.deepEqual(ls.containers.map((c: { certificateFile?: string }) => c.certificateFile ?? null), [null, 'mscp/ksc01']);

  // Could not check: a blank, uninitialised card.
  const blank = join(dir, 'blank.json');
  openCardImage(blank, { create: true, home: env.CARDLINK_HOME });
  const cannot = await cli(['card', 'check', '--image', blank, '--json'], env);
  assert.equal(cannot.code, 2);
  assert.equal(JSON.parse(cannot.stdout).ok, false);
  // Refuses a certificate whose key is on no container, naming what it tried.
  const strangerKey = (await import('node:crypto')).generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
  const foreign = join(dir, 'foreign.der');
  writeFileSync(foreign, await issueOurs(strangerKey));
  const refused = await cli(['card', 'install', foreign, '--image', image], env);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /no container on the card holds the key.*tried 'alice'.*'bob'/);
});
