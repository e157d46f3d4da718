/**
 * The PIV minidriver port through the real pcscd + vpcd: the model Windows machine reads an
 * emulated PIV card the way Windows' PIV minidriver would — each provider transaction on its own
 * shared PC/SC connection — `link` links 9A and proves the key, a warm listing costs 2 APDUs at the
 * card, and a certificate written while the card stays in the reader is seen only after the card
 * is taken out and put back.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { PivMinidriver } from '../../src/card/piv-minidriver.js';
import { FACTORY, PivCard } from '../../src/piv/emulator/index.js';
import { PivSession } from '../../src/piv/host/session.js';
import { ALG, KEY_REF, OBJECT } from '../../src/piv/protocol/constants.js';
import { encodeChuid } from '../../src/piv/protocol/objects.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { openPcscTransport } from '../../src/transport/pcsc.js';
import { linkCard } from '../../src/windows/link.js';
import { ManualScheduler } from '../../src/windows/model/clock.js';
import { WindowsMachine } from '../../src/windows/model/machine.js';
import type { CardConnector } from '../../src/windows/model/smartcard.js';
import { tempDir } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';
import { EXAMPLE_GUID } from '../helpers/piv-card.js';
import { SLOTS, insertCard, lockPcsc } from './harness.js';

const SLOT = SLOTS[0];

/** Each provider transaction: its own shared connection and a PIV minidriver over it. */
const connector: CardConnector = async () => {
  const t = await openPcscTransport({ reader: SLOT.reader, share: 'shared' });
  return { port: new PivMinidriver(new PivSession(t)), close: () => t.close() };
};

async function writer<T>(fn: (s: PivSession) => Promise<T>): Promise<T> {
  const t = await openPcscTransport({ reader: SLOT.reader, share: 'shared' });
  try {
    const s = new PivSession(t);
    await s.select();
    await s.authenticate(FACTORY.MANAGEMENT_KEY);
    return await fn(s);
  } finally {
    await t.close();
  }
}

describe('PIV minidriver port and the Windows model, through pcscd + vpcd', () => {
  let release: () => void = () => {};
  before(async () => {
    release = await lockPcsc();
  });
  after(() => release());

  it('link proves a P-256 key in 9A; a warm listing is 2 APDUs at the card; an offline write waits for re-insertion', async () => {
    const card = PivCard.blank();
    const setup = new PivSession(new MemoryTransport(card));
    await setup.select();
    await setup.authenticate(FACTORY.MANAGEMENT_KEY);
    await setup.putObject(OBJECT.CHUID, encodeChuid({ guid: EXAMPLE_GUID, expires: '20450101' }));
    const key = await setup.generateKey(KEY_REF.AUTHENTICATION, ALG.ECC_P256);
    await setup.writeCertificate(KEY_REF.AUTHENTICATION, await issueOurs(key, 0, 'CN=PIV through pcscd'));
    card.reset();

    const dir = tempDir('cardlink-piv-pcsc-');
    const machine = new WindowsMachine({ stateDir: dir, scheduler: new ManualScheduler(), readerName: SLOT.reader });
    let inserted = await insertCard(card, SLOT);
    try {
      machine.insert(connector);
      const app = machine.startProcess(() => FACTORY.PIN);
      const conn = await connector();
      let report;
      try {
        report = await linkCard(conn.port, app.host);
      } finally {
        await conn.close();
      }
      assert.equal(report.linked.length, 1);
      assert.equal(report.linked[0]!.container, '1d8ac658-e065-92a0-85af-090b075fc105');
      assert.equal(report.linked[0]!.proof.api, 'CNG');
      assert.ok(report.linked[0]!.proof.verified);

      const list = async (): Promise<string[]> => (await machine.startProcess().ksp.userCertificates(true)).map((c) => new X509Certificate(c.der).subject);
      assert.deepEqual(await list(), ['CN=PIV through pcscd']);
      const before = inserted.attachment.counters.apdus;
      assert.deepEqual(await list(), ['CN=PIV through pcscd']);
      assert.equal(inserted.attachment.counters.apdus - before, 2, 'SELECT and the CHUID; the rest from the Smart Card service cache');

      const k9d = await writer((s) => s.generateKey(KEY_REF.KEY_MANAGEMENT, ALG.RSA_2048));
      const der9d = await issueOurs(k9d, 0, 'CN=Written Offline');
      await writer((s) => s.writeCertificate(KEY_REF.KEY_MANAGEMENT, der9d));
      assert.deepEqual(await list(), ['CN=PIV through pcscd'], 'the card stayed in the reader: the cached container map is served');

      await inserted.eject();
      machine.remove();
      inserted = await insertCard(card, SLOT);
      machine.insert(connector);
      assert.deepEqual(await list(), ['CN=PIV through pcscd', 'CN=Written Offline']);
    } finally {
      machine.shutdown();
      await inserted.eject();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
