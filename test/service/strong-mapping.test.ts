/**
 * The SID extension the CA writes (src/service/ca/pki.ts), the explicit strong mapping string and
 * the SID extension reader (src/service/ca/strong-mapping.ts)
 * against KB5014754's worked example, checked with OpenSSL as an independent parser of the same
 * certificate.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { toPem } from '../../src/pem.js';
import { EmbeddedCa } from '../../src/service/ca/embedded.js';
import { isDomainSid, OID, sidExtensionValue } from '../../src/service/ca/pki.js';
import { sidOfCertificate, strongMappingString } from '../../src/service/ca/strong-mapping.js';
import { x509 } from '../../src/x509.js';
import { tempDir } from './helpers.js';

const SID = 'S-1-5-21-3623811015-3361044348-30300820-1013';
const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

async function certificate(o: { serial: string; sid?: string }): Promise<Uint8Array> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  // The issuer of KB5014754's example, in the order a certificate encodes it (DC=com first).
  const issuer = new x509.Name([{ DC: ['com'] }, { DC: ['contoso'] }, { CN: ['CONTOSO-DC-CA'] }]);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: o.serial, subject: 'CN=alice@contoso.com', issuer: issuer.toString(), notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: EC, publicKey: keys.publicKey, signingKey: keys.privateKey,
    extensions: o.sid ? [new x509.Extension(OID.ntdsCaSecurity, false, sidExtensionValue(o.sid))] : [],
  });
  return new Uint8Array(cert.rawData);
}

function opensslRaw(args: string[], input?: string): string {
  return execFileSync('openssl', args, { encoding: 'utf8', ...(input !== undefined ? { input } : {}) });
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

describe('the SID extension and the mapping string on certificates the CA issues', () => {
  test('a certificate issued with a SID carries the SID extension, non-critical, with the SID text as OpenSSL parses it', async () => {
    const ca = await EmbeddedCa.inMemory({ name: 'CN=sid test CA' });
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const der = await ca.issueFor(publicKey, { subject: 'CN=alice@example.com', userPrincipalName: 'alice@example.com', sid: SID });
    const file = join(tempDir(), 'sid.pem');
    writeFileSync(file, toPem(der, 'CERTIFICATE'));
    const text = opensslRaw(['x509', '-in', file, '-noout', '-text']);
    // OpenSSL has no name for the OID: it prints it dotted, with no "critical" after it.
    assert.match(text, /1\.3\.6\.1\.4\.1\.311\.25\.2: *\n/);
    // An independent parse of the DER: the extension's value holds otherName 1.3.6.1.4.1.311.25.2.1 with the SID's ASCII.
    const ext = new x509.X509Certificate(der).getExtension(OID.ntdsCaSecurity)!;
    assert.equal(ext.critical, false);
    const parsed = execFileSync('openssl', ['asn1parse', '-inform', 'DER'], { input: Buffer.from(ext.value), encoding: 'utf8' });
    assert.match(parsed, /cons: SEQUENCE/);
    assert.match(parsed, /cont \[ 0 \]/);
    assert.match(parsed, /OBJECT +:1\.3\.6\.1\.4\.1\.311\.25\.2\.1/);
    assert.match(parsed, /OCTET STRING +:S-1-5-21-3623811015-3361044348-30300820-1013/);
    // Without a SID, no extension.
    const plain = await ca.issueFor(publicKey, { subject: 'CN=bob@example.com', userPrincipalName: 'bob@example.com' });
    assert.equal(new x509.X509Certificate(plain).getExtension(OID.ntdsCaSecurity), null);
  });

  test('a SID that is not a domain account SID is refused with a clear error, and no certificate is made', async () => {
    const ca = await EmbeddedCa.inMemory();
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    for (const bad of ['S-1-5-32-544', 'S-1-5-21-1-2-3', 'S-1-5-21-1-2-3-4-5-6', 'S-1-5-21-1-2-3-4294967296', 'S-1-5-21-1-2-3-01', 's-1-5-21-1-2-3-4', 'S-1-5-21-1-2-3-4\n', 'S-1-5-21-1-2-3-4,CN=x']) {
      assert.equal(isDomainSid(bad), false, bad);
      await assert.rejects(ca.issueFor(publicKey, { subject: 'CN=x', sid: bad }), { code: 'BAD_REQUEST', message: /domain account SID/ }, bad);
    }
    assert.equal(isDomainSid('S-1-5-21-4294967295-0-1-500'), true);
  });

  test("the explicit mapping string matches KB5014754's worked example: issuer in encoded order, serial bytes reversed", async () => {
    // KB5014754's example CA, with its RDNs encoded root-most first, as an AD CS CA's name is.
    const ca = await EmbeddedCa.inMemory({ name: 'DC=com, DC=contoso, CN=CONTOSO-DC-CA' });
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const cert = await ca.generic({
      serial: '2b0000000011ac0000000012', notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000), subject: 'CN=alice@example.com',
      publicKey: new x509.PublicKey(publicKey.export({ type: 'spki', format: 'der' })), template: { kind: 'smartcard-logon', userPrincipalName: 'alice@example.com' },
    });
    const file = join(tempDir(), 'm.pem');
    writeFileSync(file, cert.toString('pem'));
    // OpenSSL shows the issuer as Windows does (RFC 2253: last encoded RDN first) and the serial as stored.
    assert.equal(opensslRaw(['x509', '-in', file, '-noout', '-issuer', '-nameopt', 'RFC2253']).trim(), 'issuer=CN=CONTOSO-DC-CA,DC=contoso,DC=com');
    assert.equal(opensslRaw(['x509', '-in', file, '-noout', '-serial']).trim(), 'serial=2B0000000011AC0000000012');
    assert.equal(strongMappingString(new Uint8Array(cert.rawData)), 'X509:<I>DC=com,DC=contoso,CN=CONTOSO-DC-CA<SR>1200000000AC11000000002B');
  });
});
