// `npm run bench pcsc [-- --runs 1000]`: the emulator as a card in the real pcscd through vpcd.
// 1. APDU round trip (SELECT of the GIDS application) through smartcard → pcscd → vpcd → emulator,
//    against the same APDU in memory.
// 2. cardlink against OpenSC on the same kind of freshly emulated card, counting APDUs at the card
//    (a tap in the emulator): initialise, generate an RSA-2048 key, store a certificate, and list
//    everything (`card ls` / `pkcs15-tool --dump`), cold and warm.
// 3. cardlink's install of an 800-byte certificate, cold and warm, on a card that announces
//    extended-length APDUs and on one that takes short APDUs only (`npm run bench load`'s rows,
//    counted at the card through the reader).
// Starts its own private pcscd (scripts/pcsc-up.sh) and stops it by PID at the end.
import { execFile, spawnSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { hex } from '../src/bytes.js';
import { main as cardlink } from '../src/cli/main.js';
import { MemoryCardCache, MinidriverCard, type CardCache } from '../src/card/index.js';
import { GidsCard, type CardImageData } from '../src/gids/emulator/index.js';
import { GIDS_AID_PARTIAL } from '../src/gids/protocol/constants.js';
import { MemoryTransport } from '../src/transport/memory.js';
import { openPcscTransport, waitForPcscCard } from '../src/transport/pcsc.js';
import type { Transport } from '../src/transport/transport.js';
import { attachToVpcd, type VpcdAttachment } from '../src/vpcd/attach.js';
import { issueOurs } from '../test/helpers/certs.js';

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 1000;
const WARMUP = 50;
const READER = 'Virtual PCD 00 00';
const HOST = process.env.VPCD_ADDR ?? '127.0.0.2';
const PORT = Number(process.env.VPCD_PORT ?? 35963);
const PIN = '123456';
const ADMIN_KEY = '010203040506070801020304050607080102030405060708';
const STATE = resolve(process.env.PCSC_STATE_DIR ?? '.pcsc-state');

const work = mkdtempSync(join(tmpdir(), 'cardlink-bench-pcsc-'));
process.env.CARDLINK_HOME = join(work, 'home');

function pcsc(script: 'up' | 'down'): void {
  const r = spawnSync('bash', [`scripts/pcsc-${script}.sh`], { env: { ...process.env, PCSC_STATE_DIR: STATE }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/pcsc-${script}.sh failed:\n${r.stderr}`);
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function roundTrips(transport: Transport, apdu: Uint8Array): Promise<number[]> {
  for (let i = 0; i < WARMUP; i++) await transport.transmit(apdu);
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = process.hrtime.bigint();
    await transport.transmit(apdu);
    times.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  return times.sort((a, b) => a - b);
}

/** A blank emulated card in slot 0 whose APDUs are counted at the card. */
async function freshCard(): Promise<{ attachment: VpcdAttachment; count: () => number; eject: () => Promise<void> }> {
  const ac = new AbortController();
  const attachment = attachToVpcd(GidsCard.blank(), { host: HOST, port: PORT, signal: ac.signal });
  await waitForPcscCard(READER, 'present', { timeoutMs: 10_000 });
  return {
    attachment,
    count: () => attachment.counters.apdus,
    async eject() {
      ac.abort();
      await waitForPcscCard(READER, 'empty', { timeoutMs: 10_000 });
    },
  };
}

interface Measured {
  apdus: number;
  ms: number;
  out: string;
}

async function measured(count: () => number, run: () => Promise<string>): Promise<Measured> {
  const before = count();
  const t = process.hrtime.bigint();
  const out = await run();
  return { apdus: count() - before, ms: Number(process.hrtime.bigint() - t) / 1e6, out };
}

/** cardlink's CLI in this process: its PC/SC connection and the emulator share the event loop. */
async function cli(argv: string[], env: Record<string, string>): Promise<string> {
  let out = '';
  let err = '';
  const code = await cardlink(argv, {
    stdout: (t) => (out += t),
    stderr: (t) => (err += t),
    env: { PATH: process.env.PATH ?? '', CARDLINK_PIN: PIN, CARDLINK_ADMIN_KEY: ADMIN_KEY, ...env },
  });
  if (code !== 0) throw new Error(`cardlink ${argv.join(' ')} failed (${code}): ${err}`);
  return out;
}

/** An OpenSC tool as its own process, without blocking the event loop the emulator answers from. */
function tool(command: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(command, args, { env: { ...process.env, ...env }, timeout: 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')} failed: ${stderr}`));
      else resolvePromise(stdout + stderr);
    });
  });
}

