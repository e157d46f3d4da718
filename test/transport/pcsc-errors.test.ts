import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pcscErrorCode } from '../../src/transport/pcsc.js';

describe('PC/SC error mapping (the binding gives only message strings)', () => {
  it('maps each message the smartcard binding produces to a typed code', () => {
    const cases: [string, string][] = [
      ['PC/SC service not running', 'NO_SERVICE'],
      ['PC/SC service stopped', 'NO_SERVICE'],
      ['Context is not valid', 'NO_SERVICE'],
      ['Sharing violation', 'SHARING_VIOLATION'],
      ['Card was removed', 'CARD_REMOVED'],
      ['No smart card present', 'NO_CARD'],
      ['Card is unpowered', 'NO_CARD'],
      ['Card is unresponsive', 'NO_CARD'],
      ['Unknown reader', 'NO_READER'],
      ['Reader unavailable', 'NO_READER'],
      ['No readers available', 'NO_READER'],
      ['Operation timed out', 'TIMEOUT'],
      // Only a look at the reader can tell removal from a broken link: see PcscTransport.diagnose.
      ['Transaction failed', 'IO'],
      ['Communication error', 'IO'],
      ['Insufficient buffer', 'IO'],
    ];
    for (const [message, code] of cases) assert.equal(pcscErrorCode(message), code, message);
  });
});
