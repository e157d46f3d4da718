import { defaultStoreSpec, openCertStoreHost } from '../../windows/hosts.js';
import { linkCard, type ProviderChoice } from '../../windows/link.js';
import type { HandlerOf, specs } from '../catalog.js';
import { emit, UsageError } from '../io.js';
import { readPin } from '../secrets.js';
import { withCard } from '../target.js';
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
  // The model's providers ask the user for the PIN through this; on Windows the real CSP/KSP
  // shows its own PIN dialog.
  const pin = spec === 'native' ? undefined : await readPin(io);
  const report = await withCard(values, io, async (card) => {
    const opened = await openCertStoreHost(spec, card.minidriver(), () => pin);
    try {
      return await linkCard(card.minidriver(), opened.host, { provider });
    } finally {
      await opened.close();
    }
  });
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
