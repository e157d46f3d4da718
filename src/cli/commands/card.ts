import { randomUUID, X509Certificate } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { hex, fromHex } from '../../bytes.js';
import { groupedHex, parseChallengeHex } from '../../admin-challenge.js';
import { MinidriverCard, type CheckReport, type ContainerInfo } from '../../card/index.js';
import type { HandlerOf, specs } from '../catalog.js';
import { required } from '../args.js';
import { emit, readUserFile, UsageError } from '../io.js';
import { CardError } from '../../card/errors.js';
import { GidsError } from '../../gids/host/errors.js';
import { toPem } from '../../pem.js';
import { certThumbprint, keyId } from '../../thumbprint.js';
import { withProgress } from '../progress.js';
import { readAdminKey, readNewPin, readPin, readSecret } from '../secrets.js';
import { managementKeySource, openTransport, targetApplication, withCard } from '../target.js';
import { forTerminal, line } from '../terminal.js';

/**
 * 01 02 … 08 three times: the administrator key of Microsoft's GIDS examples and GidsApplet's
 * tests, so the first one an attacker tries (security probe F22). Fine for an emulated card.
 */
const WELL_KNOWN_ADMIN_KEY = '010203040506070801020304050607080102030405060708';

export const init: HandlerOf<typeof specs.cardInit> = async ({ values }, io) => {
  if (values.serial !== undefined && !/^[0-9a-fA-F]{32}$/.test(values.serial)) throw new UsageError('--serial takes 32 hex digits');
  // The card first, so that nobody types a new PIN and a 48-digit key for a card that has them.
  // When it cannot be opened yet (no reader), the secrets are still read first and the same
  // failure comes after them, with the warning about the well-known key.
  // A new image file is blank: nothing to ask it.
  const fresh = values.image !== undefined && !existsSync(values.image);
  let transport = fresh ? undefined : await openTransport(values, { env: io.env }).catch(() => undefined);
  if (transport !== undefined) {
    const opened = transport;
    // An initialised card has the minidriver's cardid; a blank one has no file system yet.
    const initialised = await MinidriverCard.open(opened)
      .then((card) => card.cardId())
      .then(
        () => true,
        () => false,
      );
    if (initialised) {
      await opened.close();
      throw new GidsError('ALREADY_INITIALIZED', `${opened.name}: the card is already initialised (its PIN and administrator key are set; 'cardlink card pin change' changes the PIN)`);
    }
  }
  try {
    const pin = await readNewPin(io, 'CARDLINK_PIN');
    const adminKey = await readAdminKey(io, true);
    try {
      if (values.image === undefined && hex(adminKey).toLowerCase() === WELL_KNOWN_ADMIN_KEY) {
        io.stderr('cardlink card init: warning: this is the well-known default GIDS administrator key; anyone can unblock the PIN and reset this card with it. Use a random key on a real card (and keep it safe).\n');
      }
      transport ??= await openTransport(values, { createImage: true, env: io.env });
      const card = await MinidriverCard.initialize(transport, { pin, adminKey, ...(values.serial ? { serial: fromHex(values.serial) } : {}) });
      const { cardId, cardcf } = await card.refresh();
      const name = transport.name;
      emit(io, values.json === true, { ok: true, cardId: hex(cardId), cardcf }, () => line`initialised ${name}: cardid ${hex(cardId)}`);
    } finally {
      adminKey.fill(0);
    }
  } finally {
    await transport?.close();
  }
  return 0;
};

/** What `card info` says about a PIV card's PUK: plain PIV has no command that reads its tries without spending one. */
const PUK_TRIES_UNKNOWN =
  "not readable: plain PIV has no command that tells the PUK's tries without spending one (Yubico's GET METADATA does; this card does not offer it)";

/** A PIV slot with a key or a certificate, as `card info` lists it. */
interface PivSlotInfo {
  slot: string;
  container: string;
  algorithm: string;
  isDefault: boolean;
  certificate: { subject: string; notAfter: string; thumbprint: string } | null;
}

/**
 * `card info` on a PIV card: the application, the card id (the CHUID GUID, Windows' identity for
 * the card; null without a CHUID), each slot with a key cardlink knows and its certificate, and
 * the PIN's tries (the PUK's cannot be read on plain PIV, docs/piv.md).
 */
