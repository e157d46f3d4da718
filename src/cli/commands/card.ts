import { readFileSync, writeFileSync } from 'node:fs';
import { hex, fromHex } from '../../bytes.js';
import { groupedHex, parseChallengeHex } from '../../admin-challenge.js';
import { MinidriverCard, type CheckReport, type ContainerInfo } from '../../card/index.js';
import { parse, required } from '../args.js';
import { emit, UsageError, type Command } from '../io.js';
import { readAdminKey, readPin, readSecret } from '../secrets.js';
import { openClient } from './admin.js';
import { TARGET_OPTIONS, openTransport, withCard } from '../target.js';
import { forTerminal, line } from '../terminal.js';

const TARGET = '[--image FILE | --reader NAME]';

/**
 * 01 02 … 08 three times: the administrator key of Microsoft's GIDS examples and GidsApplet's
 * tests, so the first one an attacker tries (security probe F22). Fine for an emulated card.
 */
const WELL_KNOWN_ADMIN_KEY = '010203040506070801020304050607080102030405060708';

const init: Command = {
  path: ['card', 'init'],
  summary: 'initialise a blank card (PIN from CARDLINK_PIN, admin key from CARDLINK_ADMIN_KEY)',
  usage: 'cardlink card init --image FILE | --reader NAME [--serial HEX32] [--json]',
  async run(argv, io) {
    const { values } = parse(argv, { ...TARGET_OPTIONS, serial: { type: 'string' } });
    if (values.serial !== undefined && !/^[0-9a-fA-F]{32}$/.test(values.serial)) throw new UsageError('--serial takes 32 hex digits');
    const pin = await readPin(io, 'CARDLINK_PIN', 'New PIN: ');
    const adminKey = await readAdminKey(io);
    if (values.image === undefined && hex(adminKey).toLowerCase() === WELL_KNOWN_ADMIN_KEY) {
      io.stderr('cardlink card init: warning: this is the well-known default GIDS administrator key; anyone can unblock the PIN and reset this card with it. Use a random key on a real card (and keep it safe).\n');
    }
    const transport = await openTransport(values, { createImage: true, env: io.env });
    try {
      const card = await MinidriverCard.initialize(transport, { pin, adminKey, ...(values.serial ? { serial: fromHex(values.serial) } : {}) });
      const { cardId, cardcf } = await card.refresh();
      emit(io, values.json === true, { ok: true, cardId: hex(cardId), cardcf }, () => line`initialised ${transport.name}: cardid ${hex(cardId)}`);
    } finally {
      adminKey.fill(0);
      await transport.close();
    }
    return 0;
  },
};

const info: Command = {
  path: ['card', 'info'],
  summary: 'card identity, freshness counters and PIN status',
  usage: `cardlink card info ${TARGET} [--json]`,
  async run(argv, io) {
    const { values } = parse(argv, TARGET_OPTIONS);
    const result = await withCard(values, io, async (card) => {
      const { cardId, cardcf, containers } = await card.info();
      const pin = await card.pinStatus();
      return { cardId: hex(cardId), cardcf, pin, containers: containers.length, certificates: containers.filter((c) => c.certificateFile).length };
    });
    emit(io, values.json === true, result, () =>
      [
        `cardid      ${result.cardId}`,
        `cardcf      version ${result.cardcf.version}, pins ${result.cardcf.pinsFreshness}, containers ${result.cardcf.containersFreshness}, files ${result.cardcf.filesFreshness}`,
        `PIN         ${result.pin.triesLeft} of ${result.pin.tryLimit} tries left${result.pin.triesLeft === 0 ? ' (BLOCKED)' : ''}`,
        `containers  ${result.containers} (${result.certificates} with a certificate)`,
      ].join('\n'),
    );
    return 0;
  },
};

export function containerLine(c: ContainerInfo): string {
  return `${String(c.index).padStart(2)}  ${forTerminal(c.name).padEnd(40)} ${c.keySpec === 'kx' ? 'AT_KEYEXCHANGE' : 'AT_SIGNATURE  '}  RSA-${c.keyBits}  ${c.isDefault ? 'default' : '       '}  ${forTerminal(c.certificateFile ?? '-')}`;
}

