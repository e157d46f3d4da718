import { existsSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join, resolve, win32 } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../../atomic-file.js';
import { AgentConfigError, defaultConfigPath, loadAgentConfig, type ResolvedAgentConfig } from '../../agent/config.js';
import { Agent, type AgentLogEntry, type AgentStatus } from '../../agent/daemon.js';
import { systemdUnit, utf16le, windowsTaskXml } from '../../agent/install.js';
import { acquireAgentLock } from '../../agent/lock.js';
import { openCardForPass } from '../../agent/pcsc.js';
import { storeLinker } from '../../agent/store-link.js';
import { agentVersion } from '../../agent/version.js';
import { MemoryCardCache } from '../../card/index.js';
import { CardlinkError } from '../../errors.js';
import { ServiceClient } from '../../service/client.js';
import { watchPcscReaders } from '../../transport/pcsc.js';
import type { HandlerOf, specs } from '../catalog.js';
import { UsageError, emit, stopSignal, type CliIo } from '../io.js';
import { readPin } from '../secrets.js';
import { cardConnector } from '../target.js';
import { forTerminal, line } from '../terminal.js';

function configPath(values: { config?: string | undefined }, io: CliIo): string {
  return resolve(values.config ?? defaultConfigPath(io.env));
}

export function statusFile(cfg: Pick<ResolvedAgentConfig, 'stateDir'>): string {
  return join(cfg.stateDir, 'status.json');
}

/**
 * The agent's PIN: CARDLINK_PIN, else systemd's credential `cardlink-pin` (LoadCredential=, read
 * from $CREDENTIALS_DIRECTORY, never on disk in the clear outside it), else a prompt.
 */
async function agentPin(io: CliIo): Promise<string> {
  const dir = io.env.CREDENTIALS_DIRECTORY;
  if ((io.env.CARDLINK_PIN ?? '') === '' && dir) {
    const file = join(dir, 'cardlink-pin');
    if (existsSync(file)) return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  }
  return readPin(io);
}

function describeEntry(e: AgentLogEntry): string {
  switch (e.event) {
    case 'pass': {
      const p = e.pass;
      const what = p.ok
        ? p.kind === 'warm'
          ? 'unchanged since the last pass (warm): nothing to do'
          : p.kind === 'relinked'
            ? 'the store had lost links: linked again'
            : (p.report?.items ?? []).map((i) => line`${i.id} '${i.container}' ${i.action}${i.linked ? ', linked' : ''}`).join('; ') || 'nothing requested with this card'
        : line`failed: ${p.error?.message ?? '?'}`;
      const next = p.nextAt !== null ? line` (next look at ${new Date(p.nextAt).toISOString()})` : '';
      return line`card ${p.cardId ?? '?'} in '${p.reader}': ` + what + next + ` [${Math.round(p.timings.totalMs)} ms]`;
    }
    case 'card-busy':
      return line`card in '${e.reader}' is in use by another program: trying again in ${e.retryInMs} ms`;
    case 'service-down':
      return line`PC/SC service unavailable (${e.error}); waiting for it`;
    case 'pin-refused':
      return line`card ${e.cardId ?? '?'} in '${e.reader}' refused the PIN: this card is left alone until the agent is restarted with the right PIN (${e.error})`;
    case 'started':
      return line`cardlink agent ${e.version} started on ${e.host}`;
    case 'reader-attached':
    case 'reader-removed':
    case 'card-inserted':
    case 'card-removed':
      return line`${e.event.replace('-', ' ')}: '${e.reader}'`;
    default:
      return e.event.replace('-', ' ');
  }
}

export const run: HandlerOf<typeof specs.agentRun> = async ({ values }, io) => {
  const cfg = loadAgentConfig(configPath(values, io), io.env);
  const lock = acquireAgentLock(join(cfg.stateDir, 'agent.lock'));
  const stopping = stopSignal(io);
  const client = new ServiceClient({ server: cfg.server, ...(cfg.ca ? { ca: cfg.ca } : {}), timeoutMs: 30_000 });
  let pending: AgentStatus | undefined;
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    timer = undefined;
    if (pending) writeFileAtomic(statusFile(cfg), JSON.stringify(pending, null, 2) + '\n', { mkdir: true });
    pending = undefined;
  };
  try {
    const pin = await agentPin(io);
    const cache = new MemoryCardCache();
    const agent = new Agent({
      watchReaders: (o) => watchPcscReaders(o),
      openCard: (reader) => openCardForPass(reader, cache),
      client,
      pin,
      ...(cfg.store ? { linker: storeLinker(cfg.store, () => pin, (reader) => cardConnector({ reader }, io.env)) } : {}),
      readers: cfg.readers,
      recheckMs: cfg.recheckMs,
      backoff: cfg.backoff,
      version: agentVersion(),
      log: (e) => io.stdout(values.json === true ? JSON.stringify(e) + '\n' : `${e.at} ${e.level} ${describeEntry(e)}\n`),
      // Written a moment later and coalesced: the status file is for people, never in a pass's way.
      onStatus: (s) => {
        pending = s;
        timer ??= setTimeout(flush, 200);
      },
    });
    await agent.run(stopping.signal);
    clearTimeout(timer);
    flush();
    return 0;
  } finally {
    clearTimeout(timer);
    client.close();
    lock.release();
    stopping.release();
  }
};

