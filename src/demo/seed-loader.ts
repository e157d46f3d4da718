import { deflateSync } from 'node:zlib';
import { concat, u16le } from '../bytes.js';
import { GidsSession } from '../gids/host/session.js';
import { CardError } from '../card/errors.js';
import { MSCP_DIRECTORY, certificateFileName, parseCmapfile } from '../minidriver/index.js';
import type { Transport } from '../transport/transport.js';

/**
 * The seed's offline loader, exactly as the seed question describes it (docs/sources.md#seed):
 * read cmapfile, find the container index XX by name, zlib-compress the DER, add the header,
 * write `mscp/kscXX`.
 * It never touches cardcf — the bug cardlink exists to fix and `card check` must find.
 * It talks GIDS over the card's connection on its own, as a separate tool would (the GIDS
 * application already selected and the PIN verified by whoever opened the connection).
 * Returns the file name it wrote. Kept in src/ only so that the demonstration can show the failure
 * side by side with the fix; the tests use it as their fixture.
 */
export async function seedLoad(transport: Transport, containerName: string, der: Uint8Array): Promise<string> {
  const session = new GidsSession(transport);
  const raw = await session.readFile(MSCP_DIRECTORY, 'cmapfile');
  if (!raw) throw new CardError('NO_CMAPFILE', 'the card has no mscp/cmapfile');
  const index = parseCmapfile(raw).findIndex((r) => r.name === containerName);
  if (index < 0) throw new CardError('NO_CONTAINER', `no container '${containerName}'`, { container: containerName });
  const name = certificateFileName(index, 'sig');
  const file = concat(new Uint8Array([0x01, 0x00]), u16le(der.length), new Uint8Array(deflateSync(der)));
  if (await session.locate(MSCP_DIRECTORY, name)) await session.writeFile(MSCP_DIRECTORY, name, file);
  else await session.createFile(MSCP_DIRECTORY, name, file);
  return `${MSCP_DIRECTORY}/${name}`;
}