async function pivInfo(card: MinidriverCard): Promise<{ app: 'piv'; cardId: string | null; chuid: string; pin: { triesLeft: number; tryLimit: number }; puk: { triesLeft: null; note: string }; slots: PivSlotInfo[]; containers: number; certificates: number }> {
  let cardId: string | null = null;
  let chuid = 'present';
  try {
    cardId = hex(await card.cardId());
  } catch (e) {
    if (!(e instanceof CardError) || e.code !== 'NO_CHUID') throw e;
    chuid = "missing: Windows has no identity for the card ('cardlink card check --repair' writes one)";
  }
  const containers = await card.containers();
  const slots: PivSlotInfo[] = [];
  for (const c of containers) {
    let certificate: PivSlotInfo['certificate'] = null;
    if (c.certificateFile) {
      const der = await card.readCertificate(c.name).catch(() => undefined);
      if (der) {
        const x = new X509Certificate(der);
        certificate = { subject: x.subject.split('\n').join(', '), notAfter: new Date(x.validTo).toISOString(), thumbprint: certThumbprint(der) };
      }
    }
    slots.push({ slot: slotText(c.slot!), container: c.name, algorithm: c.algorithm ?? 'unknown', isDefault: c.isDefault, certificate });
  }
  const pin = await card.pinStatus();
  return { app: 'piv', cardId, chuid, pin, puk: { triesLeft: null, note: PUK_TRIES_UNKNOWN }, slots, containers: containers.length, certificates: slots.filter((x) => x.certificate).length };
}

export const info: HandlerOf<typeof specs.cardInfo> = async ({ values }, io) => {
  const result = await withCard(values, io, async (card) => {
    if (card.kind === 'piv') return pivInfo(card);
    // One read of cardid and cardcf, the containers from the cache when the counters allow.
    const { cardId, cardcf, containers } = await card.info();
    const pin = await card.pinStatus();
    return { cardId: hex(cardId), cardcf, pin, containers: containers.length, certificates: containers.filter((c) => c.certificateFile).length };
  });
  if ('app' in result) {
    const piv = result;
    emit(io, values.json === true, piv, () =>
      [
        appHeader('piv'),
        `card id     ${piv.cardId ?? '-'} (CHUID GUID${piv.cardId === null ? `: ${piv.chuid}` : ''})`,
        `PIN         ${piv.pin.triesLeft} of ${piv.pin.tryLimit} tries left${piv.pin.triesLeft === 0 ? ' (BLOCKED)' : ''}`,
        `PUK         tries ${piv.puk.note}`,
        `slots       ${piv.containers} with a key cardlink knows (${piv.certificates} with a certificate)`,
        ...piv.slots.map(
          (x) =>
            line`  ${x.slot}  ${x.container}  ${x.algorithm}${x.isDefault ? '  default' : ''}` +
            (x.certificate ? line`\n      ${x.certificate.subject}, until ${x.certificate.notAfter}  ${x.certificate.thumbprint}` : '\n      no certificate'),
        ),
      ].join('\n'),
    );
    return 0;
  }
  emit(io, values.json === true, result, () =>
    [
      `cardid      ${result.cardId}`,
      `cardcf      version ${result.cardcf.version}, pins ${result.cardcf.pinsFreshness}, containers ${result.cardcf.containersFreshness}, files ${result.cardcf.filesFreshness}`,
      `PIN         ${result.pin.triesLeft} of ${result.pin.tryLimit} tries left${result.pin.triesLeft === 0 ? ' (BLOCKED)' : ''}`,
      `containers  ${result.containers} (${result.certificates} with a certificate)`,
    ].join('\n'),
  );
  return 0;
};

export function containerLine(c: ContainerInfo): string {
  const alg = c.algorithm ?? `RSA-${c.keyBits}`;
  return `${String(c.index).padStart(2)}  ${forTerminal(c.name).padEnd(40)} ${c.keySpec === 'kx' ? 'AT_KEYEXCHANGE' : 'AT_SIGNATURE  '}  ${alg.padEnd(8)}  ${c.isDefault ? 'default' : '       '}  ${forTerminal(c.certificateFile ?? '-')}${c.slot !== undefined ? `  slot ${slotText(c.slot)}` : ''}`;
}

function slotText(slot: number): string {
  return slot.toString(16).toUpperCase().padStart(2, '0');
}

