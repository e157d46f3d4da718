import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runStory } from '../../demo/story.js';
import type { HandlerOf, specs } from '../catalog.js';

export const demo: HandlerOf<typeof specs.demo> = async ({ values }, io) => {
  const dir = values.dir ?? mkdtempSync(join(tmpdir(), 'cardlink-demo-'));
  const steps = await runStory(dir, (s) => {
    if (!values.json) io.stdout(`${s.step.padEnd(9)} ${s.text}\n`);
  });
  if (values.json) io.stdout(JSON.stringify({ ok: true, dir, steps }, null, 2) + '\n');
  return 0;
};
