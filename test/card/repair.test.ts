// repair reports a finding fixed only when the card shows the fix: a card that refuses a write, or
// answers 9000 and drops it, leaves the finding NOT fixed (and the fresh check after says why).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hex } from '../../src/bytes.js';
import { MinidriverCard, type Finding } from '../../src/card/index.js';
import type { GidsCard } from '../../src/gids/emulator/index.js';
import { encodeCertificateFile, parseCmapfile, serializeCmapfile, setDefaultContainer } from '../../src/minidriver/index.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import type { Transport } from '../../src/transport/transport.js';
import { TEST_PIN, gidsSession, initialisedCard, reopen } from '../helpers/card.js';
import { issueOurs } from '../helpers/certs.js';

/** PUT DATA (INS DB) of data object `tag` in EF `efid`: the first (or only) APDU of the write. */
function isPutData(apdu: Uint8Array, efid: number, tag: number): boolean {
  return apdu[1] === 0xdb && apdu[2] === efid >> 8 && apdu[3] === (efid & 0xff) && apdu[5] === tag >> 8 && apdu[6] === (tag & 0xff);
}

/** A card behind a transport that answers `sw` to the writes `match` picks, without passing them on. */
class TamperedTransport implements Transport {
  readonly name = 'tampered';
  readonly intercepted: Uint8Array[] = [];
  constructor(
    private readonly inner: Transport,
    private readonly match: (apdu: Uint8Array) => boolean,
    private readonly sw: number,
  ) {}
  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    if (!this.match(apdu)) return this.inner.transmit(apdu);
    this.intercepted.push(apdu.slice());
    return new Uint8Array([this.sw >> 8, this.sw & 0xff]);
  }
  async close(): Promise<void> {
    await this.inner.close();
  }
}

async function throughTampered(emulator: GidsCard, match: (apdu: Uint8Array) => boolean, sw: number) {
  emulator.reset();
  const transport = new TamperedTransport(new MemoryTransport(emulator), match, sw);
  const card = await MinidriverCard.open(transport);
  await card.verifyPin(TEST_PIN);
  return { card, transport };
}

async function cardWithContainers() {
  const t = await initialisedCard();
  await t.card.verifyPin(TEST_PIN);
  const kx = await t.card.createContainer('kx-container', { keySpec: 'kx', bits: 1024 });
  await t.card.createContainer('sig-container', { keySpec: 'sig', bits: 1024 });
  return { ...t, kx };
}

function finding(findings: Finding[], code: Finding['code']): Finding {
  const f = findings.find((x) => x.code === code);
  assert.ok(f, `${code} in ${JSON.stringify(findings)}`);
  return f;
}

const MASTER_FILE_TABLE = { efid: 0xa000, tag: 0xdf1f };
const CARDCF = { efid: 0xa010, tag: 0xdf22 };
const CMAPFILE = { efid: 0xa010, tag: 0xdf23 };

test('a card that refuses to rewrite its file table: the orphan certificate is reported NOT fixed; a second repair on a willing card fixes what is left', async () => {
  const t = await cardWithContainers();
  await gidsSession(t).createFile('mscp', 'kxc05', encodeCertificateFile(await issueOurs(t.kx.publicKey)));
  const { card, transport } = await throughTampered(t.emulator, (a) => isPutData(a, MASTER_FILE_TABLE.efid, MASTER_FILE_TABLE.tag), 0x6982);

  const report = await card.repair();
  assert.ok(transport.intercepted.length > 0, 'the deletion tried to rewrite the file table');
  const orphan = finding(report.before.findings, 'CERT_ORPHAN');
  assert.equal(orphan.file, 'mscp/kxc05');
  assert.equal(orphan.fixed, false);
  assert.match(orphan.failure ?? '', /mscp\/kxc05.*6982/);
  // What the fresh check sees: the file is still in the table (its content emptied).
  assert.ok(report.after.findings.some((f) => f.file === 'mscp/kxc05'), JSON.stringify(report.after.findings));

  const willing = await reopen(t);
  await willing.card.verifyPin(TEST_PIN);
  const second = await willing.card.repair();
  assert.ok(second.before.findings.length > 0);
  assert.ok(second.before.findings.every((f) => f.fixed === true), JSON.stringify(second.before.findings));
  assert.deepEqual(second.after.findings, []);
  assert.deepEqual((await (await reopen(t)).card.check()).findings, []);
});

test('a card that refuses to move cardcf: nothing else is written and every finding is NOT fixed', async () => {
  const t = await cardWithContainers();
  const cmap = parseCmapfile((await gidsSession(t).readFile('mscp', 'cmapfile'))!);
  for (const r of cmap) setDefaultContainer(r, true);
  await gidsSession(t).writeFile('mscp', 'cmapfile', serializeCmapfile(cmap));
  const { card, transport } = await throughTampered(t.emulator, (a) => isPutData(a, CARDCF.efid, CARDCF.tag), 0x6a80);

  const report = await card.repair();
  assert.equal(transport.intercepted.length, 1);
  const multiple = finding(report.before.findings, 'DEFAULT_MULTIPLE');
  assert.equal(multiple.fixed, false);
  assert.match(multiple.failure ?? '', /cardcf/);
  assert.ok(report.before.findings.every((f) => f.fixed === false));
  finding(report.after.findings, 'DEFAULT_MULTIPLE');
  // Nothing was written after the refused counter move.
  assert.equal(hex((await gidsSession(t).readFile('mscp', 'cmapfile'))!), hex(serializeCmapfile(cmap)));
});

test('a card that answers 9000 to the cmapfile write and drops it: the fresh read shows it, DEFAULT_MULTIPLE is NOT fixed', async () => {
  const t = await cardWithContainers();
  const cmap = parseCmapfile((await gidsSession(t).readFile('mscp', 'cmapfile'))!);
  for (const r of cmap) setDefaultContainer(r, true);
  await gidsSession(t).writeFile('mscp', 'cmapfile', serializeCmapfile(cmap));
  const { card, transport } = await throughTampered(t.emulator, (a) => isPutData(a, CMAPFILE.efid, CMAPFILE.tag), 0x9000);

  const report = await card.repair();
  assert.equal(transport.intercepted.length, 1, 'repair wrote cmapfile once, and the card said 9000');
  const multiple = finding(report.before.findings, 'DEFAULT_MULTIPLE');
  assert.equal(multiple.fixed, false);
  assert.match(multiple.failure ?? '', /not done/);
  finding(report.after.findings, 'DEFAULT_MULTIPLE');
});
