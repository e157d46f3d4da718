import { enroll } from '../../agent/enroll.js';
import { fromHex } from '../../bytes.js';
import { parse } from '../args.js';
import { emit, UsageError, type Command } from '../io.js';
import { readPin, readSecret } from '../secrets.js';
import { line } from '../terminal.js';
import { TARGET_OPTIONS, withCard } from '../target.js';
import { openClient } from './admin.js';

const BITS: Record<string, 2048 | 3072 | 4096> = { '2048': 2048, '3072': 3072, '4096': 4096 };

export const enrollCommand: Command = {
  path: ['enroll'],
  summary: 'generate a key on the card and request its certificate from the service',
  usage:
    'cardlink enroll --server URL [--reader NAME | --image FILE] [--container NAME] [--bits 2048] [--cacert FILE] [--json]\n' +
    '  the enrollment token from CARDLINK_TOKEN or a prompt, the PIN from CARDLINK_PIN or a prompt (never flags)',
  async run(argv, io) {
    const { values } = parse(argv, { ...TARGET_OPTIONS, server: { type: 'string' }, cacert: { type: 'string' }, token: { type: 'string' }, container: { type: 'string' }, bits: { type: 'string' } });
    const bits = BITS[values.bits ?? '2048'];
    if (!bits) throw new UsageError('--bits is 2048, 3072 or 4096');
    // Refused rather than unknown, so the user learns why: argv is readable by every user of the
    // machine (ps, /proc/PID/cmdline) and ends up in shell history.
    if (values.token !== undefined) throw new UsageError('--token is not accepted: a command line is visible to every user (ps) and kept in shell history; set CARDLINK_TOKEN or answer the prompt');
    const token = await readSecret(io, 'CARDLINK_TOKEN', 'enrollment token: ');
    const pin = await readPin(io);
    // Only for a card initialised with a private administrator key: lets enrollment replace it with the card's own.
    const localAdmin = io.env.CARDLINK_ADMIN_KEY;
    if (localAdmin !== undefined && localAdmin !== '' && !/^[0-9a-fA-F]{48}$/.test(localAdmin.replace(/\s+/g, ''))) throw new UsageError('CARDLINK_ADMIN_KEY is 48 hex digits (24 bytes, 3DES)');
    const adminKey = localAdmin ? fromHex(localAdmin) : undefined;
    const client = openClient(values, io);
    try {
      const result = await withCard(values, io, (card) => enroll(card, client, { token, pin, bits, ...(values.container ? { container: values.container } : {}), ...(adminKey ? { adminKey } : {}) })).finally(() => adminKey?.fill(0));
      emit(io, values.json === true, { ok: true, ...result }, () =>
        [
          line`request ${result.requestId}: ${result.state}`,
          line`card ${result.cardId}, container '${result.container}' (key generated on the card)`,
          !result.adminKey
            ? ''
            : result.adminKey.managed
              ? line`administrator key: the card's own, version ${result.adminKey.keyVersion}` + (result.adminKey.changed ? ' (set now)' : '')
              : line`administrator key: ${result.adminKey.reason}`,
          result.certificate !== null
            ? "issued already: run 'cardlink collect' to load it"
            : "waiting for approval: run 'cardlink collect' on any workstation with this card" + (result.retryAfter !== null ? line` (the service suggests after ${result.retryAfter} s)` : ''),
        ].filter((l) => l !== '').join('\n'),
      );
      return 0;
    } finally {
      client.close();
    }
  },
};