/** What the text output says about the application used (the JSON output has `app`). */
function appHeader(kind: 'gids' | 'piv'): string {
  return kind === 'piv' ? "PIV application: the containers are its key slots, named as Windows' PIV minidriver names them" : 'GIDS application';
}

/** What `card ls` shows of a certificate, as certutil -scinfo and ykman piv info do. */
interface CertificateSummary {
  subject: string;
  issuer: string;
  notBefore: string;
  notAfter: string;
  /** SHA-1 of the DER, upper-case hex: the thumbprint Windows shows. */
  thumbprint: string;
  expired: boolean;
}

function summarise(der: Uint8Array, now = new Date()): CertificateSummary {
  const c = new X509Certificate(der);
  const notAfter = new Date(c.validTo);
  return {
    subject: c.subject.split('\n').join(', '),
    issuer: c.issuer.split('\n').join(', '),
    notBefore: new Date(c.validFrom).toISOString(),
    notAfter: notAfter.toISOString(),
    thumbprint: certThumbprint(der),
    expired: notAfter < now,
  };
}

export const ls: HandlerOf<typeof specs.cardLs> = async ({ values }, io) => {
  const { app, containers } = await withCard(values, io, async (card) => {
    const all = await card.containers();
    const out: Array<ContainerInfo & { certificate: CertificateSummary | null }> = [];
    for (const c of all) {
      let certificate: CertificateSummary | null = null;
      let der: Uint8Array | undefined;
      try {
        der = c.certificateFile ? await card.readCertificate(c.index) : undefined;
      } catch (err) {
        // A PIV certificate object that does not decode is card check's finding (CERT_MALFORMED).
        if (!(err instanceof CardError)) throw err;
      }
      try {
        certificate = der ? summarise(der) : null;
      } catch {
        // A damaged certificate file is card check's finding; ls still lists the container.
      }
      out.push({ ...c, certificate });
    }
    return { app: card.kind, containers: out };
  });
  emit(io, values.json === true, { app, containers }, () =>
    (app === 'piv' ? appHeader(app) + '\n' : '') +
    (containers.length === 0
      ? 'no containers'
      : [
          ' #  name' + ' '.repeat(37) + 'key spec        size      default  certificate',
          ...containers.flatMap((c) => [
            containerLine(c),
            ...(c.certificate
              ? [
                  line`      subject   ${c.certificate.subject}`,
                  line`      issuer    ${c.certificate.issuer}`,
                  line`      valid     ${c.certificate.notBefore} to ${c.certificate.notAfter}` + (c.certificate.expired ? '  (EXPIRED)' : ''),
                  line`      SHA-1     ${c.certificate.thumbprint}`,
                ]
              : []),
          ]),
        ].join('\n')),
  );
  return 0;
};

const ALGS: Record<string, 1024 | 2048 | 3072 | 4096> = { rsa1024: 1024, rsa2048: 2048, rsa3072: 3072, rsa4096: 4096 };

