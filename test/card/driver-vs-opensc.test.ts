import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hex } from '../../src/bytes.js';
import { GidsSession } from '../../src/gids/host/session.js';
import { GidsCard } from '../../src/gids/emulator/index.js';
import { MemoryTransport } from '../../src/transport/memory.js';
import { RecordingTransport } from '../../src/transport/recorder.js';
import { readTrace } from '../helpers/traces.js';

// test/fixtures/opensc-gidsapplet/initialize.txt: `gids-tool --initialize` with PIN 123456 and a
// zero administrator key; the card got cardid 1B FE 3A 81 1C 3C 44 60 44 87 D3 F4 84 EF F2 D5.
test('initialize sends exactly the APDUs gids-tool --initialize sends', async () => {
  const trace = readTrace('initialize.txt');
  const start = trace.findIndex((e) => e.command === '00A4040C09A00000039742544659');
  assert.ok(start > 0, 'trace has the gids-tool select');
  const reference = trace.slice(start, start + 25);
  assert.equal(reference.at(-1)!.command, '00440000');

  const recorder = new RecordingTransport(new MemoryTransport(GidsCard.blank()));
  const session = new GidsSession(recorder);
  await session.initialize({ pin: '123456', adminKey: new Uint8Array(24), serial: Buffer.from('1BFE3A811C3C44604487D3F484EFF2D5', 'hex') });
  const ours = recorder.records.map((r) => ({ command: hex(r.command), response: hex(r.response) }));
  assert.equal(ours.length, 25, 'gids-tool sends 25 APDUs to initialise');
  assert.deepEqual(
    ours.map((e) => e.command),
    reference.map((e) => e.command),
  );
  // The emulator answers as GidsApplet did, the "already initialised" probe included (6A82).
  assert.deepEqual(
    ours.map((e) => e.response),
    reference.map((e) => e.response),
  );
});

test('a second initialize is refused without touching the card', async () => {
  const card = GidsCard.blank();
  const s1 = new GidsSession(new MemoryTransport(card));
  await s1.initialize({ pin: '123456', adminKey: new Uint8Array(24) });
  const recorder = new RecordingTransport(new MemoryTransport(card));
  await assert.rejects(new GidsSession(recorder).initialize({ pin: '654321', adminKey: new Uint8Array(24) }), { code: 'ALREADY_INITIALIZED' });
  assert.equal(recorder.count, 2, 'select + probe only');
});
