import { homedir } from 'node:os';
import { join } from 'node:path';

/** cardlink's per-user directory: `$CARDLINK_HOME`, else `~/.cardlink` (card cache, emulator seal key). */
export function cardlinkHome(env: NodeJS.ProcessEnv = process.env): string {
  const home = env.CARDLINK_HOME;
  return home !== undefined && home !== '' ? home : join(homedir(), '.cardlink');
}
