/**
 * Emulated PIV cards for the card and Windows tests: a blank card, keys generated in slots and
 * certificates from the test CA written to them through PivSession with the management key —
 * what `card gen` / `card install` do for PIV, done by hand so these tests need neither.
 */
import type { KeyObject } from 'node:crypto';
import { PivMinidriver } from '../../src/card/piv-minidriver.js';
import { FACTORY, PivCard } from '../../src/piv/emulator/index.js';
import { PivSession } from '../../src/piv/host/session.js';
import { OBJECT, type AsymmetricAlg } from '../../src/piv/protocol/constants.js';
import { encodeChuid } from '../../src/piv/protocol/objects.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { issueOurs } from './certs.js';

export const PIV_PIN = FACTORY.PIN;
export const PIV_MGMT_KEY = FACTORY.MANAGEMENT_KEY;

/** The GUID of docs/piv.md's example: slot 9A's container is `1d8ac658-e065-92a0-85af-090b075fc105`. */
export const EXAMPLE_GUID = new Uint8Array(Buffer.from('58c68a1d65e0a09285af090b07aabbcc', 'hex'));

export interface PivFixture {
  card: PivCard;
  /** The writer's session (cardlink offline, or another tool), on its own connection. */
  writer: PivSession;
  /** A second connection for the minidriver port: Windows' side. */
  port: PivMinidriver;
  /** Generates a key in `slot` (management key authenticated) and returns its public key. */
  gen(slot: number, alg: AsymmetricAlg): Promise<KeyObject>;
  /** Issues a certificate for `publicKey` from the test CA and writes it to `slot`. */
  install(slot: number, publicKey: KeyObject, subject?: string, options?: { compress?: boolean }): Promise<Uint8Array>;
  /** Writes a CHUID with `guid`. */
  setChuid(guid: Uint8Array): Promise<void>;
}

let seq = 0;

/** A blank emulated PIV card, with a CHUID of `guid` unless `guid` is null. */
export async function pivFixture(guid: Uint8Array | null = EXAMPLE_GUID): Promise<PivFixture> {
  const card = PivCard.blank({ serial: 12345678 });
  const name = `piv-fixture-${++seq}`;
  const writer = new PivSession(new MemoryTransport(card, `${name}-writer`));
  await writer.select();
  await writer.authenticate(PIV_MGMT_KEY);
  const port = new PivMinidriver(new PivSession(new MemoryTransport(card, name)));
  const setChuid = async (g: Uint8Array): Promise<void> => {
    await writer.select();
    await writer.authenticate(PIV_MGMT_KEY);
    await writer.putObject(OBJECT.CHUID, encodeChuid({ guid: g, expires: '20450101' }));
  };
  if (guid) await setChuid(guid);
  return {
    card,
    writer,
    port,
    setChuid,
    gen: async (slot, alg) => {
      await writer.select();
      await writer.authenticate(PIV_MGMT_KEY);
      return writer.generateKey(slot, alg);
    },
    install: async (slot, publicKey, subject = 'CN=PIV User', options = {}) => {
      const der = await issueOurs(publicKey, 0, subject);
      await writer.select();
      await writer.authenticate(PIV_MGMT_KEY);
      await writer.writeCertificate(slot, der, options);
      return der;
    },
  };
}
