import { X509Certificate } from 'node:crypto';
import { readRevocationList } from '../../crl.js';
import { diagnoseView, readDoctorView, type DoctorReport, type RevocationSource, type ServiceCacheProbe } from '../../windows/doctor.js';
import { openCertStoreHost } from '../../windows/hosts.js';
import type { HandlerOf, specs } from '../catalog.js';
import { emit, type CliIo } from '../io.js';
import { readPin } from '../secrets.js';
import { cardConnector, withCard, type TargetArgs } from '../target.js';
import { line } from '../terminal.js';
import { openClient } from './admin.js';
import { storeSpec } from './link.js';

/**
 * The issuing service's CRL, signature-checked against its CA certificates; when the service
 * cannot be asked, the report says so instead of failing the whole diagnosis.
 */
async function serviceRevocation(values: { server?: string | undefined; cacert?: string | undefined }, io: CliIo): Promise<RevocationSource | undefined> {
  const server = values.server ?? io.env.CARDLINK_SERVER;
  if (server === undefined) return undefined;
  const source = `the CRL of ${server}`;
  try {
    const client = openClient(values, io);
    const cas = (await client.caCertificates()).map((pem) => new X509Certificate(pem));
    return { source, list: readRevocationList(new Uint8Array(await client.crl()), cas) };
  } catch (err) {
    return { source, unavailable: `revocation not checked: ${(err as Error).message}` };
  }
}

/** One doctor pass: the card read and released, then Windows asked (its providers open their own connection). */
async function doctorPass(values: TargetArgs, io: CliIo, spec: string, target: string, pin: string | undefined, revocation: RevocationSource | undefined): Promise<DoctorReport> {
  const env = io.env;
  const view = await withCard(values, io, (card) => readDoctorView(card.minidriver(), () => card.check()));
  // Doctor never shows a PIN dialog: without a PIN the proof is skipped, never prompted for.
  const opened = await openCertStoreHost(spec, cardConnector(values, env), () => undefined);
  try {
    let cache: ServiceCacheProbe | undefined;
    if (spec === 'native') cache = await (await import('../../windows/native/scard-cache.js')).openServiceCacheProbe();
    return await diagnoseView(view, opened.host, { target, ...(pin !== undefined ? { pin } : {}), ...(opened.machine ? { machine: opened.machine } : {}), ...(cache ? { cache } : {}), ...(revocation ? { revocation } : {}) });
  } finally {
    await opened.close();
  }
}

function text(report: DoctorReport): string {
  const s = report.scinfo;
  const lines = [
    line`reader ${s.reader}: card ${s.cardId}, cardcf pins ${s.cardcf.pins} / containers ${s.cardcf.containers} / files ${s.cardcf.files}, PIN ${s.pin.triesLeft} of ${s.pin.tryLimit} tries left`,
    line`  providers: ${s.providers.cryptoApi} (CryptoAPI), ${s.providers.cng} (CNG); default container: ${s.defaultContainer ?? 'none'}`,
  ];
  for (const c of s.containers) {
    lines.push(line`  [${c.index}] ${c.name}${c.isDefault ? ' (default)' : ''}: ${c.keySpec} ${c.keyBits} bits`);
    if (c.certificate) {
      lines.push(line`      ${c.certificate.file}: ${c.certificate.subject}  ${c.certificate.thumbprint}; key match: ${c.certificate.keyMatch ? 'yes' : 'NO'}`);
      lines.push(line`      offered at logon: ${c.logon?.offered ? 'yes' : `no (${c.logon?.why.join('; ')})`}`);
    }
  }
  for (const c of report.certificates) {
    const a = c.acquisition;
    if (a) lines.push(line`  ${c.container}: acquisition ${a.cached.name}${a.uncached ? `, uncached ${a.uncached.name}` : ''}${a.proof ? `, proof signature ${a.proof.name}` : ', proof skipped (no CARDLINK_PIN)'}`);
  }
  if (report.revocation) lines.push(line`  revocation (${report.revocation.source}): ${report.revocation.note ?? `${report.revocation.checked} certificate(s) checked`}`);
  if (report.serviceCache) lines.push(line`  Smart Card service cache (${report.serviceCache.source}): ${report.serviceCache.note ?? `${report.serviceCache.compared} item(s) compared with the card`}`);
  lines.push(line`card ${report.cardId}: ${report.certificates.length} certificate${report.certificates.length === 1 ? '' : 's'}, ${report.findings.length === 0 ? 'all linked and usable' : `${report.findings.length} finding${report.findings.length === 1 ? '' : 's'}`}`);
  for (const f of report.findings) {
    lines.push(line`  ${f.code}${f.container ? ` [${f.container}]` : ''}: ${f.message}`);
    lines.push(line`      causes ${f.error.name === 'S_OK' ? 'no Windows error' : `${f.error.name} (${f.error.value})`}${f.observed ? `; Windows returned ${f.observed.name} (${f.observed.value})` : ''}`);
    lines.push(line`      fix: ${f.fix}`);
  }
  return lines.join('\n');
}

export const doctor: HandlerOf<typeof specs.doctor> = async ({ values }, io) => {
  const spec = storeSpec(values.store);
  const target = [values.image !== undefined ? `--image ${values.image}` : '', values.reader !== undefined ? `--reader '${values.reader}'` : '', `--store ${spec}`].filter(Boolean).join(' ');
  // With --repair the PIN is needed (cardcf is user-writable); otherwise only from the
  // environment, for the proof signature, and never prompted for.
  const pin = values.repair ? await readPin(io) : io.env.CARDLINK_PIN || undefined;
  const revocation = await serviceRevocation(values, io);
  let report = await doctorPass(values, io, spec, target, pin, revocation);
  let repaired: { files: boolean; containers: boolean } | undefined;
  if (values.repair && pin !== undefined) {
    const stale = report.findings.filter((f) => f.code === 'STALE_CACHE');
    if (stale.length > 0) {
      // Moving the counters makes every cache keyed by them, Windows' included, read the card again.
      repaired = { files: stale.some((f) => f.error.name !== 'NTE_BAD_PUBLIC_KEY'), containers: stale.some((f) => f.error.name === 'NTE_BAD_PUBLIC_KEY') };
      await withCard(values, io, async (card) => {
        await card.verifyPin(pin);
        await card.moveCounters(repaired!);
      });
      report = await doctorPass(values, io, spec, target, pin, revocation);
    }
  }
  emit(io, values.json === true, { ok: report.findings.length === 0, store: spec, ...(repaired ? { movedCounters: repaired } : {}), ...report }, () =>
    (repaired ? `moved the cardcf ${[repaired.files ? 'files' : '', repaired.containers ? 'containers' : ''].filter(Boolean).join(' and ')} counter(s); checked again:\n` : '') + text(report),
  );
  return report.findings.length === 0 ? 0 : 1;
};
