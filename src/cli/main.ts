import { readFileSync } from 'node:fs';
import { CardlinkError } from '../errors.js';
import { commands } from './catalog.js';
import { loadHandler } from './loader.js';
import { UsageError, type CliIo } from './io.js';
import { terminalConfirm } from './confirm.js';
import { terminalPrompt } from './secrets.js';
import { closest, commandList, EXIT_CODES, helpPage, parseCommand, synopsis, type CommandSpec } from './spec.js';
import { forTerminal, guardOutput } from './terminal.js';

/** The package version (package.json sits two levels above both src/cli and dist/cli). */
export function version(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

function topHelp(): string {
  return [
    'usage: cardlink <command> [options]',
    '',
    'Certificates on smart cards: GIDS cards (or emulated ones in image files), an enrollment service, and the Windows link.',
    '',
    'commands:',
    commandList(commands),
    '',
    'options: --json (one JSON object on stdout, failures too), --help, --version',
    "`cardlink help <command>` or `cardlink <command> --help` shows a command's options, environment and an example.",
    '',
    'exit status:',
    ...Object.entries({ ...EXIT_CODES, 1: 'findings (card check, doctor) or declined at a question' })
      .sort(([a], [b]) => Number(a) - Number(b))
      .map(([c, t]) => `  ${c}  ${t}`),
    '',
  ].join('\n');
}

/** The commands under a group's words, e.g. ['card'] or ['card', 'files']. */
function groupOf(words: readonly string[]): CommandSpec[] {
  return commands.filter((c) => c.path.length > words.length && words.every((w, i) => c.path[i] === w));
}

function groupHelp(words: readonly string[]): string {
  return [`usage: cardlink ${words.join(' ')} <command> [options]`, '', 'commands:', commandList(groupOf(words)), '', `\`cardlink ${words.join(' ')} <command> --help\` for the options of each.`, ''].join('\n');
}

/** A command's page, and the commands under it when it has some (`card files`). */
function commandHelp(spec: CommandSpec): string {
  const under = groupOf(spec.path);
  return helpPage(spec) + (under.length > 0 ? `\nsubcommands:\n${commandList(under)}\n` : '');
}

/** The command whose words start argv (the longest match), and the rest of argv. */
function find(argv: readonly string[]): { spec: CommandSpec; rest: string[] } | undefined {
  let best: CommandSpec | undefined;
  for (const c of commands) {
    if (c.path.every((w, i) => argv[i] === w) && (!best || c.path.length > best.path.length)) best = c;
  }
  return best ? { spec: best, rest: argv.slice(best.path.length) } : undefined;
}

/** The words of argv before its first option. */
function leadingWords(argv: readonly string[]): string[] {
  const i = argv.findIndex((a) => a.startsWith('-'));
  return argv.slice(0, i === -1 ? argv.length : i);
}

/** The nearest command to mistyped words: each word corrected against the words at its level. */
function suggestCommand(words: readonly string[]): string | undefined {
  const fixed: string[] = [];
  for (const w of words) {
    const options = [...new Set(commands.filter((c) => fixed.every((f, i) => c.path[i] === f) && c.path.length > fixed.length).map((c) => c.path[fixed.length]!))];
    if (options.length === 0) break;
    const match = options.includes(w) ? w : closest(w, options);
    if (!match) return undefined;
    fixed.push(match);
  }
  return commands.some((c) => c.path.join(' ') === fixed.join(' ')) || groupOf(fixed).length > 0 ? fixed.join(' ') : undefined;
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

/**
 * Runs the CLI; returns the exit status (EXIT_CODES: 0 done, 1 findings or declined, 2 not done).
 * Every expected failure is one line on stderr and, under --json, one object on stdout.
 */
export async function main(argv: string[], given: CliIo = defaultIo()): Promise<number> {
  // Whatever a command prints passes the terminal guard (see terminal.ts).
  const io: CliIo = { ...given, stdout: (t) => given.stdout(guardOutput(t)), stderr: (t) => given.stderr(guardOutput(t)) };
  const json = argv.includes('--json');
  // One line on stderr whatever failed (a hint, when there is one, in parentheses on the same line).
  const fail = (prefix: string, code: string, message: string, hint = ''): number => {
    if (json) io.stdout(JSON.stringify({ ok: false, error: { code, message } }) + '\n');
    io.stderr(`${prefix}: ${forTerminal(message)}${hint ? ` (${hint})` : ''}\n`);
    return 2;
  };
  const page = (text: string): number => {
    io.stdout(json ? JSON.stringify({ ok: true, help: text }) + '\n' : text);
    return 0;
  };

  // `cardlink --json card ls` means `cardlink card ls --json`.
  if (argv[0] === '--json' && argv.length > 1) argv = [...argv.slice(1), '--json'];
  const words = leadingWords(argv);
  if (argv[0] === '--version' || argv[0] === '-V' || (words[0] === 'version' && words.length === 1)) {
    io.stdout(json ? JSON.stringify({ ok: true, version: version() }) + '\n' : `cardlink ${version()}\n`);
    return 0;
  }
  if (words.length === 0 && (argv.length === 0 || argv.includes('--help') || argv.includes('-h') || (json && argv.length === 1))) {
    if (argv.length === 0) {
      io.stderr(topHelp());
      return 2;
    }
    return page(topHelp());
  }
  if (words[0] === 'help') {
    const topic = words.slice(1);
    if (topic.length === 0) return page(topHelp());
    const exact = commands.find((c) => c.path.join(' ') === topic.join(' '));
    if (exact) return page(commandHelp(exact));
    if (groupOf(topic).length > 0) return page(groupHelp(topic));
    const hint = suggestCommand(topic);
    return fail('cardlink', 'USAGE', `no command '${topic.join(' ')}'${hint ? `; did you mean 'cardlink help ${hint}'?` : ''}`, "'cardlink --help' lists the commands");
  }

  const found = find(argv);
  // `cardlink card`, `cardlink admin --help`: the group's page (a group is not a command).
  if (groupOf(words).length > 0 && (!found || found.spec.path.length < words.length)) {
    if (argv.includes('--help') || argv.includes('-h')) return page(groupHelp(words));
    const choices = groupOf(words).map((c) => c.path.slice(words.length).join(' '));
    if (json) return fail('cardlink', 'USAGE', `'cardlink ${words.join(' ')}' needs a command: ${choices.join(', ')}`);
    io.stderr(groupHelp(words));
    return 2;
  }
  // Words past a command that has subcommands (`card files raed`) are a mistyped subcommand.
  if (!found || (words.length > found.spec.path.length && groupOf(found.spec.path).length > 0)) {
    const hint = suggestCommand(words);
    return fail('cardlink', 'USAGE', `unknown command '${words.join(' ')}'${hint ? `; did you mean 'cardlink ${hint}'?` : ''}`, "'cardlink --help' lists the commands");
  }
  const { spec, rest } = found;
  const name = `cardlink ${spec.path.join(' ')}`;
  try {
    const parsed = parseCommand(spec, rest);
    if (parsed.help) return page(commandHelp(spec));
    const run = await loadHandler(spec);
    return await run({ values: parsed.values, positionals: parsed.positionals }, io);
  } catch (err) {
    if (err instanceof UsageError) {
      return fail(name, 'USAGE', err.message, `usage: ${synopsis(spec)}; '${name} --help' for details`);
    }
    const expected = err instanceof CardlinkError ? { code: err.code, message: err.message + (NEXT_STEP[err.code]?.(rest) ?? '') } : systemFailure(err);
    if (expected) return fail(name, expected.code, expected.message);
    // Anything else is a bug in cardlink: the stack trace is what a report needs.
    if (json) io.stdout(JSON.stringify({ ok: false, error: { code: 'INTERNAL', message: `a bug in cardlink: ${(err as Error)?.message ?? String(err)}` } }) + '\n');
    throw err;
  }
}

/**
 * The command that gets a user past a failure, added where the lower layers (which know nothing
 * of the CLI) stop at the cause.
 */
const NEXT_STEP: Record<string, (argv: readonly string[]) => string | undefined> = {
  PIN_BLOCKED: () => "; run 'cardlink card pin unblock' (administrator key in CARDLINK_ADMIN_KEY, new PIN in CARDLINK_NEW_PIN)",
  NO_SERVICE: (argv) => (argv.includes('--image') ? undefined : '; or, for an emulated card, give --image FILE'),
};

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
