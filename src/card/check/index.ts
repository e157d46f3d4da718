/**
 * `card check` and `card check --repair`, by area: counters and cardid (counters.ts), certificate
 * files (certificates.ts), containers and the default container (containers.ts), the key map
 * (keymap.ts) and dangling files (files.ts). Check reads the whole minidriver view straight from
 * the card (snapshot.ts); repair fixes what it found, then reads the card again and marks a finding
 * fixed only where that fresh read shows the fix (repair-log.ts).
 */
import { hex } from '../../bytes.js';
import type { CardFiles } from '../card-files.js';
import { malformed, placement, repairCertificates } from './certificates.js';
import { cmapfileLost, containersWithoutKey, defaults, dropContainersWithoutKey, fixSizesAndDefault, keySizes, writeCmapfile } from './containers.js';
import { counters, moveCounters, renewCardId } from './counters.js';
import { danglingFiles, removeDanglingFiles } from './files.js';
import { keyMapFor, keyMapOutOfStep, writeKeyMap } from './keymap.js';
import type { CheckReport, Finding, RepairReport } from './report.js';
import { RepairLog, type Plan } from './repair-log.js';
import { readSnapshot, type Snapshot } from './snapshot.js';

export type { CheckReport, Finding, FindingCode, RepairReport } from './report.js';

/** Reads the card and reports, area by area, what is inconsistent or stale. */
export async function checkCard(files: CardFiles): Promise<{ report: CheckReport; snapshot: Snapshot }> {
  const s = await readSnapshot(files);
  const findings: Finding[] = [
    ...cmapfileLost(s),
    ...containersWithoutKey(s),
    ...danglingFiles(s),
    ...malformed(s),
    ...keyMapOutOfStep(s),
    ...keySizes(s),
    ...placement(s),
    ...defaults(s),
    ...counters(files, s),
  ];
  return { report: { cardId: hex(s.cardId), cardcf: s.cardcf, findings }, snapshot: s };
}

/**
 * Fixes what check finds (needs the PIN; CARDID_REUSED also the administrator key). Counters move
 * first, as for any write, and nothing else is written if they cannot; nothing that belongs to a
 * valid container with its key is deleted. A lost cmapfile is rebuilt from the key map (snapshot.ts).
 * Write order: cardid → cardcf → certificate files → dangling files → cmapfile → key map.
 */
export async function repairCard(files: CardFiles, options: { adminKey?: Uint8Array } = {}): Promise<RepairReport> {
  const { report: before, snapshot: s } = await checkCard(files);
  if (before.findings.length === 0) return { before, after: before };
  const findings = before.findings;
  const of = (...codes: Finding['code'][]): Finding[] => findings.filter((f) => codes.includes(f.code));
  const log = new RepairLog();

  await renewCardId(files, s, findings, options.adminKey, log);
  const containersChange = of('CMAPFILE_LOST', 'CONTAINER_WITHOUT_KEY', 'KEYMAP_OUT_OF_STEP', 'STALE_CONTAINERS_COUNTER').length > 0;
  if (await moveCounters(files, s, findings, containersChange, log)) {
    const plan: Plan = { cmap: s.cmap.map((r) => ({ ...r })), tableNames: new Set(s.table.filter((r) => r.filename !== '').map((r) => `${r.directory}/${r.filename}`.toLowerCase())) };
    dropContainersWithoutKey(plan, s, findings, log);
    await repairCertificates(files, plan, s, findings, log);
    await removeDanglingFiles(files, findings, log);
    await fixSizesAndDefault(files, plan, s, findings, log);
    const keymap = keyMapFor(plan, s.keymap);
    await writeCmapfile(files, plan, s, of('CMAPFILE_LOST', 'CONTAINER_WITHOUT_KEY', 'CONTAINER_KEY_SIZE', 'DEFAULT_INVALID', 'DEFAULT_MULTIPLE', 'DEFAULT_MISSING'), log);
    await writeKeyMap(files, keymap, s, of('KEYMAP_OUT_OF_STEP', 'CONTAINER_WITHOUT_KEY'), log);
  } else {
    log.skip(findings.filter((f) => f.code !== 'CARDID_REUSED'), 'not done: the cardcf counters could not be moved, so nothing else was written');
  }
  files.invalidate();

  const { report: after, snapshot: fresh } = await checkCard(files);
  log.settle(before, after, fresh);
  return { before, after };
}
