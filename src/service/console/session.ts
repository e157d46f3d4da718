/**
 * The console's session cookie and its CSRF defences. The cookie holds an operator session secret
 * (the same sessions as the API's bearer tokens, with an idle expiry as well); it is `HttpOnly`,
 * `Secure`, `SameSite=Strict` and scoped to `/console`. Every state change also needs
 * (OWASP CSRF Prevention Cheat Sheet): a synchronizer token tied to the session, and, when the
 * browser says where the request comes from, the service's own origin (`Origin`,
 * `Sec-Fetch-Site`, W3C Fetch Metadata).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { PREFIX } from '../auth.js';
import { ServiceError } from '../errors.js';

export const CONSOLE_PATH = '/console';
export const SESSION_COOKIE = 'cardlink_console';

/** Default lifetimes: 30 minutes without use, 8 hours at most (OWASP Session Management: idle and absolute timeouts). */
export const CONSOLE_SESSION_DEFAULTS = { idleMs: 30 * 60_000, absoluteMs: 8 * 3_600_000 } as const;

export const COOKIE_OPTIONS = { httpOnly: true, secure: true, sameSite: 'strict', path: CONSOLE_PATH } as const;

/** The session secret from the cookie, when it looks like one. */
export function sessionSecret(req: FastifyRequest): string | undefined {
  const value = (req.cookies as Record<string, string | undefined>)[SESSION_COOKIE];
  return value !== undefined && value.startsWith(PREFIX.session) && value.length <= 100 ? value : undefined;
}

/** The synchronizer token of a session: derived from its secret, which only the cookie holds, so a page from elsewhere cannot know it. */
export function csrfToken(secret: string): string {
  return createHash('sha256').update(`cardlink console csrf v1\n${secret}`, 'utf8').digest('base64url');
}

/** The origin the console is served at, as the browser addresses it. */
function ownOrigin(req: FastifyRequest): string {
  return `https://${req.headers.host ?? ''}`;
}

/**
 * A state change comes from the console itself: not from another site (Origin, Sec-Fetch-Site),
 * and, with a session, with the session's synchronizer token.
 */
export function checkStateChange(req: FastifyRequest, secret: string | undefined): void {
  const origin = req.headers.origin;
  // With Referrer-Policy: no-referrer a browser sends `Origin: null` even for its own forms, so
  // `null` proves nothing either way: Sec-Fetch-Site and the token decide then.
  if (origin !== undefined && origin !== 'null' && origin !== ownOrigin(req)) throw new ServiceError('FORBIDDEN', 'this form was sent from another site: the console accepts changes from its own pages only');
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') throw new ServiceError('FORBIDDEN', 'this form was sent from another site: the console accepts changes from its own pages only');
  if (secret === undefined) return;
  const sent = (req.body as Record<string, unknown> | undefined)?._csrf;
  const expected = Buffer.from(csrfToken(secret));
  if (typeof sent !== 'string' || sent.length !== expected.length || !timingSafeEqual(Buffer.from(sent), expected)) {
    throw new ServiceError('FORBIDDEN', 'the form is stale or did not come from this console (no valid CSRF token): reload the page and try again');
  }
}
