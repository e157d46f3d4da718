import { CardlinkError } from '../errors.js';

export type AgentErrorCode = 'SERVICE' | 'UNREACHABLE' | 'TIMEOUT';

/** What went wrong between the agent (or the admin CLI) and the service. */
export class AgentError extends CardlinkError {
  declare readonly code: AgentErrorCode;
  /** The HTTP status when the service answered, with the service's own error code. */
  readonly status: number | undefined;
  readonly serviceCode: string | undefined;
  constructor(code: AgentErrorCode, message: string, extra: { status?: number; serviceCode?: string; cause?: unknown } = {}) {
    super(code, message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.status = extra.status;
    this.serviceCode = extra.serviceCode;
  }
}
