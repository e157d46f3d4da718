// The CertStoreHost contract: one suite, run against the model (contract-model.test.ts, Linux)
// and against the native binding over Wine's crypt32 (native-wine.test.ts, Windows node.exe under
// Wine). Where Wine is known to differ from Windows the case says so, asserts Wine's own
// behaviour on the Wine run, and what Windows documents on the model run.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ACQUIRE, ADD, AT_KEYEXCHANGE, AT_SIGNATURE, HRESULT, MS_SCARD_PROV, PROP, PROV_TYPE, SET_PROP, type HresultName } from '../../src/windows/constants.js';
import { WinError } from '../../src/windows/errors.js';
import type { CertContext, CertStore, CertStoreHost, KeyProvInfo } from '../../src/windows/store.js';
import { keyProvInfoToJson, type ReadBack } from './fixtures/json.js';

export interface ContractFixture {
  flavor: 'model' | 'wine';
  openHost(): Promise<CertStoreHost>;
  /** Opens CurrentUser\My in a new OS process and reports the certificate. */
  readBack(thumbprint: string): Promise<ReadBack>;
  /** Distinct DER certificates made for this run (at least 6). */
  certificates: Uint8Array[];
}

/** The names of every case, so the Wine runner can check each one was run and passed. */
export const CONTRACT_CASES = [
  'a context carries the encoding and its SHA-1 thumbprint',
  'garbage is refused with an ASN.1 error',
  'KEY_PROV_INFO is absent until set, round-trips field for field, and null deletes it',
  'a blob property round-trips and null deletes it',
  'add with KEY_PROV_INFO to CurrentUser\\My persists: a new process reads it back',
  'INHIBIT_PERSIST keeps the property on this context only',
  'dispositions: NEW, USE_EXISTING, REPLACE_EXISTING, REPLACE_EXISTING_INHERIT_PROPERTIES, NEWER, invalid',
  'acquire without KEY_PROV_INFO fails with CRYPT_E_NO_KEY_PROPERTY (0x8009200B) for every flag set',
  'acquire with KEY_PROV_INFO naming a provider that does not exist',
  'stale entries are removed and stay removed in a new process',
] as const;

export const CONTRACT_MARKER = 'cardlink-contract';

function cardInfo(container: string, keySpec = AT_KEYEXCHANGE): KeyProvInfo {
  return { containerName: container, providerName: MS_SCARD_PROV, providerType: PROV_TYPE.RSA_FULL, flags: 0, params: [], keySpec };
}

async function rejectsWith(promise: Promise<unknown>, name: HresultName): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof WinError, `expected WinError, got ${String(err)}`);
    assert.equal(err.hresult, HRESULT[name], `expected ${name}, got ${err.message}`);
    assert.equal(err.code, name);
    return true;
  });
}

