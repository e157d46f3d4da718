// `npm run bench agent [-- --runs 50]`: the always-on agent through the real pcscd + vpcd. For 1 and
// 3 certificates waiting on the service, cold (a card the agent has not seen, certificates to
// collect, install and link) and warm (the same card pulled and put back unchanged: cardid and
// cardcf read, the store checked), the time from the card going into the reader to the agent's
// record that every certificate is linked, split into detection (pcscd noticing the card and the
// agent's SCardGetStatusChange waking), connecting, card reads, service round trips, install and
// link. Starts its own private pcscd (scripts/pcsc-up.sh) and stops it by PID at the end; it shares
// vpcd's ports with the PC/SC tests, so run it under `flock /tmp/cardlink-pcsc.lock`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { AgentLogEntry, PassRecord } from '../src/agent/daemon.js';
import { waitForPcscCard } from '../src/transport/pcsc.js';
import { attachToVpcd, type VpcdEvent } from '../src/vpcd/attach.js';
import { cardWithWaitingCertificates, passOn, startAgent } from '../test/agent/fixture.js';
import { BACKENDS, startTestService } from '../test/service/helpers.js';

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 50;
const READER = 'Virtual PCD 00 00';
const HOST = process.env.VPCD_ADDR ?? '127.0.0.2';
const PORT = Number(process.env.VPCD_PORT ?? 35963);
const STATE = resolve(process.env.PCSC_STATE_DIR ?? '.pcsc-state');

function pcsc(script: 'up' | 'down'): void {
  const r = spawnSync('bash', [`scripts/pcsc-${script}.sh`], { env: { ...process.env, PCSC_STATE_DIR: STATE }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/pcsc-${script}.sh failed:\n${r.stderr}`);
}

interface Sample {
  totalMs: number;
  detectMs: number;
  pass: PassRecord;
}

const PARTS = ['detect', 'open', 'card', 'service', 'install', 'link'] as const;

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

async function main(): Promise<void> {
  pcsc('up');
  const svc = await startTestService(BACKENDS[0]!);
  const agent = startAgent(svc.client, mkdtempSync(join(tmpdir(), 'cardlink-bench-agent-')));
  const rows: (string | number)[][] = [];
  try {
    await agent.next((e) => e.event === 'service-up');
    for (const n of [1, 3]) {
      const cold: Sample[] = [];
      const warm: Sample[] = [];
      for (let i = 0; i < RUNS; i++) {
        const card = await cardWithWaitingCertificates(svc.client, n);
        // t0 is when the card is in the reader as vpcd sees it (its socket connected), not when
        // this process started attaching it (the relay thread's start-up is no reader's doing).
        let connectedAt = 0;
        const onEvent = (e: VpcdEvent): void => {
          if (e.type === 'connected') connectedAt = performance.now();
        };
        const measure = async (insert: () => void, kind: string): Promise<Sample> => {
          // A user's insertion comes at any moment of pcscd's 400 ms presence poll, not in step with it.
          await new Promise((r) => setTimeout(r, Math.random() * 400));
          const from = agent.logs.length;
          const done = agent.next(passOn(card.cardId), 30_000);
          connectedAt = 0;
          insert();
          const entry = await done;
          const t0 = connectedAt;
          if (t0 === 0) throw new Error(`run ${i}: vpcd never reported the card connected`);
          const end = agent.loggedAt[agent.logs.indexOf(entry)]!;
          const insertedAt = agent.logs.findIndex((e: AgentLogEntry, k) => k >= from && e.event === 'card-inserted');
          const pass = (entry as Extract<AgentLogEntry, { event: 'pass' }>).pass;
          if (!pass.ok || pass.kind !== kind) throw new Error(`run ${i}: expected a ${kind} pass, got ${JSON.stringify(pass)}`);
          if (kind === 'cold' && !pass.report!.items.every((it) => it.linked)) throw new Error(`run ${i}: not everything linked`);
          return { totalMs: end - t0, detectMs: agent.loggedAt[insertedAt]! - t0, pass };
        };
        const ac = new AbortController();
        let attachment: ReturnType<typeof attachToVpcd> | undefined;
        cold.push(await measure(() => (attachment = attachToVpcd(card.emulator, { host: HOST, port: PORT, signal: ac.signal, onEvent })), 'cold'));
        if (!attachment) throw new Error('not attached');
        attachment.remove();
        await waitForPcscCard(READER, 'empty', { timeoutMs: 10_000 });
        warm.push(await measure(() => attachment!.insert(), 'warm'));
        ac.abort();
        await waitForPcscCard(READER, 'empty', { timeoutMs: 10_000 });
      }
      for (const [kind, samples] of [['cold', cold], ['warm', warm]] as const) {
        const part = (p: (typeof PARTS)[number]): number[] =>
          samples.map((s) => (p === 'detect' ? s.detectMs : s.pass.timings[`${p}Ms` as 'openMs' | 'cardMs' | 'serviceMs' | 'installMs' | 'linkMs']));
        const total = samples.map((s) => s.totalMs);
        const agentPart = samples.map((s) => s.totalMs - s.detectMs);
        rows.push([
          `${n} cert${n > 1 ? 's' : ''}, ${kind}`,
          quantile(total, 0.5).toFixed(0),
          quantile(total, 0.99).toFixed(0),
          quantile(agentPart, 0.5).toFixed(0),
          quantile(agentPart, 0.99).toFixed(0),
          ...PARTS.map((p) => quantile(part(p), 0.5).toFixed(0)),
        ]);
      }
    }
  } finally {
    await agent.stop();
    await svc.close();
    pcsc('down');
  }
  const header = ['case', 'p50', 'p99', 'agent p50', 'agent p99', ...PARTS.map((p) => `${p} p50`)];
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  const fmt = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(`insertion → every certificate linked (agent record), ${RUNS} insertions per case, ms, through pcscd + vpcd ${HOST}`);
  console.log([fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map((r) => fmt(r.map(String)))].join('\n'));
  console.log(
    'p50/p99 = card in the reader (vpcd connected) → every certificate linked; agent = from the agent seeing the insertion to linked; ' +
      'detect = pcscd noticing the card (it polls vpcd every 400 ms) and the agent\'s SCardGetStatusChange waking; open = connect + SELECT; card = cardid/cardcf/containers and the ' +
      'proof signatures; service = challenge, collect, delivery reports; install = writing certificates; link = model store + proofs. ' +
      'Warm: the same card re-inserted unchanged (store checked, nothing collected).',
  );
}

await main();
