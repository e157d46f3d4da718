import { FACTORY, PivCard } from '../../src/piv/emulator/index.js';
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
