import { ApduFormatError } from './status.js';

/**
 * A command APDU. `le` is the number of response bytes expected: undefined = no Le field,
 * 1..256 for short APDUs (256 is encoded as 00), up to 65536 for extended ones.
 */
export interface CommandApdu {
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  data?: Uint8Array;
  le?: number;
}

export const CLA_CHAIN = 0x10;

/** Le meaning "as many bytes as the card will send": 256 (Le = 00) short, 65536 (Le = 0000) extended. */
export const LE_ALL = 65536;

/**
 * Encodes a command APDU (ISO 7816-4 §5.1, docs/sources.md#iso7816-4). Short (cases 1, 2S, 3S,
 * 4S) unless `extended`: then Lc is `00` + two bytes and Le two bytes (or three, `00` + two, when
 * there is no data), as extended cases 2E, 3E, 4E want. Without `extended`, more than 255 bytes of
 * data or an Le above 256 is an ApduFormatError: the caller must chain.
 */
export function encodeCommand(c: CommandApdu, extended = false): Uint8Array {
  const data = c.data ?? new Uint8Array(0);
  const maxData = extended ? 65535 : 255;
  const maxLe = extended ? 65536 : 256;
  if (data.length > maxData) throw new ApduFormatError(`${extended ? 'extended' : 'short'} APDU data of ${data.length} bytes (max ${maxData}): chain it`);
  if (c.le !== undefined && (c.le < 1 || c.le > maxLe)) throw new ApduFormatError(`${extended ? 'extended' : 'short'} APDU Le ${c.le} out of 1..${maxLe}`);
  const out: number[] = [c.cla & 0xff, c.ins & 0xff, c.p1 & 0xff, c.p2 & 0xff];
  if (!extended) {
    if (data.length > 0) out.push(data.length, ...data);
    if (c.le !== undefined) out.push(c.le & 0xff);
    return new Uint8Array(out);
  }
  const lc = data.length > 0 ? [0x00, data.length >> 8, data.length & 0xff] : [];
  const le = c.le === undefined ? [] : [...(data.length === 0 ? [0x00] : []), (c.le >> 8) & 0xff, c.le & 0xff]; // 65536 is 00 00
  const apdu = new Uint8Array(4 + lc.length + data.length + le.length);
  apdu.set(out, 0);
  apdu.set(lc, 4);
  apdu.set(data, 4 + lc.length);
  apdu.set(le, 4 + lc.length + data.length);
  return apdu;
}

/**
 * Parses any ISO 7816-4 command APDU (short or extended), strictly: a length field that does
 * not match the byte count is an ApduFormatError. Used by the card side.
 */
export function parseCommand(bytes: Uint8Array): CommandApdu {
  if (bytes.length < 4) throw new ApduFormatError(`command of ${bytes.length} bytes (min 4)`);
  const [cla, ins, p1, p2] = [bytes[0]!, bytes[1]!, bytes[2]!, bytes[3]!];
  const body = bytes.subarray(4);
  if (body.length === 0) return { cla, ins, p1, p2 };
  if (body.length === 1) return { cla, ins, p1, p2, le: body[0] === 0 ? 256 : body[0]! };
  if (body[0] !== 0) {
    const lc = body[0]!;
    if (body.length === 1 + lc) return { cla, ins, p1, p2, data: body.slice(1) };
    if (body.length === 2 + lc) return { cla, ins, p1, p2, data: body.slice(1, 1 + lc), le: body[1 + lc] === 0 ? 256 : body[1 + lc]! };
    throw new ApduFormatError(`Lc ${lc} does not match ${body.length - 1} bytes of body`);
  }
  // Extended length: 00 followed by two bytes.
  if (body.length === 3) {
    const le = (body[1]! << 8) | body[2]!;
    return { cla, ins, p1, p2, le: le === 0 ? 65536 : le };
  }
  if (body.length < 3) throw new ApduFormatError('truncated extended length');
  const lc = (body[1]! << 8) | body[2]!;
  if (lc === 0) throw new ApduFormatError('extended Lc of 0');
  if (body.length === 3 + lc) return { cla, ins, p1, p2, data: body.slice(3) };
  if (body.length === 5 + lc) {
    const le = (body[3 + lc]! << 8) | body[4 + lc]!;
    return { cla, ins, p1, p2, data: body.slice(3, 3 + lc), le: le === 0 ? 65536 : le };
  }
  throw new ApduFormatError(`extended Lc ${lc} does not match ${body.length - 3} bytes of body`);
}
