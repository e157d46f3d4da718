import { existsSync } from 'node:fs';
import { hex } from '../../bytes.js';
import { cardImageApplication, lockCardImage, readImageFile, withImagePath } from '../../card-image.js';
import { openCardImage } from '../../gids/emulator/index.js';
import { cardlinkHome } from '../../home.js';
import { openPivCardImage } from '../../piv/emulator/index.js';
import { VPCD_DEFAULT_HOST, VPCD_DEFAULT_PORT, attachToVpcd, parseVpcdAddress } from '../../vpcd/attach.js';
import type { HandlerOf, specs } from '../catalog.js';
import { required } from '../args.js';
import { emit, UsageError } from '../io.js';

/**
 * Puts the emulated card of an image file into a real reader: vpcd's virtual slot inside pcscd.
 * Runs until SIGTERM or SIGINT. SIGUSR2 pulls the card out of the reader, and the next SIGUSR2 puts
 * it back, as a user would between two commands (or in the middle of one). Not SIGUSR1: Node.js
 * answers that signal by opening its debugger port, whatever listeners the program installs.
 */
export const emulate: HandlerOf<typeof specs.emulate> = async ({ values }, io) => {
  const image = required(values.image, '--image');
  const { host, port } = parseVpcdAddress(values.vpcd ?? `${VPCD_DEFAULT_HOST}:${VPCD_DEFAULT_PORT}`);
  const json = values.json === true;
  // Held while the card is served: a command with --image on the same file is refused.
  const lock = await lockCardImage(image, 'emulate');
  const created = !existsSync(image);
  let card;
  let app: 'gids' | 'piv';
  try {
    // An existing image records its application; --app only chooses the kind of a new one.
    const existing = created ? undefined : readImageFile(image);
    try {
      app = existing === undefined ? ((values.app ?? 'gids') as 'gids' | 'piv') : cardImageApplication(existing);
    } catch (e) {
      throw withImagePath(e, image);
    }
    if (values.app !== undefined && values.app !== app) throw new UsageError(`${image} holds a ${app.toUpperCase()} card, not ${values.app.toUpperCase()}`);
    const home = cardlinkHome(io.env);
    card = app === 'piv' ? openPivCardImage(image, { create: true, home }) : openCardImage(image, { create: true, home });
  } catch (err) {
    lock.release();
    throw err;
  }

  const stopped = new AbortController();
  let waitingNoted = false;
  let ready = false;
  let reinserted = false;
  const waitingTimer = setTimeout(() => {
    if (!ready) {
      waitingNoted = true;
      io.stderr(`cardlink emulate: waiting for vpcd at ${host}:${port} (is pcscd running with the vpcd driver?)\n`);
    }
  }, 2000);
  const attachment = attachToVpcd(card, {
    host,
    port,
    signal: stopped.signal,
    onEvent: (e) => {
      if (e.type === 'disconnected' && e.reason === 'vpcd closed the connection') {
        io.stderr(`cardlink emulate: vpcd went away (pcscd stopped?); reconnecting to ${host}:${port}\n`);
      } else if (e.type === 'connected' && ready && !reinserted) {
        io.stderr(`cardlink emulate: reconnected to vpcd at ${host}:${port}\n`);
      }
      if (e.type === 'connected') reinserted = false;
    },
  });

  const onToggle = (): void => {
    if (attachment.inserted) {
      attachment.remove();
      io.stderr('cardlink emulate: card removed from the reader (SIGUSR2 again puts it back)\n');
    } else {
      reinserted = true;
      attachment.insert();
      io.stderr('cardlink emulate: card inserted\n');
    }
  };
  const done = new Promise<string>((resolve) => {
    const stop = (signal: string) => (): void => resolve(signal);
    const onTerm = stop('SIGTERM');
    const onInt = stop('SIGINT');
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onInt);
    stopped.signal.addEventListener('abort', () => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
    });
  });
  process.on('SIGUSR2', onToggle);

  try {
    await Promise.race([attachment.whenConnected(), done]);
    ready = true;
    clearTimeout(waitingTimer);
    if (attachment.connected) {
      const facts = { ok: true, event: 'ready', image, app, created, vpcd: `${host}:${port}`, pid: process.pid, atr: hex(card.atr) };
      emit(io, json, facts, () =>
        `emulating ${image} (${app.toUpperCase()}${created ? ', new blank card' : ''}) on vpcd ${host}:${port}, ATR ${hex(card.atr)}, pid ${process.pid}: ` +
        'SIGUSR2 removes or re-inserts the card, SIGTERM stops',
      );
    }
    const signal = await done;
    if (waitingNoted && !attachment.connected) io.stderr(`cardlink emulate: stopped by ${signal} before vpcd answered\n`);
    return 0;
  } finally {
    clearTimeout(waitingTimer);
    process.off('SIGUSR2', onToggle);
    stopped.abort();
    lock.release();
  }
};
