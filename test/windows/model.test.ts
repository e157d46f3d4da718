// The Windows smart card stack model, piece by piece: the Smart Card service cache, the CSP/KSP
// reading through it, PIN caches, CryptAcquireCertificatePrivateKey's flags, and propagation.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { ACQUIRE, ADD, AT_KEYEXCHANGE, AT_SIGNATURE, CERT_NCRYPT_KEY_SPEC, HRESULT, KEY_PROV_FLAG, MS_SCARD_PROV, MS_SMART_CARD_KSP, PROV_TYPE, type HresultName } from '../../src/windows/constants.js';
import { WinError } from '../../src/windows/errors.js';
import { ManualScheduler } from '../../src/windows/model/clock.js';
import { CACHE_MAX_BYTES_PER_ITEM, SmartCardService } from '../../src/windows/model/scardsvr.js';
import type { KeyProvInfo } from '../../src/windows/store.js';
import { seedLoad } from '../fixtures/seed-loader.js';
import { TEST_PIN, moveCounters, tempDir } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';
import { bench, CONTAINER, type Bench } from './fixtures/machine.js';

const ID = new Uint8Array(16).fill(7);

async function rejectsWith(p: Promise<unknown>, name: HresultName): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof WinError, String(err));
    assert.equal(err.hresult, HRESULT[name], err.message);
    return true;
  });
}

function throwsWith(fn: () => unknown, name: HresultName): void {
  assert.throws(fn, (err: unknown) => err instanceof WinError && err.hresult === HRESULT[name]);
}

const cspInfo = (keySpec = AT_SIGNATURE, container = CONTAINER): KeyProvInfo => ({ containerName: container, providerName: MS_SCARD_PROV, providerType: PROV_TYPE.RSA_FULL, flags: 0, params: [], keySpec });

describe('Smart Card service cache (SCardReadCache / SCardWriteCache)', () => {
  const dir = tempDir('cardlink-scardsvr-');
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a read must match card GUID, freshness and name; older freshness is STALE and deletes the item', () => {
    const svc = new SmartCardService(dir);
    svc.write(ID, 5, 'Cached_GeneralFile/mscp/cmapfile', new Uint8Array([1, 2]));
    assert.deepEqual(svc.read(ID, 5, 'Cached_GeneralFile/mscp/cmapfile'), new Uint8Array([1, 2]));
    throwsWith(() => svc.read(new Uint8Array(16), 5, 'Cached_GeneralFile/mscp/cmapfile'), 'SCARD_W_CACHE_ITEM_NOT_FOUND');
    throwsWith(() => svc.read(ID, 5, 'other'), 'SCARD_W_CACHE_ITEM_NOT_FOUND');
    throwsWith(() => svc.read(ID, 4, 'Cached_GeneralFile/mscp/cmapfile'), 'SCARD_W_CACHE_ITEM_NOT_FOUND');
    throwsWith(() => svc.read(ID, 6, 'Cached_GeneralFile/mscp/cmapfile'), 'SCARD_W_CACHE_ITEM_STALE');
    throwsWith(() => svc.read(ID, 5, 'Cached_GeneralFile/mscp/cmapfile'), 'SCARD_W_CACHE_ITEM_NOT_FOUND');
    svc.stop();
  });

  it('refuses items over the per-item limit; an empty write deletes', () => {
    const svc = new SmartCardService(dir);
    throwsWith(() => svc.write(ID, 1, 'big', new Uint8Array(CACHE_MAX_BYTES_PER_ITEM + 1)), 'SCARD_W_CACHE_ITEM_TOO_BIG');
    svc.write(ID, 1, 'x', new Uint8Array([1]));
    svc.write(ID, 1, 'x', new Uint8Array(0));
    throwsWith(() => svc.read(ID, 1, 'x'), 'SCARD_W_CACHE_ITEM_NOT_FOUND');
    svc.stop();
  });

  it('survives a service restart (written to the registry on stop), and a new machine boot', () => {
    const svc = new SmartCardService(dir);
    svc.write(ID, 9, 'kept', new Uint8Array([4, 2]));
    svc.restart();
    assert.deepEqual(svc.read(ID, 9, 'kept'), new Uint8Array([4, 2]));
    svc.stop();
    assert.deepEqual(new SmartCardService(dir).read(ID, 9, 'kept'), new Uint8Array([4, 2]));
  });
});

