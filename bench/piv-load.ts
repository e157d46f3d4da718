// The PIV rows of `npm run bench load`: APDUs and bytes of cardlink's PIV operations over the
// in-memory transport, next to their lower bounds and, with `--opensc`, next to what OpenSC 0.23
// sends for the same operation on the same emulated card, counted at the card behind the real
// pcscd + vpcd (a tap in the emulator, as `npm run bench pcsc` counts the GIDS comparison).
// - install: a certificate into slot 9A — SELECT, the management key's mutual authentication,
//   PUT DATA of the certificate object; nothing else is written, because Windows' PIV minidriver
//   takes its freshness from card insertions, not from the card (docs/piv.md). OpenSC: `piv-tool
//   -A M:9B:03 -C 9A -i cert` (its card detection included).
// - list cold: what Windows' PIV minidriver reads with nothing cached, through cardlink's PIV
//   minidriver port (SELECT, CHUID, key history, the four certificate objects). OpenSC: `pkcs15-tool
//   --dump`, first run.
// - list warm: the same card listed again through the Windows model in the same insertion: the
//   port's `begin` (SELECT, CHUID) and everything else from the cache. OpenSC: `pkcs15-tool --dump`
//   again (OpenSC has no cache across runs for PIV objects by default).
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PivMinidriver } from '../src/card/piv-minidriver.js';
import { FACTORY, PivCard } from '../src/piv/emulator/index.js';
import { PivSession } from '../src/piv/host/session.js';
import { ALG, KEY_REF, OBJECT } from '../src/piv/protocol/constants.js';
import { encodeCertificateObject, encodeChuid } from '../src/piv/protocol/objects.js';
import type { EmbeddedCa } from '../src/service/ca/embedded.js';
import { MemoryTransport } from '../src/transport/memory.js';
import { waitForPcscCard } from '../src/transport/pcsc.js';
import { RecordingTransport } from '../src/transport/recorder.js';
import { attachToVpcd } from '../src/vpcd/attach.js';
import { ManualScheduler } from '../src/windows/model/clock.js';
import { WindowsMachine } from '../src/windows/model/machine.js';
import { runTool } from '../test/pcsc/harness.js';

const READER = 'Virtual PCD 00 00';
const HOST = process.env.VPCD_ADDR ?? '127.0.0.2';
const PORT = Number(process.env.VPCD_PORT ?? 35963);
const STATE = resolve(process.env.PCSC_STATE_DIR ?? '.pcsc-state');
const GUID = new Uint8Array(Buffer.from('58c68a1d65e0a09285af090b07aabbcc', 'hex'));

interface PivRow {
  operation: string;
  apdus: number;
  bytes: number;
  bound: number;
  opensc?: number | string;
}

/** Short APDUs carrying `n` bytes of command data (PIV hosts chain, 255 bytes each). */
const sends = (n: number): number => Math.max(1, Math.ceil(n / 255));
/** A GET DATA returning `n` bytes: one APDU, then GET RESPONSE per further 256 bytes (61xx). */
const reads = (n: number): number => 1 + Math.max(0, Math.ceil((n - 256) / 256));

/** A PIV card with a CHUID and an RSA-2048 key in 9A, and an ~800-byte certificate for it. */
async function prepared(ca: EmbeddedCa): Promise<{ card: PivCard; der: Uint8Array }> {
  const card = PivCard.blank();
  const s = new PivSession(new MemoryTransport(card));
  await s.select();
  await s.authenticate(FACTORY.MANAGEMENT_KEY);
  await s.putObject(OBJECT.CHUID, encodeChuid({ guid: GUID, expires: '20450101' }));
  const key = await s.generateKey(KEY_REF.AUTHENTICATION, ALG.RSA_2048);
  const der = await ca.issueFor(key, { subject: 'CN=bench' });
  card.reset();
  return { card, der };
}

async function cardlinkRows(ca: EmbeddedCa): Promise<{ rows: PivRow[]; card: PivCard; der: Uint8Array }> {
  const { card, der } = await prepared(ca);
  const object = encodeCertificateObject(der);
  const rows: PivRow[] = [];

  const t = new RecordingTransport(new MemoryTransport(card));
  const s = new PivSession(t);
  await s.select();
  await s.authenticate(FACTORY.MANAGEMENT_KEY);
  await s.writeCertificate(KEY_REF.AUTHENTICATION, der);
  // SELECT, GENERAL AUTHENTICATE twice (witness, then response), PUT DATA (5C 03 tag, 53 len object).
  rows.push({ operation: `PIV install ${der.length} B cert into 9A`, apdus: t.count, bytes: t.bytesSent + t.bytesReceived, bound: 3 + sends(5 + 4 + object.length) });

  card.reset();
  const coldT = new RecordingTransport(new MemoryTransport(card));
  const port = new PivMinidriver(new PivSession(coldT));
  await port.begin();
  for (const c of await port.containers()) await port.readFile(`mscp/kxc${c.index.toString().padStart(2, '0')}`);
  // SELECT, CHUID, key history, 9A's certificate (chained out), 9C, 9D, 9E absent.
  rows.push({ operation: 'PIV list, 1 certificate, cold (minidriver port)', apdus: coldT.count, bytes: coldT.bytesSent + coldT.bytesReceived, bound: 1 + 1 + 1 + reads(4 + object.length) + 3 });

  card.reset();
  const dir = mkdtempSync(join(tmpdir(), 'cardlink-bench-piv-'));
  const machine = new WindowsMachine({ stateDir: dir, scheduler: new ManualScheduler() });
  try {
    const warmT = new RecordingTransport(new MemoryTransport(card));
    machine.insert(new PivMinidriver(new PivSession(warmT)));
    await machine.startProcess().ksp.userCertificates(true);
    warmT.clear();
    await machine.startProcess().ksp.userCertificates(true);
    rows.push({ operation: 'PIV list, 1 certificate, warm (Windows model)', apdus: warmT.count, bytes: warmT.bytesSent + warmT.bytesReceived, bound: 2 });
  } finally {
    machine.shutdown();
    rmSync(dir, { recursive: true, force: true });
  }
  return { rows, card, der };
}

