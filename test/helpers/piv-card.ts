/**
 * Emulated PIV cards for the card and Windows tests: a blank card, keys generated in slots and
 * certificates from the test CA written to them through PivSession with the management key —
 * what `card gen` / `card install` do for PIV, done by hand so these tests need neither.
 */
import type { KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { saveImageFile } from '../../src/card-image.js';
import { loadSealKey } from '../../src/gids/emulator/index.js';
import { PivMinidriver } from '../../src/card/piv-minidriver.js';
import { encodePivCardImage, FACTORY, PivCard } from '../../src/piv/emulator/index.js';
import { PivSession } from '../../src/piv/host/session.js';
import { ALG, OBJECT, type AsymmetricAlg } from '../../src/piv/protocol/constants.js';
import { encodeChuid } from '../../src/piv/protocol/objects.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { tempDir } from './card.js';
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

/**
 * A blank PIV card in an image file (`piv.json`, sealed for `home`), as `cardlink emulate --app
 * piv` makes one; with `aesKey` its management key is that AES-128 key instead of the factory 3DES one.
 */
export function blankPivImage(aesKey?: Uint8Array, dir = tempDir('cardlink-piv-cli-')): { image: string; home: string; dir: string } {
  const home = join(dir, 'home');
  const image = join(dir, 'piv.json');
  let state = PivCard.blank().snapshot();
  if (aesKey) state = { ...state, managementKey: { alg: ALG.AES_128, value: aesKey } };
  saveImageFile(image, encodePivCardImage(state, loadSealKey(home)));
  return { image, home, dir };
}
