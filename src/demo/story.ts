import { createPublicKey, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { hex } from '../bytes.js';
import { MemoryCardCache, MinidriverCard, type CheckReport } from '../card/index.js';
import { openCardImage } from '../gids/card/index.js';
import { LocalCa } from '../pki/local-ca.js';
import { MemoryTransport } from '../transport/memory.js';
import { RecordingTransport } from '../transport/recorder.js';
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
  const transport = new RecordingTransport(new MemoryTransport(openCardImage(image, { create: true }), image));
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

    const otherCert = await ca.issue(other.publicKey, { subject: 'CN=Demo User (seed way), O=cardlink demo' });
    const file = await seedLoad(card.session, SEED_WAY_CONTAINER, new Uint8Array(otherCert.rawData));
    say('seed way', `the seed's loader wrote ${file} for '${SEED_WAY_CONTAINER}' and left cardcf alone`, { file });
    const stale = await card.check();
    say('check', reportLine(stale), { findings: stale.findings });
    const repaired = await card.repair();
    const after = await card.check();
    say('repair', `${repaired.findings.filter((f) => f.fixed).map((f) => f.code).join(', ')} fixed; check now: ${after.findings.length === 0 ? 'clean' : after.findings.map((f) => f.code).join(', ')}`, {
      fixed: repaired.findings.filter((f) => f.fixed).map((f) => f.code),
      remaining: after.findings,
    });
    return steps;
  } finally {
    adminKey.fill(0);
    await transport.close();
  }
}

function reportLine(r: CheckReport): string {
  if (r.findings.length === 0) return 'card check: clean';
  return `card check: ${r.findings.map((f) => `${f.code} — ${f.message}`).join('; ')}`;
}
