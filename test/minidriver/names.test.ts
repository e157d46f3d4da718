import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  certificateFileName,
  fileNameProblem,
  parseCertificateFileName,
  parseFilePath,
  type KeySpec,
} from '../../src/minidriver/index.js';
import { assertFormatError } from './helpers.js';

describe('certificate file names', () => {
  it('use ksc/kxc and two upper-case hex digits, as OpenSC GIDS writes them', () => {
    assert.equal(certificateFileName(0, 'sig'), 'ksc00');
    assert.equal(certificateFileName(0, 'kx'), 'kxc00');
    assert.equal(certificateFileName(10, 'kx'), 'kxc0A');
    assert.equal(certificateFileName(125, 'sig'), 'ksc7D');
    assert.equal(certificateFileName(255, 'kx'), 'kxcFF');
  });

  it('refuse an index two hex digits cannot hold', () => {
    for (const index of [-1, 256, 1.5, Number.NaN]) {
      assertFormatError(() => certificateFileName(index, 'kx'), { file: 'mscp/kxc??', offset: 0, reason: /cannot be written as two hex digits/ });
    }
    assertFormatError(() => certificateFileName(300, 'sig'), { file: 'mscp/ksc??', offset: 0, reason: /container index 300/ });
  });

  it('parse back for every index and key spec', () => {
    for (const keySpec of ['kx', 'sig'] as KeySpec[]) {
      for (let index = 0; index <= 255; index++) {
        assert.deepEqual(parseCertificateFileName(certificateFileName(index, keySpec)), { index, keySpec });
      }
    }
  });

  it('read prefix and digits case-insensitively and reject anything else', () => {
    assert.deepEqual(parseCertificateFileName('kxc0a'), { index: 10, keySpec: 'kx' });
    assert.deepEqual(parseCertificateFileName('KSC01'), { index: 1, keySpec: 'sig' });
    for (const name of ['kxc2', 'kxc100', 'kxs00', 'ksp00', 'cmapfile', 'mscp/kxc00', 'kxc0g', ' kxc00', '']) {
      assert.equal(parseCertificateFileName(name), undefined, name);
    }
  });
});

describe('file names and paths', () => {
  it('accept 1-8 printable ASCII characters without space or forbidden characters', () => {
    for (const ok of ['cardid', 'cardapps', 'mscp', 'kxc0A', 'a', '~!#$%&()']) assert.equal(fileNameProblem(ok), undefined, ok);
    assert.equal(fileNameProblem(''), 'is empty');
    assert.match(fileNameProblem('abcdefghi')!, /9 characters long/);
    assert.match(fileNameProblem('a b')!, /0x20/);
    assert.match(fileNameProblem('a\u0000')!, /0x00/);
    assert.match(fileNameProblem('ü')!, /0xfc/);
    for (const bad of '\\/:*?"<>|') assert.match(fileNameProblem(`a${bad}`)!, /which file names may not contain/, bad);
  });

  it('split into at most two levels', () => {
    assert.deepEqual(parseFilePath('cardid'), { directory: '', filename: 'cardid' });
    assert.deepEqual(parseFilePath('mscp/cmapfile'), { directory: 'mscp', filename: 'cmapfile' });
    assertFormatError(() => parseFilePath('mscp/a/b'), { file: 'mscp/a/b', offset: 6, reason: /at most two levels/ });
    assertFormatError(() => parseFilePath('mscp/'), { file: 'mscp/', offset: 5, reason: /file name "" is empty/ });
    assertFormatError(() => parseFilePath('/cardid'), { file: '/cardid', offset: 0, reason: /directory name "" is empty/ });
    assertFormatError(() => parseFilePath(''), { file: '', offset: 0, reason: /file name "" is empty/ });
    assertFormatError(() => parseFilePath('mscp/cmapfile1'), { file: 'mscp/cmapfile1', offset: 5, reason: /9 characters long/ });
    assertFormatError(() => parseFilePath('ms:p/x'), { file: 'ms:p/x', offset: 0, reason: /contains ':'/ });
  });
});
