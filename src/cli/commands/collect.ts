import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { CardlinkError } from '../../errors.js';
import type { CollectReport } from '../../agent/collect.js';
import { finishRenewPass, renewOnCard, type RenewPassOptions } from '../../agent/renew.js';
import { unlinkCertificates } from '../../agent/store-link.js';
import { watch } from '../../agent/watch.js';
import { MinidriverCard, type ManagementKeySource } from '../../card/index.js';
import { defaultStoreSpec, openCertStoreHost } from '../../windows/hosts.js';
import { linkView } from '../../windows/link.js';
import type { HandlerOf, specs } from '../catalog.js';
import { emit, stopSignal, type CliIo } from '../io.js';
import { readPin } from '../secrets.js';
import { forTerminal, line } from '../terminal.js';
import { cardConnector, managementKeySource, openTransport, targetApplication, userCardCache, withCard, type ManagementKeyArgs, type TargetArgs } from '../target.js';
import { openClient } from './admin.js';

function describe(r: CollectReport): string {
  if (r.items.length === 0) return line`card ${r.cardId.toUpperCase()}: nothing requested with this card's keys`;
  const lines = r.items.map((i) => {
    const what = {
      installed: 'installed on the card',
      'already-on-card': 'already on the card',
      'delivered-before': 'delivered before',
      waiting: 'waiting for approval',
      rejected: 'rejected by an operator',
      revoked: 'revoked',
    }[i.action];
    return (
      line`${i.id}  '${i.container}': ` +
      what +
      (i.reason ? line` (${i.reason})` : '') +
      (i.revokedOnCard ? line`; STILL ON THE CARD: remove it with 'cardlink card rm-cert --container ${i.container}'` : '') +
      (i.linked ? ', linked in the store' : '') +
      (i.reported ? ', delivery reported' : '') +
      (i.thumbprint ? line`  ${i.thumbprint}` : '')
    );
  });
  for (const c of r.certificates ?? []) lines.push(line`'${c.container}': ends ${c.notAfter} (${c.daysLeft} days left)  ${c.thumbprint}`);
  for (const x of r.renewals ?? []) lines.push(line`'${x.container}' ${x.thumbprint}: renewal ${x.action}` + (x.reason ? line` (${x.reason})` : '') + (x.newContainer ? line`, new key in '${x.newContainer}'` : ''));
  for (const x of r.removed ?? []) lines.push(line`replaced: '${x.container}' ${x.thumbprint} deleted with its key` + (x.unlinked ? ', unlinked' : ''));
  if (r.retryAfter !== null) lines.push(line`the service asks to try again in ${r.retryAfter} s`);
  return lines.join('\n');
}

export const collect: HandlerOf<typeof specs.collect> = async ({ values }, io) => {
  const spec = values.store ?? defaultStoreSpec();
  const fromEnv = io.env.CARDLINK_PIN !== undefined && io.env.CARDLINK_PIN !== '';
  const pin: PinSource = { current: await readPin(io), ask: fromEnv ? undefined : () => readPin(io, 'CARDLINK_PIN', 'PIN (again): ') };
  // PIV: installing into a slot needs the card management key, read only when a write needs it.
  const managementKey = managementKeySource(io, values, 'cardlink collect');
  const client = openClient(values, io);
  // The PIN is read when used: the watch may have asked for a new one.
  const options = (): RenewPassOptions => ({
    pin: pin.current,
    host: hostname(),
    ...(spec
      ? {
          // Called after the card was released: the Base CSP and the KSP open their own (shared)
          // connection to the card, which fails (SCARD_E_SHARING_VIOLATION) while collect holds it.
          link: async (view) => {
            const store = await openCertStoreHost(spec, cardConnector(values, io.env), () => pin.current);
            try {
              // The PIN goes to the provider of a silent context: collect runs unattended.
              return await linkView(view, store.host, { pin: pin.current });
            } finally {
              await store.close();
            }
          },
          unlink: async (thumbprints) => {
            const store = await openCertStoreHost(spec, cardConnector(values, io.env), () => pin.current);
            try {
              return await unlinkCertificates(store.host, thumbprints);
            } finally {
              await store.close();
            }
          },
        }
      : {}),
    // The watch renews what is due on insertion, as the agent does ('cardlink renew' by hand).
    ...(values.watch ? { renew: {} } : {}),
  });
  const pass = async (card: MinidriverCard): Promise<() => Promise<CollectReport>> => {
    const o = options();
    const onCard = await renewOnCard(card, client, o);
    return () => finishRenewPass(onCard, client, o);
  };
  try {
    if (!values.watch) {
      const report = await (await withCard(values, io, pass, { managementKey }))();
      emit(io, values.json === true, { ok: true, ...report }, () => describe(report));
      return 0;
    }
    await watchCards(values, io, pin, pass, values.json === true, managementKey);
    return 0;
  } finally {
    client.close();
  }
};