describe('the smart card stack over a real (emulated) card', () => {
  const benches: Bench[] = [];
  after(() => benches.forEach((b) => b.cleanup()));
  const linked = async (): Promise<{ b: Bench; der: Uint8Array }> => {
    const b = await bench({ bits: 1024 });
    benches.push(b);
    const der = await issueOurs(b.publicKey);
    await b.admin.card.installCertificate(der);
    return { b, der };
  };
  const entry = async (b: Bench, der: Uint8Array, info: KeyProvInfo, pin?: string) => {
    const p = b.machine.startProcess(() => pin);
    const ctx = await p.host.createContext(der);
    await p.host.setKeyProvInfo(ctx, info);
    return { p, ctx };
  };

  it('the CSP reads through the cache: a second open costs no card file reads for cached items', async () => {
    const { b } = await linked();
    const p = b.machine.startProcess();
    await p.csp.userCertificates(true);
    const names = b.machine.scardsvr.list().map((i) => i.name).sort();
    assert.deepEqual(names, ['Cached_GeneralFile/mscp/cmapfile', 'Cached_GeneralFile/mscp/ksc00']);
    await (await p.csp.open(CONTAINER, AT_SIGNATURE, true)).publicKeySpki();
    assert.ok(b.machine.scardsvr.list().some((i) => i.name === 'Cached_ContainerInfo_00'));
  });

  it('container name forms: bare, \\\\.\\reader\\name, \\\\.\\reader\\ (default), empty (default); missing is NTE_BAD_KEYSET; wrong spec NTE_NO_KEY', async () => {
    const { b } = await linked();
    const csp = b.machine.startProcess().csp;
    for (const name of [CONTAINER, `\\\\.\\${b.machine.reader.name}\\${CONTAINER}`, `\\\\.\\${b.machine.reader.name}\\`, '']) {
      assert.equal((await csp.open(name, AT_SIGNATURE, true)).keySpec, AT_SIGNATURE, name);
    }
    await rejectsWith(csp.open('nope', AT_SIGNATURE, true), 'NTE_BAD_KEYSET');
    await rejectsWith(csp.open(`\\\\.\\Other Reader\\${CONTAINER}`, AT_SIGNATURE, true), 'NTE_BAD_KEYSET');
    await rejectsWith(csp.open(CONTAINER, AT_KEYEXCHANGE, true), 'NTE_NO_KEY');
  });

  it('no card: NTE_SILENT_CONTEXT when silent, SCARD_W_CANCELLED_BY_USER otherwise', async () => {
    const { b, der } = await linked();
    b.machine.remove();
    const { p, ctx } = await entry(b, der, cspInfo());
    await rejectsWith(p.host.acquirePrivateKey(ctx, ACQUIRE.SILENT), 'NTE_SILENT_CONTEXT');
    await rejectsWith(p.host.acquirePrivateKey(ctx, 0), 'SCARD_W_CANCELLED_BY_USER');
  });

  it('PIN caches are per process and separate for CryptoAPI and CNG; removal clears them', async () => {
    const { b, der } = await linked();
    const { p, ctx } = await entry(b, der, cspInfo(), TEST_PIN);
    const hash = createHash('sha256').update('x').digest();
    const capi = await p.host.acquirePrivateKey(ctx, 0);
    await capi.signHash('SHA256', hash);
    const { cardId } = await b.windowsCard.refresh();
    assert.equal(p.csp.hasCachedPin(cardId), true);
    assert.equal(p.ksp.hasCachedPin(cardId), false, 'CNG has its own cache');
    const cng = await p.host.acquirePrivateKey(ctx, ACQUIRE.ONLY_NCRYPT_KEY | ACQUIRE.SILENT);
    await rejectsWith(cng.signHash('SHA256', hash), 'NTE_SILENT_CONTEXT');
    const other = b.machine.startProcess();
    assert.equal(other.csp.hasCachedPin(cardId), false, 'another process has its own cache');
    b.machine.remove();
    assert.equal(p.csp.hasCachedPin(cardId), false, 'removal clears the caches');
  });

  it('a wrong PIN is SCARD_W_WRONG_CHV and is not cached; nobody answering is SCARD_W_CANCELLED_BY_USER', async () => {
    const { b, der } = await linked();
    const hash = createHash('sha256').update('x').digest();
    const wrong = await entry(b, der, cspInfo(), '000000');
    await rejectsWith((await wrong.p.host.acquirePrivateKey(wrong.ctx, 0)).signHash('SHA256', hash), 'SCARD_W_WRONG_CHV');
    assert.equal(wrong.p.csp.hasCachedPin((await b.windowsCard.refresh()).cardId), false);
    const nobody = await entry(b, der, cspInfo());
    await rejectsWith((await nobody.p.host.acquirePrivateKey(nobody.ctx, 0)).signHash('SHA256', hash), 'SCARD_W_CANCELLED_BY_USER');
  });

  it('ALLOW / PREFER / ONLY_NCRYPT pick CryptoAPI or CNG; a CNG entry fails CryptoAPI-only callers with NTE_BAD_PROV_TYPE', async () => {
    const { b, der } = await linked();
    const { p, ctx } = await entry(b, der, cspInfo());
    assert.equal((await p.host.acquirePrivateKey(ctx, 0)).api, 'CryptoAPI');
    assert.equal((await p.host.acquirePrivateKey(ctx, ACQUIRE.ALLOW_NCRYPT_KEY)).api, 'CryptoAPI');
    assert.equal((await p.host.acquirePrivateKey(ctx, ACQUIRE.PREFER_NCRYPT_KEY)).keySpec, CERT_NCRYPT_KEY_SPEC);
    assert.equal((await p.host.acquirePrivateKey(ctx, ACQUIRE.ONLY_NCRYPT_KEY)).api, 'CNG');
    const ksp = await entry(b, der, { ...cspInfo(), providerName: MS_SMART_CARD_KSP, providerType: PROV_TYPE.CNG });
    await rejectsWith(ksp.p.host.acquirePrivateKey(ksp.ctx, 0), 'NTE_BAD_PROV_TYPE');
    assert.equal((await ksp.p.host.acquirePrivateKey(ksp.ctx, ACQUIRE.ALLOW_NCRYPT_KEY)).api, 'CNG');
  });

  it('CACHE returns the same handle and compares no key; USE_PROV_INFO caches only with CERT_SET_KEY_CONTEXT_PROP_ID', async () => {
    const { b, der } = await linked();
    const { p, ctx } = await entry(b, der, cspInfo());
    const first = await p.host.acquirePrivateKey(ctx, ACQUIRE.CACHE);
    assert.equal(first.callerFree, false);
    assert.equal(await p.host.acquirePrivateKey(ctx, ACQUIRE.CACHE | ACQUIRE.COMPARE_KEY), first);
    assert.notEqual(await p.host.acquirePrivateKey(ctx, ACQUIRE.USE_PROV_INFO), first);
    const keep = await entry(b, der, { ...cspInfo(), flags: KEY_PROV_FLAG.SET_KEY_CONTEXT });
    const cached = await keep.p.host.acquirePrivateKey(keep.ctx, ACQUIRE.USE_PROV_INFO);
    assert.equal(cached.callerFree, false);
    assert.equal(await keep.p.host.acquirePrivateKey(keep.ctx, ACQUIRE.USE_PROV_INFO), cached);
  });

  it('a stale cached public key (key changed, containers counter not moved): COMPARE_KEY fails and the Base CSP rejects its own signature, the KSP does not', async () => {
    const { b, der } = await linked();
    const { p, ctx } = await entry(b, der, cspInfo(), TEST_PIN);
    const hash = createHash('sha256').update('challenge').digest();
    assert.equal((await (await p.host.acquirePrivateKey(ctx, ACQUIRE.COMPARE_KEY)).signHash('SHA256', hash)).length, 128);
    // What the cache holds after a key change the counter did not announce: another key.
    const { cardId, cardcf } = await b.windowsCard.refresh();
    const other = await bench({ bits: 1024 });
    benches.push(other);
    b.machine.scardsvr.write(cardId, cardcf.containersFreshness, 'Cached_ContainerInfo_00', new Uint8Array(other.publicKey.export({ type: 'spki', format: 'der' })));
    await rejectsWith(p.host.acquirePrivateKey(ctx, ACQUIRE.COMPARE_KEY), 'NTE_BAD_PUBLIC_KEY');
    await rejectsWith((await p.host.acquirePrivateKey(ctx, 0)).signHash('SHA256', hash), 'NTE_BAD_SIGNATURE');
    assert.equal((await (await p.host.acquirePrivateKey(ctx, ACQUIRE.ONLY_NCRYPT_KEY)).signHash('SHA256', hash)).length, 128);
    // Moving the counter makes the cached key worthless: everything works again.
    await moveCounters(b.admin, { containers: true });
    await (await p.host.acquirePrivateKey(ctx, ACQUIRE.COMPARE_KEY)).signHash('SHA256', hash);
  });

  it('propagation: runs only when running and a user is logged on, skips a card that left, writes Base CSP info with disposition 5', async () => {
    const { b, der } = await linked();
    const host = b.machine.startProcess().host;
    const my = await host.openCurrentUserMy();
    await b.scheduler.advance(60_000); // the bench's own insertion
    await my.delete((await my.enumerate())[0]!);
    b.machine.certprop.running = false;
    b.machine.reinsert();
    assert.equal(b.machine.certprop.pending, 0);
    b.machine.certprop.running = true;
    b.machine.reinsert();
    b.machine.remove();
    await b.scheduler.advance(60_000);
    assert.match(b.machine.certprop.runs.at(-1)!.skipped ?? '', /left the reader/);
    assert.equal((await my.enumerate()).length, 0);
    // An entry with other properties keeps them and takes on the propagated link.
    const pre = await host.createContext(der);
    await host.setProperty(pre, 11, new Uint8Array(Buffer.from('mine\0', 'utf16le')));
    await my.add(pre, ADD.NEW);
    b.machine.insert(b.windowsCard.minidriver());
    await b.scheduler.advance(60_000);
    const thumb = createHash('sha1').update(der).digest('hex').toUpperCase();
    assert.deepEqual(b.machine.certprop.runs.at(-1)!.added, [thumb]);
    const stored = (await my.find(thumb))!;
    assert.deepEqual(await host.getKeyProvInfo(stored), cspInfo());
    assert.deepEqual(await host.getProperty(stored, 11), new Uint8Array(Buffer.from('mine\0', 'utf16le')));
  });

  it('propagation sees what the cache sees: a certificate loaded without moving cardcf over a cached one propagates the old one', async () => {
    const { b, der } = await linked();
    await b.machine.startProcess().csp.userCertificates(true);
    const renewed = await issueOurs(b.publicKey, 0, 'CN=Renewed');
    await seedLoad(b.admin.transport, CONTAINER, renewed);
    b.machine.reinsert();
    await b.scheduler.advance(60_000);
    const thumb = (d: Uint8Array) => createHash('sha1').update(d).digest('hex').toUpperCase();
    assert.deepEqual(b.machine.certprop.runs.at(-1)!.added, [thumb(der)]);
    // A service restart does not help: the cache was persisted with the same freshness.
    b.machine.scardsvr.restart();
    b.machine.reinsert();
    await b.scheduler.advance(60_000);
    assert.deepEqual(b.machine.certprop.runs.at(-1)!.added, [thumb(der)]);
    // Moving the files counter (what `card install` does) makes the next propagation right.
    await moveCounters(b.admin, { files: true });
    b.machine.reinsert();
    await b.scheduler.advance(60_000);
    assert.deepEqual(b.machine.certprop.runs.at(-1)!.added, [thumb(renewed)]);
  });
});

describe('ManualScheduler', () => {
  it('runs due tasks in time order and only when time reaches them', async () => {
    const s = new ManualScheduler();
    const seen: string[] = [];
    s.schedule(30, async () => void seen.push('b'));
    s.schedule(10, async () => void seen.push('a'));
    const c = s.schedule(20, async () => void seen.push('never'));
    c.cancel();
    await s.advance(15);
    assert.deepEqual(seen, ['a']);
    assert.equal(s.now(), 15);
    await s.advance(100);
    assert.deepEqual(seen, ['a', 'b']);
    assert.equal(s.pending, 0);
  });
});