const ls: Command = {
  path: ['card', 'ls'],
  summary: 'list containers (name, index, key spec, key size, default, certificate)',
  usage: `cardlink card ls ${TARGET} [--json]`,
  async run(argv, io) {
    const { values } = parse(argv, TARGET_OPTIONS);
    const containers = await withCard(values, io, (card) => card.containers());
    emit(io, values.json === true, { containers }, () =>
      containers.length === 0 ? 'no containers' : [' #  name' + ' '.repeat(37) + 'key spec        size      default  certificate', ...containers.map(containerLine)].join('\n'),
    );
    return 0;
  },
};

const ALGS: Record<string, 1024 | 2048 | 3072 | 4096> = { rsa1024: 1024, rsa2048: 2048, rsa3072: 3072, rsa4096: 4096 };

const gen: Command = {
  path: ['card', 'gen'],
  summary: 'create a container and generate its key on the card',
  usage: `cardlink card gen ${TARGET} --container NAME [--alg rsa2048] [--keyspec kx|sig] [--default] [--json]`,
  async run(argv, io) {
    const { values } = parse(argv, { ...TARGET_OPTIONS, container: { type: 'string' }, alg: { type: 'string' }, keyspec: { type: 'string' }, default: { type: 'boolean' } });
    const name = required(values.container, '--container');
    const bits = ALGS[values.alg ?? 'rsa2048'];
    if (!bits) throw new UsageError(`--alg must be one of ${Object.keys(ALGS).join(', ')}`);
    const keySpec = values.keyspec ?? 'kx';
    if (keySpec !== 'kx' && keySpec !== 'sig') throw new UsageError('--keyspec is kx or sig');
    const pin = await readPin(io);
    const created = await withCard(values, io, async (card) => {
      await card.verifyPin(pin);
      return card.createContainer(name, { bits, keySpec, makeDefault: values.default === true });
    });
    const { publicKey, ...container } = created;
    const spki = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    emit(io, values.json === true, { ok: true, container, publicKey: spki }, () => line`generated RSA-${bits} key in container ${container.index} '${name}'` + `\n${spki}`);
    return 0;
  },
};

const csr: Command = {
  path: ['card', 'csr'],
  summary: 'build a PKCS#10 request signed by a container key on the card',
  usage: `cardlink card csr ${TARGET} --container NAME --subject "CN=..." --out FILE.pem [--json]`,
  async run(argv, io) {
    const { values } = parse(argv, { ...TARGET_OPTIONS, container: { type: 'string' }, subject: { type: 'string' }, out: { type: 'string' } });
    const name = required(values.container, '--container');
    const subject = required(values.subject, '--subject');
    const out = required(values.out, '--out');
    const pin = await readPin(io);
    const built = await withCard(values, io, async (card) => {
      await card.verifyPin(pin);
      return card.csr(name, subject);
    });
    writeFileSync(out, built.pem);
    emit(io, values.json === true, { ok: true, out, container: name, subject, bytes: built.der.length }, () => line`wrote ${out} (${built.der.length} bytes, signed on the card by '${name}')`);
    return 0;
  },
};

const pin: Command = {
  path: ['card', 'pin'],
  summary: 'PIN verify | change (CARDLINK_NEW_PIN) | unblock (admin key, CARDLINK_NEW_PIN) | status',
  usage: `cardlink card pin <verify|change|unblock|status> ${TARGET} [--json]`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, TARGET_OPTIONS, true);
    const action = positionals[0];
    if (positionals.length !== 1 || !['verify', 'change', 'unblock', 'status'].includes(action!)) throw new UsageError('say verify, change, unblock or status');
    const oldPin = action === 'verify' || action === 'change' ? await readPin(io) : '';
    const newPin = action === 'change' || action === 'unblock' ? await readPin(io, 'CARDLINK_NEW_PIN', 'New PIN: ') : '';
    const adminKey = action === 'unblock' ? await readAdminKey(io) : undefined;
    const status = await withCard(values, io, async (card) => {
      if (action === 'verify') await card.verifyPin(oldPin);
      else if (action === 'change') await card.changePin(oldPin, newPin);
      else if (action === 'unblock') await card.unblockPin(adminKey!, newPin);
      return card.pinStatus();
    }).finally(() => adminKey?.fill(0));
    const done = { verify: 'PIN verified', change: 'PIN changed', unblock: 'PIN unblocked and set', status: 'PIN status' }[action as 'verify'];
    emit(io, values.json === true, { ok: true, action, ...status }, () => `${done}: ${status.triesLeft} of ${status.tryLimit} tries left`);
    return 0;
  },
};

