import { CardlinkError } from '../errors.js';

/** What a command may touch of the outside world; tests pass their own. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** Asks for a secret without echo (PIN, admin key); undefined when there is no terminal. */
  promptSecret?: (question: string) => Promise<string>;
  /** Asks a yes/no question before something destructive; undefined when there is no terminal. */
  confirm?: (question: string) => Promise<boolean>;
  /** Stops a long-running command (`collect --watch`) besides SIGINT/SIGTERM; tests pass one. */
  signal?: AbortSignal;
}

/** A usage mistake: printed with the command's help, exit status 2. */
export class UsageError extends CardlinkError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

export interface Command {
  /** Words that select it, e.g. ['card', 'ls']. */
  path: string[];
  summary: string;
  usage: string;
  run(argv: string[], io: CliIo): Promise<number>;
}

/** Prints a result as JSON (`--json`) or as text lines. */
export function emit(io: CliIo, json: boolean, value: unknown, text: () => string): void {
  if (json) io.stdout(JSON.stringify(value, null, 2) + '\n');
  else {
    const t = text();
    if (t.length > 0) io.stdout(t.endsWith('\n') ? t : t + '\n');
  }
}
