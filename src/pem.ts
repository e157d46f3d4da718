/**
 * PEM (RFC 7468) and the other textual forms certificates and requests arrive in. One reader for
 * every layer: the card's `install`, the service's CSR and EST bodies, the TLS files.
 */

export interface PemBlock {
  label: string;
  der: Uint8Array;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Every PEM block in `text`, in order. Text between blocks (openssl's "Bag Attributes") is ignored. */
export function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) {
    const body = m[2]!.replace(/\s+/g, '');
    if (!BASE64.test(body)) continue;
    out.push({ label: m[1]!, der: new Uint8Array(Buffer.from(body, 'base64')) });
  }
  return out;
}

/** The first block with `label`, or undefined. */
export function pemBlock(text: string, label: string): Uint8Array | undefined {
  return pemBlocks(text).find((b) => b.label === label)?.der;
}

/** Base64 in 64-column lines, each ending in a newline (RFC 7468 §2, and what EST clients expect). */
export function base64Lines(data: Uint8Array): string {
  return (Buffer.from(data).toString('base64').match(/.{1,64}/g) ?? []).join('\n') + '\n';
}

export function toPem(der: Uint8Array, label: string): string {
  return `-----BEGIN ${label}-----\n${base64Lines(der)}-----END ${label}-----\n`;
}

/** Does this byte string start like text with a PEM header (after optional leading text)? */
export function looksLikePem(bytes: Uint8Array): boolean {
  return Buffer.from(bytes.subarray(0, 4096)).toString('latin1').includes('-----BEGIN ');
}

export type DerSource = 'der' | 'pem' | 'base64';

/**
 * DER from DER bytes, PEM (first block, any label unless `label` is given) or bare base64 (EST
 * bodies, line breaks allowed). Returns undefined when the input is none of them; callers raise
 * their own typed error in the user's terms.
 */
export function toDer(input: Uint8Array | string, label?: string): { der: Uint8Array; source: DerSource } | undefined {
  if (typeof input !== 'string') {
    // A DER SEQUENCE starts with 0x30; anything else is treated as text.
    if (input[0] === 0x30) return { der: input, source: 'der' };
    return toDer(Buffer.from(input).toString('latin1'), label);
  }
  if (input.includes('-----BEGIN ')) {
    const blocks = pemBlocks(input).filter((b) => label === undefined || b.label === label);
    return blocks[0] ? { der: blocks[0].der, source: 'pem' } : undefined;
  }
  const body = input.replace(/\s+/g, '');
  if (body.length === 0 || !BASE64.test(body)) return undefined;
  return { der: new Uint8Array(Buffer.from(body, 'base64')), source: 'base64' };
}
