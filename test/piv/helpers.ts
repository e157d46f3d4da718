import type { KeyObject } from 'node:crypto';
import { MinidriverCard } from '../../src/card/index.js';
import { FACTORY, PivCard } from '../../src/piv/emulator/index.js';
import { ALG } from '../../src/piv/protocol/constants.js';
import { issueOurs } from '../helpers/certs.js';
import { PivSession } from '../../src/piv/host/session.js';
import { MemoryTransport } from '../../src/transport/memory.js';

export const PIN = FACTORY.PIN;
export const PUK = FACTORY.PUK;
export const MGMT_KEY = FACTORY.MANAGEMENT_KEY;

export interface PivTestCard {
  card: PivCard;
  transport: MemoryTransport;
  session: PivSession;
}

/** A factory-fresh emulated PIV card, selected, in process. */
export async function blankPivCard(card: PivCard = PivCard.blank({ serial: 12345678 })): Promise<PivTestCard> {
  const transport = new MemoryTransport(card, 'piv-memory');
  const session = new PivSession(transport);
  await session.select();
  return { card, transport, session };
}

/** Sends one raw APDU (hex) and returns [data, sw]. */
export function raw(card: PivCard, hexApdu: string): { data: Uint8Array; sw: number } {
  const r = card.process(new Uint8Array(Buffer.from(hexApdu.replace(/\s+/g, ''), 'hex')));
  return { data: r.subarray(0, r.length - 2), sw: (r[r.length - 2]! << 8) | r[r.length - 1]! };
}

/**
 * Test hook for the link/model half of issue 16 (the PIV minidriver port and the Windows model's
 * PIV rule): a blank emulated PIV card on which the card API generated a key in `slot` and
 * installed a certificate from the test CA, as `card gen` + `card install` leave it.
 */
export async function pivCardWithCertificate(options: { slot?: string; curve?: 'p256' | 'p384'; bits?: 2048 } = {}): Promise<{ emulator: PivCard; card: MinidriverCard; certificate: Uint8Array; publicKey: KeyObject; container: string }> {
  const emulator = PivCard.blank({ serial: 12345678 });
  const managementKey = async () => ({ key: MGMT_KEY.slice(), alg: ALG.TDES });
  const card = await MinidriverCard.open(new MemoryTransport(emulator), { app: 'piv', managementKey });
  const made = await card.createContainer(options.slot ?? '9a', options.bits !== undefined ? { bits: options.bits } : { curve: options.curve ?? 'p256' });
  const certificate = await issueOurs(made.publicKey, 0, 'CN=PIV user');
  const installed = await card.installCertificate(certificate);
  return { emulator, card, certificate, publicKey: made.publicKey, container: installed.container.name };
}
