/**
 * The agent's one configuration file (JSON): which service, which CA to trust for it, which store
 * to link into, which readers to watch, and its schedule. Secrets are never in it: the PIN comes
 * from CARDLINK_PIN or, under systemd, from the credential `cardlink-pin` (LoadCredential=).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CardlinkError } from '../errors.js';
import { cardlinkHome } from '../home.js';
import { pemBlock } from '../pem.js';
import { x509 } from '../x509.js';

export interface AgentConfig {
  /** The enrollment service, https:// only. */
  server: string;
  /** PEM file with the CA the service's TLS certificate chains to; the system's trust store when absent. */
  caFile?: string;
  /** `native` (Windows' CurrentUser\My) or `model:DIR`; no linking when absent. */
  store?: string;
  /** Reader names or parts of names to watch; every reader when empty or absent. */
  readers?: string[];
  schedule?: {
    /** Ask the service again on insertion when the last check is older than this (default 24). */
    recheckHours?: number;
    /** First wait after the service failed (default 1) and the longest (default 300). */
    backoffFirstSeconds?: number;
    backoffMaxSeconds?: number;
  };
  /** Where the lock and the status file live; default $STATE_DIRECTORY (systemd) or ~/.cardlink/agent. */
  stateDir?: string;
}

export interface ResolvedAgentConfig {
  server: string;
  ca: string | undefined;
  caFile: string | undefined;
  store: string | undefined;
  readers: string[];
  recheckMs: number;
  backoff: { firstMs: number; maxMs: number };
  stateDir: string;
}

export interface ConfigProblem {
  field: string;
  message: string;
}

export class AgentConfigError extends CardlinkError {
  constructor(
    readonly file: string,
    readonly problems: ConfigProblem[],
  ) {
    super('AGENT_CONFIG', `${file}: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`);
  }
}

/** The config file used when none is named: $CARDLINK_AGENT_CONFIG, else ~/.cardlink/agent.json. */
export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const named = env.CARDLINK_AGENT_CONFIG;
  return named !== undefined && named !== '' ? named : join(cardlinkHome(env), 'agent.json');
}

const KEYS = new Set(['server', 'caFile', 'store', 'readers', 'schedule', 'stateDir']);
const SCHEDULE_KEYS = new Set(['recheckHours', 'backoffFirstSeconds', 'backoffMaxSeconds']);

function positive(value: unknown, field: string, problems: ConfigProblem[], fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    problems.push({ field, message: `must be a positive number, not ${JSON.stringify(value)}` });
    return fallback;
  }
  return value;
}

/**
 * Reads and checks the file: every problem is collected (not just the first), so `agent config
 * check` can list them all. Throws AgentConfigError when there is any.
 */
export function loadAgentConfig(file: string, env: NodeJS.ProcessEnv = process.env): ResolvedAgentConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new AgentConfigError(file, [{ field: '(file)', message: `cannot be read: ${(err as Error).message}` }]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new AgentConfigError(file, [{ field: '(file)', message: `is not JSON: ${(err as Error).message}` }]);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new AgentConfigError(file, [{ field: '(file)', message: 'must hold a JSON object' }]);
  const c = raw as Record<string, unknown>;
  const problems: ConfigProblem[] = [];
  for (const k of Object.keys(c)) if (!KEYS.has(k)) problems.push({ field: k, message: `unknown setting (known: ${[...KEYS].join(', ')})` });

  let server = '';
  if (typeof c.server !== 'string' || c.server === '') problems.push({ field: 'server', message: 'is required: the service URL, https://…' });
  else {
    try {
      const u = new URL(c.server);
      if (u.protocol !== 'https:') problems.push({ field: 'server', message: `must be an https:// URL, not ${u.protocol}` });
      server = c.server;
    } catch {
      problems.push({ field: 'server', message: `is not a URL: '${c.server}'` });
    }
  }

  let ca: string | undefined;
  let caFile: string | undefined;
  if (c.caFile !== undefined) {
    if (typeof c.caFile !== 'string' || c.caFile === '') problems.push({ field: 'caFile', message: 'must be a file name' });
    else {
      caFile = c.caFile;
      try {
        ca = readFileSync(c.caFile, 'utf8');
        const der = pemBlock(ca, 'CERTIFICATE');
        if (der === undefined) problems.push({ field: 'caFile', message: `${c.caFile} holds no PEM certificate` });
        else new x509.X509Certificate(der);
      } catch (err) {
        problems.push({ field: 'caFile', message: `${c.caFile}: ${(err as Error).message}` });
      }
    }
  }

  let store: string | undefined;
  if (c.store !== undefined) {
    if (typeof c.store !== 'string' || !(c.store === 'native' || /^model:.+/.test(c.store))) problems.push({ field: 'store', message: `must be 'native' or 'model:DIR', not ${JSON.stringify(c.store)}` });
    else if (c.store === 'native' && process.platform !== 'win32') problems.push({ field: 'store', message: "'native' is Windows' own store, only on Windows" });
    else store = c.store;
  }

  let readers: string[] = [];
  if (c.readers !== undefined) {
    if (!Array.isArray(c.readers) || !c.readers.every((r) => typeof r === 'string' && r !== '')) problems.push({ field: 'readers', message: 'must be a list of reader names (or parts of names)' });
    else readers = c.readers as string[];
  }

  const s = c.schedule;
  let recheckMs = 24 * 3600_000;
  let backoff = { firstMs: 1000, maxMs: 300_000 };
  if (s !== undefined) {
    if (typeof s !== 'object' || s === null || Array.isArray(s)) problems.push({ field: 'schedule', message: 'must be an object' });
    else {
      const sc = s as Record<string, unknown>;
      for (const k of Object.keys(sc)) if (!SCHEDULE_KEYS.has(k)) problems.push({ field: `schedule.${k}`, message: `unknown setting (known: ${[...SCHEDULE_KEYS].join(', ')})` });
      recheckMs = positive(sc.recheckHours, 'schedule.recheckHours', problems, 24) * 3600_000;
      backoff = {
        firstMs: positive(sc.backoffFirstSeconds, 'schedule.backoffFirstSeconds', problems, 1) * 1000,
        maxMs: positive(sc.backoffMaxSeconds, 'schedule.backoffMaxSeconds', problems, 300) * 1000,
      };
      if (backoff.firstMs > backoff.maxMs) problems.push({ field: 'schedule.backoffFirstSeconds', message: 'is larger than schedule.backoffMaxSeconds' });
    }
  }

  let stateDir: string;
  if (c.stateDir !== undefined && (typeof c.stateDir !== 'string' || c.stateDir === '')) {
    problems.push({ field: 'stateDir', message: 'must be a directory name' });
    stateDir = '';
  } else stateDir = (c.stateDir as string | undefined) ?? defaultStateDir(env);

  if (problems.length > 0) throw new AgentConfigError(file, problems);
  return { server, ca, caFile, store, readers, recheckMs, backoff, stateDir };
}

/** systemd's StateDirectory= when run as the unit, else the user's ~/.cardlink/agent. */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const systemd = env.STATE_DIRECTORY?.split(':')[0];
  return systemd !== undefined && systemd !== '' ? systemd : join(cardlinkHome(env), 'agent');
}
