// Subjects typed by users become the same ASN.1 Name @peculiar/x509 built before (the card layer no
// longer loads it), and malformed ones are refused with a reason.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AsnConvert } from '@peculiar/asn1-schema';
import { hex } from '../../src/bytes.js';
import { parseDn } from '../../src/card/dn.js';
import { x509 } from '../../src/x509.js';

const der = (n: Parameters<typeof AsnConvert.serialize>[0]) => hex(new Uint8Array(AsnConvert.serialize(n)));

test('the same DER as @peculiar/x509 for the subjects cardlink and its users write', () => {
  for (const dn of [
    'CN=Alice Example, O=cardlink',
    'CN=lr-e46f1586-7133-4284-895d-557e2261c24d',
    'CN=Demo User (seed way)',
    'CN=alice@example.com',
    'CN=Zoë Ünïcode, OU=Équipe, C=FR',
    'E=alice@example.com, CN=Alice',
    'DC=example, DC=com, CN=Bob+OU=people',
    'CN=Smith\\, John, O=ACME',
    'CN=a',
    '2.5.4.3=By OID',
  ]) {
    assert.equal(der(parseDn(dn)), hex(new Uint8Array(new x509.Name(dn).toArrayBuffer())), dn);
  }
});

test('RFC 4514 escapes, hex pairs, # values and quotes', () => {
  const name = new x509.Name(AsnConvert.serialize(parseDn('CN=a\\2Cb\\C3\\A9, O="Quoted, Inc", OU=#0c03616263, L=Trail\\ ')));
  assert.deepEqual(name.getField('CN'), ['a,bé']);
  assert.deepEqual(name.getField('O'), ['Quoted, Inc']);
  assert.deepEqual(name.getField('L'), ['Trail ']);
  assert.equal(hex(new Uint8Array(AsnConvert.serialize(parseDn('OU=#0c03616263')))).includes('0C03616263'), true);
});

test('malformed subjects are refused, saying where', () => {
  for (const [dn, why] of [
    ['', /empty name/],
    ['Alice', /without "="/],
    ['XX=1', /unknown attribute type 'XX'/],
    ['CN=', /empty value/],
    ['CN=a=b', /'=' must be escaped/],
    ['CN="open', /unterminated/],
    ['CN=a\\', /at the end/],
    ['OU=#zz', /hex pairs/],
  ] as const) {
    assert.throws(() => parseDn(dn), why, dn);
  }
});
