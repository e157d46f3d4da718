import { CardlinkError } from '../errors.js';
import { HRESULT, HRESULT_TEXT, hresultHex, hresultName, type HresultName } from './constants.js';

/**
 * A Windows API call failed: carries the HRESULT (GetLastError value or SECURITY_STATUS) by name
 * and value, and what cardlink was doing. `code` is the HRESULT name (or its hex form when the
 * value is not one cardlink knows), so callers branch on `err.code === 'CRYPT_E_NO_KEY_PROPERTY'`.
 */
export class WinError extends CardlinkError {
  readonly hresult: number;
  readonly hresultName: HresultName | undefined;
  readonly operation: string;

  constructor(hresult: number, operation: string, detail?: string) {
    const value = hresult >>> 0;
    const name = hresultName(value);
    const text = name ? HRESULT_TEXT[name] : 'unknown error';
    super(
      name ?? hresultHex(value),
      `${operation}: ${name ?? 'error'} (${hresultHex(value)}): ${text}${detail ? ` — ${detail}` : ''}`,
    );
    this.hresult = value;
    this.hresultName = name;
    this.operation = operation;
  }

  static of(name: HresultName, operation: string, detail?: string): WinError {
    return new WinError(HRESULT[name], operation, detail);
  }
}

/** The host asked for cannot run here (native store off Windows, koffi missing, bad --store). */
export class StoreHostError extends CardlinkError {
  constructor(code: 'NATIVE_UNAVAILABLE' | 'STORE_SPEC', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
