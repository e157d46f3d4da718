import { readFileSync } from 'node:fs';
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

/**
 * How a long-running command (`collect --watch`, `agent run`) is told to stop: Ctrl-C, SIGTERM or
 * the caller's own `io.signal`. `release` takes the listeners off again when the command ends.
 */
export function stopSignal(io: CliIo): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  io.signal?.addEventListener('abort', stop, { once: true });
  if (io.signal?.aborted) stop();
  return {
    signal: controller.signal,
    release: () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      io.signal?.removeEventListener('abort', stop);
    },
  };
}

/** A usage mistake: printed with the command's help, exit status 2. */
export class UsageError extends CardlinkError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/**
 * Prints a result as JSON (`--json`) or as text lines. Every JSON answer is one object with `ok`
 * (true unless the command says otherwise), as failures are.
 */
export function emit(io: CliIo, json: boolean, value: object, text: () => string): void {
  if (json) io.stdout(JSON.stringify('ok' in value ? value : { ok: true, ...value }, null, 2) + '\n');
  else {
    const t = text();
    if (t.length > 0) io.stdout(t.endsWith('\n') ? t : t + '\n');
  }
}

/**
 * A local file the user named. Node leaves the path out of some failures (reading a directory
 * gives a bare EISDIR); it is put back, so the one-line message says which file.
 */
export function readUserFile(path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (typeof e.code === 'string' && e.path === undefined) e.path = path;
    throw err;
  }
}