export function defineContractSuite(fx: ContractFixture): void {
  describe(`CertStoreHost contract (${fx.flavor})`, () => {
    let host: CertStoreHost;
    let my: CertStore;
    const certs = fx.certificates;
    const cert = (i: number): Uint8Array => {
      const c = certs[i];
      assert.ok(c, `fixture certificate ${i} missing`);
      return c;
    };
    const thumb = (i: number): string => createHash('sha1').update(cert(i)).digest('hex').toUpperCase();

    before(async () => {
      host = await fx.openHost();
      my = await host.openCurrentUserMy();
    });
    after(async () => {
      for (let i = 0; i < certs.length; i++) {
        const ctx = await my.find(thumb(i));
        if (ctx) await my.delete(ctx);
      }
      await my.close();
      await host.close();
    });

    it(CONTRACT_CASES[0], async () => {
      const ctx = await host.createContext(cert(0));
      assert.deepEqual(ctx.encoded, cert(0));
      assert.equal(ctx.thumbprint, thumb(0));
      assert.deepEqual(await host.getProperty(ctx, PROP.SHA1_HASH), new Uint8Array(Buffer.from(thumb(0), 'hex')));
      await host.freeContext(ctx);
    });

    it(CONTRACT_CASES[1], async () => {
      await rejectsWith(host.createContext(new Uint8Array([0x04, 0x03, 1, 2, 3])), 'CRYPT_E_ASN1_BADTAG');
    });

    it(CONTRACT_CASES[2], async () => {
      const ctx = await host.createContext(cert(0));
      assert.equal(await host.getKeyProvInfo(ctx), undefined);
      const info: KeyProvInfo = {
        containerName: 'lr-e46f1586-7133-4284-895d-557e2261c24d',
        providerName: MS_SCARD_PROV,
        providerType: PROV_TYPE.RSA_FULL,
        flags: 0x40,
        params: [{ param: 32, data: new Uint8Array([1, 2, 3, 4, 5]), flags: 0 }],
        keySpec: AT_SIGNATURE,
      };
      await host.setKeyProvInfo(ctx, info);
      assert.deepEqual(keyProvInfoToJson(await host.getKeyProvInfo(ctx)), keyProvInfoToJson(info));
      assert.ok((await host.propertyIds(ctx)).includes(PROP.KEY_PROV_INFO));
      await host.setKeyProvInfo(ctx, null);
      assert.equal(await host.getKeyProvInfo(ctx), undefined);
      await host.freeContext(ctx);
    });

    it(CONTRACT_CASES[3], async () => {
      const ctx = await host.createContext(cert(0));
      const name = new Uint8Array(Buffer.from('cardlink\0', 'utf16le'));
      await host.setProperty(ctx, PROP.FRIENDLY_NAME, name);
      assert.deepEqual(await host.getProperty(ctx, PROP.FRIENDLY_NAME), name);
      await host.setProperty(ctx, PROP.FRIENDLY_NAME, null);
      assert.equal(await host.getProperty(ctx, PROP.FRIENDLY_NAME), undefined);
      await host.freeContext(ctx);
    });

    it(CONTRACT_CASES[4], async () => {
      const ctx = await host.createContext(cert(1));
      const info = cardInfo('lr-e46f1586-7133-4284-895d-557e2261c24d');
      await host.setKeyProvInfo(ctx, info);
      const stored = await my.add(ctx, ADD.REPLACE_EXISTING_INHERIT_PROPERTIES);
      assert.equal(stored.thumbprint, thumb(1));
      assert.deepEqual(keyProvInfoToJson(await host.getKeyProvInfo(stored)), keyProvInfoToJson(info));
      const back = await fx.readBack(thumb(1));
      assert.equal(back.found, true);
      assert.deepEqual(back.keyProvInfo, keyProvInfoToJson(info));
      assert.ok(back.propertyIds.includes(PROP.KEY_PROV_INFO));
      assert.ok((await my.enumerate()).some((c) => c.thumbprint === thumb(1)));
      await host.freeContext(ctx);
    });

    it(CONTRACT_CASES[5], async () => {
      const stored = await my.addEncoded(cert(2), ADD.REPLACE_EXISTING);
      const info = cardInfo('in-memory-only', AT_SIGNATURE);
      await host.setKeyProvInfo(stored, info, SET_PROP.INHIBIT_PERSIST);
      assert.deepEqual(keyProvInfoToJson(await host.getKeyProvInfo(stored)), keyProvInfoToJson(info));
      const back = await fx.readBack(thumb(2));
      assert.equal(back.found, true, 'the certificate itself is persisted');
      assert.equal(back.keyProvInfo, undefined, 'an inhibited property never reaches the store');
    });

    it(CONTRACT_CASES[6], async (t) => {
      const a = cardInfo('first');
      const b = cardInfo('second', AT_SIGNATURE);
      const withInfo = async (info: KeyProvInfo): Promise<CertContext> => {
        const ctx = await host.createContext(cert(3));
        await host.setKeyProvInfo(ctx, info);
        return ctx;
      };
      const storedInfo = async (): Promise<string | undefined> => {
        const found = await my.find(thumb(3));
        assert.ok(found);
        return (await host.getKeyProvInfo(found))?.containerName;
      };
      await my.add(await withInfo(a), ADD.NEW);
      assert.equal(await storedInfo(), 'first');
      await rejectsWith(my.add(await withInfo(b), ADD.NEW), 'CRYPT_E_EXISTS');
      // Same certificate, same NotBefore: never "newer".
      await rejectsWith(my.add(await withInfo(b), ADD.NEWER), 'CRYPT_E_EXISTS');
      await rejectsWith(my.add(await withInfo(b), ADD.NEWER_INHERIT_PROPERTIES), 'CRYPT_E_EXISTS');
      await my.add(await withInfo(b), ADD.REPLACE_EXISTING_INHERIT_PROPERTIES);
      if (fx.flavor === 'wine') {
        t.diagnostic(
          'Wine differs from Windows: with REPLACE_EXISTING_INHERIT_PROPERTIES the stored properties win over the new ones; ' +
            'Windows documents that the existing entry takes on the new properties, asserted on the model run',
        );
        assert.equal(await storedInfo(), 'first');
        const found = await my.find(thumb(3));
        assert.ok(found);
        await host.setKeyProvInfo(found, b);
      }
      assert.equal(await storedInfo(), 'second', 'the existing entry takes on the new properties');
      const named = await withInfo(a);
      const friendly = new Uint8Array(Buffer.from('added\0', 'utf16le'));
      await host.setProperty(named, PROP.FRIENDLY_NAME, friendly);
      const used = await my.add(named, ADD.USE_EXISTING);
      assert.equal(used.thumbprint, thumb(3));
      assert.equal(await storedInfo(), 'first', 'USE_EXISTING adds the new properties to the existing entry');
      assert.deepEqual(await host.getProperty(used, PROP.FRIENDLY_NAME), friendly);
      await my.add(await host.createContext(cert(3)), ADD.REPLACE_EXISTING);
      assert.equal(await storedInfo(), undefined, 'REPLACE_EXISTING drops the old entry with its properties');
      await rejectsWith(my.add(await withInfo(a), 99 as never), 'E_INVALIDARG');
    });

    it(CONTRACT_CASES[7], async () => {
      const ctx = await host.createContext(cert(4));
      for (const flags of [
        0,
        ACQUIRE.SILENT,
        ACQUIRE.COMPARE_KEY | ACQUIRE.SILENT,
        ACQUIRE.CACHE,
        ACQUIRE.ALLOW_NCRYPT_KEY,
        ACQUIRE.PREFER_NCRYPT_KEY,
        ACQUIRE.ONLY_NCRYPT_KEY,
        ACQUIRE.NO_HEALING,
      ]) {
        await rejectsWith(host.acquirePrivateKey(ctx, flags), 'CRYPT_E_NO_KEY_PROPERTY');
      }
      await host.freeContext(ctx);
    });

    it(CONTRACT_CASES[8], async (t) => {
      const ctx = await host.createContext(cert(4));
      await host.setKeyProvInfo(ctx, { ...cardInfo('nowhere'), providerName: 'cardlink Provider That Does Not Exist' });
      if (fx.flavor === 'wine') {
        t.diagnostic(
          'Wine differs from Windows: it replaces every provider error with CRYPT_E_NO_KEY_PROPERTY; ' +
            'Windows passes the provider error through (NTE_KEYSET_NOT_DEF for an unknown provider), asserted on the model run',
        );
        await rejectsWith(host.acquirePrivateKey(ctx, ACQUIRE.SILENT), 'CRYPT_E_NO_KEY_PROPERTY');
      } else {
        await rejectsWith(host.acquirePrivateKey(ctx, ACQUIRE.SILENT), 'NTE_KEYSET_NOT_DEF');
      }
      await host.freeContext(ctx);
    });

    it(CONTRACT_CASES[9], async () => {
      for (const i of [5, 6]) {
        const ctx = await host.createContext(cert(i));
        await host.setKeyProvInfo(ctx, cardInfo(`${CONTRACT_MARKER}-${i}`));
        await my.add(ctx, ADD.REPLACE_EXISTING_INHERIT_PROPERTIES);
      }
      const stale = (await my.enumerate()).filter((c) => c.thumbprint === thumb(5));
      assert.equal(stale.length, 1);
      await my.delete(stale[0]!);
      assert.equal(await my.find(thumb(5)), undefined);
      assert.deepEqual(await fx.readBack(thumb(5)), { found: false, propertyIds: [] });
      assert.equal((await fx.readBack(thumb(6))).found, true, 'the other entry stays');
    });
  });
}
