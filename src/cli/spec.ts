import { parseArgs } from 'node:util';
import type { CliIo } from './io.js';
import { UsageError } from './io.js';

/**
 * One option of a command. The same table parses the command line (node:util parseArgs) and
 * writes the help page, so the help cannot leave an option out or describe one that is not there.
 */
export interface OptionSpec {
  type: 'string' | 'boolean';
  /** What the value looks like in the synopsis, e.g. FILE or N. */
  value?: string;
  help: string;
  /** The allowed values, when there is a fixed list (checked by the command, listed by the help). */
  choices?: readonly string[];
  /** The environment variable read when the option is not given. */
  env?: string;
  /** What applies when neither the option nor its variable is given. */
  default?: string;
}

export type OptionTable = Record<string, OptionSpec>;

export interface PositionalSpec {
  name: string;
  help: string;
  choices?: readonly string[];
  optional?: boolean;
}

/** The values parseArgs gives for a table: strings and booleans, undefined when not given. */
export type Values<O extends OptionTable> = { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : string } & { json?: boolean };

export interface Parsed<O extends OptionTable> {
  values: Values<O>;
  positionals: string[];
}

export type Handler<O extends OptionTable = OptionTable> = (args: Parsed<O>, io: CliIo) => Promise<number>;

export interface CommandSpec<O extends OptionTable = OptionTable> {
  /** Words that select it, e.g. ['card', 'ls']. */
  path: readonly string[];
  summary: string;
  /** What the command does, in a few sentences (the summary when absent). */
  description?: string;
  positionals?: readonly PositionalSpec[];
  options: O;
  /** Environment variables the command reads besides those of its options (see ENVIRONMENT). */
  env?: readonly string[];
  /** Exit statuses besides 0 and 2, e.g. 1 for findings. */
  exits?: Readonly<Record<number, string>>;
  examples: readonly string[];
  /**
   * Where the implementation is: src/cli/commands/<module>.ts, export <handler>. Loaded on demand,
   * so `cardlink --help` does not load the card or service layers.
   */
  module: 'demo' | 'card' | 'emulate' | 'serve' | 'admin' | 'enroll' | 'collect' | 'agent' | 'link' | 'doctor' | 'lifecycle';
  handler: string;
}

/** Ties a spec's option table to its handler's types. */
export function command<const O extends OptionTable>(spec: CommandSpec<O>): CommandSpec<O> {
  return spec;
}

/** Options every command takes. */
export const COMMON_OPTIONS = {
  json: { type: 'boolean', help: 'print one JSON object on stdout with "ok" (failures too: {"ok":false,"error":{"code","message"}})' },
  help: { type: 'boolean', help: 'show this page' },
} as const satisfies OptionTable;

/**
 * Exit statuses of every command. One status for every failure that stops a command keeps shell
 * scripts simple; what kind of failure it was is `error.code` under --json (USAGE, ENOENT,
 * PIN_WRONG, SERVICE_UNREACHABLE, ...).
 */
export const EXIT_CODES: Readonly<Record<number, string>> = {
  0: 'done',
  2: 'not done: a usage mistake, a file, the card or the service refused or failed (error.code says which)',
};

