import type { CliIo } from './io.js';

/**
 * Runs a card operation that may take long (key generation takes 10 to 60 s on real cards): after
 * a second, says on stderr what the card is doing, so a silent terminal is not taken for a hang.
 */
export async function withProgress<T>(io: CliIo, what: string, fn: () => Promise<T>, afterMs = 1000): Promise<T> {
  const started = Date.now();
  let told = false;
  const timer = setTimeout(() => {
    told = true;
    io.stderr(`${what}…\n`);
  }, afterMs);
  try {
    return await fn();
  } finally {
    clearTimeout(timer);
    if (told) io.stderr(`${what}: ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  }
}
