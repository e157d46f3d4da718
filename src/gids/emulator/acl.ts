/**
 * Compact access rules (tag 8C) as GidsApplet evaluates them: an access-mode byte, then one
 * security-condition byte per mode bit set, from bit 0x40 down to 0x01 (bit 0x80 carries no SC).
 */

/** Access-mode bits, named per file kind (the same bit means different things on different files). */
export const OP = {
  DO_GET: 0x01,
  DO_PUT: 0x02,
  KEY_READ_PUBLIC: 0x01,
  KEY_PUT: 0x02,
  KEY_MSE: 0x04,
  KEY_GENERATE: 0x08,
  DF_CREATE_EF: 0x02,
  DF_TERMINATE: 0x20,
  EF_ACTIVATE: 0x10,
  EF_DELETE: 0x40,
} as const;

const NEVER = 0xff;

/**
 * The security condition `acl` sets for `op`, or undefined when the access mode leaves `op`
 * unrestricted. A rule cut short (mode bit set, SC byte missing) counts as "never".
 */
export function conditionFor(acl: Uint8Array, op: number): number | undefined {
  const mode = acl[0];
  if (mode === undefined || (mode & op) === 0) return undefined;
  let index = 1;
  for (let bit = 0x40; bit > op; bit >>= 1) if ((mode & bit) !== 0) index++;
  return acl[index] ?? NEVER;
}

export interface SecurityStatus {
  /** The user PIN is verified (or the card is still in creation mode). */
  readonly user: boolean;
  /** The administrator key was proven by mutual or external authentication (or creation mode). */
  readonly admin: boolean;
}

/**
 * Whether `sc` is met. 00 always, FF never; 9x PIN only, Ax admin only, 1x/2x/3x PIN and/or admin
 * suffice; low nibble 2 = contactless only, which this contact card never satisfies.
 */
export function conditionMet(sc: number, status: SecurityStatus): boolean {
  if (sc === 0x00) return true;
  if (sc === NEVER) return false;
  if ((sc & 0x0f) === 0x02) return false;
  const auth = sc & 0xf0;
  if (auth === 0x90) return status.user;
  if ((auth & 0x90) === 0x10 && status.user) return true;
  if (auth === 0xa0) return status.admin;
  if ((auth & 0xa0) === 0x20 && status.admin) return true;
  return false;
}
