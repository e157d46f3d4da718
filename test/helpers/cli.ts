import { main } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/io.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI in process with its own environment (PIN and keys only through env, as users do).
 * `extra` gives what a terminal or the process would: a secret prompt, a stop signal.
 */
export async function cli(argv: string[], env: Record<string, string> = {}, extra: Pick<CliIo, 'promptSecret' | 'signal' | 'confirm'> = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    ...extra,
  });
  return { code, stdout, stderr };
}
