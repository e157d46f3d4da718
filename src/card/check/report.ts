import type { CardCf } from '../../minidriver/index.js';

export type FindingCode =
  | 'CMAPFILE_LOST'
  | 'KEYMAP_OUT_OF_STEP'
  | 'CONTAINER_WITHOUT_KEY'
  | 'CONTAINER_KEY_SIZE'
  | 'FILE_DANGLING'
  | 'CERT_MALFORMED'
  | 'CERT_UNCOMPRESSED'
  | 'CERT_ORPHAN'
  | 'CERT_WRONG_KEYSPEC'
  | 'CERT_KEY_MISMATCH'
  | 'DEFAULT_MISSING'
  | 'DEFAULT_MULTIPLE'
  | 'DEFAULT_INVALID'
  | 'STALE_FILES_COUNTER'
  | 'STALE_CONTAINERS_COUNTER'
  | 'CARDID_REUSED'
  /** PIV: no CHUID (or one without a GUID): no card identity for Windows' cache and container names. */
  | 'CHUID_MISSING'
  /** PIV: the key history object's on-card count disagrees with the retired slots holding certificates. */
  | 'KEY_HISTORY_MISMATCH';

export interface Finding {
  code: FindingCode;
  severity: 'error' | 'warning';
  /** One line a user can read. */
  message: string;
  /** What `--repair` does about it. */
  fix: string;
  container?: string;
  file?: string;
  /**
   * Set by repair: true only when its fix was made and a fresh read of the card shows the effect
   * (and a fresh check no longer finds it); false when the fix was tried and did not take; absent
   * when repair could not try (CARDID_REUSED without the administrator key).
   */
  fixed?: boolean;
  /** Why the fix did not take, when `fixed` is false. */
  failure?: string;
}

export interface CheckReport {
  /** GIDS: `cardid`; PIV: the CHUID GUID ('' without a CHUID); hex. */
  cardId: string;
  /** GIDS only: a PIV card has no `cardcf` (docs/piv.md). */
  cardcf?: CardCf;
  /** Which card application was checked (absent: GIDS, as before PIV). */
  app?: 'gids' | 'piv';
  findings: Finding[];
}

/** What repair found, with each finding marked, and a fresh check of the card afterwards. */
export interface RepairReport {
  before: CheckReport;
  after: CheckReport;
}

/** Two findings are about the same thing: same code, file and container. */
export function sameFinding(a: Finding, b: Finding): boolean {
  return a.code === b.code && a.file === b.file && a.container === b.container;
}