export const gen: HandlerOf<typeof specs.cardGen> = async ({ values }, io) => {
  const curve = values.curve as 'p256' | 'p384' | undefined;
  if (curve !== undefined && values.alg !== undefined) throw new UsageError('give --alg (RSA) or --curve (ECC), not both');
  const bits = curve ? undefined : ALGS[values.alg ?? 'rsa2048'];
  const keySpec = values.keyspec;
  if (keySpec !== undefined && keySpec !== 'kx' && keySpec !== 'sig') throw new UsageError('--keyspec is kx or sig');
  // GIDS wants the PIN, PIV the management key (asked only when the card turns out to be PIV).
  let pin = targetApplication(values) === 'gids' ? await readPin(io) : undefined;
  const managementKey = managementKeySource(io, values, 'cardlink card gen');
  const started = Date.now();
  const created = await withCard(
    values,
    io,
    async (card) => {
      if (card.kind === 'gids') {
        if (curve) throw new UsageError(`--curve ${curve} is for PIV slots; GIDS keys are RSA (--alg rsa1024 to rsa4096)`);
        pin ??= await readPin(io);
        await card.verifyPin(pin);
      }
      // Windows' CSP names the containers it makes with a GUID, and so does enroll (agent/enroll.ts);
      // on PIV the container is a slot, 9A (PIV Authentication, Windows' default) unless named.
      const name = values.container ?? (card.kind === 'piv' ? '9a' : `lr-${randomUUID()}`);
      const label = curve ? `ECC ${curve === 'p256' ? 'P-256' : 'P-384'}` : `RSA-${bits}`;
      const made = await withProgress(io, `generating an ${label} key on the card`, () =>
        card.createContainer(name, { ...(bits !== undefined ? { bits } : {}), ...(curve ? { curve } : {}), ...(keySpec ? { keySpec } : {}), makeDefault: values.default === true }),
      );
      return { app: card.kind, label, ...made };
    },
    { managementKey },
  );
  const { publicKey, app, label, ...container } = created;
  const spki = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  if (values.out !== undefined && values.out !== '-') writeFileSync(values.out, spki);
  const elapsed = ((Date.now() - started) / 1000).toFixed(1);
  if (values.json === true) {
    emit(io, true, { ok: true, app, container, publicKey: spki, ...(values.out !== undefined && values.out !== '-' ? { out: values.out } : {}) }, () => '');
  } else {
    const where = app === 'piv' ? line`PIV slot ${slotText(container.slot!)}, container ${container.index} '${container.name}'` : line`container ${container.index} '${container.name}'`;
    io.stderr(line`generated ${label} key in ` + where + line` (${elapsed} s)` + (values.out !== undefined && values.out !== '-' ? line`; public key in ${values.out}` : '') + '\n');
    if (values.out === '-') io.stdout(spki);
  }
  return 0;
};

export const exportCert: HandlerOf<typeof specs.cardExport> = async ({ values }, io) => {
  const name = required(values.container, '--container');
  const der = await withCard(values, io, (card) => card.readCertificate(name));
  if (!der) throw new CardError('NO_CERTIFICATE', `container '${name}' has no certificate`);
  const pem = toPem(der, 'CERTIFICATE');
  const data = values.der === true ? der : pem;
  if (values.out !== undefined) writeFileSync(values.out, data);
  if (values.json === true) emit(io, true, { ok: true, container: name, thumbprint: certThumbprint(der), pem, ...(values.out !== undefined ? { out: values.out } : {}) }, () => '');
  else if (values.out !== undefined) io.stderr(line`wrote the certificate of '${name}' to ${values.out} (${values.der === true ? 'DER' : 'PEM'})` + '\n');
  else if (values.der === true) throw new UsageError('--der writes binary: give --out FILE');
  else io.stdout(pem);
  return 0;
};

export const csr: HandlerOf<typeof specs.cardCsr> = async ({ values }, io) => {
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
};

export const pin: HandlerOf<typeof specs.cardPin> = async ({ values, positionals }, io) => {
  const action = positionals[0];
  if (positionals.length !== 1 || !['verify', 'change', 'unblock', 'status'].includes(action!)) throw new UsageError('say verify, change, unblock or status');
  const oldPin = action === 'verify' || action === 'change' ? await readPin(io) : '';
  const newPin = action === 'change' || action === 'unblock' ? await readNewPin(io) : '';
  // Unblocking: GIDS with the administrator key, PIV with the PUK (800-73-4 Part 2 §3.2.3).
  const hint = action === 'unblock' ? targetApplication(values) : undefined;
  let adminKey = hint === 'gids' ? await readAdminKey(io) : undefined;
  const { app, ...status } = await withCard(values, io, async (card) => {
    if (action === 'verify') await card.verifyPin(oldPin);
    else if (action === 'change') await card.changePin(oldPin, newPin);
    else if (action === 'unblock' && card.kind === 'piv') await card.unblockPinWithPuk(await readSecret(io, 'CARDLINK_PUK', 'PUK: '), newPin);
    else if (action === 'unblock') await card.unblockPin((adminKey ??= await readAdminKey(io)), newPin);
    return { app: card.kind, ...(await card.pinStatus()) };
  }).finally(() => adminKey?.fill(0));
  const done = { verify: 'PIN verified', change: 'PIN changed', unblock: 'PIN unblocked and set', status: 'PIN status' }[action as 'verify'];
  emit(io, values.json === true, { ok: true, action, app, ...status }, () => `${done}: ${status.triesLeft} of ${status.tryLimit} tries left` + (app === 'piv' ? ' (PIV card)' : ''));
  return 0;
};

