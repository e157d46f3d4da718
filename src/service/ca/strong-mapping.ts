/**
 * Strong certificate mapping (docs/sources.md#kb5014754): since full enforcement, a domain
 * controller maps a logon certificate to an account only strongly, either by the SID extension
 * the CA wrote (szOID_NTDS_CA_SECURITY_EXT, 1.3.6.1.4.1.311.25.2), or by an explicit mapping in
 * the account's altSecurityIdentities, e.g. issuer and serial number:
 * `X509:<I>DC=com,DC=contoso,CN=CONTOSO-DC-CA<SR>1200000000AC11000000002B`.
 */
import { readTlv } from '../../ber-tlv.js';
import { hex } from '../../bytes.js';
import { x509 } from '../../x509.js';
import { derOid, OID } from './pki.js';

/** The DER of szOID_NTDS_OBJECTSID, the other-name inside the SID extension whose value is the SID as text. */
const OBJECT_SID_OID_DER = hex(derOid(OID.ntdsObjectSid).subarray(2)).toLowerCase();

/** How Windows writes attribute types in a mapping string (CertNameToStr's X.500 keys); others by OID. */
const ATTRIBUTE_KEYS: Record<string, string> = { CN: 'CN', DC: 'DC', O: 'O', OU: 'OU', C: 'C', L: 'L', ST: 'S', E: 'E', SN: 'SN', G: 'G', T: 'T', I: 'I' };

/** RFC 4514 §2.4 escaping of a value's special characters, so the string stays unambiguous. */
function escapeValue(v: string): string {
  return v.replace(/([,+"\\<>;=])/g, '\\$1').replace(/^([ #])/, '\\$1').replace(/ $/, '\\ ');
}

/**
 * The issuer as altSecurityIdentities wants it: the RDNs in the order the certificate encodes
 * them (DC=com first), which is the reverse of RFC 4514's string order.
 */
function mappingName(name: x509.Name): string {
  return name
    .toJSON()
    .map((rdn) => Object.entries(rdn).flatMap(([type, values]) => values.map((v) => `${ATTRIBUTE_KEYS[type] ?? type}=${escapeValue(v)}`)).join('+'))
    .join(',');
}

/**
 * The explicit strong mapping (X509IssuerSerialNumber) an operator puts in the user's
 * altSecurityIdentities: the serial number's bytes in reverse order, least significant first, as
 * KB5014754's example shows, without the DER sign byte (CryptoAPI's CERT_INFO.SerialNumber, which
 * Windows compares, has "leading 0x00 or 0xFF bytes removed"; cardlink's serials never have one).
 */
export function strongMappingString(certificate: Uint8Array | x509.X509Certificate): string {
  const cert = certificate instanceof x509.X509Certificate ? certificate : new x509.X509Certificate(certificate);
  const serial = cert.serialNumber.length % 2 === 0 ? cert.serialNumber : `0${cert.serialNumber}`;
  const reversed = (serial.match(/../g) ?? []).reverse().join('').toUpperCase();
  return `X509:<I>${mappingName(cert.issuerName)}<SR>${reversed}`;
}

/**
 * The SID a certificate's SID extension carries, or undefined when it has none (or one that
 * does not parse as SEQUENCE { [0] { OID 1.3.6.1.4.1.311.25.2.1, [0] { OCTET STRING sid } } }).
 */
export function sidOfCertificate(certificate: Uint8Array | x509.X509Certificate): string | undefined {
  const cert = certificate instanceof x509.X509Certificate ? certificate : new x509.X509Certificate(certificate);
  const ext = cert.getExtension(OID.ntdsCaSecurity);
  if (!ext) return undefined;
  try {
    const value = new Uint8Array(ext.value);
    const seq = readTlv(value, 0).tlv;
    if (seq.tag !== 0x30) return undefined;
    const other = readTlv(seq.value, 0).tlv;
    if (other.tag !== 0xa0) return undefined;
    const oid = readTlv(other.value, 0);
    if (oid.tlv.tag !== 0x06 || hex(oid.tlv.value).toLowerCase() !== OBJECT_SID_OID_DER) return undefined;
    const wrapped = readTlv(other.value, oid.next).tlv;
    if (wrapped.tag !== 0xa0) return undefined;
    const octets = readTlv(wrapped.value, 0).tlv;
    if (octets.tag !== 0x04) return undefined;
    const sid = new TextDecoder('ascii').decode(octets.value);
    return /^S-1-[0-9-]{1,180}$/.test(sid) ? sid : undefined;
  } catch {
    return undefined;
  }
}