const GIDS_ONLY = join(work, 'opensc-gids-only.conf');
writeFileSync(GIDS_ONLY, 'app default {\n  card_drivers = gids;\n}\n');

interface Op {
  name: string;
  cardlink: Measured;
  opensc: Measured;
}

async function compare(): Promise<{ ops: Op[]; detection: { all: number; gidsOnly: number } }> {
  // cardlink, on its own fresh card.
  const a = await freshCard();
  const cl: Record<string, Measured> = {};
  const home = { CARDLINK_HOME: join(work, 'cardlink-home') };
  const target = ['--reader', READER];
  cl.init = await measured(a.count, () => cli(['card', 'init', ...target], home));
  cl.gen = await measured(a.count, () => cli(['card', 'gen', ...target, '--container', 'bench key', '--alg', 'rsa2048', '--keyspec', 'sig', '--json'], home));
  const der = await issueOurs(createPublicKey(JSON.parse(cl.gen.out).publicKey as string), 0, 'CN=Bench User');
  const certFile = join(work, 'bench.der');
  writeFileSync(certFile, der);
  cl.store = await measured(a.count, () => cli(['card', 'install', certFile, ...target], home));
  const coldHome = { CARDLINK_HOME: join(work, 'cardlink-cold-home') };
  cl.cold = await measured(a.count, () => cli(['card', 'ls', ...target], coldHome));
  cl.warm = await measured(a.count, () => cli(['card', 'ls', ...target], coldHome));
  await a.eject();

  // OpenSC, limited to its GIDS driver so detection costs one SELECT, on another fresh card.
  const b = await freshCard();
  const os: Record<string, Measured> = {};
  const conf = { OPENSC_CONF: GIDS_ONLY };
  os.init = await measured(b.count, () =>
    tool('gids-tool', ['-r', '0', '--initialize', '--pin', PIN, '--admin-key', ADMIN_KEY, '--serial-number', '00'.repeat(16)], conf),
  );
  os.gen = await measured(b.count, () =>
    tool('pkcs15-init', ['-r', '0', '--generate-key', 'rsa/2048', '--auth-id', '80', '--verify-pin', '--pin', PIN, '--label', 'bench key'], conf),
  );
  const pub = await tool('pkcs15-tool', ['-r', '0', '--read-public-key', '00'], conf);
  const osDer = await issueOurs(createPublicKey(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/.exec(pub)![0]), 0, 'CN=Bench User');
  const osCert = join(work, 'bench-opensc.der');
  writeFileSync(osCert, osDer);
  os.store = await measured(b.count, () =>
    tool('pkcs15-init', ['-r', '0', '--store-certificate', osCert, '--format', 'der', '--id', '00', '--verify-pin', '--pin', PIN], conf),
  );
  os.cold = await measured(b.count, () => tool('pkcs15-tool', ['-r', '0', '--dump'], conf));
  os.warm = await measured(b.count, () => tool('pkcs15-tool', ['-r', '0', '--dump'], conf));
  const all = await measured(b.count, () => tool('opensc-tool', ['-r', '0', '-n']));
  const gidsOnly = await measured(b.count, () => tool('opensc-tool', ['-r', '0', '-n'], conf));
  await b.eject();

  const names: [string, string][] = [
    ['init', 'initialise (PIN, admin key, file system)'],
    ['gen', 'generate an RSA-2048 key'],
    ['store', 'store a certificate'],
    ['cold', 'list everything, cold'],
    ['warm', 'list everything, warm'],
  ];
  return {
    ops: names.map(([k, name]) => ({ name, cardlink: cl[k]!, opensc: os[k]! })),
    detection: { all: all.apdus, gidsOnly: gidsOnly.apdus },
  };
}

/** An 800-byte certificate for the first of two RSA-2048 containers, on a card prepared in memory. */
async function benchImage(extendedLength: boolean): Promise<{ image: CardImageData; der: Uint8Array }> {
  const emulator = GidsCard.blank({ extendedLength });
  const card = await MinidriverCard.initialize(new MemoryTransport(emulator), { pin: PIN, adminKey: Buffer.from(ADMIN_KEY, 'hex') });
  await card.verifyPin(PIN);
  const first = await card.createContainer('first', { bits: 2048 });
  await card.createContainer('second', { keySpec: 'sig', bits: 2048 });
  return { image: emulator.toImage(), der: await issueOurs(first.publicKey, 0, 'CN=bench') };
}