/** Where the watch's PIN comes from: the environment (fixed) or the user at a prompt (asked again). */
interface PinSource {
  current: string;
  /** undefined when the PIN came from CARDLINK_PIN: nobody to ask, so a wrong one stops the watch. */
  ask: (() => Promise<string>) | undefined;
}

async function watchCards(target: TargetArgs & ManagementKeyArgs, io: CliIo, pin: PinSource, pass: (card: MinidriverCard) => Promise<() => Promise<CollectReport>>, json: boolean, managementKey: ManagementKeySource): Promise<void> {
  const stopping = stopSignal(io);
  const cache = userCardCache(io);
  let waitingSaid = false;
  try {
    const end = await watch({
      signal: stopping.signal,
      open: async () => {
        let transport;
        try {
          transport = await openTransport(target, { env: io.env });
        } catch (err) {
          // Said once, so a watch that waits is not mistaken for one that hangs.
          if (!waitingSaid) {
            waitingSaid = true;
            const what = target.image !== undefined && !existsSync(target.image) ? `the card image ${target.image} to appear` : `a card (${(err as Error).message})`;
            io.stderr(`cardlink collect: waiting for ${forTerminal(what)}\n`);
          }
          return undefined;
        }
        waitingSaid = false;
        let card;
        try {
          card = await MinidriverCard.open(transport, { cache, app: targetApplication(target), managementKey });
        } catch (err) {
          // Not left to the garbage collector: an open PC/SC handle locks the reader for others.
          await transport.close();
          throw err;
        }
        return {
          card,
          close: async () => {
            cache.flush();
            await transport.close();
          },
        };
      },
      pass,
      onWrongPin: async (err) => {
        io.stderr(`cardlink collect: ${forTerminal(err.message)}\n`);
        if (err.code === 'PIN_BLOCKED' || !pin.ask) return 'stop';
        try {
          pin.current = await pin.ask();
          return 'retry';
        } catch {
          return 'stop';
        }
      },
      onReport: (r) => (json ? io.stdout(JSON.stringify({ ok: true, at: new Date().toISOString(), ...r }) + '\n') : io.stdout(`${new Date().toISOString()}\n${describe(r)}\n`)),
      onError: (err, retryInMs) =>
        io.stderr(`cardlink collect: ${forTerminal((err as Error).message)}${retryInMs !== undefined ? ` (trying again in ${Math.ceil(retryInMs / 1000)} s, or when the card is re-inserted)` : ''}\n`),
    });
    if (end.reason === 'pin') {
      const why = end.error.code === 'PIN_BLOCKED' ? 'the PIN is blocked' : pin.ask ? 'no new PIN was given' : 'the PIN in CARDLINK_PIN was refused';
      // Never try the same PIN again by itself: every wrong try brings the card closer to blocked.
      throw new CardlinkError(end.error.code, `${why}: stopped watching so the card is not blocked (${end.error.message}); ${end.error.code === 'PIN_BLOCKED' ? "unblock it with 'cardlink card pin unblock'" : 'start again with the right PIN'}`);
    }
  } finally {
    stopping.release();
  }
}