/** Where help pages send a reader for the environment variables. */
export const ENVIRONMENT: Readonly<Record<string, string>> = {
  CARDLINK_PIN: 'the card PIN (else asked for on a terminal; never a flag)',
  CARDLINK_NEW_PIN: "the new PIN for pin change/unblock, card unblock and retire-card's next user (else asked twice on a terminal)",
  CARDLINK_ADMIN_KEY: "the card administrator key, 48 hex digits (3DES; else asked on a terminal); for enroll: a card's private key, replaced by the card's own",
  CARDLINK_MGMT_KEY: 'the PIV card management key in hex (48 digits for 3DES; --mgmt-alg for AES), for PIV writes (else asked on a terminal; never a flag)',
  CARDLINK_PUK: 'the PIV PUK, for card pin unblock on a PIV card (else asked on a terminal)',
  CARDLINK_UNBLOCK_TICKET: "the one-time ticket of 'admin unblock-ticket', for card unblock --online (else asked on a terminal; never a flag)",
  CARDLINK_HOME: 'where cardlink keeps its per-user files: card cache, image keys, service data (default ~/.cardlink)',
  CARDLINK_SERVER: 'the enrollment service URL, for --server',
  CARDLINK_CACERT: "the service's CA certificate file, for --cacert (serve prints its path)",
  CARDLINK_OPERATOR: 'the operator name, for --operator',
  CARDLINK_OPERATOR_PASSWORD: 'the operator password (else asked on a terminal); for serve: creates the operator when it does not exist',
  CARDLINK_NEW_OPERATOR_PASSWORD: "the password of the operator 'admin operator add' creates (else asked twice on a terminal)",
  CARDLINK_SESSION: "an operator session from 'eval \"$(cardlink admin login)\"': admin commands use it instead of logging in each time",
  CARDLINK_TOKEN: 'the one-time enrollment token (else asked on a terminal; never a flag)',
  CARDLINK_CA_PASSPHRASE: 'encrypts the CA and TLS keys on disk (else asked on a terminal)',
  CARDLINK_DATA: 'the service data directory, for --data',
  CARDLINK_AGENT_CONFIG: "the agent's configuration file, for --config (default ~/.cardlink/agent.json)",
  CREDENTIALS_DIRECTORY: "set by systemd (LoadCredential=): the agent reads its PIN from the credential cardlink-pin there when CARDLINK_PIN is unset",
  CARDLINK_TRANSPORT_KEY: 'the administrator key (48 hex digits) new cards arrive with, which enrollment replaces by each card\'s own (default 0102…08 three times)',
};

/** Every environment variable a command reads: its options' and its own. */
export function envOf(spec: CommandSpec): string[] {
  const names = [...Object.values(spec.options).flatMap((o) => (o.env ? [o.env] : [])), ...(spec.env ?? [])];
  return [...new Set(names)];
}

function optionSynopsis(name: string, o: OptionSpec): string {
  return o.type === 'boolean' ? `--${name}` : `--${name} ${o.value ?? 'VALUE'}`;
}

export function synopsis(spec: CommandSpec): string {
  const pos = (spec.positionals ?? []).map((p) => (p.optional ? `[${p.name}]` : p.name));
  return ['cardlink', ...spec.path, ...pos, '[options]'].join(' ');
}

/** The help page of one command, from the same table that parses it. */
export function helpPage(spec: CommandSpec): string {
  const out: string[] = [`usage: ${synopsis(spec)}`, '', spec.description ?? spec.summary];
  if (spec.positionals?.length) {
    out.push('', 'arguments:');
    for (const p of spec.positionals) out.push(`  ${p.name.padEnd(24)} ${p.help}${p.choices ? ` (one of: ${p.choices.join(', ')})` : ''}`);
  }
  out.push('', 'options:');
  const all: OptionTable = { ...spec.options, ...COMMON_OPTIONS };
  for (const [name, o] of Object.entries(all)) {
    const extra = [
      o.choices ? `one of: ${o.choices.join(', ')}` : '',
      o.env || o.default ? `default: ${[o.env ? `$${o.env}` : '', o.default ?? ''].filter(Boolean).join(', else ')}` : '',
    ].filter(Boolean);
    out.push(`  ${optionSynopsis(name, o).padEnd(24)} ${o.help}${extra.length ? ` (${extra.join('; ')})` : ''}`);
  }
  const env = envOf(spec);
  if (env.length) {
    out.push('', 'environment:');
    for (const name of env) out.push(`  ${name.padEnd(26)} ${ENVIRONMENT[name] ?? ''}`);
  }
  out.push('', 'exit status:');
  const exits = { ...EXIT_CODES, ...(spec.exits ?? {}) };
  for (const code of Object.keys(exits).map(Number).sort((a, b) => a - b)) out.push(`  ${code}  ${exits[code]}`);
  out.push('', spec.examples.length === 1 ? 'example:' : 'examples:', ...spec.examples.map((e) => `  ${e}`));
  return out.join('\n') + '\n';
}

