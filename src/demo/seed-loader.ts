import { deflateSync } from 'node:zlib';
import { concat, u16le } from '../bytes.js';
import type { GidsSession } from '../gids/host/session.js';
import { CardError } from '../card/errors.js';
import { parseCmapfile } from '../minidriver/index.js';

/**
 * The seed's offline loader, exactly as the seed question describes it (docs/sources.md#seed):
 * read cmapfile, find the container index XX by name, zlib-compress the DER, add the header,
 * write `mscp/kscXX`.
 * It never touches cardcf — the bug cardlink exists to fix and `card check` must find.
 * Returns the file name it wrote. Kept in src/ only so that the demonstration can show the failure
 * side by side with the fix; the tests use it as their fixture.
 */
export async function seedLoad(session: GidsSession, containerName: string, der: Uint8Array): Promise<string> {
  const raw = await session.readFile('mscp', 'cmapfile');
  if (!raw) throw new CardError('NO_CMAPFILE', 'the card has no mscp/cmapfile');
  const index = parseCmapfile(raw).findIndex((r) => r.name === containerName);
  if (index < 0) throw new CardError('NO_CONTAINER', `no container '${containerName}'`, { container: containerName });
  const name = `ksc${index.toString(16).toUpperCase().padStart(2, '0')}`;
  const file = concat(new Uint8Array([0x01, 0x00]), u16le(der.length), new Uint8Array(deflateSync(der)));
  if (await session.locate('mscp', name)) await session.writeFile('mscp', name, file);
  else await session.createFile('mscp', name, file);
  return `mscp/${name}`;
}
