/**
 * A distinguished name as a user types it ("CN=Alice Example, O=cardlink") turned into the ASN.1
 * Name of a request (RFC 5280 §4.1.2.4), built with @peculiar/asn1-x509. The string syntax is
 * RFC 4514 §3 — `\`-escapes, `\XX` hex pairs (UTF-8), `#` hex-encoded BER values, '+' joining
 * the attributes of a multi-valued RDN — plus RFC 1779's double-quoted values. parseDn encodes RDNs
 * in the order written, as OpenSSL's `-subj` and @peculiar/x509 do; parseSubject, for what users
 * type, in RFC 4514's order (§2.1: the string starts with the *last* RDN of the sequence, so
 * "CN=Alice,O=Example" is O then CN in DER, and `openssl … -nameopt RFC2253` and certreq show it
 * as typed). Values are PrintableString where
 * its alphabet allows, UTF8String otherwise, IA5String for emailAddress and domainComponent.
 */
import { AttributeTypeAndValue, AttributeValue, Name, RelativeDistinguishedName } from '@peculiar/asn1-x509';

const TYPES: Record<string, string> = {
  CN: '2.5.4.3',
  SN: '2.5.4.4',
  SERIALNUMBER: '2.5.4.5',
  C: '2.5.4.6',
  L: '2.5.4.7',
  ST: '2.5.4.8',
  STREET: '2.5.4.9',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  T: '2.5.4.12',
  TITLE: '2.5.4.12',
  G: '2.5.4.42',
  GIVENNAME: '2.5.4.42',
  I: '2.5.4.43',
  INITIALS: '2.5.4.43',
  DC: '0.9.2342.19200300.100.1.25',
  UID: '0.9.2342.19200300.100.1.1',
  E: '1.2.840.113549.1.9.1',
  EMAILADDRESS: '1.2.840.113549.1.9.1',
};
const IA5 = new Set([TYPES.E, TYPES.DC]);
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;
const OID = /^\d+(\.\d+)+$/;
const KEYWORD = /^[A-Za-z][A-Za-z0-9-]*$/;

export class DnSyntaxError extends Error {}

/** Parses `text`; throws DnSyntaxError saying what is wrong where. */
export function parseDn(text: string): Name {
  const rdns: AttributeTypeAndValue[][] = [[]];
  let i = 0;
  const fail = (why: string): never => {
    throw new DnSyntaxError(`${why} at character ${i + 1}`);
  };
  const skipSpaces = (): void => {
    while (text[i] === ' ') i++;
  };
  skipSpaces();
  if (i >= text.length) fail('empty name');
  for (;;) {
    const eq = text.indexOf('=', i);
    if (eq < 0) fail('an attribute without "="');
    const keyword = text.slice(i, eq).trim();
    const type = OID.test(keyword) ? keyword : KEYWORD.test(keyword) ? TYPES[keyword.toUpperCase()] : undefined;
    if (!type) fail(`unknown attribute type '${keyword}'`);
    i = eq + 1;
    skipSpaces();
    rdns.at(-1)!.push(new AttributeTypeAndValue({ type, value: readValue(type!) }));
    skipSpaces();
    if (i >= text.length) break;
    const separator = text[i++];
    if (separator === ',' || separator === ';') rdns.push([]);
    else if (separator !== '+') fail(`'${separator}' where ',' or '+' was expected`);
    skipSpaces();
  }
  return new Name(rdns.map((attrs) => new RelativeDistinguishedName(attrs)));

  function readValue(type: string): AttributeValue {
    if (text[i] === '#') {
      const m = /^#((?:[0-9A-Fa-f]{2})+)/.exec(text.slice(i));
      if (!m) fail('"#" not followed by hex pairs');
      i += m![0].length;
      return new AttributeValue({ anyValue: new Uint8Array(Buffer.from(m![1]!, 'hex')).buffer });
    }
    const bytes: number[] = [];
    const quoted = text[i] === '"';
    if (quoted) i++;
    let trailingSpaces = 0;
    for (; i < text.length; i++) {
      const ch = text[i]!;
      if (quoted ? ch === '"' : ch === ',' || ch === '+' || ch === ';') break;
      if (ch === '\\') {
        const pair = text.slice(i + 1, i + 3);
        if (/^[0-9A-Fa-f]{2}$/.test(pair)) {
          bytes.push(Number.parseInt(pair, 16));
          i += 2;
        } else if (i + 1 < text.length) {
          bytes.push(...Buffer.from(text[++i]!, 'utf8'));
        } else {
          fail('a "\\" at the end');
        }
        trailingSpaces = 0;
        continue;
      }
      if (!quoted && (ch === '"' || ch === '<' || ch === '>' || ch === '=')) fail(`'${ch}' must be escaped`);
      bytes.push(...Buffer.from(ch, 'utf8'));
      trailingSpaces = ch === ' ' && !quoted ? trailingSpaces + 1 : 0;
    }
    if (quoted) {
      if (text[i] !== '"') fail('an unterminated quoted value');
      i++;
    }
    const value = Buffer.from(bytes.slice(0, bytes.length - trailingSpaces)).toString('utf8');
    if (value.length === 0) fail('an empty value');
    if (IA5.has(type)) return new AttributeValue({ ia5String: value });
    return PRINTABLE.test(value) ? new AttributeValue({ printableString: value }) : new AttributeValue({ utf8String: value });
  }
}

/** Names the attribute types a subject may use, for error messages. */
const SUPPORTED = 'CN, O, OU, L, ST, C, STREET, SN, G, I, T, SERIALNUMBER, UID, DC, E, or a dotted OID';

/**
 * A subject as a user types it (`card csr --subject`): RFC 4514, first RDN the most specific.
 * Refuses, with a hint, what people bring from other tools: openssl's "/CN=…/O=…", a bare name
 * without "=", a country that is not two letters (X.520 / ISO 3166 alpha-2).
 */
export function parseSubject(text: string): Name {
  const trimmed = text.trim();
  if (trimmed.startsWith('/')) {
    const rfc = trimmed.split('/').filter(Boolean).reverse().join(',');
    throw new DnSyntaxError(`that is openssl's "/CN=…/O=…" form; write it as RFC 4514, most specific first: "${rfc}"`);
  }
  if (trimmed.length > 0 && !trimmed.includes('=')) throw new DnSyntaxError(`a subject is ATTRIBUTE=value pairs, e.g. "CN=${trimmed}" for a name alone`);
  let name: Name;
  try {
    name = parseDn(text);
  } catch (err) {
    const m = /^unknown attribute type '([^']*)'/.exec((err as Error).message);
    if (m) throw new DnSyntaxError(`unsupported attribute '${m[1]}' (supported: ${SUPPORTED})`);
    throw err;
  }
  for (const rdn of name) {
    for (const atv of rdn) {
      if (atv.type !== TYPES.C) continue;
      const value = atv.value.printableString ?? atv.value.utf8String ?? '';
      if (!/^[A-Za-z]{2}$/.test(value)) throw new DnSyntaxError(`C is a two-letter country code (ISO 3166), e.g. C=DE, not '${value}'`);
    }
  }
  return new Name([...name].reverse());
}
