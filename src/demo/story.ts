import { createPublicKey, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { hex } from '../bytes.js';
import { MemoryCardCache, MinidriverCard, type CheckReport } from '../card/index.js';
import { openCardImage } from '../gids/card/index.js';
import { LocalCa } from '../pki/local-ca.js';
import { MemoryTransport } from '../transport/memory.js';
import { RecordingTransport } from '../transport/recorder.js';
import { AT_SIGNATURE } from '../windows/constants.js';
import { diagnose } from '../windows/doctor.js';
import { WinError } from '../windows/errors.js';
import { linkCard } from '../windows/link.js';
import { ManualScheduler } from '../windows/model/clock.js';
import { WindowsMachine } from '../windows/model/machine.js';
import { addCardCertToStore } from '../windows/model/seed-tool.js';
import { x509 } from '../x509.js';
import { seedLoad } from './seed-loader.js';

/** The container name of the seed story (shared/seed/README.md). */
export const SEED_CONTAINER = 'lr-e46f1586-7133-4284-895d-557e2261c24d';
/** A second container, loaded the seed's way for comparison. */
export const SEED_WAY_CONTAINER = 'lr-0b7c3a52-seed-way-loader-container';

export interface StoryStep {
  step: string;
  text: string;
  detail: Record<string, unknown>;
}

/**
 * The seed story on an emulated card in `dir`: key generated on the card and request sent on day
 * 0; certificate issued by a throwaway CA and loaded offline days later, once with `install` and
 * once the seed's way. `onStep` sees each step as it happens.
 */
export async function runStory(dir: string, onStep: (s: StoryStep) => void): Promise<StoryStep[]> {
  const steps: StoryStep[] = [];
  const say = (step: string, text: string, detail: Record<string, unknown> = {}): void => {
    const s = { step, text, detail };
    steps.push(s);
    onStep(s);
  };
  const image = join(dir, 'card.json');
  // Throwaway secrets for a throwaway card: random per run, never printed or stored in the clear.
  const pin = (100000 + (randomBytes(4).readUInt32BE(0) % 900000)).toString();
  const adminKey = randomBytes(24);
  const cache = new MemoryCardCache(); // the workstation's card cache
  const emulator = openCardImage(image, { create: true });
  const transport = new RecordingTransport(new MemoryTransport(emulator, image));
  // The Windows side: a model machine (registry, Smart Card service, Certificate Propagation) with
  // the same card in its reader, through its own session.
  const scheduler = new ManualScheduler();
  const machine = new WindowsMachine({ dir: join(dir, 'windows'), scheduler, propagation: { delayMs: 30_000 } });
  try {
    const card = await MinidriverCard.initialize(transport, { pin, adminKey, cache });
    const { cardId } = await card.refresh();
    say('init', `blank GIDS card initialised in ${image}, cardid ${hex(cardId)} (${transport.count} APDUs)`, { image, cardId: hex(cardId), apdus: transport.count });

    // Day 0: key pair generated on the card, request sent online.
    await card.verifyPin(pin);
    transport.clear();
    const main = await card.createContainer(SEED_CONTAINER, { keySpec: 'kx', bits: 2048 });
    say('day 0', `RSA-2048 key generated on the card in container ${main.index} '${SEED_CONTAINER}' (${transport.count} APDUs); the private key never leaves the card`, {
      container: SEED_CONTAINER,
      apdus: transport.count,
    });
    const request = await card.csr(SEED_CONTAINER, 'CN=Demo User, O=cardlink demo');
    writeFileSync(join(dir, 'request.pem'), request.pem);
    const csr = new x509.Pkcs10CertificateRequest(request.der);
    say('request', `PKCS#10 request signed on the card (${request.der.length} bytes, signature valid: ${await csr.verify()}), sent to the CA`, {
      csr: join(dir, 'request.pem'),
      signatureValid: await csr.verify(),
    });
    const other = await card.createContainer(SEED_WAY_CONTAINER, { keySpec: 'sig', bits: 2048 });
    await card.containers(); // the workstation has seen the card: its cache is warm

    // Days later: the CA answers; the certificates are loaded offline.
    const ca = await LocalCa.create();
    // The CA knows the key only from the request.
    const requestedKey = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
    const cert = await ca.issue(requestedKey, { subject: 'CN=Demo User, O=cardlink demo', upn: 'demo.user@example.com' });
    writeFileSync(join(dir, 'certificate.pem'), cert.toString('pem'));
    transport.clear();
    const installed = await card.installCertificate(new Uint8Array(cert.rawData));
    say('day 3', `certificate issued by a throwaway CA, loaded with 'install' into ${installed.file} of '${installed.container.name}' (${installed.derBytes} B DER, ${installed.storedBytes} B stored, ${transport.count} APDUs, cardcf files counter moved to ${installed.cardcf.filesFreshness})`, {
      file: installed.file,
      apdus: transport.count,
    });
    const clean = await card.check();
    say('check', reportLine(clean), { findings: clean.findings });

    // The Windows machine: the card goes into its reader; link puts the certificate into
    // CurrentUser\My with its key provider info and proves it.
    const windowsCard = await MinidriverCard.open(new MemoryTransport(emulator, 'reader'), { cache });
    machine.insert(windowsCard);
    const user = machine.startProcess(() => pin);
    const linked = await linkCard(windowsCard, user.host);
    for (const l of linked.linked) {
      say('link', `${l.action} ${l.thumbprint.slice(0, 16)}… in CurrentUser\\My → '${l.container}' via ${l.keyProvInfo.providerName}, key spec ${l.keyProvInfo.keySpec}; private key acquired (${l.proof.api}), a random challenge signed on the card, signature verified`, {
        container: l.container,
        thumbprint: l.thumbprint,
        keyProvInfo: l.keyProvInfo,
        proof: l.proof,
      });
    }

    // Side by side, the seed's way: its loader writes the file and leaves cardcf alone, then its
    // addCardCertToStore tries to prove the private key from a bare certificate context.
    const otherCert = await ca.issue(other.publicKey, { subject: 'CN=Demo User (seed way), O=cardlink demo' });
    const file = await seedLoad(card.session, SEED_WAY_CONTAINER, new Uint8Array(otherCert.rawData));
    say('seed way', `the seed's loader wrote ${file} for '${SEED_WAY_CONTAINER}' and left cardcf alone`, { file });
    try {
      await addCardCertToStore(machine, { container: SEED_WAY_CONTAINER, pin, keySpec: AT_SIGNATURE });
      say('seed tool', 'addCardCertToStore succeeded (propagation had already run)', {});
    } catch (err) {
      if (!(err instanceof WinError)) throw err;
      say('seed tool', `addCardCertToStore: CryptAcquireCertificatePrivateKey failed with ${err.hresultName} 0x${(err.hresult >>> 0).toString(16).toUpperCase()}`, { hresult: err.hresult, name: err.hresultName });
    }
    const doctor = await diagnose(windowsCard, user.host, { target: `--image ${image} --store model:${join(dir, 'windows')}`, machine });
    for (const f of doctor.findings) {
      say('doctor', `${f.code}: ${f.message} → causes ${f.error.name} ${f.error.value}; fix: ${f.fix}`, { ...f });
    }
    const stale = await card.check();
    say('check', reportLine(stale), { findings: stale.findings });

    // The fix, cardlink's way: repair the card (moves cardcf), link, and the seed's own tool works.
    const repaired = await card.repair();
    const after = await card.check();
    say('repair', `${repaired.findings.filter((f) => f.fixed).map((f) => f.code).join(', ')} fixed; check now: ${after.findings.length === 0 ? 'clean' : after.findings.map((f) => f.code).join(', ')}`, {
      fixed: repaired.findings.filter((f) => f.fixed).map((f) => f.code),
      remaining: after.findings,
    });
    const relinked = await linkCard(windowsCard, user.host);
    say('link', relinked.linked.map((l) => `${l.action} '${l.container}' (proof verified)`).join('; '), { linked: relinked.linked.map((l) => ({ container: l.container, action: l.action })) });
    const retry = await addCardCertToStore(machine, { container: SEED_WAY_CONTAINER, pin, keySpec: AT_SIGNATURE });
    say('seed tool', `addCardCertToStore now succeeds at the first try (${retry.thumbprint.slice(0, 16)}…)`, { thumbprint: retry.thumbprint });
    return steps;
  } finally {
    adminKey.fill(0);
    machine.shutdown();
    await transport.close();
  }
}

function reportLine(r: CheckReport): string {
  if (r.findings.length === 0) return 'card check: clean';
  return `card check: ${r.findings.map((f) => `${f.code} — ${f.message}`).join('; ')}`;
}
