import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runStory, type KeptService, type StoryStep } from '../../demo/story.js';
import type { HandlerOf, specs } from '../catalog.js';
import type { CliIo } from '../io.js';

/** Until Ctrl-C, SIGTERM or the caller's stop signal. */
function untilStopped(io: CliIo): Promise<void> {
  return new Promise((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      io.signal?.removeEventListener('abort', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    if (io.signal?.aborted) stop();
    else io.signal?.addEventListener('abort', stop);
  });
}

export const demo: HandlerOf<typeof specs.demo> = async ({ values }, io) => {
  const dir = values.dir ?? mkdtempSync(join(tmpdir(), 'cardlink-demo-'));
  const keep = values.keep === true;
  let kept: KeptService | undefined;
  const seen: StoryStep[] = [];
  const steps = await runStory(
    dir,
    (s) => {
      seen.push(s);
      if (!values.json) io.stdout(`${s.step.padEnd(9)} ${s.text}\n`);
    },
    keep
      ? {
          whileKept: async (k) => {
            kept = k;
            if (values.json) {
              io.stdout(JSON.stringify({ ok: true, dir, console: { url: k.consoleUrl, caCertificate: k.caCertificate, username: k.operator.username, password: k.operator.password }, steps: seen }, null, 2) + '\n');
            } else {
              io.stdout(
                `\nThe service keeps running: click through the story in the operator console.\n` +
                  `  console   ${k.consoleUrl}\n  sign in   ${k.operator.username} / ${k.operator.password}   (a one-time password for this run only)\n` +
                  `  CA        ${k.caCertificate} (the browser warns about this demo CA: accept it for this address)\n` +
                  `  times     the service's clock stays on the story's last day\nPress Ctrl-C to stop.\n`,
              );
            }
            await untilStopped(io);
          },
        }
      : {},
  );
  if (values.json && !kept) io.stdout(JSON.stringify({ ok: true, dir, steps }, null, 2) + '\n');
  return 0;
};
