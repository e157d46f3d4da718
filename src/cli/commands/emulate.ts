import { existsSync } from 'node:fs';
import { hex } from '../../bytes.js';
import { cardImageApplication, readImageFile, withImagePath } from '../../card-image.js';
import { openCardImage } from '../../gids/emulator/index.js';
import { cardlinkHome } from '../../home.js';
import { openPivCardImage } from '../../piv/emulator/index.js';
import { VPCD_DEFAULT_HOST, VPCD_DEFAULT_PORT, attachToVpcd, parseVpcdAddress } from '../../vpcd/attach.js';
import { parse, required } from '../args.js';
import { emit, UsageError, type Command } from '../io.js';

/**
 * Puts the emulated card of an image file into a real reader: vpcd's virtual slot inside pcscd.
 * Runs until SIGTERM or SIGINT. SIGUSR2 pulls the card out of the reader, and the next SIGUSR2 puts
 * it back, as a user would between two commands (or in the middle of one). Not SIGUSR1: Node.js
 * answers that signal by opening its debugger port, whatever listeners the program installs.
 */
export const emulateCommand: Command = {
  path: ['emulate'],
  summary: 'put an emulated card (image file) into pcscd through vpcd, until stopped',
  usage: `cardlink emulate --image FILE [--app gids|piv] [--vpcd HOST:PORT] [--json]   (--app: the application of a new image, default gids; an existing image says which it holds; vpcd default ${VPCD_DEFAULT_HOST}:${VPCD_DEFAULT_PORT}; SIGUSR2 removes the card and the next one re-inserts it; SIGTERM stops)`,
  async run(argv, io) {
    const { values } = parse(argv, { image: { type: 'string' }, vpcd: { type: 'string' }, app: { type: 'string' } });
    const image = required(values.image, '--image');
    if (values.app !== undefined && values.app !== 'gids' && values.app !== 'piv') throw new UsageError(`--app is gids or piv, not ${values.app}`);
    const { host, port } = parseVpcdAddress(values.vpcd ?? `${VPCD_DEFAULT_HOST}:${VPCD_DEFAULT_PORT}`);
    const json = values.json === true;
    const created = !existsSync(image);
    // An existing image records its application; --app only chooses the kind of a new one.
    const existing = created ? undefined : readImageFile(image);
    let app: 'gids' | 'piv';
    try {
      app = existing === undefined ? (values.app ?? 'gids') : cardImageApplication(existing);
    } catch (e) {
      throw withImagePath(e, image);
    }
    if (values.app !== undefined && values.app !== app) throw new UsageError(`${image} holds a ${app.toUpperCase()} card, not ${values.app.toUpperCase()}`);
    const home = cardlinkHome(io.env);
    const card = app === 'piv' ? openPivCardImage(image, { create: true, home }) : openCardImage(image, { create: true, home });

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
    }
  },
};
