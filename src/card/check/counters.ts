/**
 * The freshness counters and the card's identity, against what this user's cache remembers:
 * content that changed while its `cardcf` counter stayed put (every cache keyed by cardid and
 * counter, Windows' Smart Card service cache included, keeps serving the old content), and a cardid
 * already seen on another card (such caches would mix the two cards).
 */
import { randomBytes } from 'node:crypto';
import { equalBytes, hex } from '../../bytes.js';
import { serializeMasterFileTable, type CardCf } from '../../minidriver/index.js';
import type { CardFiles } from '../card-files.js';
import type { Finding } from './report.js';
import type { RepairLog } from './repair-log.js';
import type { Snapshot } from './snapshot.js';

/** Per-card memory kept in the cache across sessions, to recognise a cardid seen on another card. */
interface History {
  maxContainers: number;
  maxFiles: number;
  containersAtLast: number;
  keyIds: string[];
}

function recordHistory(files: CardFiles, cardId: Uint8Array, cf: CardCf, keyIds: string[]): void {
  const h = files.history<History>(cardId);
  files.putHistory(cardId, {
    maxContainers: Math.max(h?.maxContainers ?? 0, cf.containersFreshness),
    maxFiles: Math.max(h?.maxFiles ?? 0, cf.filesFreshness),
    containersAtLast: cf.containersFreshness,
    keyIds: [...new Set([...(h?.keyIds ?? []), ...keyIds])].slice(-64),
  } satisfies History);
}

/** The counter findings; records this card in the history unless its cardid looks reused. */
export function counters(files: CardFiles, s: Snapshot): Finding[] {
  const { cardId, cardcf } = s;
  const history = files.history<History>(cardId);
  const currentKeys = [...s.keyIds.values()];
  // A counter below its highest value seen means another card (unless it wrapped around).
  const wentBack = (max: number, now: number): boolean => max < 0xff00 && now < max;
  const reused =
    history !== undefined &&
    (wentBack(history.maxContainers, cardcf.containersFreshness) ||
      wentBack(history.maxFiles, cardcf.filesFreshness) ||
      (history.keyIds.length > 0 && currentKeys.length > 0 && cardcf.containersFreshness === history.containersAtLast && !currentKeys.some((k) => history.keyIds.includes(k))));
  const out: Finding[] = [];
  if (reused) {
    out.push({
      code: 'CARDID_REUSED',
      severity: 'error',
      message: `cardid ${hex(cardId)} was seen before on another card (different keys or counters that went backwards): caches keyed by cardid would mix the two cards`,
      fix: 'give this card a new random cardid (needs the administrator key)',
    });
    return out;
  }
  const filesChanged =
    (s.cached.table !== undefined && !equalBytes(s.cached.table, serializeMasterFileTable(s.table))) ||
    (s.cached.cmapfile !== undefined && s.rawCmapfile !== undefined && !equalBytes(s.cached.cmapfile, s.rawCmapfile)) ||
    s.cached.changedFiles.length > 0;
  if (filesChanged) {
    // Not the content cardlink left: nothing cached for this card may shortcut a write any more.
    files.forgetWriteMark(cardId);
    out.push({
      code: 'STALE_FILES_COUNTER',
      severity: 'error',
      message: `files changed on the card while the cardcf files counter stayed at ${cardcf.filesFreshness}: Windows' smart card cache would keep serving the old content`,
      fix: 'move the files counter',
    });
  }
  if (s.cached.changedKeys.length > 0) {
    files.forgetWriteMark(cardId);
    out.push({
      code: 'STALE_CONTAINERS_COUNTER',
      severity: 'error',
      message: `the key of container ${s.cached.changedKeys.join(', ')} changed while the cardcf containers counter stayed at ${cardcf.containersFreshness}`,
      fix: 'move the containers counter',
    });
  }
  recordHistory(files, cardId, cardcf, currentKeys);
  return out;
}

/** A new random cardid, with the administrator key (a finding without it is left alone). */
export async function renewCardId(files: CardFiles, s: Snapshot, findings: Finding[], adminKey: Uint8Array | undefined, log: RepairLog): Promise<void> {
  const reused = findings.filter((f) => f.code === 'CARDID_REUSED');
  if (reused.length === 0 || !adminKey) return;
  await log.step(reused, 'giving the card a new cardid', async () => {
    await files.session.authenticateAdmin(adminKey);
    await files.putCardId(randomBytes(16));
    await files.refresh();
  });
  for (const f of reused) log.expect(f, 'not done: the card still has its old cardid', (after) => !equalBytes(after.cardId, s.cardId));
}

/**
 * Moves the files counter (and the containers counter when containers change), before any other
 * write, as for every change. False when the card refused: then nothing else may be written.
 */
export async function moveCounters(files: CardFiles, s: Snapshot, findings: Finding[], containers: boolean, log: RepairLog): Promise<boolean> {
  const stale = findings.filter((f) => f.code === 'STALE_FILES_COUNTER' || f.code === 'STALE_CONTAINERS_COUNTER');
  const moved = await log.step(stale, 'moving the cardcf counters', () => files.bump({ files: true, containers }));
  for (const f of stale) {
    if (f.code === 'STALE_FILES_COUNTER') log.expect(f, 'not done: the files counter did not move', (after) => after.cardcf.filesFreshness !== s.cardcf.filesFreshness);
    else log.expect(f, 'not done: the containers counter did not move', (after) => after.cardcf.containersFreshness !== s.cardcf.containersFreshness);
  }
  return moved;
}
