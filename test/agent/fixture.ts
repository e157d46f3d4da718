/**
 * Shared by the agent's PC/SC tests and `npm run bench agent`: an emulated card whose keys have
 * requests the service has approved (certificates waiting), and an agent wired to pcscd.
 */
import { join } from 'node:path';
import { enroll } from '../../src/agent/enroll.js';
import { Agent, type AgentLogEntry, type AgentOptions } from '../../src/agent/daemon.js';
import { openCardForPass } from '../../src/agent/pcsc.js';
import { storeLinker } from '../../src/agent/store-link.js';
import { MemoryCardCache } from '../../src/card/index.js';
import { cardConnector } from '../../src/cli/target.js';
import type { GidsCard } from '../../src/gids/emulator/index.js';
import type { ServiceClient } from '../../src/service/client.js';
import { watchPcscReaders } from '../../src/transport/pcsc.js';
import { TEST_PIN, initialisedCard } from '../helpers/card.js';
import { login, makeToken } from '../service/helpers.js';

export interface WaitingCard {
  emulator: GidsCard;
  cardId: string;
  requests: { id: string; container: string }[];
}

/** A fresh card with `n` keys, each with a request made by `enroll` and approved: n certificates wait. */
export async function cardWithWaitingCertificates(client: ServiceClient, n: number, o: { approve?: boolean; bits?: 2048 } = {}): Promise<WaitingCard> {
  const t = await initialisedCard();
  const bearer = await login(client);
  const requests: WaitingCard['requests'] = [];
  let cardId = '';
  for (let i = 0; i < n; i++) {
    // One card, one user (issue 13: another user's enrollment on an active card is refused).
    const token = await makeToken(client, bearer, 'cardholder@example.com');
    const r = await enroll(t.card, client, { token, pin: TEST_PIN, bits: o.bits ?? 2048 });
    cardId = r.cardId;
    if (o.approve !== false) await client.approve(bearer, r.requestId);
    requests.push({ id: r.requestId, container: r.container });
  }
  await t.transport.close();
  t.emulator.reset();
  return { emulator: t.emulator, cardId, requests };
}

export interface RunningAgent {
  agent: Agent;
  logs: AgentLogEntry[];
  /** performance.now() at which each entry of `logs` was logged (the benchmark's clock). */
  loggedAt: number[];
  stop(): Promise<void>;
  /** Resolves with the first log entry (from now on) that `match` accepts. */
  next(match: (e: AgentLogEntry) => boolean, timeoutMs?: number): Promise<AgentLogEntry>;
}

/** Starts an agent in this process on the real pcscd, linking into a model store under `dir`. */
export function startAgent(client: ServiceClient, dir: string, extra: Partial<AgentOptions> = {}): RunningAgent {
  const logs: AgentLogEntry[] = [];
  const loggedAt: number[] = [];
  const waiters: { match: (e: AgentLogEntry) => boolean; resolve: (e: AgentLogEntry) => void }[] = [];
  const cache = new MemoryCardCache();
  const agent = new Agent({
    watchReaders: (o) => watchPcscReaders({ ...o, reconnectMs: 200 }),
    openCard: (reader) => openCardForPass(reader, cache),
    client,
    pin: TEST_PIN,
    linker: storeLinker(`model:${join(dir, 'store')}`, () => TEST_PIN, (reader) => cardConnector({ reader }, process.env)),
    version: 'test',
    host: 'ws-test',
    log: (e) => {
      logs.push(e);
      loggedAt.push(performance.now());
      for (const w of [...waiters]) {
        if (w.match(e)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(e);
        }
      }
    },
    ...extra,
  });
  const ac = new AbortController();
  const done = agent.run(ac.signal);
  return {
    agent,
    logs,
    loggedAt,
    async stop() {
      ac.abort();
      await done;
    },
    next(match, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no matching agent log entry within ${timeoutMs} ms; last: ${JSON.stringify(logs.slice(-5))}`)), timeoutMs);
        waiters.push({
          match,
          resolve: (e) => {
            clearTimeout(t);
            resolve(e);
          },
        });
      });
    },
  };
}

/** The agent's record of a finished pass on this card. */
export const passOn = (cardId: string) => (e: AgentLogEntry): boolean => e.event === 'pass' && e.pass.cardId === cardId;
