import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runStory } from '../../demo/story.js';
import { parse } from '../args.js';
import type { Command } from '../io.js';

export const demoCommand: Command = {
  path: ['demo'],
  summary: 'run the seed story on an emulated card (no reader or server needed)',
  usage: 'cardlink demo [--dir DIR] [--json]',
  async run(argv, io) {
    const { values } = parse(argv, { dir: { type: 'string' } });
    const dir = values.dir ?? mkdtempSync(join(tmpdir(), 'cardlink-demo-'));
    const steps = await runStory(dir, (s) => {
      if (!values.json) io.stdout(`${s.step.padEnd(9)} ${s.text}\n`);
    });
    if (values.json) io.stdout(JSON.stringify({ ok: true, dir, steps }, null, 2) + '\n');
    return 0;
  },
};
