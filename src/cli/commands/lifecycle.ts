/**
 * The card's life cycle on the workstation (issue 13): `renew`, `card retire` (also `admin
 * retire-card`), `card purge`. Each deletes keys or certificates, so each asks first (or wants
 * --yes), and each removes the store entries of what left the card.
 */
import { hostname } from 'node:os';
import { fromHex, hex } from '../../bytes.js';
import { finishRenewPass, renewOnCard, type RenewPassOptions } from '../../agent/renew.js';
import { purgeOnCard } from '../../agent/purge.js';
import { unlinkCertificates } from '../../agent/store-link.js';
import type { CollectReport } from '../../agent/collect.js';
import { certificatesOnCard } from '../../card/index.js';
import type { ServiceClient } from '../../service/client.js';
import { defaultStoreSpec, openCertStoreHost } from '../../windows/hosts.js';
import { linkView } from '../../windows/link.js';
import type { HandlerOf, specs } from '../catalog.js';
import { emit, UsageError, type CliIo } from '../io.js';
import { readNewPin, readPin } from '../secrets.js';
import { line } from '../terminal.js';
import { cardConnector, withCard, type TargetArgs } from '../target.js';
import { asOperator, cardIdOption, openClient } from './admin.js';

/** Unlinks these certificates from the store a `--store` spec names; returns those whose entry went. */
async function unlinkFrom(spec: string | undefined, target: TargetArgs, io: CliIo, pin: () => string, thumbprints: string[]): Promise<string[]> {
  if (!spec || thumbprints.length === 0) return [];
  const store = await openCertStoreHost(spec, cardConnector(target, io.env), pin);
  try {
    return await unlinkCertificates(store.host, thumbprints);
  } finally {
    await store.close();
  }
}

/** The confirmation to use: none with --yes; the terminal's; or a usage error when there is neither. */
function confirmation(yes: boolean | undefined, io: CliIo, what: string): ((question: string) => Promise<boolean>) | undefined {
  if (yes === true) return undefined;
  if (!io.confirm) throw new UsageError(`${what}: add --yes to confirm (there is no terminal to ask on)`);
  return io.confirm;
}

function describeRenew(r: CollectReport): string {
  const out: string[] = [];
  for (const c of r.certificates ?? []) out.push(line`'${c.container}'${c.isDefault ? ' (default)' : ''}: ${c.subject}, ends ${c.notAfter} (${c.daysLeft} days left)  ${c.thumbprint}`);
  for (const x of r.renewals ?? []) {
    const what = {
      requested: line`renewal requested (request ${x.requestId ?? '?'}, new key in '${x.newContainer ?? '?'}'): waiting for approval`,
      issued: line`renewed (request ${x.requestId ?? '?'}, new key in '${x.newContainer ?? '?'}')`,
      waiting: line`renewal waiting for approval (request ${x.requestId ?? '?'}, new key in '${x.newContainer ?? '?'}')`,
      refused: line`renewal refused by the service: ${x.reason ?? ''}`,
    }[x.action];
    out.push(line`'${x.container}' ${x.thumbprint}: ` + what);
  }
  for (const x of r.removed ?? []) out.push(line`replaced: '${x.container}' ${x.thumbprint} deleted with its key` + (x.unlinked ? ', unlinked from the store' : ''));
  if ((r.renewals ?? []).length === 0 && (r.removed ?? []).length === 0) out.push('nothing to renew');
  return out.join('\n');
}

export const renew: HandlerOf<typeof specs.renew> = async ({ values }, io) => {
  const windowDays = values.days === undefined ? 30 : Number(values.days);
  if (!Number.isInteger(windowDays) || windowDays < 1 || windowDays > 3650) throw new UsageError('--days is a whole number of days, 1 to 3650');
  const spec = values.store ?? defaultStoreSpec();
  const pin = await readPin(io);
  const ask = values.yes === true ? undefined : io.confirm;
  let declined = false;
  const client = openClient(values, io);
  try {
    const o: RenewPassOptions = {
      pin,
      host: hostname(),
      renew: {
        windowDays,
        confirm: async (plan) => {
          if (values.yes === true) return true;
          if (!ask) throw new UsageError(`renewing makes a new key and deletes the old one (${plan.join('; ')}): add --yes to confirm (there is no terminal to ask on)`);
          const yes = await ask(line`${plan.join('; ')}?`);
          if (!yes) declined = true;
          return yes;
        },
      },
      ...(spec
        ? {
            link: async (view) => {
              const store = await openCertStoreHost(spec, cardConnector(values, io.env), () => pin);
              try {
                return await linkView(view, store.host, { pin });
              } finally {
                await store.close();
              }
            },
            unlink: (thumbprints) => unlinkFrom(spec, values, io, () => pin, thumbprints),
          }
        : {}),
    };
    // The card is released before linking: Windows' providers open their own connection to it.
    const onCard = await withCard(values, io, (card) => renewOnCard(card, client, o));
    const report = await finishRenewPass(onCard, client, o);
    // Declined at the question: nothing renewed, and the exit status says so (as retire's does).
    emit(io, values.json === true, { ok: !declined, ...report, ...(declined ? { declined: true } : {}) }, () => describeRenew(report) + (declined ? '\ndeclined: nothing renewed' : ''));
    return declined ? 1 : 0;
  } finally {
    client.close();
  }
};

