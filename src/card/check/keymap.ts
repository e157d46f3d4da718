/**
 * The GIDS key map against `cmapfile`: one record per container, in use exactly for the valid
 * containers, pointing at the container's key file (OpenSC's card-gids.c keeps them in step).
 */
import { equalBytes } from '../../bytes.js';
import { ALG_RSA, KEYTYPE_EXCHANGE, KEYTYPE_SIGNATURE, keyFid } from '../../gids/protocol/constants.js';
import { KEY_STATE_USED, deletedKeyMapRecord, emptyContainerRecord, isValidContainer, serializeKeyMap, type KeyMapRecord } from '../../minidriver/index.js';
import { keyRefOf, type CardFiles } from '../card-files.js';
import type { Finding } from './report.js';
import type { Plan, RepairLog } from './repair-log.js';
import type { Snapshot } from './snapshot.js';

export function keyMapOutOfStep(s: Snapshot): Finding[] {
  const { cmap, keymap } = s;
  const problems: string[] = [];
  if (keymap.length !== cmap.length && !(keymap.length === 0 && cmap.every((r) => !isValidContainer(r)))) {
    problems.push(`cmapfile has ${cmap.length} records, the key map ${keymap.length}`);
  }
  for (let i = 0; i < Math.max(keymap.length, cmap.length); i++) {
    const r = cmap[i];
    const valid = r !== undefined && isValidContainer(r);
    const used = keymap[i]?.state === KEY_STATE_USED;
    if (valid && !used) problems.push(`container ${i} is valid but its key map entry is not in use`);
    if (!valid && used) problems.push(`key map entry ${i} is in use but container ${i} is not valid`);
    if (valid && used && keymap[i]!.keyFid !== keyFid(keyRefOf(i))) problems.push(`key map entry ${i} points at key file ${keymap[i]!.keyFid.toString(16)}`);
  }
  if (problems.length === 0) return [];
  return [{ code: 'KEYMAP_OUT_OF_STEP', severity: 'error', message: `cmapfile and key map out of step: ${problems.join('; ')}`, fix: 'rewrite the key map from cmapfile and the keys on the card' }];
}

/** The key map that follows `plan.cmap` (which grows to the key map's length if shorter). */
export function keyMapFor(plan: Plan, current: KeyMapRecord[]): KeyMapRecord[] {
  const keymap = current.map((r) => ({ ...r }));
  while (keymap.length < plan.cmap.length) keymap.push(deletedKeyMapRecord());
  while (plan.cmap.length < keymap.length) plan.cmap.push(emptyContainerRecord());
  return keymap.map((k, i) => {
    const r = plan.cmap[i]!;
    if (!isValidContainer(r)) return k.state === KEY_STATE_USED || k.keyFid !== 0xffff ? deletedKeyMapRecord() : k;
    const bits = r.kxKeyBits || r.sigKeyBits;
    return { ...k, state: KEY_STATE_USED, algId: ALG_RSA[bits] ?? k.algId, keyType: r.kxKeyBits > 0 ? KEYTYPE_EXCHANGE : KEYTYPE_SIGNATURE, keyFid: keyFid(keyRefOf(i)) };
  });
}

/** Writes the key map when it differs from the card's. */
export async function writeKeyMap(files: CardFiles, keymap: KeyMapRecord[], s: Snapshot, findings: Finding[], log: RepairLog): Promise<void> {
  const wanted = serializeKeyMap(keymap);
  if (!equalBytes(wanted, serializeKeyMap(s.keymap))) await log.step(findings, 'writing the key map', () => files.putKeyMap(keymap));
  for (const f of findings) log.expect(f, 'not done: the key map on the card is not the one written', (after) => equalBytes(serializeKeyMap(after.keymap), wanted));
}