/**
 * Unblock by challenge/response, Windows' way (CardGetChallenge → CardAuthenticateChallenge →
 * CardUnblockPin): the card's fresh challenge, a response from whoever holds this card's
 * administrator key (the help desk over the phone, or the service with a one-time ticket), then
 * the new PIN, all in one card session (a new session would discard the challenge).
 */
const unblock: Command = {
  path: ['card', 'unblock'],
  summary: 'unblock the PIN by challenge/response: --challenge (help desk reads back a response) or --online (the service, with an unblock ticket)',
  usage:
    `cardlink card unblock --challenge ${TARGET} [--json]\n` +
    `cardlink card unblock --online --server URL [--cacert FILE] ${TARGET} [--json]\n` +
    '  the response is asked on the terminal; the new PIN from CARDLINK_NEW_PIN or a prompt; the online ticket from CARDLINK_UNBLOCK_TICKET or a prompt',
  async run(argv, io) {
    const { values } = parse(argv, { ...TARGET_OPTIONS, challenge: { type: 'boolean' }, online: { type: 'boolean' }, server: { type: 'string' }, cacert: { type: 'string' } });
    const online = values.online === true;
    if (online === (values.challenge === true)) throw new UsageError('say --challenge (read the challenge to your help desk) or --online (ask the service with an unblock ticket)');
    const json = values.json === true;
    const say = (text: string): void => (json ? io.stderr(text) : io.stdout(text));
    const ticket = online ? await readSecret(io, 'CARDLINK_UNBLOCK_TICKET', 'unblock ticket: ') : undefined;
    if (!online && !io.promptSecret) throw new UsageError('card unblock --challenge asks for the response on a terminal: run it on one (or use --online with an unblock ticket)');
    const client = online ? openClient(values, io) : undefined;
    try {
      const result = await withCard(values, io, async (card) => {
        const cardId = hex(await card.cardId());
        const challenge = await card.adminChallenge();
        let response: Uint8Array;
        if (client) {
          response = parseChallengeHex((await client.unblockResponseWithTicket(cardId, hex(challenge), ticket!)).response, 'response');
        } else {
          say(line`card      ${cardId}\n` + `challenge ${groupedHex(challenge)}\n` + 'Read the card id and the challenge to your help desk, then type the response they give you.\n');
          response = parseChallengeHex(await io.promptSecret!('Response: '), 'response');
        }
        const newPin = await readPin(io, 'CARDLINK_NEW_PIN', 'New PIN: ');
        await card.unblockPinWithResponse(response, newPin);
        return { cardId, challenge: hex(challenge), pin: await card.pinStatus() };
      });
      emit(io, json, { ok: true, cardId: result.cardId, challenge: result.challenge, via: online ? 'online' : 'challenge', ...result.pin }, () => `PIN unblocked and set: ${result.pin.triesLeft} of ${result.pin.tryLimit} tries left`);
    } finally {
      client?.close();
    }
    return 0;
  },
};

const files: Command = {
  path: ['card', 'files'],
  summary: 'the logical file system with sizes',
  usage: `cardlink card files ${TARGET} [--json]`,
  async run(argv, io) {
    const { values } = parse(argv, TARGET_OPTIONS);
    const list = await withCard(values, io, (card) => card.listFiles());
    emit(io, values.json === true, { files: list }, () => list.map((f) => line`${String(f.size).padStart(6)}  ${f.path}`).join('\n'));
    return 0;
  },
};

