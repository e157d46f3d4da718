import { CardlinkError } from '../errors.js';

/** Status words cardlink reasons about (ISO 7816-4 and the GIDS profile). */
export const SW = {
  OK: 0x9000,
  WARN_TERMINATED: 0x6285,
  WRONG_LENGTH: 0x6700,
  LOGICAL_CHANNEL_NOT_SUPPORTED: 0x6881,
  SECURE_MESSAGING_NOT_SUPPORTED: 0x6882,
  CHAINING_NOT_SUPPORTED: 0x6884,
  COMMAND_NOT_ALLOWED: 0x6900,
  INCOMPATIBLE_FILE_STRUCTURE: 0x6981,
  SECURITY_STATUS_NOT_SATISFIED: 0x6982,
  AUTH_METHOD_BLOCKED: 0x6983,
  REFERENCE_DATA_NOT_USABLE: 0x6984,
  CONDITIONS_NOT_SATISFIED: 0x6985,
  COMMAND_NOT_ALLOWED_NO_EF: 0x6986,
  WRONG_DATA: 0x6a80,
  FUNCTION_NOT_SUPPORTED: 0x6a81,
  FILE_NOT_FOUND: 0x6a82,
  NOT_ENOUGH_MEMORY: 0x6a84,
  INCORRECT_P1P2: 0x6a86,
  REFERENCED_DATA_NOT_FOUND: 0x6a88,
  WRONG_P1P2: 0x6b00,
  INS_NOT_SUPPORTED: 0x6d00,
  CLA_NOT_SUPPORTED: 0x6e00,
  UNKNOWN: 0x6f00,
} as const;

const NAMES: Record<number, string> = {
  0x9000: 'success',
  0x6285: 'application terminated',
  0x6700: 'wrong length',
  0x6881: 'logical channel not supported',
  0x6882: 'secure messaging not supported',
  0x6884: 'command chaining not supported',
  0x6900: 'command not allowed (chain interrupted)',
  0x6981: 'command incompatible with file structure',
  0x6982: 'security status not satisfied',
  0x6983: 'authentication method blocked',
  0x6984: 'reference data not usable',
  0x6985: 'conditions of use not satisfied',
  0x6986: 'command not allowed',
  0x6a80: 'incorrect data',
  0x6a81: 'function not supported',
  0x6a82: 'file or application not found',
  0x6a84: 'not enough memory',
  0x6a86: 'incorrect P1/P2',
  0x6a88: 'referenced data not found',
  0x6b00: 'wrong P1/P2',
  0x6d00: 'instruction not supported',
  0x6e00: 'class not supported',
  0x6f00: 'unknown error',
};

export function swHex(sw: number): string {
  return sw.toString(16).toUpperCase().padStart(4, '0');
}

export function describeSw(sw: number): string {
  if ((sw & 0xfff0) === 0x63c0) return `wrong PIN, ${sw & 0x0f} tries left`;
  if ((sw & 0xff00) === 0x6100) return `${sw & 0xff || 256} more bytes available`;
  if ((sw & 0xff00) === 0x6c00) return `wrong Le, ${sw & 0xff} expected`;
  return NAMES[sw] ?? 'unknown status';
}

/** A card answered with a status word the caller did not accept. */
export class ApduError extends CardlinkError {
  readonly sw: number;
  readonly command: string;
  constructor(sw: number, command: string) {
    super(`SW_${swHex(sw)}`, `${command}: card answered ${swHex(sw)} (${describeSw(sw)})`);
    this.sw = sw;
    this.command = command;
  }
}

/** Bytes that are not a well-formed command or response APDU. */
export class ApduFormatError extends CardlinkError {
  constructor(message: string) {
    super('APDU_FORMAT', message);
  }
}
