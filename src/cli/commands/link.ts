import { readCardFresh } from '../../windows/card-view.js';
import { defaultStoreSpec, openCertStoreHost } from '../../windows/hosts.js';
import { linkView, type ProviderChoice } from '../../windows/link.js';
import type { HandlerOf, specs } from '../catalog.js';
import { emit, UsageError } from '../io.js';
import { readPin } from '../secrets.js';
import { cardConnector, withCard } from '../target.js';
import { forTerminal, line } from '../terminal.js';

export function storeSpec(value: string | undefined): string {
  const spec = value ?? defaultStoreSpec();
  if (!spec) throw new UsageError('say which store: --store model:DIR (the Windows model) or, on Windows, --store native');
  return spec;
}

export const link: HandlerOf<typeof specs.link> = async ({ values }, io) => {
  if (values.ksp && values.csp) throw new UsageError('give --ksp or --csp, not both');
  const provider: ProviderChoice = values.ksp ? 'ksp' : values.csp ? 'csp' : 'auto';
  const spec = storeSpec(values.store);
  // The PIN for the proof: given to the provider with a silent context, so that link runs
  // unattended. On Windows without CARDLINK_PIN the real CSP/KSP shows its own PIN dialog.
  const pin = spec === 'native' ? io.env.CARDLINK_PIN || undefined : await readPin(io);
  // First the card, then Windows: the Base CSP and the KSP open their own connection to the
  // card, which fails (SCARD_E_SHARING_VIOLATION) while cardlink holds it exclusively.
  const view = await withCard(values, io, (card) => readCardFresh(card.minidriver()));
  const opened = await openCertStoreHost(spec, cardConnector(values, io.env), () => pin);
  let report;
  try {
    report = await linkView(view, opened.host, { provider, ...(pin !== undefined ? { pin } : {}) });
  } finally {
    await opened.close();
  }
  const json = {
    ok: true,
    cardId: report.cardId,
    store: spec,
    linked: report.linked.map(({ der: _der, ...l }) => l),
    removed: report.removed,
  };
  emit(io, values.json === true, json, () => {
    const lines = report.linked.map(
      (l) =>
        `${l.action.padEnd(9)} ${l.subject.split('\n').map(forTerminal).join(', ')}  ${l.thumbprint}\n` +
        line`          container '${l.container}' via ${l.keyProvInfo.providerName} (type ${l.keyProvInfo.providerType}, key spec ${l.keyProvInfo.keySpec}); proof: signature by the card verified (${l.proof.api})`,
    );
    for (const r of report.removed) lines.push(line`removed   ${r.thumbprint} (container '${r.container}' no longer holds it)`);
    if (lines.length === 0) lines.push('the card holds no certificate: nothing to link');
    return lines.join('\n');
  });
  return 0;
};