const fileRead: Command = {
  path: ['card', 'files', 'read'],
  summary: 'read a logical file (to --out, or hex on stdout)',
  usage: `cardlink card files read PATH ${TARGET} [--out FILE] [--json]`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { ...TARGET_OPTIONS, out: { type: 'string' } }, true);
    const path = positionals[0];
    if (positionals.length !== 1 || !path) throw new UsageError('name one file, e.g. mscp/cmapfile');
    const data = await withCard(values, io, (card) => card.readFile(path));
    if (values.out) writeFileSync(values.out, data);
    emit(io, values.json === true, { path, size: data.length, hex: hex(data) }, () => (values.out ? line`wrote ${data.length} bytes to ${values.out}` : hex(data)));
    return 0;
  },
};

const fileWrite: Command = {
  path: ['card', 'files', 'write'],
  summary: 'write a logical file from a local file (moves the cardcf files counter)',
  usage: `cardlink card files write PATH ${TARGET} --in FILE [--json]`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { ...TARGET_OPTIONS, in: { type: 'string' } }, true);
    const path = positionals[0];
    if (positionals.length !== 1 || !path) throw new UsageError('name one file, e.g. mscp/msroots');
    const data = new Uint8Array(readFileSync(required(values.in, '--in')));
    const pinValue = await readPin(io);
    await withCard(values, io, async (card) => {
      await card.verifyPin(pinValue);
      await card.writeFile(path, data);
    });
    emit(io, values.json === true, { ok: true, path, size: data.length }, () => line`wrote ${data.length} bytes to ${path}`);
    return 0;
  },
};

const fileRm: Command = {
  path: ['card', 'files', 'rm'],
  summary: 'delete a logical file (moves the cardcf files counter)',
  usage: `cardlink card files rm PATH ${TARGET} [--json]`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, TARGET_OPTIONS, true);
    const path = positionals[0];
    if (positionals.length !== 1 || !path) throw new UsageError('name one file');
    const pinValue = await readPin(io);
    await withCard(values, io, async (card) => {
      await card.verifyPin(pinValue);
      await card.deleteFile(path);
    });
    emit(io, values.json === true, { ok: true, path }, () => line`deleted ${path}`);
    return 0;
  },
};

const install: Command = {
  path: ['card', 'install'],
  summary: 'load a certificate (PEM or DER) into its container, Windows-ready',
  usage: `cardlink card install CERT ${TARGET} [--container NAME] [--default] [--verify] [--json]`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { ...TARGET_OPTIONS, container: { type: 'string' }, default: { type: 'boolean' }, verify: { type: 'boolean' } }, true);
    if (positionals.length !== 1) throw new UsageError('name one certificate file (PEM or DER)');
    const cert = new Uint8Array(readFileSync(positionals[0]!));
    const pinValue = await readPin(io);
    const result = await withCard(values, io, async (card) => {
      await card.verifyPin(pinValue);
      return card.installCertificate(cert, { ...(values.container ? { container: values.container } : {}), makeDefault: values.default === true, verify: values.verify === true });
    });
    emit(io, values.json === true, { ok: true, ...result }, () =>
      line`${result.replaced ? 'replaced' : 'installed'} ${result.file} for container ${result.container.index} '${result.container.name}' (${result.derBytes} bytes DER, ${result.storedBytes} stored${result.verified ? ', read back and compared' : ''}; cardcf files counter now ${result.cardcf.filesFreshness})`,
    );
    return 0;
  },
};

const rmCert: Command = {
  path: ['card', 'rm-cert'],
  summary: "delete a container's certificate (the key stays)",
  usage: `cardlink card rm-cert ${TARGET} --container NAME [--json]`,
  async run(argv, io) {
    const { values } = parse(argv, { ...TARGET_OPTIONS, container: { type: 'string' } });
    const name = required(values.container, '--container');
    const pinValue = await readPin(io);
    const result = await withCard(values, io, async (card) => {
      await card.verifyPin(pinValue);
      return card.removeCertificate(name);
    });
    emit(io, values.json === true, { ok: true, removed: result.file !== undefined, ...result }, () =>
      result.file ? line`deleted ${result.file} of container '${name}'` : line`container '${name}' has no certificate: nothing to do`,
    );
    return 0;
  },
};

