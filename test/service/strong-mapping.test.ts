import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { EmbeddedCa } from '../../src/service/ca/embedded.js';
import { isDomainSid, OID, strongMapping } from '../../src/service/ca/pki.js';
import { toPem } from '../../src/pem.js';
import { x509 } from '../../src/x509.js';
import { tempDir } from './helpers.js';

const SID = 'S-1-5-21-3623811015-3361044348-30300820-1013';

function openssl(args: string[], input?: string): string {
  return execFileSync('openssl', args, { encoding: 'utf8', ...(input !== undefined ? { input } : {}) });
}

describe('Windows strong certificate mapping (KB5014754)', () => {
  test('a certificate issued with a SID carries the SID extension, non-critical, with the SID text as OpenSSL parses it', async () => {
    const ca = await EmbeddedCa.inMemory({ name: 'CN=sid test CA' });
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const der = await ca.issueFor(publicKey, { subject: 'CN=alice@example.com', userPrincipalName: 'alice@example.com', sid: SID });
    const file = join(tempDir(), 'sid.pem');
    writeFileSync(file, toPem(der, 'CERTIFICATE'));
    const text = openssl(['x509', '-in', file, '-noout', '-text']);
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
    assert.equal(openssl(['x509', '-in', file, '-noout', '-issuer', '-nameopt', 'RFC2253']).trim(), 'issuer=CN=CONTOSO-DC-CA,DC=contoso,DC=com');
    assert.equal(openssl(['x509', '-in', file, '-noout', '-serial']).trim(), 'serial=2B0000000011AC0000000012');
    assert.equal(strongMapping(new Uint8Array(cert.rawData)), 'X509:<I>DC=com,DC=contoso,CN=CONTOSO-DC-CA<SR>1200000000AC11000000002B');
  });
});