/** OpenSC's APDUs for the same three operations, counted at the emulated card through pcscd + vpcd. */
async function openscCounts(ca: EmbeddedCa): Promise<number[]> {
  const up = spawnSync('bash', ['scripts/pcsc-up.sh'], { env: { ...process.env, PCSC_STATE_DIR: STATE }, encoding: 'utf8' });
  if (up.status !== 0) throw new Error(`scripts/pcsc-up.sh failed:\n${up.stderr}`);
  const work = mkdtempSync(join(tmpdir(), 'cardlink-bench-piv-opensc-'));
  try {
    const { card, der } = await prepared(ca);
    const conf = join(work, 'opensc-piv-only.conf');
    writeFileSync(conf, 'app default {\n  card_drivers = PIV-II;\n}\n');
    const keyFile = join(work, 'mgmt.key');
    writeFileSync(keyFile, FACTORY.MANAGEMENT_KEY, { mode: 0o600 });
    const certFile = join(work, 'cert.pem');
    writeFileSync(certFile, new X509Certificate(der).toString());
    const env = { OPENSC_CONF: conf, PIV_EXT_AUTH_KEY: keyFile };
    const ac = new AbortController();
    const attachment = attachToVpcd(card, { host: HOST, port: PORT, signal: ac.signal });
    await waitForPcscCard(READER, 'present', { timeoutMs: 10_000 });
    try {
      const counted = async (command: string, args: string[], ok: (code: number, out: string) => boolean): Promise<number> => {
        const before = attachment.counters.apdus;
        const r = await runTool(command, ['-r', '0', ...args], { env, timeoutMs: 120_000 });
        if (!ok(r.code, r.stdout + r.stderr)) throw new Error(`${command} ${args.join(' ')} failed (${r.code}): ${r.stdout}${r.stderr}`);
        return attachment.counters.apdus - before;
      };
      // piv-tool 0.23 exits with the byte count it wrote (mod 256): success is "no error printed".
      const install = await counted('piv-tool', ['-A', 'M:9B:03', '-C', '9A', '-i', certFile], (_, out) => !/fail|error|unable/i.test(out));
      const cold = await counted('pkcs15-tool', ['--dump'], (code, out) => code === 0 && /CN=bench|bench/.test(out));
      const warm = await counted('pkcs15-tool', ['--dump'], (code) => code === 0);
      return [install, cold, warm];
    } finally {
      ac.abort();
      await waitForPcscCard(READER, 'empty', { timeoutMs: 10_000 });
    }
  } finally {
    spawnSync('bash', ['scripts/pcsc-down.sh'], { env: { ...process.env, PCSC_STATE_DIR: STATE }, encoding: 'utf8' });
    rmSync(work, { recursive: true, force: true });
  }
}

export async function printPivRows(ca: EmbeddedCa, withOpensc: boolean): Promise<void> {
  const { rows } = await cardlinkRows(ca);
  if (withOpensc) {
    const counts = await openscCounts(ca);
    rows.forEach((r, i) => (r.opensc = counts[i]!));
  }
  const w = Math.max(...rows.map((r) => r.operation.length));
  console.log(`\n| ${'PIV operation'.padEnd(w)} | APDUs | bound | bytes  | OpenSC APDUs |`);
  console.log(`|${'-'.repeat(w + 2)}|-------|-------|--------|--------------|`);
  for (const r of rows) {
    console.log(`| ${r.operation.padEnd(w)} | ${String(r.apdus).padStart(5)} | ${String(r.bound).padStart(5)} | ${String(r.bytes).padStart(6)} | ${String(r.opensc ?? '—').padStart(12)} |`);
  }
  console.log('\nPIV: short APDUs (chaining and 61xx GET RESPONSE), an RSA-2048 key in 9A and its certificate, a CHUID.');
  console.log('install = SELECT, management key mutual authentication, PUT DATA (bound: those, the certificate object chained in 255-byte pieces);');
  console.log('list cold = what the minidriver reads with nothing cached (bound: SELECT, CHUID, key history, 9A chained out, 9C/9D/9E absent);');
  console.log('list warm = a second listing through the Windows model in the same insertion (bound: SELECT + CHUID; the rest is cached).');
  console.log(
    withOpensc
      ? 'OpenSC APDUs: piv-tool -A M:9B:03 -C 9A (install) and pkcs15-tool --dump twice (cold, warm), card_drivers = PIV-II, counted at the card through pcscd + vpcd, detection included.'
      : 'OpenSC APDUs: run `flock /tmp/cardlink-pcsc.lock npm run bench load -- --opensc` (starts a private pcscd) to count them.',
  );
}
