/**
 * Certificate files: each `mscp/kxcNN` / `mscp/kscNN` must decode (compressed, as OpenSC and the
 * GIDS minidriver write it), belong to a valid container, be named for that container's key spec
 * and hold a certificate for that container's key.
 */
import { equalBytes } from '../../bytes.js';
import { encodeCertificateFile, isValidContainer } from '../../minidriver/index.js';
import { certificatePath, keySpecOf, type CardFiles } from '../card-files.js';
import type { Finding } from './report.js';
import type { Plan, RepairLog } from './repair-log.js';
import { hasFile, type Snapshot } from './snapshot.js';

const SPEC_NAME = { kx: 'AT_KEYEXCHANGE', sig: 'AT_SIGNATURE' } as const;

export function malformed(s: Snapshot): Finding[] {
  const out: Finding[] = [];
  for (const c of s.certs.values()) {
    if (c.problem === 'empty') {
      out.push({ code: 'CERT_MALFORMED', severity: 'error', message: `${c.path} is empty (an interrupted write?)`, fix: 'delete the file', file: c.path });
    } else if (c.problem !== undefined) {
      out.push({ code: 'CERT_MALFORMED', severity: 'error', message: `${c.path}: ${c.problem}`, fix: 'delete the file (the certificate can be loaded again)', file: c.path });
    }
  }
  return out;
}

export function placement(s: Snapshot): Finding[] {
  const out: Finding[] = [];
  for (const c of s.certs.values()) {
    if (!c.keyId) continue;
    const path = c.path;
    const r = s.cmap[c.index];
    if (!r || !isValidContainer(r)) {
      out.push({ code: 'CERT_ORPHAN', severity: 'error', message: `${path} belongs to container ${c.index}, which is missing or invalid`, fix: 'delete the file, or move it to the container that holds its key', file: path });
      continue;
    }
    const spec = keySpecOf(r);
    if (s.keyIds.has(c.index) && s.keyIds.get(c.index) !== c.keyId) {
      out.push({ code: 'CERT_KEY_MISMATCH', severity: 'error', message: `${path}: the certificate's public key is not the key of container ${c.index} '${r.name}'`, fix: 'move it to the container that holds its key, or delete it', file: path, container: r.name });
    } else if (c.keySpec !== spec) {
      out.push({
        code: 'CERT_WRONG_KEYSPEC',
        severity: 'error',
        message: `${path} is named for ${SPEC_NAME[c.keySpec]} but container ${c.index} '${r.name}' holds an ${SPEC_NAME[spec]} key`,
        fix: `rename it to ${certificatePath({ index: c.index, keySpec: spec })}`,
        file: path,
        container: r.name,
      });
    } else if (c.compressed === false) {
      out.push({ code: 'CERT_UNCOMPRESSED', severity: 'warning', message: `${path} holds plain DER; OpenSC and the GIDS minidriver expect the compressed form`, fix: 'rewrite it compressed', file: path, container: r.name });
    }
  }
  return out;
}

/**
 * Deletes the broken and the misplaced, moving a misplaced certificate to the container that holds
 * its key when that container has none; rewrites plain DER compressed. Runs after containers
 * without a key were dropped from `plan.cmap`.
 */
export async function repairCertificates(files: CardFiles, plan: Plan, s: Snapshot, findings: Finding[], log: RepairLog): Promise<void> {
  for (const c of s.certs.values()) {
    const path = c.path;
    const about = findings.filter((f) => f.file === path);
    const r = plan.cmap[c.index];
    const valid = r !== undefined && isValidContainer(r);
    const spec = valid ? keySpecOf(r) : c.keySpec;
    const fits = valid && c.keyId !== undefined && c.keyId === s.keyIds.get(c.index) && c.keySpec === spec;
    if (fits && c.compressed === false) {
      const der = c.der!;
      await log.step(about, `rewriting ${path}`, () => files.putFile(path, encodeCertificateFile(der, path)));
      for (const f of about) log.expect(f, `not done: ${path} does not read back compressed`, (after) => after.certs.get(path)?.compressed === true && equalBytes(after.certs.get(path)!.der!, der));
      continue;
    }
    if (fits) continue;
    if (c.keyId !== undefined && c.der !== undefined) {
      // Moved to the container that holds its key, if that container has no certificate yet.
      const home = [...s.keyIds].find(([, id]) => id === c.keyId)?.[0];
      const homeRecord = home === undefined ? undefined : plan.cmap[home];
      if (home !== undefined && homeRecord && isValidContainer(homeRecord)) {
        const target = certificatePath({ index: home, keySpec: keySpecOf(homeRecord) });
        if (!plan.tableNames.has(target.toLowerCase())) {
          const der = c.der;
          if (await log.step(about, `copying ${path} to ${target}`, () => files.putFile(target, encodeCertificateFile(der, target)))) {
            plan.tableNames.add(target.toLowerCase());
            for (const f of about) log.expect(f, `not done: ${target} does not hold the certificate`, (after) => equalBytes(after.certs.get(target)?.der ?? new Uint8Array(0), der));
          }
        }
      }
    }
    if (await log.step(about, `deleting ${path}`, () => files.deleteFile(path))) plan.tableNames.delete(path.toLowerCase());
    for (const f of about) log.expect(f, `not done: ${path} is still on the card`, (after) => !hasFile(after, path));
  }
}
