/**
 * Codec acceptance numbers: decode / encode / write of a ~380 MB transformer model, peak RSS of a
 * read → write in a child process, and decoding a 100k-node graph without weights.
 *
 *   npx tsx bench/codec.ts [--size-mb 380] [--runs 7] [--keep]
 *
 * Targets: decode ≤ 50 ms; readModel → writeModel ≤ 1.5 × a plain file copy; peak RSS of the child
 * ≤ file size + 64 MiB; 100k-node decode ≤ 500 ms. Medians over `runs` (≥ 5) after one warm-up run.
 * Everything is written to a temp dir under os.tmpdir() that is removed at the end.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { decodeModel, encodeModel, encodeModelToBytes } from '../src/onnx/codec.js';
import { readFileBytes, readModel, writeModel } from '../src/onnx/io.js';
import { transformerLayerBytes, transformerStack, wideGraph, writeSynthetic } from './lib/synthetic.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');

// ---------------------------------------------------------------- options

const argv = process.argv.slice(2);
const opt = (name: string, fallback: number) => {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const SIZE_MB = opt('--size-mb', 380);
const RUNS = Math.max(5, opt('--runs', 7));
const RSS_RUNS = Math.max(5, opt('--rss-runs', 5));
const KEEP = argv.includes('--keep');
const HIDDEN = 768;
const FF = 3072;

// ---------------------------------------------------------------- helpers

interface Stat {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

function stat(runs: number[]): Stat {
  const s = [...runs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median, min: s[0], max: s[s.length - 1], runs };
}

/** GC pauses observed by perf_hooks, to attribute time in a [start, end] window. */
const gcEntries: { start: number; duration: number }[] = [];
const gcObserver = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcEntries.push({ start: e.startTime, duration: e.duration });
});
gcObserver.observe({ entryTypes: ['gc'] });
const flushGc = () => new Promise((r) => setTimeout(r, 20));
function gcIn(windows: [number, number][]): number[] {
  return windows.map(([a, b]) => gcEntries.filter((e) => e.start >= a && e.start < b).reduce((s, e) => s + e.duration, 0));
}

/** Runs `fn` once to warm up, then `runs` times; `before` runs untimed before each. */
async function time(fn: () => void, runs = RUNS, before?: () => void): Promise<Stat & { gc: Stat }> {
  before?.();
  fn();
  const times: number[] = [];
  const windows: [number, number][] = [];
  for (let r = 0; r < runs; r++) {
    before?.();
    const t0 = performance.now();
    fn();
    const t1 = performance.now();
    times.push(t1 - t0);
    windows.push([t0, t1]);
  }
  await flushGc();
  return { ...stat(times), gc: stat(gcIn(windows)) };
}

const MiB = 2 ** 20;
const ms = (v: number) => (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0));
const mib = (v: number) => (v / MiB).toFixed(0);

interface Row {
  what: string;
  median: string;
  range: string;
  target: string;
  result: string;
}
const rows: Row[] = [];
const misses: string[] = [];
function row(what: string, median: string, range: string, target = '', result = ''): void {
  rows.push({ what, median, range, target, result });
}
function check(ok: boolean, what: string, why: string): string {
  if (!ok) misses.push(`${what}: ${why}`);
  return ok ? 'ok' : 'MISSED';
}

function printTable(): void {
  const head: Row = { what: 'measurement', median: 'median', range: 'min–max', target: 'target', result: 'result' };
  const all = [head, ...rows];
  const w = (k: keyof Row) => Math.max(...all.map((r) => r[k].length));
  const line = (r: Row) =>
    `| ${r.what.padEnd(w('what'))} | ${r.median.padStart(w('median'))} | ${r.range.padStart(w('range'))} | ${r.target.padEnd(w('target'))} | ${r.result.padEnd(w('result'))} |`;
  console.log(line(head));
  console.log(`|${'-'.repeat(w('what') + 2)}|${'-'.repeat(w('median') + 1)}:|${'-'.repeat(w('range') + 1)}:|${'-'.repeat(w('target') + 2)}|${'-'.repeat(w('result') + 2)}|`);
  for (const r of rows) console.log(line(r));
}

// ---------------------------------------------------------------- child process for peak RSS

/**
 * A plain-JS bundle of bench/lib/repack-child.ts (no tsx loader in the measured process), else tsx.
 * REPACK_CHILD=<file.mjs> names a prebuilt bundle (for machines without node_modules).
 */
async function childCommand(dir: string): Promise<{ argv: string[]; how: string }> {
  const src = join(here, 'lib', 'repack-child.ts');
  if (process.env.REPACK_CHILD) return { argv: [process.execPath, resolve(process.env.REPACK_CHILD)], how: `node ${process.env.REPACK_CHILD}` };
  try {
    const esbuild = await import('esbuild');
    const out = join(dir, 'repack-child.mjs');
    await esbuild.build({ entryPoints: [src], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile: out, logLevel: 'silent' });
    return { argv: [process.execPath, out], how: 'node (esbuild bundle of bench/lib/repack-child.ts)' };
  } catch {
    return { argv: [process.execPath, '--import', 'tsx', src], how: 'node --import tsx bench/lib/repack-child.ts' };
  }
}

