// Where a service process spent its CPU: the `.cpuprofile` files `node --cpu-prof` writes (Chrome
// DevTools' format: nodes with a callFrame and samples naming nodes), their self time summed by
// what the code belongs to (an npm package, cardlink's own modules, Node's internals, the idle
// loop, the garbage collector). `npm run bench serve -- --profile DIR` produces and prints them;
// open one in Chrome DevTools (Performance > Load profile) for the call tree.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** What a frame's code belongs to. */
function owner(frame: ProfileNode['callFrame']): string {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(frame.url);
  if (m) return m[1]!;
  if (/\/src\//.test(frame.url)) return `cardlink ${frame.url.replace(/^.*\/src\//, 'src/')}`;
  if (frame.url.startsWith('node:')) return frame.url.split('/')[0]!;
  if (frame.functionName === '(idle)') return '(idle)';
  if (frame.functionName === '(garbage collector)') return '(garbage collector)';
  if (frame.functionName === '(program)') return '(program: native, incl. synchronous I/O and crypto)';
  return frame.url === '' ? `(native) ${frame.functionName}` : frame.url;
}

export function summariseProfiles(dir: string, top = 25): void {
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()) {
    const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const totals = new Map<string, number>();
    let all = 0;
    p.samples.forEach((id, i) => {
      const dt = p.timeDeltas[i] ?? 0;
      const key = owner(byId.get(id)!.callFrame);
      totals.set(key, (totals.get(key) ?? 0) + dt);
      all += dt;
    });
    console.log(`${file}: ${(all / 1e6).toFixed(1)} s sampled, self time by owner`);
    console.table(
      [...totals].sort((a, b) => b[1] - a[1]).slice(0, top).map(([what, us]) => ({ what, seconds: Math.round(us / 1e4) / 100, share: `${((us / all) * 100).toFixed(1)}%` })),
    );
  }
}

if (process.argv[1]?.endsWith('cpu-profile.ts')) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node --import tsx bench/cpu-profile.ts DIR');
    process.exit(2);
  }
  summariseProfiles(dir);
}
