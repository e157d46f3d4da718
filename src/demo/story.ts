import { createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { hex } from '../bytes.js';
import { collect } from '../agent/collect.js';
import { enroll } from '../agent/enroll.js';
import { MemoryCardCache, MinidriverCard, type CheckReport } from '../card/index.js';
import { openCardImage } from '../gids/emulator/index.js';
import { ServiceClient } from '../service/client.js';
import { EmbeddedCa } from '../service/ca/embedded.js';
import { ManualClock, startService } from '../service/index.js';
import { MemoryTransport } from '../transport/memory.js';
import { RecordingTransport } from '../transport/recorder.js';
import { AT_SIGNATURE } from '../windows/constants.js';
import { diagnose, type DoctorFinding } from '../windows/doctor.js';
import { WinError } from '../windows/errors.js';
import { linkCard, linkView } from '../windows/link.js';
import { ManualScheduler } from '../windows/model/clock.js';
import { WindowsMachine } from '../windows/model/machine.js';
import { addCardCertToStore } from '../windows/model/seed-tool.js';
import { x509 } from '../x509.js';
import { seedLoad } from './seed-loader.js';

/** The container name of the seed story (docs/sources.md#seed). */
export const SEED_CONTAINER = 'lr-e46f1586-7133-4284-895d-557e2261c24d';
/** A second container, loaded the seed's way for comparison. */
export const SEED_WAY_CONTAINER = 'lr-0b7c3a52-6f2e-4d0a-9c1e-5eed0a7a10ad';

const USER = 'demo.user@example.com';

export interface StoryStep {
  step: string;
  text: string;
  detail: Record<string, unknown>;
}

/**
 * The seed story on embedded defaults, everything under `dir`: the enrollment service (SQLite,
 * embedded CA) on loopback, an emulated card, workstation A that enrolls, an operator who
 * approves days later, workstation B (its own cache and Windows store) that collects, installs,
 * links and signs; then, side by side, a certificate loaded the seed's way and what happens to it.
 */
/** The story's service, kept running for a newcomer to click through in the operator console (`demo --keep`). */
export interface KeptService {
  url: string;
  consoleUrl: string;
  caCertificate: string;
  /** A console operator made for this run (admin), with a password shown to the newcomer once. */
  operator: { username: string; password: string };
}

export async function runStory(dir: string, onStep: (s: StoryStep) => void, o: { whileKept?: (kept: KeptService) => Promise<void> } = {}): Promise<StoryStep[]> {
  const steps: StoryStep[] = [];
  const say = (step: string, text: string, detail: Record<string, unknown> = {}): void => {
    const s = { step, text, detail };
    steps.push(s);
    onStep(s);
  };
  // Throwaway secrets for a throwaway card and service: random per run, never printed.
  const pin = (100000 + (randomBytes(4).readUInt32BE(0) % 900000)).toString();
  const adminKey = randomBytes(24);
  const operator = { username: 'operator', password: randomBytes(18).toString('base64url') };
  const clock = new ManualClock(new Date());

  const image = join(dir, 'card.json');
  const emulator = openCardImage(image, { create: true });
  const service = await startService({ dataDir: join(dir, 'service'), host: '127.0.0.1', port: 0, passphrase: randomBytes(18).toString('base64url'), operator, clock, sweepIntervalMs: 0 });
  const client = new ServiceClient({ server: service.url, ca: service.caCertPem });
  const scheduler = new ManualScheduler();
  const machine = new WindowsMachine({ stateDir: join(dir, 'workstation-b', 'windows'), scheduler, propagation: { delayMs: 30_000 } });
  const closers: Array<() => Promise<void>> = [];
  try {
    // The card, blank, personalised once.
    const init = new RecordingTransport(new MemoryTransport(emulator, image));
    closers.push(() => init.close());
    const issuer = await MinidriverCard.initialize(init, { pin, adminKey });
    const { cardId } = await issuer.refresh();
    say('init', `blank GIDS card initialised in ${image}, cardid ${hex(cardId)} (${init.count} APDUs)`, { image, cardId: hex(cardId), apdus: init.count });
    say('service', `enrollment service on ${service.url} (SQLite and an embedded CA in ${join(dir, 'service')})`, { url: service.url });

    // Day 0, workstation A: key generated on the card, request signed on the card, submitted.
    const login = async (): Promise<string> => (await client.login(operator)).token;
    let session = await login();
    const { token } = await client.createToken(session, { user: USER, profile: 'smartcard-logon' });
    const wsA = await workstation(emulator, 'workstation A', closers);
    const enrolled = await enroll(wsA.card, client, { token, pin, container: SEED_CONTAINER });
    say('day 0', `workstation A: RSA-2048 key generated on the card in '${SEED_CONTAINER}', request signed on the card and submitted: ${enrolled.state} (retry after ${enrolled.retryAfter} s); the private key never leaves the card`, {
      requestId: enrolled.requestId,
      state: enrolled.state,
      container: enrolled.container,
    });
    // The same day, another enrollment system (the seed's) has a signature key made on the card too.
    await wsA.card.createContainer(SEED_WAY_CONTAINER, { keySpec: 'sig', bits: 2048 });
    const otherRequest = await wsA.card.csr(SEED_WAY_CONTAINER, 'CN=Demo User (seed way)');
    say('day 0', `the seed's enrollment system: signature key generated in '${SEED_WAY_CONTAINER}', request sent to its own CA`, { container: SEED_WAY_CONTAINER });

    // Days later: the operator approves; the CA issues.
    clock.advanceDays(3);
    session = await login(); // operator sessions do not last days
    const approved = await client.approve(session, enrolled.requestId);
    say('day 3', `the operator approves request ${enrolled.requestId}: ${approved.state}`, { state: approved.state });

    // Day 4, workstation B (another machine: its own cache and Windows store): collect.
    clock.advanceDays(1);
    const wsB = await workstation(emulator, 'workstation B', closers);
    machine.insert(wsB.card.minidriver());
    const user = machine.startProcess(() => pin);
    // Workstation B's clock is the story's: the certificate was issued on (simulated) day 3.
    const report = await collect(wsB.card, client, { pin, host: 'workstation-b', now: () => clock.now(), link: (view) => linkView(view, user.host) });
    for (const item of report.items) {
      say('day 4', `workstation B collects: ${item.action} into '${item.container}', linked into CurrentUser\\My: ${item.linked}, delivery reported: ${item.reported}`, { ...item });
    }
    const clean = await wsB.card.check();
    say('check', reportLine(clean), { findings: clean.findings });
    const proof = await linkCard(wsB.card.minidriver(), user.host);
    for (const l of proof.linked) {
      say('link', `'${l.container}' in CurrentUser\\My via ${l.keyProvInfo.providerName} (key spec ${l.keyProvInfo.keySpec}): private key acquired (${l.proof.api}), a random challenge signed on the card, signature verified`, {
        container: l.container,
        thumbprint: l.thumbprint,
        action: l.action,
        proof: l.proof,
      });
    }

    // Side by side, the seed's way, one cause at a time. First cause: no key link on the Windows
    // side. A certificate loaded by the seed's loader (cardcf left alone), then the seed's
    // addCardCertToStore proving the key from a bare context.
    const otherCa = await EmbeddedCa.inMemory({ name: 'CN=The seed system CA' });
    const requested = new x509.Pkcs10CertificateRequest(otherRequest.der);
    const seedKey = createPublicKey({ key: Buffer.from(requested.publicKey.rawData), format: 'der', type: 'spki' });
    const der = await otherCa.issueFor(seedKey, { subject: 'CN=Demo User (seed way)' });
    const file = await seedLoad(wsA.transport, SEED_WAY_CONTAINER, der);
    say('seed way', `the seed's CA answers too; its loader writes the certificate to ${file} and leaves cardcf alone`, { file });
    const seedTool = async (): Promise<{ thumbprint?: string; hresult?: number; name?: string }> => {
      try {
        return { thumbprint: (await addCardCertToStore(machine, { container: SEED_WAY_CONTAINER, pin, keySpec: AT_SIGNATURE })).thumbprint };
      } catch (err) {
        if (!(err instanceof WinError)) throw err;
        return { hresult: err.hresult, ...(err.hresultName ? { name: err.hresultName } : {}) };
      }
    };
    const thumb = (d: Uint8Array): string => new X509Certificate(d).fingerprint.replace(/:/g, '');
    const first = await seedTool();
    say(
      'seed tool',
      first.thumbprint
        ? 'addCardCertToStore succeeded'
        : `the seed's addCardCertToStore: CryptAcquireCertificatePrivateKey failed with ${first.name} 0x${(first.hresult! >>> 0).toString(16).toUpperCase()} — cause: the context made from KP_CERTIFICATE carries no CERT_KEY_PROV_INFO and Windows has no link for this key to heal it from (propagation has not run since the load). The cache plays no part: the file is new to it`,
      first,
    );
    const firstDoctor = await diagnose(wsB.card.minidriver(), user.host, { target: `--image ${image} --store model:${machine.stateDir}`, machine, cardCheck: () => wsB.card.check() });
    for (const f of firstDoctor.findings) say('doctor', doctorLine(f), { ...f });
    const linkedSeedWay = await linkCard(wsB.card.minidriver(), user.host);
    say('link', `link writes the missing key link: ${linkedSeedWay.linked.map((l) => `${l.action} '${l.container}'`).join(', ')} (proofs verified)`, { linked: linkedSeedWay.linked.map((l) => ({ container: l.container, action: l.action })) });
    const healed = await seedTool();
    say('seed tool', healed.thumbprint ? `the seed's addCardCertToStore now succeeds: link fixed the missing key link (the tool's bare context is healed from it)` : `the seed's tool still fails with ${healed.name}`, healed);

    // Second cause: the stale cache. The seed's CA renews the certificate (same key); the loader
    // overwrites the file and again leaves cardcf alone, so every cache keyed by it keeps the old one.
    const renewed = await otherCa.issueFor(seedKey, { subject: 'CN=Demo User (seed way, renewed)' });
    await seedLoad(wsA.transport, SEED_WAY_CONTAINER, renewed);
    say('seed way', `days later the seed's CA renews the certificate; the loader overwrites ${file}, cardcf untouched again`, { file, renewed: thumb(renewed) });
    const stale = await seedTool();
    say('seed tool', stale.thumbprint === thumb(der) ? `the seed's addCardCertToStore "succeeds" — with the OLD certificate: Windows' Smart Card cache still holds it under the unchanged counter` : `the seed's tool: ${stale.thumbprint ?? stale.name}`, { ...stale, old: stale.thumbprint === thumb(der) });
    const relinkedStale = await linkCard(wsB.card.minidriver(), user.host);
    const afterLink = await seedTool();
    say('link', `link alone puts the renewed certificate in CurrentUser\\My and proves it (${relinkedStale.linked.map((l) => `${l.action} '${l.container}'`).join(', ')}), yet the seed's tool still gets ${afterLink.thumbprint === thumb(der) ? 'the old certificate: link does not fix a stale cache' : 'the renewed one'}`, {
      seedToolAfterLink: afterLink,
      old: afterLink.thumbprint === thumb(der),
    });
    const doctor = await diagnose(wsB.card.minidriver(), user.host, { target: `--image ${image} --store model:${machine.stateDir}`, machine, cardCheck: () => wsB.card.check() });
    for (const f of doctor.findings) say('doctor', doctorLine(f), { ...f });
    const checked = await wsB.card.check();
    say('check', reportLine(checked), { findings: checked.findings });

    // What fixes the stale cache: moving cardcf (check --repair); Windows then reads the card.
    await wsB.card.verifyPin(pin);
    const { before: repaired, after } = await wsB.card.repair();
    say('repair', `${repaired.findings.filter((f) => f.fixed).map((f) => f.code).join(', ')} fixed; check now: ${after.findings.length === 0 ? 'clean' : after.findings.map((f) => f.code).join(', ')}`, {
      fixed: repaired.findings.filter((f) => f.fixed).map((f) => f.code),
      remaining: after.findings,
    });
    const relinked = await linkCard(wsB.card.minidriver(), user.host);
    say('link', relinked.linked.map((l) => `${l.action} '${l.container}' (proof verified)`).join('; '), { linked: relinked.linked.map((l) => ({ container: l.container, action: l.action })) });
    const retry = await seedTool();
    if (retry.thumbprint !== thumb(renewed)) throw new Error(`the seed tool should get the renewed certificate after the repair, got ${retry.thumbprint ?? retry.name}`);
    say('seed tool', `after check --repair the seed's addCardCertToStore succeeds at the first try with the renewed certificate (${retry.thumbprint.slice(0, 16)}…): the repair fixed the stale cache`, { thumbprint: retry.thumbprint, renewed: true });
    if (o.whileKept) {
      // Its own operator, not the story's: this password is the one the newcomer is shown.
      const console = { username: 'demo', password: randomBytes(15).toString('base64url') };
      await service.service.ensureOperator(console.username, console.password);
      await o.whileKept({ url: service.url, consoleUrl: service.consoleUrl, caCertificate: service.caCertPath, operator: console });
    }
    return steps;
  } finally {
    adminKey.fill(0);
    machine.shutdown();
    for (const close of closers.reverse()) await close();
    client.close();
    await service.close();
  }
}

/** A workstation's own connection to the card, with its own card cache. */
async function workstation(emulator: ReturnType<typeof openCardImage>, name: string, closers: Array<() => Promise<void>>) {
  const transport = new MemoryTransport(emulator, name);
  closers.push(() => transport.close());
  return { transport, card: await MinidriverCard.open(transport, { cache: new MemoryCardCache() }) };
}

function doctorLine(f: DoctorFinding): string {
  return `${f.code}: ${f.message} → ${f.error.name === 'S_OK' ? 'no Windows error' : `causes ${f.error.name} ${f.error.value}`}; fix: ${f.fix}`;
}

function reportLine(r: CheckReport): string {
  if (r.findings.length === 0) return 'card check: clean';
  return `card check: ${r.findings.map((f) => `${f.code} — ${f.message}`).join('; ')}`;
}
