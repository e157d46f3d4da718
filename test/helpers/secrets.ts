import type { KeyObject } from 'node:crypto';
import { containsBytes } from '../../src/bytes.js';

const WINDOW = 16;

/**
 * Every secret byte string a card holds, and every 16-byte window of them: the no-key-leak sweeps
 * (GIDS and PIV emulators) search every response for them.
 */
export class SecretDetector {
  private readonly windows = new Set<string>();
  private readonly whole: Uint8Array[] = [];

  add(secret: Uint8Array): void {
    this.whole.push(secret);
    for (let i = 0; i + WINDOW <= secret.length; i++) this.windows.add(Buffer.from(secret.subarray(i, i + WINDOW)).toString('latin1'));
  }

  /** The private parts of an RSA (d, p, q, dp, dq, qi) or EC (d) key. */
  addPrivateKey(key: KeyObject): void {
    const jwk = key.export({ format: 'jwk' });
    for (const part of [jwk.d, jwk.p, jwk.q, jwk.dp, jwk.dq, jwk.qi]) if (part !== undefined) this.add(new Uint8Array(Buffer.from(part, 'base64url')));
  }

  leaks(response: Uint8Array): boolean {
    if (response.length < WINDOW) return this.whole.some((s) => s.length <= response.length && containsBytes(response, s));
    const text = Buffer.from(response).toString('latin1');
    for (let i = 0; i + WINDOW <= text.length; i++) if (this.windows.has(text.slice(i, i + WINDOW))) return true;
    return this.whole.some((s) => s.length < WINDOW && containsBytes(response, s));
  }
}
