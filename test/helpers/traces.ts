import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** OpenSC ↔ GidsApplet transcripts kept in the repository (see the README in that folder). */
export const TRACE_DIR = join(import.meta.dirname, '..', 'fixtures', 'opensc-gidsapplet');

export interface TraceExchange {
  command: string; // upper-case hex, no spaces
  response: string; // data + SW
}

/** The APDU/SW pairs of one pcscd `--apdu` log in test/fixtures/opensc-gidsapplet. */
export function readTrace(name: string): TraceExchange[] {
  const lines = readFileSync(join(TRACE_DIR, name), 'utf8').split('\n');
  const out: TraceExchange[] = [];
  let pending: string | undefined;
  for (const line of lines) {
    const m = /(APDU|SW): ([0-9A-F ]+)/.exec(line);
    if (!m) continue;
    const bytes = m[2]!.replace(/\s+/g, '');
    if (m[1] === 'APDU') pending = bytes;
    else if (pending !== undefined) {
      out.push({ command: pending, response: bytes });
      pending = undefined;
    }
  }
  return out;
}