/** APDUs the card sees for `measure`, after `fill` ran on an earlier connection with the same cache. */
async function countedInstall(image: CardImageData, der: Uint8Array, warm: boolean): Promise<number> {
  const ac = new AbortController();
  const attachment = attachToVpcd(GidsCard.fromImage(image), { host: HOST, port: PORT, signal: ac.signal });
  await waitForPcscCard(READER, 'present', { timeoutMs: 10_000 });
  const cache: CardCache = new MemoryCardCache();
  try {
    if (warm) {
      const t = await openPcscTransport({ reader: READER });
      try {
        const card = await MinidriverCard.open(t, { cache });
        for (const c of await card.containers()) await card.publicKey(c.index);
      } finally {
        await t.close();
      }
    }
    const t = await openPcscTransport({ reader: READER });
    try {
      const card = await MinidriverCard.open(t, { cache });
      await card.verifyPin(PIN);
      const before = attachment.counters.apdus;
      await card.installCertificate(der);
      return attachment.counters.apdus - before;
    } finally {
      await t.close();
    }
  } finally {
    ac.abort();
    await waitForPcscCard(READER, 'empty', { timeoutMs: 10_000 });
  }
}

function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

async function main(): Promise<void> {
  pcsc('up');
  try {
    const select = new Uint8Array([0x00, 0xa4, 0x04, 0x00, GIDS_AID_PARTIAL.length, ...GIDS_AID_PARTIAL, 0x00]);
    const memory = await roundTrips(new MemoryTransport(GidsCard.blank()), select);
    const card = await freshCard();
    const t = await openPcscTransport({ reader: READER });
    const viaPcsc = await roundTrips(t, select);
    await t.close();
    await card.eject();
    const us = (x: number): string => x.toFixed(1);
    console.log(`APDU round trip: SELECT GIDS (${select.length} bytes) → FCI + 9000, ${RUNS} runs after ${WARMUP} warm-up, in µs`);
    console.log(
      table(
        ['path', 'median', 'p90', 'p99', 'max'],
        [
          ['memory (emulator in process)', us(quantile(memory, 0.5)), us(quantile(memory, 0.9)), us(quantile(memory, 0.99)), us(memory.at(-1)!)],
          [`smartcard → pcscd → vpcd ${HOST} → emulator`, us(quantile(viaPcsc, 0.5)), us(quantile(viaPcsc, 0.9)), us(quantile(viaPcsc, 0.99)), us(viaPcsc.at(-1)!)],
        ],
      ),
    );

    const { ops, detection } = await compare();
    console.log('\ncardlink vs OpenSC 0.23 (gids driver only), same emulated card type, APDUs counted at the card');
    console.log(
      table(
        ['operation', 'cardlink APDUs', 'cardlink ms', 'OpenSC APDUs', 'OpenSC ms'],
        ops.map((o) => [o.name, o.cardlink.apdus, o.cardlink.ms.toFixed(1), o.opensc.apdus, o.opensc.ms.toFixed(1)]),
      ),
    );
    console.log(
      `\nOpenSC card detection per tool run: ${detection.gidsOnly} APDU with card_drivers = gids (included above), ` +
        `${detection.all} with the default driver list (add ${detection.all - detection.gidsOnly} per row for a stock install).`,
    );
    console.log(
      'cardlink runs in this process (no process start; "cold" = empty card cache, "warm" = cache filled by the cold run); ' +
        'OpenSC times include starting each tool. RSA key generation time is the emulator\'s (node:crypto) for both.',
    );
    const installs: (string | number)[][] = [];
    for (const extendedLength of [true, false]) {
      const { image, der } = await benchImage(extendedLength);
      const [coldMax, warmMax] = extendedLength ? [10, 8] : [12, 10];
      installs.push([
        `${der.length} B cert, ${extendedLength ? 'extended length' : 'short APDUs only'}`,
        `${await countedInstall(image, der, false)} (≤ ${coldMax})`,
        `${await countedInstall(image, der, true)} (≤ ${warmMax})`,
      ]);
    }
    console.log('\ncardlink install through pcscd + vpcd, APDUs counted at the card (issue 18 targets in brackets)');
    console.log(table(['install', 'cold cache', 'warm cache'], installs));
    console.log(`quickack route on ${HOST}: ${spawnSync('ip', ['route', 'show', 'table', 'local', `${HOST}/32`], { encoding: 'utf8' }).stdout.includes('quickack') ? 'yes' : 'NO (expect ~44 ms per APDU)'}; ATR ${hex(GidsCard.blank().atr)}`);
  } finally {
    pcsc('down');
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