/** The Node.js executable and cardlink's entry script as they run now, for the service definitions. */
function launch(config: string): { node: string; script: string; config: string } {
  const script = resolve(fileURLToPath(new URL('../../../bin/cardlink', import.meta.url)));
  return { node: process.execPath, script, config };
}

export const install: HandlerOf<typeof specs.agentInstall> = async ({ values }, io) => {
  if (values.systemd === values['windows-task']) throw new UsageError('give one of --systemd or --windows-task');
  // A Windows path stays as given (the task may be written elsewhere for a Windows machine).
  const cmd = launch(values.config !== undefined && win32.isAbsolute(values.config) ? values.config : configPath(values, io));
  const output = resolve(values.output ?? (values.systemd ? '/etc/systemd/system/cardlink-agent.service' : 'cardlink-agent.xml'));
  if (existsSync(output) && values.force !== true) {
    if (!io.confirm) throw new UsageError(`${output} exists: give --force to replace it`);
    if (!(await io.confirm(`${output} exists. Replace it?`))) throw new CardlinkError('CANCELLED', `${output} left as it was`);
  }
  if (values.systemd) {
    const unit = systemdUnit(cmd, { ...(values.user ? { user: values.user } : {}), ...(values['pin-credential'] ? { pinCredential: resolve(values['pin-credential']) } : {}) });
    writeFileAtomic(output, unit, { mode: 0o644, mkdir: true });
  } else {
    writeFileAtomic(output, utf16le(windowsTaskXml(cmd, { user: values.user ?? userInfo().username })), { mode: 0o644, mkdir: true });
  }
  emit(io, values.json === true, { ok: true, kind: values.systemd ? 'systemd' : 'windows-task', file: output }, () => line`wrote ${output}`);
  return 0;
};

export const configCheck: HandlerOf<typeof specs.agentConfigCheck> = async ({ values }, io) => {
  const file = configPath(values, io);
  try {
    const cfg = loadAgentConfig(file, io.env);
    emit(io, values.json === true, { ok: true, file, config: cfg.ca ? { ...cfg, ca: undefined } : cfg }, () => line`${file}: OK (service ${cfg.server}, store ${cfg.store ?? 'none'}, readers ${cfg.readers.length > 0 ? cfg.readers.join(', ') : 'all'}, state in ${cfg.stateDir})`);
    return 0;
  } catch (err) {
    if (!(err instanceof AgentConfigError)) throw err;
    emit(io, values.json === true, { ok: false, file, problems: err.problems }, () => [line`${file}: ${err.problems.length} problem(s)`, ...err.problems.map((p) => line`  ${p.field}: ${p.message}`)].join('\n'));
    return 1;
  }
};

export const showStatus: HandlerOf<typeof specs.agentStatus> = async ({ values }, io) => {
  const cfg = loadAgentConfig(configPath(values, io), io.env);
  let status: AgentStatus;
  try {
    status = JSON.parse(readFileSync(statusFile(cfg), 'utf8')) as AgentStatus;
  } catch (err) {
    throw new CardlinkError('AGENT_NO_STATUS', `no agent status in ${statusFile(cfg)} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): has the agent run with this configuration?`);
  }
  let running = false;
  try {
    process.kill(status.pid, 0);
    running = true;
  } catch {
    running = false;
  }
  emit(io, values.json === true, { ok: true, running, ...status }, () => {
    const out = [line`agent ${status.version} on ${status.host}, pid ${status.pid} ${running ? 'running' : 'not running'} since ${status.startedAt}; PC/SC service ${status.service}`];
    for (const r of status.readers) out.push(line`reader '${r.name}': ${r.card ? `card ${r.cardId ?? '(not read yet)'}` : 'no card'}${r.nextAt ? `, next look at ${r.nextAt}` : ''}${r.failures > 0 ? `, ${r.failures} failed pass(es) in a row` : ''}`);
    for (const c of status.cards) out.push(line`card ${c.cardId}: last checked with the service ${c.checkedAt}${c.dueAt ? `, due again ${c.dueAt}` : ''}, ${c.links} link(s)${c.pinRefused ? ', PIN REFUSED' : ''}`);
    for (const p of status.passes.slice(-5)) out.push(`${forTerminal(p.at)} ${describeEntry({ at: p.at, level: 'info', event: 'pass', pass: p })}`);
    return out.join('\n');
  });
  return 0;
};
