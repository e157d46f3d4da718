/**
 * Dangling files: a file table record whose data object the card does not have. The minidriver's
 * own files (cardid, cardcf, cardapps, mscp/cmapfile) are left alone: without them nothing works.
 */
import type { CardFiles } from '../card-files.js';
import type { Finding } from './report.js';
import type { RepairLog } from './repair-log.js';
import { hasFile, type Snapshot } from './snapshot.js';

const ESSENTIAL = ['cardid', 'cardcf', 'cardapps', 'mscp/cmapfile'];

export function danglingFiles(s: Snapshot): Finding[] {
  return s.files
    .filter((f) => f.raw === undefined && !ESSENTIAL.includes(f.path.toLowerCase()))
    .map((f) => ({ code: 'FILE_DANGLING', severity: 'warning', message: `${f.path} is in the file table but has no data object`, fix: 'remove it from the file table', file: f.path }));
}

export async function removeDanglingFiles(files: CardFiles, findings: Finding[], log: RepairLog): Promise<void> {
  for (const f of findings) {
    if (f.code !== 'FILE_DANGLING' || !f.file) continue;
    const path = f.file;
    await log.step([f], `removing ${path}`, () => files.deleteFile(path));
    log.expect(f, `not done: ${path} is still in the file table`, (after) => !hasFile(after, path));
  }
}
