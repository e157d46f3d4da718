import { diagnose } from '../../windows/doctor.js';
import { openCertStoreHost } from '../../windows/hosts.js';
import type { HandlerOf, specs } from '../catalog.js';
import { emit } from '../io.js';
import { withCard } from '../target.js';
import { line } from '../terminal.js';
import { storeSpec } from './link.js';

export const doctor: HandlerOf<typeof specs.doctor> = async ({ values }, io) => {
  const spec = storeSpec(values.store);
  const target = [values.image !== undefined ? `--image ${values.image}` : '', values.reader !== undefined ? `--reader '${values.reader}'` : '', `--store ${spec}`].filter(Boolean).join(' ');
  const report = await withCard(values, io, async (card) => {
    // Doctor never signs: a PIN dialog would be a finding of its own, so nobody answers it.
    const opened = await openCertStoreHost(spec, card.minidriver(), () => undefined);
    try {
      return await diagnose(card.minidriver(), opened.host, { target, cardCheck: () => card.check(), ...(opened.machine ? { machine: opened.machine } : {}) });
    } finally {
      await opened.close();
    }
  });
  emit(io, values.json === true, { ok: report.findings.length === 0, store: spec, ...report }, () => {
    const lines = [line`card ${report.cardId}: ` + `${report.certificates.length} certificate${report.certificates.length === 1 ? '' : 's'}, ${report.findings.length === 0 ? 'all linked and usable' : `${report.findings.length} finding${report.findings.length === 1 ? '' : 's'}`}`];
    for (const f of report.findings) {
      lines.push(line`  ${f.code}` + (f.container ? line` [${f.container}]` : '') + line`: ${f.message}`);
      lines.push(line`      causes ${f.error.name} (${f.error.value})` + (f.observed ? line`; CryptAcquireCertificatePrivateKey returned ${f.observed.name} (${f.observed.value})` : ''));
      lines.push(line`      fix: ${f.fix}`);
    }
    return lines.join('\n');
  });
  return report.findings.length === 0 ? 0 : 1;
};
