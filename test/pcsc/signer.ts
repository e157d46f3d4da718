/**
 * Another program using the card: holds a shared PC/SC connection and signs in a loop for the
 * given seconds, then prints {ok, failed, errors} as JSON. Run as its own process by agent.test.ts.
 * Usage: node --import tsx test/pcsc/signer.ts READER CONTAINER SECONDS
 */
import { randomBytes } from 'node:crypto';
import { MinidriverCard } from '../../src/card/index.js';
import { openPcscTransport } from '../../src/transport/pcsc.js';
import { TEST_PIN } from '../helpers/card.js';

const [reader, container, seconds] = process.argv.slice(2);
const transport = await openPcscTransport({ reader: reader!, share: 'shared' });
let ok = 0;
let failed = 0;
const errors: string[] = [];
try {
  const card = await MinidriverCard.open(transport);
  await card.verifyPin(TEST_PIN);
  const end = Date.now() + Number(seconds) * 1000;
  while (Date.now() < end) {
    try {
      const sig = await card.sign(container!, new Uint8Array(randomBytes(32)), 'sha256');
      if (sig.length === 0) throw new Error('empty signature');
      ok++;
    } catch (err) {
      failed++;
      if (errors.length < 5) errors.push((err as Error).message);
    }
  }
} finally {
  await transport.close();
}
process.stdout.write(JSON.stringify({ ok, failed, errors }) + '\n');