function ensureGnuTime(): string | undefined {
  if (process.env.BENCH_NO_GNU_TIME === '1') return undefined;
  if (existsSync('/usr/bin/time')) return '/usr/bin/time';
  try {
    execFileSync('apt-get', ['install', '-y', 'time'], { stdio: 'ignore' });
  } catch {
    /* not root or no network */
  }
  return existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
}

/**
 * Peak RSS (bytes) and wall time of one command under GNU time; without GNU time, the child's own
 * getrusage maxRSS (same kernel figure; only for the repack child, which prints it).
 */
function peakRss(timeBin: string | undefined, cmd: string[]): { rss: number; wall: number; stdout: string } {
  if (!timeBin) {
    // Through sh, which forks again: a process keeps the RSS high-water mark of the image it was
    // exec'd from, and a direct child of this (big) process would start from ours.
    const t0 = performance.now();
    const r = spawnSync('/bin/sh', ['-c', '"$@"; exit $?', 'sh', ...cmd], { encoding: 'utf8', cwd: root, maxBuffer: 64 * MiB });
    const wall = performance.now() - t0;
    if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr}`);
    const m = /"maxRss":(\d+)/.exec(r.stdout);
    return { rss: m ? Number(m[1]) : NaN, wall, stdout: r.stdout };
  }
  const r = spawnSync(timeBin, ['-v', ...cmd], { encoding: 'utf8', cwd: root, maxBuffer: 64 * MiB });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr}`);
  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  const wm = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(r.stderr);
  if (!m) throw new Error(`no "Maximum resident set size" in /usr/bin/time output:\n${r.stderr}`);
  const wall = wm ? (Number(wm[1] ?? 0) * 3600 + Number(wm[2]) * 60 + Number(wm[3])) * 1000 : NaN;
  return { rss: Number(m[1]) * 1024, wall, stdout: r.stdout };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'onnx-codec-bench-'));
  const results: Record<string, unknown> = {};
  try {
    const layers = Math.max(1, Math.round((SIZE_MB * 1e6) / transformerLayerBytes(HIDDEN, FF)));
    const file = join(dir, 'model.onnx');
    let t0 = performance.now();
    {
      const model = transformerStack({ layers, hidden: HIDDEN, ff: FF, seq: 128 });
      writeSynthetic(model, file);
    }
    const size = statSync(file).size;
    const nodeCount = readModel(file).graph!.node.length;
    console.log(`model: transformerStack layers=${layers} hidden=${HIDDEN} ff=${FF}: ${(size / 1e6).toFixed(1)} MB (${mib(size)} MiB), ${nodeCount} nodes, generated+written in ${ms(performance.now() - t0)} ms`);
    console.log(`node ${process.version}, ${RUNS} timed runs after 1 warm-up, ${RSS_RUNS} runs for RSS; temp dir ${dir}\n`);

    // 1. decode with the bytes in memory
    const bytes = readFileBytes(file);
    const dec = await time(() => decodeModel(bytes, file));
    row('decode (bytes in memory)', `${ms(dec.median)} ms`, `${ms(dec.min)}–${ms(dec.max)} ms`, '≤ 50 ms', check(dec.median <= 50, 'decode', `${ms(dec.median)} ms`));
    const decoded = decodeModel(bytes, file);
    const enc = await time(() => encodeModel(decoded));
    row('encode to chunks (no join, no write)', `${ms(enc.median)} ms`, `${ms(enc.min)}–${ms(enc.max)} ms`);
    results.decode = dec;
    results.encode = enc;

    // 2. readModel → writeModel vs copies of the same bytes
    const out = join(dir, 'out.onnx');
    const clean = () => rmSync(out, { force: true });
    const repack: number[] = [];
    const copyFile: number[] = [];
    const readWrite: number[] = [];
    // interleaved so page-cache / writeback state affects all three alike
    for (let r = -1; r < RUNS; r++) {
      for (const [list, fn] of [
        [repack, () => writeModel(readModel(file), out)],
        [copyFile, () => copyFileSync(file, out)],
        [readWrite, () => writeFileSync(out, readFileSync(file))],
      ] as [number[], () => void][]) {
        clean();
        const a = performance.now();
        fn();
        const b = performance.now();
        if (r >= 0) list.push(b - a);
      }
    }
    clean();
    const rp = stat(repack);
    const cf = stat(copyFile);
    const rw = stat(readWrite);
    const best = Math.min(cf.median, rw.median);
    row('fs.copyFileSync', `${ms(cf.median)} ms`, `${ms(cf.min)}–${ms(cf.max)} ms`);
    row('readFileSync + writeFileSync', `${ms(rw.median)} ms`, `${ms(rw.min)}–${ms(rw.max)} ms`);
    row('readModel → writeModel', `${ms(rp.median)} ms`, `${ms(rp.min)}–${ms(rp.max)} ms`);
    row('  ratio vs copyFileSync', `${(rp.median / cf.median).toFixed(2)}×`, `${(rp.min / cf.max).toFixed(2)}–${(rp.max / cf.min).toFixed(2)}×`, '≤ 1.5×', check(rp.median / cf.median <= 1.5, 'readModel → writeModel vs copyFileSync', `${(rp.median / cf.median).toFixed(2)}×`));
    row('  ratio vs read + write', `${(rp.median / rw.median).toFixed(2)}×`, `${(rp.min / rw.max).toFixed(2)}–${(rp.max / rw.min).toFixed(2)}×`, '≤ 1.5×', check(rp.median / rw.median <= 1.5, 'readModel → writeModel vs readFileSync+writeFileSync', `${(rp.median / rw.median).toFixed(2)}×`));
    results.roundTrip = { repack: rp, copyFileSync: cf, readWrite: rw, bestCopyMedian: best };

    // 3. peak RSS of read → write in a child process
    const timeBin = ensureGnuTime();
    if (!timeBin) console.log('no /usr/bin/time (apt-get install -y time): peak RSS from the child\'s own getrusage()');
    {
      const child = await childCommand(dir);
      const rssOf = (cmd: string[]) => {
        const list: number[] = [];
        const walls: number[] = [];
        for (let r = 0; r < RSS_RUNS; r++) {
          const m = peakRss(timeBin, cmd);
          list.push(m.rss);
          walls.push(m.wall);
          rmSync(out, { force: true });
        }
        return { rss: stat(list), wall: stat(walls) };
      };
      const bare = rssOf([process.execPath, '-e', timeBin ? '0' : 'console.log(JSON.stringify({ maxRss: process.resourceUsage().maxRSS * 1024 }))']);
      const noop = rssOf([...child.argv, 'noop']);
      const copy = rssOf([...child.argv, 'copy', file, out]);
      const rep = rssOf([...child.argv, 'repack', file, out]);
      const r = (label: string, x: { rss: Stat; wall: Stat }, target = '', result = '') =>
        row(label, `${mib(x.rss.median)} MiB`, `${mib(x.rss.min)}–${mib(x.rss.max)} MiB`, target, result);
      r('peak RSS: node -e 0', bare);
      r('peak RSS: child, modules loaded (noop)', noop);
      r('peak RSS: child, readFileSync+writeFileSync', copy);
      const limit = size + 64 * MiB;
      r('peak RSS: child, readModel → writeModel', rep, `≤ ${mib(limit)} MiB (file + 64)`, check(rep.rss.median <= limit, 'peak RSS', `${mib(rep.rss.median)} MiB > ${mib(limit)} MiB`));
      row('  RSS above file size (repack)', `${mib(rep.rss.median - size)} MiB`, `${mib(rep.rss.min - size)}–${mib(rep.rss.max - size)} MiB`, '≤ 64 MiB');
      row('  RSS above file size (plain copy)', `${mib(copy.rss.median - size)} MiB`, `${mib(copy.rss.min - size)}–${mib(copy.rss.max - size)} MiB`);
      row('  child wall time (repack / copy)', `${ms(rep.wall.median)} / ${ms(copy.wall.median)} ms`, '');
      results.rss = { how: child.how, measuredBy: timeBin ? '/usr/bin/time -v' : 'getrusage in the child', fileBytes: size, bare, noop, copy, repack: rep };
      console.log(`child: ${child.how}`);
    }

    // 4. 100k-node graph, no weights
    t0 = performance.now();
    const wide = encodeModelToBytes(wideGraph({ nodes: 100_000 }));
    const wideGen = performance.now() - t0;
    const first = performance.now();
    decodeModel(wide);
    const firstMs = performance.now() - first;
    const wd = await time(() => decodeModel(wide));
    row('decode 100k-node graph (first run)', `${ms(firstMs)} ms`, '');
    row('decode 100k-node graph', `${ms(wd.median)} ms`, `${ms(wd.min)}–${ms(wd.max)} ms`, '≤ 500 ms', check(wd.median <= 500, '100k-node decode', `${ms(wd.median)} ms`));
    row('  of which GC pauses', `${ms(wd.gc.median)} ms`, `${ms(wd.gc.min)}–${ms(wd.gc.max)} ms`);
    const wdModel = decodeModel(wide);
    const we = await time(() => encodeModel(wdModel));
    row('encode 100k-node graph', `${ms(we.median)} ms`, `${ms(we.min)}–${ms(we.max)} ms`);
    results.wide = { bytes: wide.length, generateAndEncodeMs: wideGen, firstDecodeMs: firstMs, decode: wd, encode: we };

    console.log('');
    printTable();
    console.log('');
    if (misses.length === 0) console.log('all targets met');
    else for (const m of misses) console.log(`MISSED ${m}`);
    results.misses = misses;
    const outDir = process.env.BENCH_OUT_DIR ?? join(here, 'out');
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, 'codec.json'), JSON.stringify({ date: new Date().toISOString(), node: process.version, sizeBytes: size, layers, ...results }, null, 2));
  } finally {
    gcObserver.disconnect();
    if (KEEP) console.log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

await main();