/**
 * Unblock by challenge/response, Windows' way (CardGetChallenge → CardAuthenticateChallenge →
 * CardUnblockPin): the card's fresh challenge, a response from whoever holds this card's
 * administrator key (the help desk over the phone, or the service with a one-time ticket), then
 * the new PIN, all in one card session (a new session would discard the challenge).
 */
export const unblock: HandlerOf<typeof specs.cardUnblock> = async ({ values }, io) => {
  const online = values.online === true;
  if (online === (values.challenge === true)) throw new UsageError('say --challenge (read the challenge to your help desk) or --online (ask the service with an unblock ticket)');
  const json = values.json === true;
  const say = (text: string): void => (json ? io.stderr(text) : io.stdout(text));
  const ticket = online ? await readSecret(io, 'CARDLINK_UNBLOCK_TICKET', 'unblock ticket: ') : undefined;
  if (!online && !io.promptSecret) throw new UsageError('card unblock --challenge asks for the response on a terminal: run it on one (or use --online with an unblock ticket)');
  // Loaded here: the service client is only needed online (start-up of the other card commands).
  const client = online ? (await import('./admin.js')).openClient(values, io) : undefined;
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
      const newPin = await readNewPin(io);
      await card.unblockPinWithResponse(response, newPin);
      return { cardId, challenge: hex(challenge), pin: await card.pinStatus() };
    });
    emit(io, json, { ok: true, cardId: result.cardId, challenge: result.challenge, via: online ? 'online' : 'challenge', ...result.pin }, () => `PIN unblocked and set: ${result.pin.triesLeft} of ${result.pin.tryLimit} tries left`);
  } finally {
    client?.close();
  }
  return 0;
};

export const files: HandlerOf<typeof specs.cardFiles> = async ({ values }, io) => {
  const listed = await withCard(values, io, async (card) => (card.kind === 'piv' ? { app: card.kind, objects: await card.dataObjects() } : { app: card.kind, files: await card.listFiles() }));
  if (listed.objects !== undefined) {
    // PIV has no file system (NIST SP 800-73-4 Part 1 §3: data objects named by tag): its objects, read-only.
    const { objects } = listed;
    emit(io, values.json === true, { app: listed.app, files: [], objects }, () =>
      ['PIV card: no file system; its data objects (read-only; the minidriver files Windows sees are built from them):', ...objects.map((o) => line`${String(o.size).padStart(6)}  ${o.tag.padEnd(6)}  ${o.name}`)].join('\n'),
    );
    return 0;
  }
  const list = listed.files ?? [];
  emit(io, values.json === true, { files: list }, () => list.map((f) => line`${String(f.size).padStart(6)}  ${f.path}`).join('\n'));
  return 0;
};

export const fileRead: HandlerOf<typeof specs.cardFilesRead> = async ({ values, positionals }, io) => {
  const path = positionals[0];
  if (positionals.length !== 1 || !path) throw new UsageError('name one file, e.g. mscp/cmapfile');
  const data = await withCard(values, io, (card) => card.readFile(path));
  if (values.out) writeFileSync(values.out, data);
  emit(io, values.json === true, { path, size: data.length, hex: hex(data) }, () => (values.out ? line`wrote ${data.length} bytes to ${values.out}` : hex(data)));
  return 0;
};

/**
 * The files the minidriver itself keeps (Smart Card Minidriver Specification, docs/sources.md: cardid,
 * cardcf, cardapps, mscp/cmapfile). Writing or deleting one by hand can make every container
 * unreachable, so it takes --force.
 */
const CORE_FILES = new Set(['cardid', 'cardcf', 'cardapps', 'mscp/cmapfile']);

function guardCoreFile(path: string, force: boolean | undefined, what: string): void {
  if (force !== true && CORE_FILES.has(path.toLowerCase().replace(/^\/+/, ''))) {
    throw new UsageError(`${path} is a minidriver core file: ${what} it by hand can leave every container unreachable; add --force if you mean it ('cardlink card check --repair' rebuilds mscp/cmapfile)`);
  }
}

