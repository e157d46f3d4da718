/**
 * Containers and the default container: a valid container needs its key on the card and exactly
 * one key size in its `cmapfile` record (OpenSC and the Base CSP read the key spec from which size
 * is set), and certificates need one default container (pre-Vista logon and NULL container names
 * use it).
 */
import { equalBytes } from '../../bytes.js';
import {
  emptyContainerRecord,
  isDefaultContainer,
  isValidContainer,
  parseCertificateFileName,
  serializeCmapfile,
  setDefaultContainer,
  type ContainerRecord,
} from '../../minidriver/index.js';
import { KEYTYPE_SIGNATURE } from '../../gids/protocol/constants.js';
import type { CardFiles } from '../card-files.js';
import type { Finding } from './report.js';
import type { Plan, RepairLog } from './repair-log.js';
import { validAt, type Snapshot } from './snapshot.js';

const oneSize = (r: ContainerRecord): boolean => r.sigKeyBits > 0 !== r.kxKeyBits > 0;

export function containersWithoutKey(s: Snapshot): Finding[] {
  return s.keyless.map((index) => ({
    code: 'CONTAINER_WITHOUT_KEY',
    severity: 'error',
    message: `container ${index} '${s.cmap[index]!.name}' is marked valid but has no key on the card`,
    fix: 'mark the container invalid in cmapfile and the key map',
    container: s.cmap[index]!.name,
  }));
}

export function keySizes(s: Snapshot): Finding[] {
  const out: Finding[] = [];
  for (const [index, r] of s.cmap.entries()) {
    if (!isValidContainer(r) || !s.keyIds.has(index) || oneSize(r)) continue;
    out.push({
      code: 'CONTAINER_KEY_SIZE',
      severity: 'error',
      message: `container ${index} '${r.name}' has ${r.sigKeyBits ? 'both' : 'neither'} key size fields set`,
      fix: 'set the size of its one key from the key on the card',
      container: r.name,
    });
  }
  return out;
}

export function defaults(s: Snapshot): Finding[] {
  const out: Finding[] = [];
  const flagged = s.cmap.map((r, i) => ({ r, i })).filter(({ r }) => isDefaultContainer(r));
  for (const { r, i } of flagged) {
    if (!isValidContainer(r)) out.push({ code: 'DEFAULT_INVALID', severity: 'warning', message: `record ${i} carries the default flag but is not a valid container`, fix: 'clear the flag' });
  }
  const validDefaults = flagged.filter(({ r }) => isValidContainer(r));
  const anyCert = [...s.certs.values()].some((c) => c.keyId && validAt(s, c.index));
  if (validDefaults.length > 1) {
    out.push({ code: 'DEFAULT_MULTIPLE', severity: 'error', message: `${validDefaults.length} containers are marked default (${validDefaults.map(({ r }) => `'${r.name}'`).join(', ')})`, fix: 'keep one default' });
  } else if (validDefaults.length === 0 && anyCert) {
    out.push({ code: 'DEFAULT_MISSING', severity: 'warning', message: 'certificates exist but no container is the default one (pre-Vista logon and NULL container names need one)', fix: 'make the first container with a certificate the default' });
  }
  return out;
}

/** Containers whose key is gone stop being containers. */
export function dropContainersWithoutKey(plan: Plan, s: Snapshot, findings: Finding[], log: RepairLog): void {
  for (const [i, r] of plan.cmap.entries()) {
    if (!isValidContainer(r) || s.keyIds.has(i)) continue;
    plan.cmap[i] = emptyContainerRecord();
    for (const f of findings.filter((x) => x.code === 'CONTAINER_WITHOUT_KEY' && x.container === r.name)) {
      log.expect(f, `not done: container ${i} is still valid in cmapfile`, (after) => !validAt(after, i));
    }
  }
}

