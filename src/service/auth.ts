import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { ServiceError } from './errors.js';
import { OPERATOR_ROLES, type OperatorRole } from './protocol.js';

// scrypt cost: about 0.1 s and 32 MiB per guess, so a stolen table is slow to attack.
const N = 1 << 15;
const R = 8;
const P = 1;
const KEYLEN = 32;
const MAXMEM = 64 * 1024 * 1024;

function scryptAsync(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFC'), salt, KEYLEN, { N: n, r, p, maxmem: MAXMEM }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** `scrypt$N$r$p$salt$hash`: the parameters travel with the hash so they can be raised later. */
export async function hashPassword(password: string): Promise<string> {
  if (password.length < 12) throw new ServiceError('BAD_REQUEST', 'an operator password has 12 characters at least');
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, N, R, P);
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !n || !r || !p || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const key = await scryptAsync(password, Buffer.from(salt, 'base64'), Number(n), Number(r), Number(p));
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/**
 * Bearer secrets carry a prefix saying what they are, so the server knows where to look them up:
 * operator sessions, one-time enrollment tokens, delivery tickets and card challenges.
 */
export const PREFIX = { session: 'cls_', enrollment: 'cle_', ticket: 'clt_', challenge: 'clc_', unblock: 'clu_' } as const;

export function newSecret(kind: keyof typeof PREFIX): string {
  return PREFIX[kind] + randomBytes(32).toString('base64url');
}

/** Only hashes of secrets are stored: a copy of the database does not log anyone in. */
export function secretHash(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/**
 * What an operator may do, each role including the ones before it: a `viewer` reads (requests,
 * tokens, audit, profiles), an `approver` also decides requests, hands out enrollment tokens and
 * answers help-desk calls, an `admin` also changes policy (profiles), operators and card keys.
 */
export type { OperatorRole };
export { OPERATOR_ROLES };

export function isOperatorRole(text: unknown): text is OperatorRole {
  return typeof text === 'string' && (OPERATOR_ROLES as readonly string[]).includes(text);
}

/** Who is asking, as established by the HTTP layer (API bearer or console cookie). */
export type Principal =
  | { kind: 'anonymous' }
  | { kind: 'operator'; username: string; role: OperatorRole; sessionHash: string }
  | { kind: 'enrollment-token'; tokenId: string; user: string; profile: string; requestId: string | null; usable: boolean }
  | { kind: 'certificate'; serial: string; user: string; requestId: string };

export function actorName(p: Principal): string {
  switch (p.kind) {
    case 'anonymous':
      return 'anonymous';
    case 'operator':
      return `operator:${p.username}`;
    case 'enrollment-token':
      return `user:${p.user} (token ${p.tokenId})`;
    case 'certificate':
      return `user:${p.user} (certificate ${p.serial})`;
  }
}

export type OperatorPrincipal = Extract<Principal, { kind: 'operator' }>;

/**
 * The one authorisation check of every operator use case, whichever door (API or console) the
 * call came through: an operator session whose role is at least `minimumRole` (default `viewer`,
 * any operator).
 */
export function requireOperator(p: Principal, minimumRole: OperatorRole = 'viewer'): asserts p is OperatorPrincipal {
  if (p.kind === 'anonymous') throw new ServiceError('UNAUTHENTICATED', 'log in as an operator first');
  if (p.kind !== 'operator') throw new ServiceError('FORBIDDEN', 'only operators may do this');
  if (OPERATOR_ROLES.indexOf(p.role) < OPERATOR_ROLES.indexOf(minimumRole)) {
    throw new ServiceError('FORBIDDEN', `this needs the ${minimumRole} role; operator ${p.username} is a ${p.role}`);
  }
}
