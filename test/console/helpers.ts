/** Direct HTTPS requests to the console, the way a browser (or an attacker's page) would send them. */
import { request } from 'node:https';

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface Browserish {
  base: string;
  ca: string;
}

export function send(b: Browserish, method: string, path: string, o: { cookie?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Answer> {
  const url = new URL(path, b.base);
  const body = o.form ? new URLSearchParams(o.form).toString() : undefined;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method, ca: b.ca,
        headers: {
          ...(o.cookie ? { cookie: o.cookie } : {}),
          ...(body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(body)) } : {}),
          ...o.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The session cookie (name=value) a sign-in set, and its attributes as sent. */
export function sessionCookie(a: Answer): { pair: string; attributes: string } {
  const set = ([] as string[]).concat(a.headers['set-cookie'] ?? []).find((c) => c.startsWith('cardlink_console='));
  if (!set) throw new Error(`no session cookie set (status ${a.status})`);
  return { pair: set.split(';')[0]!, attributes: set };
}

/** Signs in through the console's form; the cookie to send afterwards. */
export async function signIn(b: Browserish, username: string, password: string): Promise<string> {
  const a = await send(b, 'POST', '/console/login', { form: { username, password }, headers: { origin: new URL(b.base).origin } });
  if (a.status !== 303) throw new Error(`sign-in as ${username}: ${a.status} ${a.body.slice(0, 300)}`);
  return sessionCookie(a).pair;
}

/** The CSRF token a page's forms carry. */
export function csrfOf(page: string): string {
  const m = /name="_csrf" value="([^"]+)"/.exec(page);
  if (!m) throw new Error('no CSRF field on the page');
  return m[1]!;
}
