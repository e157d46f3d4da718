import { Agent, request as httpsRequest } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { AgentError } from './errors.js';

export interface ClientOptions {
  /** https://host:port of the service. */
  server: string;
  /** PEM of the CA that issued the service's TLS certificate; default: the system's trust store. */
  ca?: string;
  /** TLS client certificate and key (PEM), for EST re-enrollment. */
  cert?: string;
  key?: string;
  /** How many connections to keep open (load tests and benchmarks use more than one). */
  maxSockets?: number;
}

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface CallOptions {
  json?: unknown;
  body?: string | Buffer;
  contentType?: string;
  bearer?: string;
  basic?: { user: string; password: string };
  timeoutMs?: number;
}

/** Seconds from a Retry-After header (delta-seconds or an HTTP date), or undefined. */
export function retryAfterSeconds(headers: IncomingHttpHeaders, now = Date.now()): number | undefined {
  const v = headers['retry-after'];
  if (v === undefined) return undefined;
  if (/^\d+$/.test(v)) return Number(v);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

/**
 * HTTPS to the enrollment service with keep-alive, returning status, headers and body as they
 * are; `call` turns a non-2xx answer into an AgentError carrying the service's message.
 */
export class ServiceClient {
  readonly server: URL;
  private readonly agent: Agent;

  constructor(o: ClientOptions) {
    this.server = new URL(o.server);
    if (this.server.protocol !== 'https:') throw new AgentError('UNREACHABLE', `${o.server}: the service is only spoken to over https://`);
    this.agent = new Agent({ keepAlive: true, maxSockets: o.maxSockets ?? 4, ...(o.ca ? { ca: o.ca } : {}), ...(o.cert ? { cert: o.cert } : {}), ...(o.key ? { key: o.key } : {}) });
  }

  raw(method: string, path: string, o: CallOptions = {}): Promise<HttpResult> {
    const headers: Record<string, string> = {};
    let body: Buffer | undefined;
    if (o.json !== undefined) {
      body = Buffer.from(JSON.stringify(o.json));
      headers['content-type'] = 'application/json';
    } else if (o.body !== undefined) {
      body = Buffer.isBuffer(o.body) ? o.body : Buffer.from(o.body);
      headers['content-type'] = o.contentType ?? 'application/octet-stream';
    }
    if (body) headers['content-length'] = String(body.length);
    if (o.bearer !== undefined) headers.authorization = `Bearer ${o.bearer}`;
    if (o.basic) headers.authorization = `Basic ${Buffer.from(`${o.basic.user}:${o.basic.password}`).toString('base64')}`;
    const url = new URL(path, this.server);
    return new Promise((resolve, reject) => {
      const req = httpsRequest(url, { method, headers, agent: this.agent, timeout: o.timeoutMs ?? 60_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new AgentError('TIMEOUT', `${method} ${url.pathname}: no answer from ${this.server.origin}`)));
      req.on('error', (err) =>
        reject(err instanceof AgentError ? err : new AgentError('UNREACHABLE', `cannot reach ${this.server.origin}: ${err.message}`, { cause: err })),
      );
      req.end(body);
    });
  }

  /** A JSON call; 2xx gives the parsed body and status, anything else throws. */
  async call<T>(method: string, path: string, o: CallOptions = {}): Promise<{ status: number; value: T; retryAfter: number | undefined }> {
    const res = await this.raw(method, path, o);
    const text = res.body.toString('utf8');
    if (res.status < 200 || res.status > 299) {
      let message = text.trim();
      let serviceCode: string | undefined;
      try {
        const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
        if (parsed.error?.message) message = parsed.error.message;
        serviceCode = parsed.error?.code;
      } catch {
        // not JSON: keep the text
      }
      throw new AgentError('SERVICE', `${method} ${path}: ${res.status} ${message}`, { status: res.status, ...(serviceCode ? { serviceCode } : {}) });
    }
    return { status: res.status, value: (text.length > 0 ? JSON.parse(text) : undefined) as T, retryAfter: retryAfterSeconds(res.headers) };
  }

  close(): void {
    this.agent.destroy();
  }
}
