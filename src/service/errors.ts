import { CardlinkError } from '../errors.js';

export type ServiceErrorCode =
  | 'BAD_REQUEST'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'TOKEN_INVALID'
  | 'CSR_INVALID'
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
  constructor(code: ServiceErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.status = STATUS[code];
  }
}
