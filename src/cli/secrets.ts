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

/**
 * A secret that is being set (a new PIN, a new administrator key): asked twice on a terminal, as
 * ykman does, because a mistyped one locks the owner out of the card.
 */
async function readNewSecret(io: CliIo, envName: string, question: string): Promise<string> {
  const fromEnv = io.env[envName];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const first = await readSecret(io, envName, question);
  const again = await io.promptSecret!(`${question.replace(/:\s*$/, '')} (again): `);
  if (again !== first) throw new UsageError(`the two ${question.replace(/:\s*$/, '').replace(/^New /, 'new ')} entries differ: nothing was changed`);
  return first;
}

/**
 * The most characters a new PIN may have: the card takes 16, but OpenSC's PKCS#15 view of a GIDS
 * card (pkcs15-gids.c) declares 15, and a longer PIN fails C_Login with CKR_PIN_LEN_RANGE
 * (docs/sources.md#opensc-gids), which would lock the card out of every OpenSC tool.
 */
export const NEW_PIN_MAX_LENGTH = 15;
const NEW_PIN_MIN_LENGTH = 4;

/** A new operator's password: from CARDLINK_NEW_OPERATOR_PASSWORD, else asked twice on a terminal (the service wants 12 characters or more). */
export function readNewOperatorPassword(io: CliIo): Promise<string> {
  return readNewSecret(io, 'CARDLINK_NEW_OPERATOR_PASSWORD', 'New operator password: ');
}

/** A PIN being set: from `envName`, else asked twice on a terminal; 4 to 15 characters. */
export async function readNewPin(io: CliIo, envName = 'CARDLINK_NEW_PIN'): Promise<string> {
  const pin = await readNewSecret(io, envName, 'New PIN: ');
  const length = Buffer.byteLength(pin, 'utf8');
  if (length < NEW_PIN_MIN_LENGTH || length > NEW_PIN_MAX_LENGTH) {
    throw new UsageError(`a new PIN has ${NEW_PIN_MIN_LENGTH} to ${NEW_PIN_MAX_LENGTH} characters (OpenSC's GIDS driver takes no more than ${NEW_PIN_MAX_LENGTH}); this one has ${length}`);
  }
  return pin;
}

/** The administrator key; `setting` when it is being set (init): then asked twice on a terminal. */
export async function readAdminKey(io: CliIo, setting = false): Promise<Uint8Array> {
  const question = 'Administrator key (48 hex digits): ';
  const text = setting ? await readNewSecret(io, 'CARDLINK_ADMIN_KEY', question) : await readSecret(io, 'CARDLINK_ADMIN_KEY', question);
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