/** Sizes from the key on the card, and one default: the container with a certificate. */
export async function fixSizesAndDefault(files: CardFiles, plan: Plan, s: Snapshot, findings: Finding[], log: RepairLog): Promise<void> {
  for (const [i, r] of plan.cmap.entries()) {
    if (!isValidContainer(r)) {
      setDefaultContainer(r, false);
      continue;
    }
    if (oneSize(r)) continue;
    const f = findings.filter((x) => x.code === 'CONTAINER_KEY_SIZE' && x.container === r.name);
    let bits = 2048;
    const read = await log.step(f, `reading the key of container ${i}`, async () => {
      bits = (await files.publicKeyFromCard(i)).asymmetricKeyDetails?.modulusLength ?? 2048;
    });
    if (!read) continue;
    const spec = s.keymap[i]?.keyType === KEYTYPE_SIGNATURE ? 'sig' : 'kx';
    r.kxKeyBits = spec === 'kx' ? bits : 0;
    r.sigKeyBits = spec === 'sig' ? bits : 0;
    for (const x of f) log.expect(x, `not done: container ${i} does not have exactly one key size in cmapfile`, (after) => validAt(after, i) && oneSize(after.cmap[i]!));
  }

  const valids = plan.cmap.map((r, i) => ({ r, i })).filter(({ r }) => isValidContainer(r));
  const flagged = valids.filter(({ r }) => isDefaultContainer(r));
  const hasCert = (i: number): boolean => [...plan.tableNames].some((n) => parseCertificateFileName(n.split('/')[1] ?? '')?.index === i);
  if (flagged.length !== 1 && valids.some(({ i }) => hasCert(i))) {
    const keep = flagged.find(({ i }) => hasCert(i)) ?? valids.find(({ i }) => hasCert(i))!;
    for (const { r, i } of valids) setDefaultContainer(r, i === keep.i);
  } else if (flagged.length > 1) {
    for (const { r, i } of flagged) if (i !== flagged[0]!.i) setDefaultContainer(r, false);
  }
  const validDefaults = (after: Snapshot): number => after.cmap.filter((r) => isValidContainer(r) && isDefaultContainer(r)).length;
  for (const f of findings) {
    if (f.code === 'DEFAULT_INVALID') log.expect(f, 'not done: a record that is not a valid container still carries the default flag', (after) => after.cmap.every((r) => isValidContainer(r) || !isDefaultContainer(r)));
    if (f.code === 'DEFAULT_MULTIPLE') log.expect(f, 'not done: more than one container is still marked default', (after) => validDefaults(after) <= 1);
    if (f.code === 'DEFAULT_MISSING') log.expect(f, 'not done: no container is marked default', (after) => validDefaults(after) === 1);
  }
}


/** Writes cmapfile when the plan differs from the card's. */
/** mscp/cmapfile missing or unreadable (the snapshot rebuilt the containers from the key map). */
export function cmapfileLost(s: Snapshot): Finding[] {
  if (s.cmapProblem === undefined) return [];
  const keys = s.cmap.filter(isValidContainer).length;
  return [
    {
      code: 'CMAPFILE_LOST',
      severity: 'error',
      message: `mscp/cmapfile is ${s.cmapProblem}: no container can be found (the key map lists ${keys} key${keys === 1 ? '' : 's'})`,
      fix: keys > 0 ? `rebuild it from the keys on the card (${s.cmap.filter(isValidContainer).map((r) => r.name).join(', ')}; certificates stay with their keys)` : 'write an empty cmapfile',
      file: 'mscp/cmapfile',
    },
  ];
}

export async function writeCmapfile(files: CardFiles, plan: Plan, s: Snapshot, findings: Finding[], log: RepairLog): Promise<void> {
  const wanted = serializeCmapfile(plan.cmap);
  if (s.rawCmapfile === undefined) {
    // Deleted from the file table: created again.
    await log.step(findings, 'creating cmapfile', () => files.putFile('mscp/cmapfile', wanted).then(() => files.rememberCmapfile(plan.cmap)));
  } else if (s.cmapProblem !== undefined || !equalBytes(wanted, serializeCmapfile(s.cmap))) {
    await log.step(findings, 'writing cmapfile', () => files.putCmapfile(plan.cmap));
  }
  for (const f of findings) log.expect(f, 'not done: cmapfile on the card is not the one written', (after) => after.rawCmapfile !== undefined && equalBytes(after.rawCmapfile, wanted));
}
