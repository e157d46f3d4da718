import { CardlinkError } from '../errors.js';
import { UsageError, type CliIo, type Command } from './io.js';
import { commands } from './registry.js';
import { terminalPrompt } from './secrets.js';

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
  return {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    env: process.env,
    ...(prompt ? { promptSecret: prompt } : {}),
  };
}

/** Runs the CLI; returns the exit status (0 ok, 1 findings/failure reported, 2 usage or could not run). */
export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    io.stdout(usage());
    return argv.length === 0 ? 2 : 0;
  }
  const found = find(argv);
  if (!found) {
    io.stderr(`cardlink: unknown command '${argv.join(' ')}'\n\n${usage()}`);
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
      io.stderr(`cardlink ${command.path.join(' ')}: ${err.message}\nusage: ${command.usage}\n`);
      return 2;
    }
    if (err instanceof CardlinkError) {
      if (json) io.stdout(JSON.stringify({ ok: false, error: { code: err.code, message: err.message } }, null, 2) + '\n');
      io.stderr(`cardlink ${command.path.join(' ')}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
