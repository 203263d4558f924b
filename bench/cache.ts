/**
 * Cold build vs cache hit on a ~100 MB model (plain copy: decode + re-encode + verify + sizes), median of
 * N runs each, every run in a fresh process:
 *
 * - compressBuild in-process: cold (empty cache), first hit in a fresh process (what a bundler start
 *   pays), repeated hits in one process, and a first hit without the stat cache (stats.json deleted:
 *   the source and the entry are re-hashed).
 * - the CLI as a whole process (`node dist/cli.js build` when dist/ is built, and `node --import tsx
 *   src/cli.ts build`): cold and warm.
 *
 * Target: a hit costs ≤ 150 ms of compressBuild for a 100 MB model. Wall times on a shared machine move
 * with its load; the CPU time (user + system) of the measured call is printed beside them.
 *
 *   npx tsx bench/cache.ts [--size-mb 100] [--runs 5] [--cold-runs 5] [--tsx]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'bench', 'out', 'cache');
const TSX = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const TARGET_MS = 150;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (ms: number) => `${ms.toFixed(ms < 100 ? 1 : 0)} ms`;

// ------------------------------------------------------------------------------------------- child

if (process.argv[2] === '--child') {
  const [mode, recipeFile, cacheDir, repeats] = process.argv.slice(3);
  const { loadRecipe } = await import('../src/recipe/index.js');
  const { compressBuild } = await import('../src/pipeline.js');
  const recipe = await loadRecipe(recipeFile);
  const build = recipe.builds[0];
  const times: number[] = [];
  const cpu: number[] = [];
  const cached: boolean[] = [];
  for (let i = 0; i < Number(repeats ?? 1); i++) {
    const c = process.cpuUsage();
    const t = performance.now();
    const r = await compressBuild(build, { cacheDir, recipeFile });
    times.push(performance.now() - t);
    const used = process.cpuUsage(c);
    cpu.push((used.user + used.system) / 1000);
    cached.push(r.cached);
  }
  console.log(JSON.stringify({ mode, times, cpu, cached }));
  process.exit(0);
}

// ------------------------------------------------------------------------------------------- main

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}
const SIZE_MB = arg('--size-mb', 100);
const RUNS = arg('--runs', 5);
const COLD_RUNS = arg('--cold-runs', 5);

function child(mode: 'cold' | 'warm', cacheDir: string, repeats = 1): { times: number[]; cpu: number[]; cached: boolean[] } {
  const p = spawnSync(process.execPath, ['--import', TSX, fileURLToPath(import.meta.url), '--child', mode, recipe, cacheDir, String(repeats)], {
    cwd: OUT,
    encoding: 'utf8',
    env: { ...process.env, CI: '1' },
    maxBuffer: 1 << 26,
  });
  if (p.status !== 0) throw new Error(`child failed (${p.status}): ${p.stderr}`);
  return JSON.parse(p.stdout.trim().split('\n').pop()!);
}

function wall(cmd: string[], cacheDir: string): number {
  const t = performance.now();
  const p = spawnSync(process.execPath, [...cmd, 'build', recipe, '--out', path.join(OUT, 'dist'), '--cache-dir', cacheDir, '--quiet'], {
    cwd: OUT,
    encoding: 'utf8',
    env: { ...process.env, CI: '1' },
  });
  const ms = performance.now() - t;
  if (p.status !== 0) throw new Error(`CLI failed (${p.status}): ${p.stderr}`);
  return ms;
}

mkdirSync(OUT, { recursive: true });
const model = path.join(OUT, `mlp-${SIZE_MB}mb.onnx`);
if (!existsSync(model)) {
  const { makeSynthetic, writeSynthetic } = await import('./lib/synthetic.js');
  writeSynthetic(makeSynthetic('mlp', { sizeMb: SIZE_MB }), model);
}
const bytes = statSync(model).size;
const recipe = path.join(OUT, 'compress.yaml');
writeFileSync(recipe, `defaults:\n  device: cpu\nmodels:\n  mlp:\n    source: ${path.basename(model)}\n`);
console.log(`model: ${path.relative(ROOT, model)}, ${(bytes / 1e6).toFixed(1)} MB; ${RUNS} runs (cold: ${COLD_RUNS}), each in a fresh process; load average ${os.loadavg()[0].toFixed(1)} on ${os.availableParallelism()} cores\n`);

const report = (label: string, times: number[], note?: string, cpu?: number[]) => {
  const c = cpu ? `  cpu ${fmt(median(cpu)).padStart(8)}` : ''.padEnd(15);
  console.log(`${label.padEnd(52)} median ${fmt(median(times)).padStart(8)}${c}   [${times.map((t) => t.toFixed(0)).join(', ')}]${note ? `  ${note}` : ''}`);
};

// compressBuild, in-process timings.
const cold: number[] = [];
const coldCpu: number[] = [];
for (let i = 0; i < COLD_RUNS; i++) {
  const dir = path.join(OUT, `cache-cold-${i}`);
  rmSync(dir, { recursive: true, force: true });
  const r = child('cold', dir);
  if (r.cached[0]) throw new Error('cold run was a hit');
  cold.push(r.times[0]);
  coldCpu.push(r.cpu[0]);
  rmSync(dir, { recursive: true, force: true });
}
report('compressBuild cold (plain copy)', cold, undefined, coldCpu);

const warmDir = path.join(OUT, 'cache-warm');
rmSync(warmDir, { recursive: true, force: true });
child('cold', warmDir);
await new Promise((r) => setTimeout(r, 300)); // past the stat cache's racy window for the fresh entry
child('warm', warmDir); // settles stats.json (the entry's first verification)
const first: number[] = [];
const firstCpu: number[] = [];
const repeat: number[] = [];
const repeatCpu: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const r = child('warm', warmDir, 6);
  if (!r.cached.every(Boolean)) throw new Error('warm run missed the cache');
  first.push(r.times[0]);
  firstCpu.push(r.cpu[0]);
  repeat.push(median(r.times.slice(1)));
  repeatCpu.push(median(r.cpu.slice(1)));
}
report('compressBuild hit, first call in a fresh process', first, median(first) <= TARGET_MS ? `≤ ${TARGET_MS} ms target: ok` : `> ${TARGET_MS} ms target`, firstCpu);
report('compressBuild hit, repeated in one process', repeat, undefined, repeatCpu);

const noStats: number[] = [];
const noStatsCpu: number[] = [];
for (let i = 0; i < RUNS; i++) {
  rmSync(path.join(warmDir, 'stats.json'), { force: true });
  const r = child('warm', warmDir);
  noStats.push(r.times[0]);
  noStatsCpu.push(r.cpu[0]);
}
report('compressBuild hit without stats.json (re-hashing)', noStats, undefined, noStatsCpu);
child('warm', warmDir); // restore stats.json

// The CLI, whole process.
const dist = path.join(ROOT, 'dist', 'cli.js');
// The compiled CLI is what users run; `--tsx` also times it through tsx (which adds its own start-up).
const clis: [string, string[]][] = [];
if (existsSync(dist)) clis.push(['node dist/cli.js', [dist]]);
else console.log('(dist/cli.js is not built: run `npm run build` to time the compiled CLI; timing it through tsx instead)');
if (!existsSync(dist) || process.argv.includes('--tsx')) clis.push(['tsx src/cli.ts', ['--import', TSX, path.join(ROOT, 'src', 'cli.ts')]]);
for (const [name, cmd] of clis) {
  const c: number[] = [];
  for (let i = 0; i < COLD_RUNS; i++) {
    const dir = path.join(OUT, `cache-cli-cold-${i}`);
    rmSync(dir, { recursive: true, force: true });
    c.push(wall(cmd, dir));
    rmSync(dir, { recursive: true, force: true });
  }
  report(`CLI cold (${name}), whole process`, c);
  const w: number[] = [];
  wall(cmd, warmDir);
  for (let i = 0; i < RUNS; i++) w.push(wall(cmd, warmDir));
  report(`CLI hit (${name}), whole process`, w);
  const node: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    spawnSync(process.execPath, [...cmd.slice(0, -1), '-e', '0'], { cwd: OUT });
    node.push(performance.now() - t);
  }
  report(`  of which process start (${name.split(' ')[0]} -e 0)`, node);
}

// Keep the generated model for the next run; drop the caches and outputs (~2 × the model).
rmSync(warmDir, { recursive: true, force: true });
rmSync(path.join(OUT, 'dist'), { recursive: true, force: true });
