import { enroll as enrollCard } from '../../agent/enroll.js';
import type { HandlerOf, specs } from '../catalog.js';
import { fromHex } from '../../bytes.js';
import { emit, UsageError } from '../io.js';
import { withProgress } from '../progress.js';
import { readPin, readSecret } from '../secrets.js';
import { line } from '../terminal.js';
import { managementKeySource, withCard } from '../target.js';
import { openClient } from './admin.js';

const BITS: Record<string, 2048 | 3072 | 4096> = { '2048': 2048, '3072': 3072, '4096': 4096 };

export const enroll: HandlerOf<typeof specs.enroll> = async ({ values }, io) => {
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
  // PIV: the key is generated with the card management key, read only when the card is PIV.
  const managementKey = managementKeySource(io, values, 'cardlink enroll');
  const client = openClient(values, io);
  try {
    // Key generation on a real card takes 10 to 60 s: said on stderr after a second.
    const result = await withProgress(io, `enrolling: generating an RSA-${bits} key on the card and sending the request`, () =>
      withCard(
        values,
        io,
        async (card) => {
          const r = await enrollCard(card, client, { token, pin, bits, ...(values.container ? { container: values.container } : {}), ...(adminKey ? { adminKey } : {}) });
          return card.kind === 'piv' ? { app: card.kind, slot: (await card.container(r.container)).slot!.toString(16).toUpperCase(), ...r } : r;
        },
        { managementKey },
      ),
    ).finally(() => adminKey?.fill(0));
    emit(io, values.json === true, { ok: true, ...result }, () =>
      [
        line`request ${result.requestId}: ${result.state}`,
        line`card ${result.cardId.toUpperCase()}, container '${result.container}'` + ('slot' in result ? line` (PIV slot ${result.slot})` : '') + ' (key generated on the card)',
        !result.adminKey
          ? ''
          : result.adminKey.managed
            ? line`administrator key: the card's own, version ${result.adminKey.keyVersion}` + (result.adminKey.changed ? ' (set now)' : '')
            : line`administrator key: ${result.adminKey.reason}`,
        result.certificate !== null
          ? "issued already: run 'cardlink collect' to load it"
          : "waiting for approval: run 'cardlink collect' on any workstation with this card" + (result.retryAfter !== null ? line` (the service suggests after ${result.retryAfter} s)` : ''),
      ]
        .filter((l) => l !== '')
        .join('\n'),
    );
    return 0;
  } finally {
    client.close();
  }
};