export const fileWrite: HandlerOf<typeof specs.cardFilesWrite> = async ({ values, positionals }, io) => {
  const path = positionals[0];
  if (positionals.length !== 1 || !path) throw new UsageError('name one file, e.g. mscp/msroots');
  guardCoreFile(path, values.force, 'writing');
  const data = readUserFile(required(values.in, '--in'));
  const pinValue = await readPin(io);
  await withCard(values, io, async (card) => {
    await card.verifyPin(pinValue);
    await card.writeFile(path, data);
  });
  emit(io, values.json === true, { ok: true, path, size: data.length }, () => line`wrote ${data.length} bytes to ${path}`);
  return 0;
};

export const fileRm: HandlerOf<typeof specs.cardFilesRm> = async ({ values, positionals }, io) => {
  const path = positionals[0];
  if (positionals.length !== 1 || !path) throw new UsageError('name one file');
  guardCoreFile(path, values.force, 'deleting');
  const pinValue = await readPin(io);
  await withCard(values, io, async (card) => {
    await card.verifyPin(pinValue);
    await card.deleteFile(path);
  });
  emit(io, values.json === true, { ok: true, path }, () => line`deleted ${path}`);
  return 0;
};

export const install: HandlerOf<typeof specs.cardInstall> = async ({ values, positionals }, io) => {
  const file = positionals[0]!;
  const bytes = readUserFile(file);
  // Loaded here: the PKCS#7 reader is only needed by install (start-up of the other commands).
  const { readCertificates, certsOnlyPkcs7, isCaCertificate } = await import('../../card/certificate-input.js');
  const certs = readCertificates(bytes, file);
  // GIDS writes with the PIN, PIV with the management key (asked only when the card is PIV).
  let pinValue = targetApplication(values) === 'gids' ? await readPin(io) : undefined;
  const managementKey = managementKeySource(io, values, 'cardlink card install');
  const outcome = await withCard(values, io, async (card) => {
    if (card.kind === 'piv' && values.roots === true) throw new UsageError('--roots writes mscp/msroots, a GIDS file: a PIV card has no file system');
    // The certificate whose key is on the card; the rest of a chain is named and left out.
    let chosen = certs[0]!;
    if (certs.length > 1) {
      const keys = new Set<string>();
      for (const c of await card.containers()) {
        const key = await card.publicKey(c.index).catch((err: unknown) => {
          if (err instanceof CardError) return undefined; // a PIV slot whose key is unknown
          throw err;
        });
        if (key) keys.add(keyId(key));
      }
      const onCard = certs.filter((c) => keys.has(c.keyId));
      chosen = onCard[0] ?? certs.find((c) => !isCaCertificate(c)) ?? chosen;
    }
    const others = certs.filter((c) => c !== chosen);
    if (card.kind === 'gids') {
      pinValue ??= await readPin(io);
      await card.verifyPin(pinValue);
    }
    const result = await card.installCertificate(chosen.der, { ...(values.container ? { container: values.container } : {}), makeDefault: values.default === true, force: values.force === true, verify: values.verify === true });
    let roots: typeof certs = [];
    if (values.roots === true) {
      roots = others.filter(isCaCertificate);
      if (roots.length === 0) throw new UsageError(`--roots: ${file} holds no CA certificate besides the one installed`);
      // Added to what msroots holds already, by thumbprint.
      const existing = await card.readFile('mscp/msroots').then(
        (b) => (b.length > 0 ? readCertificates(b, 'mscp/msroots') : []),
        () => [],
      );
      const all = [...existing, ...roots.filter((r) => !existing.some((e) => e.thumbprint === r.thumbprint))];
      if (all.length > existing.length) await card.writeFile('mscp/msroots', certsOnlyPkcs7(all));
    }
    return { result, chosen, others, roots, app: card.kind };
  }, { managementKey });
  const { result, chosen, others, roots, app } = outcome;
  if (result.chuid?.written) io.stderr(line`cardlink card install: the PIV card had no CHUID: wrote one (card ${result.chuid.guid}); Windows names its containers from it` + '\n');
  const describe = (c: (typeof others)[number]) => ({ subject: c.subject, thumbprint: c.thumbprint, ca: isCaCertificate(c) });
  const ignored = others.filter((o) => !roots.includes(o)).map(describe);
  const freshness = result.cardcf ? line`; cardcf files counter now ${result.cardcf.filesFreshness}` : '; Windows sees it once the card is re-inserted';
  emit(io, values.json === true, { ok: true, app, ...result, subject: chosen.subject, thumbprint: chosen.thumbprint, ignored, roots: roots.map(describe) }, () =>
    [
      result.unchanged
        ? line`unchanged: ${result.file} of container ${result.container.index} '${result.container.name}' already holds this certificate (nothing written)`
        : line`${result.replaced ? 'replaced' : 'installed'} ${result.file} for container ${result.container.index} '${result.container.name}' (${result.derBytes} bytes DER, ${result.storedBytes} stored${result.verified ? ', read back and compared' : ''}` + freshness + ')',
      ...roots.map((r) => line`added to mscp/msroots: ${r.subject} (${r.thumbprint})`),
      ...ignored.map((r) => line`ignored: ${r.subject} (${r.thumbprint}${r.ca ? ', a CA certificate; --roots puts it into mscp/msroots' : ''})`),
    ].join('\n'),
  );
  return 0;
};

