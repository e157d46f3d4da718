import { fromHex } from '../bytes.js';
import { UsageError, type CliIo } from './io.js';

/**
 * PINs and keys come from the environment or a no-echo prompt, never from a flag (flags end up in
 * shell history and process listings).
 */
export async function readSecret(io: CliIo, envName: string, question: string): Promise<string> {
  const fromEnv = io.env[envName];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (!io.promptSecret) throw new UsageError(`set ${envName} or run on a terminal to be asked for it`);
  const answer = await io.promptSecret(question);
  if (answer === '') throw new UsageError(`no ${question.replace(/:\s*$/, '')} given`);
  return answer;
}

export async function readPin(io: CliIo, envName = 'CARDLINK_PIN', question = 'PIN: '): Promise<string> {
  return readSecret(io, envName, question);
}

export async function readAdminKey(io: CliIo): Promise<Uint8Array> {
  const text = await readSecret(io, 'CARDLINK_ADMIN_KEY', 'Administrator key (48 hex digits): ');
  if (!/^[0-9a-fA-F]{48}$/.test(text.replace(/\s+/g, ''))) throw new UsageError('the administrator key is 48 hex digits (24 bytes, 3DES)');
  return fromHex(text);
}

/** A no-echo terminal prompt; undefined when stdin is not a terminal. */
export function terminalPrompt(): ((question: string) => Promise<string>) | undefined {
  if (!process.stdin.isTTY) return undefined;
  return (question) =>
    new Promise((resolve, reject) => {
      const stdin = process.stdin;
      process.stderr.write(question);
      let value = '';
      stdin.setRawMode(true);
      stdin.resume();
      const onData = (chunk: Buffer): void => {
        for (const ch of chunk.toString('utf8')) {
          if (ch === '\r' || ch === '\n') {
            done();
            resolve(value);
            return;
          }
          if (ch === '\u0003') {
            done();
            reject(new UsageError('cancelled'));
            return;
          }
          if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
          else value += ch;
        }
      };
      const done = (): void => {
        stdin.off('data', onData);
        stdin.setRawMode(false);
        stdin.pause();
        process.stderr.write('\n');
      };
      stdin.on('data', onData);
    });
}
