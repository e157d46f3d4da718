/**
 * How a GIDS card says it takes extended-length APDUs: the ISO 7816-4 "extended length
 * information" data object `7F66` (two INTEGERs, `02 02 xxxx`: the most bytes of a command APDU and
 * of a response APDU), in the FCI it answers SELECT with, next to the AID (tag `4F`) and the
 * discretionary template (`73`) that GidsApplet and Windows' GIDS minidriver read. It costs the
 * host no APDU: SELECT is sent anyway. The card capabilities byte of EF.ATR (`47`, third software
 * function table: b8 command chaining, b7 extended Lc and Le, b6 extended length information in
 * EF.ATR) says the same to whoever reads EF.ATR. Sources: docs/sources.md#iso7816-4,
 * docs/sources.md#gids-spec. A card without `7F66` in its FCI gets short APDUs and command chaining,
 * as OpenSC sends to every GIDS card (docs/sources.md#opensc-gids).
 */
import { encodeTlv, findTlv, parseTlvs } from './tlv.js';

export const EXTENDED_LENGTH_INFO_TAG = 0x7f66;

/** Most bytes of one command APDU and one response APDU (ISO 7816-4 counts the whole APDU). */
export interface ExtendedLengthInfo {
  maxCommandApdu: number;
  maxResponseApdu: number;
}

/** Header (4) + extended Lc (3) + extended Le (2): what a command APDU holds besides its data. */
const COMMAND_OVERHEAD = 9;
/** SW1 SW2. */
const RESPONSE_OVERHEAD = 2;

function integer(n: number): Uint8Array {
  return encodeTlv(0x02, new Uint8Array([n >> 8, n & 0xff]));
}

export function encodeExtendedLengthInfo(info: ExtendedLengthInfo): Uint8Array {
  return encodeTlv(EXTENDED_LENGTH_INFO_TAG, integer(info.maxCommandApdu), integer(info.maxResponseApdu));
}

/**
 * The data-field limits an FCI (`61 { … 7F66 { 02 L n, 02 L n } … }`) announces, or undefined when
 * it announces none, or none worth using (not beyond what short APDUs carry). Never throws: a
 * card whose FCI is odd is still a card, talked to with short APDUs.
 */
export function extendedLengthFromFci(fci: Uint8Array): { maxCommandData: number; maxResponseData: number } | undefined {
  try {
    const template = findTlv(parseTlvs(fci), 0x61);
    const info = template ? findTlv(parseTlvs(template.value), EXTENDED_LENGTH_INFO_TAG) : undefined;
    if (!info) return undefined;
    const ints = parseTlvs(info.value).filter((t) => t.tag === 0x02);
    if (ints.length < 2) return undefined;
    const [cmd, resp] = ints.map((t) => (t.value.length >= 1 && t.value.length <= 3 ? t.value.reduce((n, b) => n * 256 + b, 0) : 0));
    const maxCommandData = Math.min(65535, cmd! - COMMAND_OVERHEAD);
    const maxResponseData = Math.min(65536, resp! - RESPONSE_OVERHEAD);
    if (maxCommandData <= 255 || maxResponseData <= 256) return undefined;
    return { maxCommandData, maxResponseData };
  } catch {
    return undefined;
  }
}