/**
 * Retires a card handed back, with the card here: the service marks it retired, answers the
 * card's administrator challenge, and (where it does not do so itself) each of the card's
 * certificates is revoked (cessationOfOperation); then the card loses every container with its key
 * and certificate, gets the transport key and the next user's PIN, its `cardcf` counters move so
 * every cache drops what it knew, and this workstation's store forgets its certificates.
 */
export const retire: HandlerOf<typeof specs.cardRetire> = async ({ values }, io) => {
  const wanted = cardIdOption(values.card).toUpperCase();
  const confirm = confirmation(values.yes, io, 'retiring a card destroys its keys for good');
  const newPin = await readNewPin(io);
  const spec = values.store ?? defaultStoreSpec();
  const result = await withCard(values, io, async (card) => {
    const cardId = hex(await card.cardId());
    if (cardId !== wanted) throw new UsageError(line`the card here is ${cardId}, not ${wanted}: nothing was done`);
    const containers = await card.containers();
    const thumbprints = (await certificatesOnCard(card)).map((c) => c.thumbprint);
    if (confirm && !(await confirm(line`Retire card ${cardId}: revoke its certificates and delete its ${containers.length} container(s) (${containers.map((c) => c.name).join(', ') || 'none'}) with their keys? This cannot be undone.`))) return undefined;
    const challenge = await card.adminChallenge();
    const { answer, revoked } = await asOperator(values, io, async (client, session) => {
      const answer = await client.retireCard(session, cardId, hex(challenge));
      // The service revokes the card's certificates (cessationOfOperation) in the same transaction as it retires it.
      return { answer, revoked: await revokedRequests(client, session, cardId.toLowerCase(), answer.revoked) };
    });
    const wiped = await card.retire(fromHex(answer.response), fromHex(answer.transportKey), newPin);
    // retire() moved both counters: a cache keyed by the old ones does not match the empty card.
    const cardcf = await card.cardcf();
    return { cardId, ...wiped, revoked, thumbprints, cardcf: { containersFreshness: cardcf.containersFreshness, filesFreshness: cardcf.filesFreshness } };
  });
  if (!result) {
    emit(io, values.json === true, { ok: false, retired: false }, () => 'nothing done');
    return 1;
  }
  const unlinked = await unlinkFrom(spec, values, io, () => newPin, result.thumbprints);
  const { thumbprints: _t, ...shown } = result;
  emit(io, values.json === true, { ok: true, retired: true, ...shown, unlinked }, () =>
    line`card ${result.cardId} retired: ${result.revoked.length} certificate(s) revoked, ${result.deletedContainers.length} container(s) deleted with their keys, ${unlinked.length} store entr${unlinked.length === 1 ? 'y' : 'ies'} removed; transport key and the new initial PIN set; it can be enrolled again`,
  );
  return 0;
};

/** The request ids of the card's certificates the retirement revoked (`serials`: what the service's answer lists). */
async function revokedRequests(client: ServiceClient, session: string, cardId: string, serials: readonly string[]): Promise<string[]> {
  const revoked = new Set(serials);
  return (await client.requests(session, { cardId })).filter((r) => r.serial !== null && revoked.has(r.serial)).map((r) => r.id);
}

export const purge: HandlerOf<typeof specs.cardPurge> = async ({ values }, io) => {
  const chosen = values.expired === true || values.revoked === true || values.superseded === true;
  const server = values.server ?? io.env.CARDLINK_SERVER;
  // Without a choice: everything that can be known here (revoked only with a service to ask).
  const expired = chosen ? values.expired === true : true;
  const superseded = chosen ? values.superseded === true : true;
  const revoked = chosen ? values.revoked === true : server !== undefined;
  if (revoked && server === undefined) throw new UsageError('--revoked asks the service: give --server (or CARDLINK_SERVER)');
  const apply = values.yes === true;
  const pin = apply || revoked ? await readPin(io) : undefined;
  const client = revoked ? openClient(values, io) : undefined;
  const spec = values.store ?? defaultStoreSpec();
  try {
    const report = await withCard(values, io, (card) =>
      purgeOnCard(card, { expired, revoked, superseded, keys: values.keys === true, apply, now: new Date(), ...(pin !== undefined ? { pin } : {}), ...(client ? { client } : {}) }),
    );
    const unlinked = report.applied ? await unlinkFrom(spec, values, io, () => pin ?? '', report.plan.remove.map((r) => r.thumbprint)) : [];
    emit(io, values.json === true, { ok: true, ...report, unlinked }, () => {
      const lines = report.plan.remove.map((r) => line`${report.applied ? 'removed' : 'would remove'} '${r.container}' ${r.thumbprint} (${r.reasons.join(', ')}): ${r.subject}, ends ${r.notAfter}` + (values.keys === true ? ' with its key and container' : ''));
      for (const k of report.plan.keep) lines.push(line`keeps '${k.container}' ${k.thumbprint}, ends ${k.notAfter}`);
      if (report.plan.newDefault !== null) lines.push(line`${report.applied ? 'default container now' : 'would make the default'} '${report.plan.newDefault}'`);
      if (report.plan.remove.length === 0) lines.push('nothing to purge');
      else if (!report.applied) lines.push('dry run: nothing was changed; add --yes to remove them');
      return lines.join('\n');
    });
    return 0;
  } finally {
    client?.close();
  }
};
