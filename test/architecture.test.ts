/**
 * The import graph of src/: no circles, and every import points down the layers
 *
 *   base (device, errors, format, random, suggest, version, limits, activity) < onnx < data, runtime, linalg, autodiff < transforms < eval
 *   < recipe < pipeline, inspect < plugin, cli, index
 *
 * Type-only imports count too: they are dependencies of the design even when they vanish at runtime.
 * Imports within one layer are allowed (data ← runtime, for instance) as long as they make no circle.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const SRC = resolve(new URL('../src/', import.meta.url).pathname);

/** Layers, lowest first; a file belongs to the first entry whose prefix its path (relative to src/) starts with. */
const LAYERS: [layer: number, prefixes: string[]][] = [
  [0, ['device.ts', 'errors.ts', 'format.ts', 'random.ts', 'suggest.ts', 'version.ts', 'limits.ts', 'activity.ts']],
  [1, ['onnx/']],
  [2, ['data/', 'runtime/', 'linalg/', 'autodiff/']],
  [3, ['transforms/']],
  [4, ['eval/']],
  [5, ['recipe/']],
  [6, ['pipeline.ts', 'pipeline/', 'inspect.ts']],
  [7, ['plugin/', 'cli.ts', 'cli/', 'index.ts']],
];

/**
 * Known upward imports, to be emptied as the refactors of issue #12 land. Each entry is
 * "from -> to" (paths relative to src/).
 */
const ALLOWED_UPWARD = new Set<string>([]);

/** Known import circles (files sorted, joined by " <-> "), to be emptied the same way. */
const ALLOWED_CIRCLES = new Set<string>([
]);

function layerOf(file: string): number {
  for (const [layer, prefixes] of LAYERS) if (prefixes.some((p) => file === p || (p.endsWith('/') && file.startsWith(p)))) return layer;
  throw new Error(`${file} is in no layer: add it to LAYERS in test/architecture.test.ts`);
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Relative specifiers a file imports or re-exports, statically or with a literal dynamic import(). */
function importSpecifiers(text: string): string[] {
  // Drop comments first, so that an example in a doc comment is no import.
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const specs: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g, // import x from '…', export { x } from '…', import type …
    /\bimport\s*['"]([^'"]+)['"]/g, // import '…' (side effects)
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g, // import('…'), typeof import('…')
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) if (m[1].startsWith('.')) specs.push(m[1]);
  return specs;
}

/** Edges of the import graph of src/, as paths relative to src/. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const abs of sourceFiles(SRC)) {
    const from = relative(SRC, abs);
    const to = importSpecifiers(readFileSync(abs, 'utf8')).map((s) => relative(SRC, resolve(dirname(abs), s.replace(/\.js$/, '.ts'))));
    graph.set(from, [...new Set(to)]);
  }
  return graph;
}

/** The import circles: strongly connected components with more than one file (or a file importing itself). */
function circles(graph: Map<string, string[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || graph.get(v)?.includes(v)) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

describe('src/ import graph', () => {
  const graph = importGraph();

  it('finds the imports of a file', () => {
    expect(graph.size).toBeGreaterThan(50);
    const specs = importSpecifiers(
      "/** import { no } from './comment.js'; */\nimport type { A } from './a.js';\nimport {\n  b,\n  c,\n} from '../b.js';\nexport { d } from './d.js';\nimport './e.js';\nconst f = await import('./f.js');\nimport * as ort from 'onnxruntime-node';\n",
    );
    expect(specs.sort()).toEqual(['../b.js', './a.js', './d.js', './e.js', './f.js']);
  });

  it('imports only files that exist', () => {
    const missing = [...graph].flatMap(([from, to]) => to.filter((t) => !graph.has(t)).map((t) => `${from} -> ${t}`));
    expect(missing).toEqual([]);
  });

  it('has no import circles', () => {
    const found = circles(graph).map((c) => c.join(' <-> '));
    expect(found.filter((c) => !ALLOWED_CIRCLES.has(c))).toEqual([]);
    expect([...ALLOWED_CIRCLES].filter((c) => !found.includes(c))).toEqual([]);
  });

  it('imports only downwards (same layer or lower)', () => {
    const upward: string[] = [];
    for (const [from, to] of graph) {
      for (const t of to) if (layerOf(t) > layerOf(from)) upward.push(`${from} -> ${t}`);
    }
    expect(upward.filter((e) => !ALLOWED_UPWARD.has(e))).toEqual([]);
    // An allow-list entry that no longer happens must go, so the list only shrinks.
    expect([...ALLOWED_UPWARD].filter((e) => !upward.includes(e))).toEqual([]);
  });

  it('ships no test-only code', () => {
    expect([...graph.keys()].filter((f) => /fixtures|\.test\.ts$/.test(f))).toEqual([]);
  });
});
