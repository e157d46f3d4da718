import { createInterface } from 'node:readline/promises';

/**
 * A yes/no question on the terminal before something that cannot be undone; undefined when
 * stdin is not a terminal (the command then wants `--yes`). Only "y" or "yes" agrees.
 */
export function terminalConfirm(): ((question: string) => Promise<boolean>) | undefined {
  if (!process.stdin.isTTY) return undefined;
  return async (question) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
    } finally {
      rl.close();
    }
  };
}