export const rmCert: HandlerOf<typeof specs.cardRmCert> = async ({ values }, io) => {
  const name = required(values.container, '--container');
  let pinValue = targetApplication(values) === 'gids' ? await readPin(io) : undefined;
  const managementKey = managementKeySource(io, values, 'cardlink card rm-cert');
  const result = await withCard(
    values,
    io,
    async (card) => {
      if (card.kind === 'gids') {
        pinValue ??= await readPin(io);
        await card.verifyPin(pinValue);
      }
      return { app: card.kind, ...(await card.removeCertificate(name)) };
    },
    { managementKey },
  );
  emit(io, values.json === true, { ok: true, removed: result.file !== undefined, ...result }, () =>
    result.file ? line`deleted ${result.file} of container '${name}'` : line`container '${name}' has no certificate: nothing to do`,
  );
  return 0;
};

export const rmContainer: HandlerOf<typeof specs.cardRmContainer> = async ({ values }, io) => {
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
};

function reportText(report: CheckReport, repaired: boolean): string {
  const card = report.app === 'piv' ? line`PIV card ${report.cardId || '(no CHUID)'}` : line`card ${report.cardId}`;
  if (report.findings.length === 0) return card + ': clean';
  const lines = [card + ': ' + `${report.findings.length} finding${report.findings.length === 1 ? '' : 's'}`];
  for (const f of report.findings) {
    lines.push(line`  ${f.severity.toUpperCase().padEnd(7)} ${f.code}: ${f.message}`);
    lines.push(line`          fix: ${f.fix}` + (repaired ? (f.fixed ? ' (done)' : ' (NOT done' + (f.failure ? line`: ${f.failure}` : '') + ')') : ''));
  }
  return lines.join('\n');
}

export const check: HandlerOf<typeof specs.cardCheck> = async ({ values }, io) => {
  const repair = values.repair === true;
  // GIDS repairs with the PIN, PIV with the management key (asked only when the card is PIV).
  let pinValue = repair && targetApplication(values) === 'gids' ? await readPin(io) : undefined;
  const adminText = repair ? io.env.CARDLINK_ADMIN_KEY : undefined;
  const adminKey = adminText && /^[0-9a-fA-F]{48}$/.test(adminText) ? fromHex(adminText) : undefined;
  const managementKey = managementKeySource(io, values, 'cardlink card check');
  const { report, after } = await withCard(
    values,
    io,
    async (card) => {
      if (!repair) return { report: await card.check(), after: undefined };
      if (card.kind === 'gids') {
        pinValue ??= await readPin(io);
        await card.verifyPin(pinValue);
      }
      const done = await card.repair(adminKey ? { adminKey } : {});
      return { report: done.before, after: done.after };
    },
    { managementKey },
  );
  adminKey?.fill(0);
  const remaining = after ? after.findings : report.findings;
  emit(io, values.json === true, { ok: remaining.length === 0, ...(report.app ? { app: report.app } : {}), cardId: report.cardId, ...(report.cardcf ? { cardcf: report.cardcf } : {}), findings: report.findings, ...(after ? { remaining: after.findings } : {}) }, () =>
    reportText(report, repair) + (after && report.findings.length > 0 ? `\nafter repair: ${after.findings.length === 0 ? 'clean' : after.findings.map((f) => f.code).join(', ')}` : ''),
  );
  return remaining.length === 0 ? 0 : 1;
};

