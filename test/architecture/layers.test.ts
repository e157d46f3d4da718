/**
 * The tree's shape, checked: imports point downward only (docs/architecture.md), there is no import
 * cycle, `src/windows/` never reaches into GIDS, `src/card/`'s index exports no session or cache
 * internals, and nothing in the repository points at material outside it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

function walk(dir: string, ext: RegExp): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p, ext));
    else if (ext.test(name)) out.push(p);
  }
  return out;
}

const SOURCES = walk('src', /\.ts$/);

/** Relative imports of one file (static, dynamic and re-exports), resolved to `src/...ts` paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [
    ...text.matchAll(/(?:import|export)\s[^'";]*?from\s+'([^']+)'/g),
    ...text.matchAll(/import\(\s*'([^']+)'\s*\)/g),
    ...text.matchAll(/^import\s+'([^']+)'/gm),
  ].map((m) => m[1]!);
  return specs.filter((s) => s.startsWith('.')).map((s) => normalize(join(dirname(file), s)).replace(/\.js$/, '.ts'));
}

const GRAPH = new Map(SOURCES.map((f) => [f, importsOf(f)]));

/** The layer a file belongs to; lower rank = lower layer. Root helpers are rank 0. */
const RANK: [prefix: string, rank: number][] = [
  ['src/minidriver/', 1],
  ['src/apdu/', 2],
  ['src/transport/', 2],
  ['src/gids/protocol/', 3],
  ['src/gids/host/', 4],
  ['src/gids/emulator/', 4],
  ['src/piv/protocol/', 3],
  ['src/piv/host/', 4],
  ['src/piv/emulator/', 4],
  ['src/vpcd/', 4],
  ['src/card/', 5],
  ['src/windows/', 6],
  ['src/service/', 6],
  ['src/agent/', 7],
  ['src/demo/', 8],
  ['src/cli/', 9],
];

function rankOf(file: string): number {
  for (const [prefix, rank] of RANK) if (file.startsWith(prefix)) return rank;
  if (/^src\/[^/]+\.ts$/.test(file)) return 0;
  throw new Error(`${file} is in no known layer: add its folder to RANK and docs/architecture.md`);
}

describe('architecture', () => {
  it('every import resolves to a file in src/', () => {
    const missing: string[] = [];
    for (const [file, deps] of GRAPH) for (const d of deps) if (!GRAPH.has(d)) missing.push(`${file} -> ${d}`);
    assert.deepEqual(missing, []);
  });

  it('imports point downward (or stay in their layer)', () => {
    const upward: string[] = [];
    for (const [file, deps] of GRAPH) {
      for (const d of deps) if (rankOf(d) > rankOf(file)) upward.push(`${file} -> ${d}`);
    }
    assert.deepEqual(upward, []);
  });

  it('has no import cycle', () => {
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (f: string, path: string[]): void => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'open') {
        cycles.push([...path.slice(path.indexOf(f)), f].join(' -> '));
        return;
      }
      state.set(f, 'open');
      for (const d of GRAPH.get(f) ?? []) visit(d, [...path, f]);
      state.set(f, 'done');
    };
    for (const f of GRAPH.keys()) visit(f, []);
    assert.deepEqual(cycles, []);
  });

  it('windows/ sees cards only through the card layer, never GIDS', () => {
    const bad = [...GRAPH].flatMap(([file, deps]) =>
      file.startsWith('src/windows/') ? deps.filter((d) => d.startsWith('src/gids/') || d.startsWith('src/piv/') || d.startsWith('src/transport/')).map((d) => `${file} -> ${d}`) : [],
    );
    assert.deepEqual(bad, []);
    const sessionUse = SOURCES.filter((f) => f.startsWith('src/windows/') && /\.session\b/.test(readFileSync(f, 'utf8')));
    assert.deepEqual(sessionUse, []);
  });

  it('the service never imports card, windows or GIDS code; the emulator and the driver never import each other; PIV and GIDS stay apart', () => {
    const bad = [...GRAPH].flatMap(([file, deps]) =>
      deps
        .filter(
          (d) =>
            (file.startsWith('src/service/') && /^src\/(card|windows|gids|transport)\//.test(d)) ||
            (file.startsWith('src/gids/host/') && d.startsWith('src/gids/emulator/')) ||
            (file.startsWith('src/gids/emulator/') && d.startsWith('src/gids/host/')) ||
            (file.startsWith('src/piv/host/') && d.startsWith('src/piv/emulator/')) ||
            (file.startsWith('src/piv/emulator/') && d.startsWith('src/piv/host/')) ||
            (file.startsWith('src/piv/') && d.startsWith('src/gids/')) ||
            (file.startsWith('src/gids/') && d.startsWith('src/piv/')),
        )
        .map((d) => `${file} -> ${d}`),
    );
    assert.deepEqual(bad, []);
  });

  it("the card layer's public surface holds no session or cache internals", async () => {
    const card = await import('../../src/card/index.js');
    const exported = Object.keys(card);
    for (const internal of ['GidsSession', 'CardFiles', 'describeContainers', 'certificatePathFor', 'keyIdOf', 'repairCard', 'checkCard']) {
      assert.ok(!exported.includes(internal), `src/card/index.ts exports ${internal}`);
    }
    const members = Object.getOwnPropertyNames(card.MinidriverCard.prototype);
    for (const internal of ['session', 'cache', 'transport', 'bump', 'putCmapfile', 'recall', 'remember', 'currentCardCf', 'publicKeyOf', 'readCmapfileFromCard', 'readMasterTableFromCard']) {
      assert.ok(!members.includes(internal), `MinidriverCard exposes ${internal}`);
    }
  });

  it("nothing points at material outside the repository (a clone stands alone)", () => {
    const files = [...walk('src', /\.ts$/), ...walk('test', /\.(ts|md|mjs)$/), ...walk('bench', /\.ts$/), ...walk('scripts', /./), ...walk('docs', /\.md$/), 'README.md'];
    const pattern = /\.\.\/shared|shared\/(notes|traces|seed|design)/;
    const hits = files.filter((f) => f !== relative('.', import.meta.filename) && pattern.test(readFileSync(f, 'utf8')));
    assert.deepEqual(hits, []);
  });
});
