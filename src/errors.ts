/**
 * The root of every typed error cardlink raises. Each layer has its own subclass with a stable
 * `code`, so callers (and the CLI's exit-code mapping) can branch on the kind of failure without
 * parsing messages.
 */
export class CardlinkError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}
