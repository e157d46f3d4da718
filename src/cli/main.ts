import { CardlinkError } from '../errors.js';
import { UsageError, type CliIo, type Command } from './io.js';
import { commands } from './registry.js';
import { terminalConfirm } from './confirm.js';
import { terminalPrompt } from './secrets.js';
import { forTerminal, guardOutput } from './terminal.js';

function usage(): string {
  const lines = ['usage: cardlink <command> [options]', '', 'commands:'];
  for (const c of commands) lines.push(`  ${c.path.join(' ').padEnd(22)} ${c.summary}`);
  lines.push('', 'Every command takes --json for machine-readable output. `cardlink <command> --help` for details.');
  return lines.join('\n') + '\n';
}

function find(argv: string[]): { command: Command; rest: string[] } | undefined {
  let best: Command | undefined;
  for (const c of commands) {
    if (c.path.every((w, i) => argv[i] === w) && (!best || c.path.length > best.path.length)) best = c;
  }
  return best ? { command: best, rest: argv.slice(best.path.length) } : undefined;
}

export function defaultIo(): CliIo {
  const prompt = terminalPrompt();
  const confirm = terminalConfirm();
  return {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    env: process.env,
    ...(prompt ? { promptSecret: prompt } : {}),
    ...(confirm ? { confirm } : {}),
  };
}

/** Runs the CLI; returns the exit status (0 ok, 1 findings/failure reported, 2 usage or could not run). */
export async function main(argv: string[], given: CliIo = defaultIo()): Promise<number> {
  // Whatever a command prints passes the terminal guard (see terminal.ts).
  const io: CliIo = { ...given, stdout: (t) => given.stdout(guardOutput(t)), stderr: (t) => given.stderr(guardOutput(t)) };
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    io.stdout(usage());
    return argv.length === 0 ? 2 : 0;
  }
  const found = find(argv);
  if (!found) {
    io.stderr(`cardlink: unknown command '${forTerminal(argv.join(' '))}'\n\n${usage()}`);
    return 2;
  }
  const { command, rest } = found;
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout(`usage: ${command.usage}\n`);
    return 0;
  }
  const json = rest.includes('--json');
  try {
    return await command.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`cardlink ${command.path.join(' ')}: ${forTerminal(err.message)}\nusage: ${command.usage}\n`);
      return 2;
    }
    const expected = err instanceof CardlinkError ? { code: err.code, message: err.message } : systemFailure(err);
    if (expected) {
      if (json) io.stdout(JSON.stringify({ ok: false, error: expected }, null, 2) + '\n');
      io.stderr(`cardlink ${command.path.join(' ')}: ${forTerminal(expected.message)}\n`);
      return 2;
    }
    // Anything else is a bug in cardlink: the stack trace is what a report needs.
    throw err;
  }
}

/**
 * A failure of the operating system (a file that is not there, a port already taken, a full
 * disk) is an expected failure: one line saying what and where, no stack trace. Node marks them
 * with an `E…` code and the system call that failed.
 */
function systemFailure(err: unknown): { code: string; message: string } | undefined {
  if (!(err instanceof Error)) return undefined;
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (typeof e.code !== 'string' || !/^E[A-Z]+$/.test(e.code) || typeof e.syscall !== 'string') return undefined;
  const where = e.path ?? (e.address !== undefined ? `${e.address}${e.port !== undefined ? `:${e.port}` : ''}` : undefined);
  const what: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EISDIR: 'is a directory',
    ENOTDIR: 'not a directory',
    ENOSPC: 'no space left on the device',
    EROFS: 'read-only file system',
    EADDRINUSE: 'address already in use (another program, or another cardlink serve, listens there)',
    EADDRNOTAVAIL: 'not an address of this machine',
  };
  const text = what[e.code] ?? e.message.replace(/\s+/g, ' ');
  return { code: e.code, message: where !== undefined ? `${where}: ${text}` : text };
}
