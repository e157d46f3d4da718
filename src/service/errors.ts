import { CardlinkError } from '../errors.js';

export type ServiceErrorCode =
  | 'BAD_REQUEST'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'TOKEN_INVALID'
  | 'CSR_INVALID'
  | 'TOO_MANY_ATTEMPTS'
  | 'TOO_LARGE'
  | 'STORAGE'
  | 'CA'
  | 'CONFIG'
  | 'RATE_LIMITED'
  | 'INTERNAL';

const STATUS: Record<ServiceErrorCode, number> = {
  BAD_REQUEST: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  TOKEN_INVALID: 401,
  CSR_INVALID: 400,
  TOO_MANY_ATTEMPTS: 429,
  TOO_LARGE: 413,
  STORAGE: 503,
  CA: 500,
  CONFIG: 500,
  RATE_LIMITED: 429,
  INTERNAL: 500,
};

/** A failure of the enrollment service; `status` is the HTTP status the API answers with. */
export class ServiceError extends CardlinkError {
  declare readonly code: ServiceErrorCode;
  readonly status: number;
  /** Seconds the client should wait before trying again (429: until a lockout ends). */
  readonly retryAfter: number | undefined;
  constructor(code: ServiceErrorCode, message: string, options?: { cause?: unknown; retryAfter?: number }) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.status = STATUS[code];
    this.retryAfter = options?.retryAfter;
  }
}