const rmContainer: Command = {
  path: ['card', 'rm-container'],
  summary: 'delete a container, its key and its certificate (asks first; --yes without a terminal)',
  usage: `cardlink card rm-container ${TARGET} --container NAME [--yes] [--json]`,
  async run(argv, io) {
    const { values } = parse(argv, { ...TARGET_OPTIONS, container: { type: 'string' }, yes: { type: 'boolean' } });
    const name = required(values.container, '--container');
    const confirm = values.yes === true ? undefined : io.confirm;
    if (values.yes !== true && !confirm) throw new UsageError('deleting a container destroys its key for good: add --yes to confirm (there is no terminal to ask on)');
    const pinValue = await readPin(io);
    const result = await withCard(values, io, async (card) => {
      const c = await card.container(name);
      if (confirm) {
        const what = line`container '${c.name}' (RSA-${c.keyBits}, ${c.keySpec === 'kx' ? 'AT_KEYEXCHANGE' : 'AT_SIGNATURE'}` + (c.certificateFile ? line`, certificate ${c.certificateFile}` : ', no certificate') + ')';
        if (!(await confirm(`Delete ${what} and its key? The key cannot be recovered.`))) return undefined;
      }
      await card.verifyPin(pinValue);
      return card.deleteContainer(name);
    });
    if (!result) {
      emit(io, values.json === true, { ok: false, deleted: false, container: name }, () => 'nothing deleted');
      return 1;
    }
    emit(io, values.json === true, { ok: true, deleted: true, container: result.container, certificateFile: result.certificateFile ?? null }, () =>
      line`deleted container ${result.container.index} '${result.container.name}' and its key` + (result.certificateFile ? line`, and its certificate ${result.certificateFile}` : ''),
    );
    return 0;
  },
};

function reportText(report: CheckReport, repaired: boolean): string {
  if (report.findings.length === 0) return line`card ${report.cardId}: clean`;
  const lines = [line`card ${report.cardId}: ` + `${report.findings.length} finding${report.findings.length === 1 ? '' : 's'}`];
  for (const f of report.findings) {
    lines.push(line`  ${f.severity.toUpperCase().padEnd(7)} ${f.code}: ${f.message}`);
    lines.push(line`          fix: ${f.fix}` + (repaired ? (f.fixed ? ' (done)' : ' (NOT done' + (f.failure ? line`: ${f.failure}` : '') + ')') : ''));
  }
  return lines.join('\n');
}

const check: Command = {
  path: ['card', 'check'],
  summary: 'find (and with --repair fix) inconsistencies; exit 0 clean, 1 findings, 2 could not check',
  usage: `cardlink card check ${TARGET} [--repair] [--json]`,
  async run(argv, io) {
    const { values } = parse(argv, { ...TARGET_OPTIONS, repair: { type: 'boolean' } });
    const repair = values.repair === true;
    const pinValue = repair ? await readPin(io) : '';
    const adminText = repair ? io.env.CARDLINK_ADMIN_KEY : undefined;
    const adminKey = adminText && /^[0-9a-fA-F]{48}$/.test(adminText) ? fromHex(adminText) : undefined;
    const { report, after } = await withCard(values, io, async (card) => {
      if (!repair) return { report: await card.check(), after: undefined };
      await card.verifyPin(pinValue);
      const done = await card.repair(adminKey ? { adminKey } : {});
      return { report: done.before, after: done.after };
    });
    adminKey?.fill(0);
    const remaining = after ? after.findings : report.findings;
    emit(io, values.json === true, { ok: remaining.length === 0, cardId: report.cardId, cardcf: report.cardcf, findings: report.findings, ...(after ? { remaining: after.findings } : {}) }, () =>
      reportText(report, repair) + (after && report.findings.length > 0 ? `\nafter repair: ${after.findings.length === 0 ? 'clean' : after.findings.map((f) => f.code).join(', ')}` : ''),
    );
    return remaining.length === 0 ? 0 : 1;
  },
};

export const cardCommands: Command[] = [init, info, ls, gen, csr, install, rmCert, rmContainer, check, pin, unblock, files, fileRead, fileWrite, fileRm];