/** A list of commands with their summaries (the top-level page and group pages). */
export function commandList(specs: readonly CommandSpec[]): string {
  return specs.map((c) => `  ${c.path.join(' ').padEnd(22)} ${c.summary}`).join('\n');
}

/**
 * Edit distance with transpositions (optimal string alignment): how many single-character
 * insertions, deletions, substitutions or swaps of neighbours make one word the other ("crad" is
 * one from "card", as a typist sees it).
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** The candidate closest to what was typed, when it is close enough to be a typo (or a prefix). */
export function closest(typed: string, candidates: readonly string[]): string | undefined {
  let best: { word: string; d: number } | undefined;
  for (const c of candidates) {
    const d = c.startsWith(typed) && typed.length >= 2 ? 1 : editDistance(typed, c);
    if (!best || d < best.d) best = { word: c, d };
  }
  if (!best) return undefined;
  return best.d <= Math.max(1, Math.floor(typed.length / 3)) ? best.word : undefined;
}

/**
 * Parses argv against the command's table (plus --json and --help). Mistakes become UsageError,
 * in cardlink's words, with a "did you mean" for a mistyped option.
 */
export function parseCommand<O extends OptionTable>(spec: CommandSpec<O>, argv: string[]): Parsed<O> & { help: boolean } {
  const table: OptionTable = { ...spec.options, ...COMMON_OPTIONS };
  const options = Object.fromEntries(Object.entries(table).map(([k, o]) => [k, { type: o.type, ...(k === 'help' ? { short: 'h' } : {}) }]));
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    const e = err as Error & { code?: string };
    const unknown = /^Unknown option '(-{1,2}[^']+)'/.exec(e.message);
    if (unknown) {
      const typed = unknown[1]!.replace(/^-+/, '').replace(/=.*$/, '');
      const hint = closest(typed, Object.keys(table));
      throw new UsageError(`unknown option '${unknown[1]}'${hint ? `; did you mean --${hint}?` : ''}`);
    }
    const missing = /^Option '(-{1,2}[^']+)(?: <value>)?' argument missing/.exec(e.message);
    if (missing) throw new UsageError(`${missing[1]!.replace(/^-\w, /, '')} needs a value`);
    const extra = /^Option '(-{1,2}[^']+)' does not take an argument/.exec(e.message);
    if (extra) throw new UsageError(`${extra[1]} takes no value`);
    throw new UsageError(e.message.replace(/\. To specify a positional.*$/s, ''));
  }
  const values = parsed.values as Values<O> & { help?: boolean };
  const help = values.help === true;
  const positionals = parsed.positionals;
  if (!help) {
    const specs = spec.positionals ?? [];
    if (positionals.length > specs.length) {
      throw new UsageError(specs.length === 0 ? `unexpected argument '${positionals[0]}' (this command takes options only)` : `unexpected argument '${positionals[specs.length]}'`);
    }
    specs.forEach((p, i) => {
      const v = positionals[i];
      if (v === undefined && !p.optional) throw new UsageError(`${p.name} is missing: ${p.help}`);
      if (v !== undefined && p.choices && !p.choices.includes(v)) {
        const hint = closest(v, p.choices);
        throw new UsageError(`${p.name} is one of ${p.choices.join(', ')}${hint ? `; did you mean ${hint}?` : ''}`);
      }
    });
    for (const [name, o] of Object.entries(spec.options)) {
      const v = (values as Record<string, unknown>)[name];
      if (o.choices && typeof v === 'string' && !o.choices.includes(v)) {
        const hint = closest(v, o.choices);
        throw new UsageError(`--${name} must be one of ${o.choices.join(', ')}${hint ? `; did you mean ${hint}?` : ''}`);
      }
    }
  }
  delete values.help;
  return { values, positionals, help };
}
