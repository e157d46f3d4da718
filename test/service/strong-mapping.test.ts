/**
 * The explicit strong mapping string and the SID extension reader (src/service/ca/strong-mapping.ts)
 * against KB5014754's worked example, checked with OpenSSL as an independent parser of the same
 * certificate.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { toPem } from '../../src/pem.js';
import { isDomainSid, sidOfCertificate, SID_EXTENSION_OID, strongMappingString } from '../../src/service/ca/strong-mapping.js';
import { x509 } from '../../src/x509.js';
import { tempDir } from './helpers.js';

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** szOID_NTDS_CA_SECURITY_EXT's value as AD CS writes it: SEQUENCE { [0] { OID ...25.2.1, [0] { OCTET STRING sid } } }. */
function sidExtensionValue(sid: string): Uint8Array {
  const tlv = (tag: number, body: Uint8Array): Uint8Array => Uint8Array.from([tag, body.length, ...body]);
  const oid = Uint8Array.from([0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x19, 0x02, 0x01]);
  return tlv(0x30, tlv(0xa0, Uint8Array.from([...oid, ...tlv(0xa0, tlv(0x04, new TextEncoder().encode(sid)))])));
}

async function certificate(o: { serial: string; sid?: string }): Promise<Uint8Array> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  // The issuer of KB5014754's example, in the order a certificate encodes it (DC=com first).
  const issuer = new x509.Name([{ DC: ['com'] }, { DC: ['contoso'] }, { CN: ['CONTOSO-DC-CA'] }]);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: o.serial, subject: 'CN=alice@contoso.com', issuer: issuer.toString(), notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: EC, publicKey: keys.publicKey, signingKey: keys.privateKey,
    extensions: o.sid ? [new x509.Extension(SID_EXTENSION_OID, false, sidExtensionValue(o.sid))] : [],
  });
  return new Uint8Array(cert.rawData);
}

function openssl(der: Uint8Array, ...args: string[]): string {
  const file = join(tempDir(), 'c.pem');
  writeFileSync(file, toPem(der, 'CERTIFICATE'));
  return execFileSync('openssl', ['x509', '-in', file, '-noout', ...args], { encoding: 'utf8' });
}

describe('strong certificate mapping (KB5014754)', () => {
  test("KB5014754's example: issuer in encoded order, serial bytes reversed", async () => {
    // The KB's mapping string names <SR>1200000000AC11000000002B: the certificate's serial is that, byte-reversed.
    const der = await certificate({ serial: '2b0000000011ac0000000012' });
    assert.equal(strongMappingString(der), 'X509:<I>DC=com,DC=contoso,CN=CONTOSO-DC-CA<SR>1200000000AC11000000002B');
    // OpenSSL, reading the same certificate: RFC 2253 order is the reverse of the mapping's, and the serial is the unreversed one.
    assert.equal(openssl(der, '-issuer', '-nameopt', 'RFC2253').trim(), 'issuer=CN=CONTOSO-DC-CA,DC=contoso,DC=com');
    assert.equal(openssl(der, '-serial').trim(), 'serial=2B0000000011AC0000000012');
  });

  test("a serial's DER sign byte is dropped, as CryptoAPI's CERT_INFO.SerialNumber drops leading 0x00", async () => {
    const der = await certificate({ serial: '00ff01' });
    assert.match(openssl(der, '-serial'), /^serial=FF01$/m);
    assert.match(strongMappingString(der), /<SR>01FF$/);
  });

  test('the SID extension is read back; a certificate without it has none', async () => {
    const sid = 'S-1-5-21-666199682-1411342147-2938717855-1001';
    const withSid = await certificate({ serial: '01', sid });
    assert.equal(sidOfCertificate(withSid), sid);
    // OpenSSL sees the same extension with the SID text in it.
    assert.match(openssl(withSid, '-text'), new RegExp(`1\\.3\\.6\\.1\\.4\\.1\\.311\\.25\\.2:[\\s\\S]*${sid.slice(0, 16)}`));
    assert.equal(sidOfCertificate(await certificate({ serial: '02' })), undefined);
  });

  test('only domain account SIDs are accepted', () => {
    assert.ok(isDomainSid('S-1-5-21-666199682-1411342147-2938717855-1001'));
    for (const bad of ['S-1-5-32-544', 'S-1-5-21-1-2-3', 'S-1-5-21-1-2-3-4-5', 's-1-5-21-1-2-3-4', 'S-1-5-21-01-2-3-4', 'S-1-5-21-4294967296-2-3-4', 'S-1-5-21-1-2-3-4\n', ' S-1-5-21-1-2-3-4']) {
      assert.equal(isDomainSid(bad), false, bad);
    }
  });
});
