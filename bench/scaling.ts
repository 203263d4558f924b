/**
 * STEPS ONLY — not the user's path: the operations below are timed alone (the `hit` row aside), without
 * verification, size figures or a manifest. What `onnx-compress build` costs is measured by bench/build.ts.
 *
 * How cost grows with model size. BERT-shaped synthetic models (bench/lib/synthetic.ts, written by the
 * project's own writer) at ~10 MB, 100 MB, 400 MB and 1.5 GB (the last with external data); for each,
 * time and peak RSS of:
 *
 *   read      fs.readFileSync of the model (+ its .data file)                        floor for decode
 *   copy      readFileSync + writeFileSync of the same bytes                        floor for a whole process
 *   decode    readFileBytes + decodeModel (+ external data loaded)                   in-process: decode only
 *   int8 / int4 / fp16   quantizeStep with the recipe defaults of `quantize: { dtype }`
 *   prune     pruneStep magnitude, unstructured, 50 %, per layer
 *   lowrank   lowrankStep rank 128, svd
 *   hit       compressBuild on a filled cache (recipe `quantize: { dtype: int8 }`), twice in one
 *             process: the second call is the figure; the first (a fresh process's first hit) is shown too
 *
 * Every run of every operation is its own process, measured by GNU time (`/usr/bin/time -v`: peak RSS)
 * and by the child itself (the operation's in-process time, without process start and model read).
 * The child is an esbuild bundle of this file (no TypeScript loader in the measured process); the
 * steps are called directly with normalized parameters (quantize parameters come from parseRecipe).
 * Runs of one size interleave the operations so that machine noise hits all alike; an operation stops
 * repeating once its runs have used `--op-budget-s`, or once `--deadline-s` has passed (then n < runs is
 * shown). The report is rewritten after each size, so a run stopped early leaves what it measured.
 *
 *   npx tsx bench/scaling.ts [--quick] [--sizes 10,100,400,1500] [--runs 5] [--ops int8,prune]
 *       [--op-budget-s 12] [--op-timeout-s 240] [--deadline-s N] [--keep]
 *
 * Writes bench/out/scaling.json ({…, markdown}); the temp dir under os.tmpdir() is removed at the end.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);

// =========================================================================================== child

interface ChildResult {
  op: string;
  /** In-process time of the operation itself. */
  ms: number;
  /** Time to read (and decode) the model before the operation. */
  loadMs?: number;
  /** hit: the first call in the process (the figure `ms` is the second). */
  firstMs?: number;
  /** decode: decodeModel alone (bytes in memory). */
  decodeMs?: number;
  /** fill: the pipeline's phase timings. */
  timings?: Record<string, number>;
  cached?: boolean[];
  outputBytes?: number;
  note?: string;
}

async function child(args: string[]): Promise<void> {
  const [op, ...rest] = args;
  const emit = (r: ChildResult): void => {
    process.stdout.write(`\n${JSON.stringify(r)}\n`);
  };
  const filesOf = (file: string) => [file, ...(existsSync(`${file}.data`) ? [`${file}.data`] : [])];
  switch (op) {
    case 'noop':
      return emit({ op, ms: 0 });
    case 'gen': {
      const [file, hidden, ff, layers, external] = rest;
      const { transformerStack, writeSynthetic } = await import('./lib/synthetic.js');
      const t = performance.now();
      const model = transformerStack({ layers: Number(layers), hidden: Number(hidden), ff: Number(ff), external: external === '1' });
      const r = writeSynthetic(model, file);
      return emit({ op, ms: performance.now() - t, outputBytes: r.bytes + (r.externalDataBytes ?? 0) });
    }
    case 'read': {
      const t = performance.now();
      let n = 0;
      for (const f of filesOf(rest[0])) n += readFileSync(f).length;
      return emit({ op, ms: performance.now() - t, outputBytes: n });
    }
    case 'copy': {
      const [file, outDir] = rest;
      const t = performance.now();
      for (const f of filesOf(file)) writeFileSync(path.join(outDir, path.basename(f)), readFileSync(f));
      return emit({ op, ms: performance.now() - t });
    }
    case 'decode': {
      // readModel's parts, timed apart: the figure is all of it; decode alone is what the 50 ms target is about
      const { readFileBytes } = await import('../src/onnx/io.js');
      const { decodeModel } = await import('../src/onnx/codec.js');
      const { loadExternalData } = await import('../src/onnx/external.js');
      const t0 = performance.now();
      const bytes = readFileBytes(rest[0]);
      const t1 = performance.now();
      const model = decodeModel(bytes, rest[0]);
      const t2 = performance.now();
      loadExternalData(model, path.dirname(rest[0]), rest[0]);
      return emit({ op, ms: performance.now() - t0, decodeMs: t2 - t1, note: `${model.graph?.node.length} nodes` });
    }
    case 'int8':
    case 'int4':
    case 'fp16':
    case 'prune':
    case 'lowrank': {
      const [file, paramsJson] = rest;
      const { readModel } = await import('../src/onnx/io.js');
      const t0 = performance.now();
      const model = readModel(file);
      const original = model; // the steps do not modify their input (tensor bytes are shared)
      const loadMs = performance.now() - t0;
      const params = JSON.parse(paramsJson) as never;
      let step: (m: typeof model, ctx: never) => Promise<{ model: typeof model }>;
      if (op === 'prune') step = (await import('../src/transforms/prune/index.js')).pruneStep(params);
      else if (op === 'lowrank') step = (await import('../src/transforms/lowrank/index.js')).lowrankStep(params);
      else step = (await import('../src/transforms/quantize/index.js')).quantizeStep(params);
      const ctx = { file, original, device: 'cpu', seed: 1, log: () => {} };
      const t1 = performance.now();
      await step(model, ctx as never);
      return emit({ op, ms: performance.now() - t1, loadMs });
    }
    case 'fill':
    case 'hit': {
      const [buildJson, cacheDir] = rest;
      const { compressBuild } = await import('../src/pipeline.js');
      const build = JSON.parse(readFileSync(buildJson, 'utf8'));
      const times: number[] = [];
      const cached: boolean[] = [];
      for (let i = 0; i < (op === 'hit' ? 2 : 1); i++) {
        const t = performance.now();
        const r = await compressBuild(build, { cacheDir, device: 'cpu' });
        times.push(performance.now() - t);
        cached.push(r.cached);
        if (op === 'fill') return emit({ op, ms: times[0], cached, outputBytes: r.bytes.byteLength, timings: r.manifest.timings });
      }
      return emit({ op, ms: times[1], firstMs: times[0], cached });
    }
    default:
      throw new Error(`unknown child op ${op}`);
  }
}

if (process.argv[2] === '--child') {
  try {
    await child(process.argv.slice(3));
    process.exit(0);
  } catch (e) {
    console.error((e as Error).stack ?? String(e));
    process.exit(1);
  }
}

// =========================================================================================== parent

type Op = 'read' | 'copy' | 'decode' | 'int8' | 'int4' | 'fp16' | 'prune' | 'lowrank' | 'hit';
const ALL_OPS: Op[] = ['read', 'copy', 'decode', 'int8', 'int4', 'fp16', 'prune', 'lowrank', 'hit'];

interface SizeSpec {
  label: string;
  targetMb: number;
  hidden: number;
  ff: number;
  layers: number;
  external: boolean;
}

interface OpResult {
  op: Op;
  /** In-process time of the operation, per run. */
  ms: number[];
  /** Whole-process wall time, per run. */
  wallMs: number[];
  /** Peak RSS, per run (bytes). */
  rss: number[];
  cpuMs: number[];
  loadMs: number[];
  firstMs: number[];
  decodeMs: number[];
  failures: string[];
  note?: string;
}

interface SizeResult {
  spec: SizeSpec;
  bytes: number;
  files: string[];
  generateMs: number;
  fillMs?: number;
  fillTimings?: Record<string, number>;
  /** Peak RSS of a child that only loads its modules. */
  baselineRss: number[];
  ops: OpResult[];
  skipped?: string;
}

async function parent(): Promise<void> {
  const { ensureGnuTime, freeBytes, killMeasured, loadAverage, machineInfo, measureProcess } = await import('./lib/machine.js');
  const S = await import('./lib/stats.js');
  const { transformerLayerBytes } = await import('./lib/synthetic.js');
  const { parseRecipe } = await import('../src/recipe/index.js');

  const argv = process.argv.slice(2);
  const QUICK = argv.includes('--quick');
  const opt = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const SIZES = (opt('--sizes') ?? (QUICK ? '10,100' : '10,100,400,1500')).split(',').map(Number);
  const RUNS = Number(opt('--runs') ?? (QUICK ? 3 : 5));
  const OPS = (opt('--ops')?.split(',') as Op[] | undefined) ?? ALL_OPS;
  const OP_BUDGET_MS = Number(opt('--op-budget-s') ?? (QUICK ? 3 : 12)) * 1000;
  const OP_TIMEOUT_MS = Number(opt('--op-timeout-s') ?? (QUICK ? 60 : 240)) * 1000;
  const KEEP = argv.includes('--keep');
  /** Past this (from the start), an operation runs only until it has one measurement at each size. */
  const DEADLINE_MS = Number(opt('--deadline-s') ?? Infinity) * 1000;
  const pastDeadline = () => performance.now() - started > DEADLINE_MS;
  const ROOT = path.resolve(path.dirname(SELF), '..');
  const OUT = path.join(ROOT, 'bench', 'out');
  const started = performance.now();
  const machine = machineInfo();
  const timeBin = ensureGnuTime();
  console.log(`scaling: sizes ${SIZES.join(', ')} MB, ${RUNS} runs, ops ${OPS.join(' ')}; load ${loadAverage()}; ${timeBin ? 'GNU time' : 'no GNU time: no peak RSS'}`);

  // ------------------------------------------------------------------ the measured child
  let childArgv: string[];
  let childHow: string;
  const tsxArgv = [process.execPath, '--import', 'tsx', SELF, '--child'];
  try {
    const esbuild = await import('esbuild');
    // Inside the repo, so that node_modules resolve from the bundle. Code splitting keeps each operation's
    // modules (and onnxruntime-node) out of the processes that do not use them.
    const bundleDir = path.join(OUT, 'scaling');
    rmSync(bundleDir, { recursive: true, force: true });
    await esbuild.build({ entryPoints: [SELF], bundle: true, splitting: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', outdir: bundleDir, outExtension: { '.js': '.mjs' }, logLevel: 'silent' });
    childArgv = [process.execPath, path.join(bundleDir, 'scaling.mjs'), '--child'];
    childHow = 'node (esbuild bundle of bench/scaling.ts, code-split)';
  } catch (e) {
    childArgv = tsxArgv;
    childHow = `node --import tsx (bundling failed: ${(e as Error).message.split('\n')[0]})`;
  }
  const lowrankAvailable = existsSync(path.join(ROOT, 'src', 'transforms', 'lowrank', 'index.ts'));

  // ------------------------------------------------------------------ parameters
  const quantizeParams = (dtype: string) => {
    const text = `defaults:\n  device: cpu\nmodels:\n  m:\n    source: ./m.onnx\n    quantize: { dtype: ${dtype} }\n`;
    return parseRecipe(text, path.join(os.tmpdir(), 'compress.yaml')).builds[0].steps.quantize!;
  };
  const params: Partial<Record<Op, unknown>> = {
    int8: quantizeParams('int8'),
    int4: quantizeParams('int4'),
    fp16: quantizeParams('float16'),
    // prune / lowrank: built by hand (recipe validation may still list them as unsupported).
    prune: { rate: 0.5, method: 'magnitude', structure: 'unstructured', scope: 'layer', include: [], exclude: [] },
    lowrank: { rank: 128, method: 'svd', include: [], exclude: [] },
  };

  const specFor = (mb: number): SizeSpec => {
    // BERT-base layer shape (768 / 3072, 28.3 MB a layer) from 100 MB up; below, BERT-medium's (512 / 2048, 12.6 MB).
    const [hidden, ff] = mb >= 50 ? [768, 3072] : [512, 2048];
    const layers = Math.max(1, Math.round((mb * 1e6) / transformerLayerBytes(hidden, ff)));
    return { label: mb >= 1000 ? `${mb / 1000} GB` : `${mb} MB`, targetMb: mb, hidden, ff, layers, external: mb >= 1000 };
  };

  const tmp = mkdtempSync(path.join(os.tmpdir(), 'onnx-scaling-'));
  // Stopped from outside (bench/run.ts's time limit): stop the measured child too, and leave no model behind.
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      killMeasured();
      if (!KEEP) rmSync(tmp, { recursive: true, force: true });
      process.exit(sig === 'SIGTERM' ? 143 : 130);
    });
  }
  const results: SizeResult[] = [];
  const log = (m: string) => process.stderr.write(`[scaling ${((performance.now() - started) / 1000).toFixed(0)} s] ${m}\n`);
  const run = async (args: string[], timeoutMs = OP_TIMEOUT_MS, viaTsx = false) => {
    const m = await measureProcess([...(viaTsx ? tsxArgv : childArgv), ...args], { cwd: ROOT, timeoutMs, env: { ...process.env, CI: '1' } });
    const line = m.stdout.trim().split('\n').pop() ?? '';
    let r: ChildResult | undefined;
    try {
      r = line.startsWith('{') ? (JSON.parse(line) as ChildResult) : undefined;
    } catch {
      r = undefined;
    }
    const error = m.timedOut ? `timed out after ${(timeoutMs / 1000).toFixed(0)} s` : m.status !== 0 || !r ? `exit ${m.status ?? m.signal}: ${m.stderr.trim().split('\n').slice(-3).join(' ').slice(0, 300)}` : undefined;
    return { m, r, error };
  };

  try {
    for (const mb of SIZES) {
      const spec = specFor(mb);
      const est = spec.layers * transformerLayerBytes(spec.hidden, spec.ff);
      const dir = path.join(tmp, `m${mb}`);
      mkdirSync(dir);
      const file = path.join(dir, 'model.onnx');
      const free = freeBytes(tmp);
      // the model, one output copy at a time, the cache entry (int8 ≈ 0.26×), and 1 GB to spare
      const need = est * 2.3 + 1e9;
      if (!(free >= need)) {
        log(`${spec.label}: skipped, ${S.fmtBytes(free)} free in ${tmp}, need ${S.fmtBytes(need)}`);
        results.push({ spec, bytes: est, files: [], generateMs: NaN, baselineRss: [], ops: [], skipped: `not enough disk: ${S.fmtBytes(free)} free, need ${S.fmtBytes(need)}` });
        continue;
      }
      log(`${spec.label}: generating ${spec.layers} × (${spec.hidden}/${spec.ff}) layers${spec.external ? ' with external data' : ''} (${S.fmtBytes(free)} free)`);
      const gen = await run(['gen', file, String(spec.hidden), String(spec.ff), String(spec.layers), spec.external ? '1' : '0'], 600_000);
      if (gen.error) throw new Error(`generating ${spec.label}: ${gen.error}`);
      const files = [file, ...(existsSync(`${file}.data`) ? [`${file}.data`] : [])];
      const bytes = files.reduce((n, f) => n + statSync(f).size, 0);
      const size: SizeResult = { spec, bytes, files: files.map((f) => path.basename(f)), generateMs: gen.r!.ms, baselineRss: [], ops: [] };
      results.push(size);

      // cache for `hit`: filled once (through tsx: the pipeline loads steps by a computed specifier)
      const cacheDir = path.join(dir, 'cache');
      const buildJson = path.join(dir, 'build.json');
      if (OPS.includes('hit')) {
        const recipeFile = path.join(dir, 'compress.yaml');
        const text = 'defaults:\n  device: cpu\nmodels:\n  m:\n    source: ./model.onnx\n    quantize: { dtype: int8 }\n';
        writeFileSync(recipeFile, text);
        writeFileSync(buildJson, JSON.stringify(parseRecipe(text, recipeFile, { checkFiles: true }).builds[0]));
        log(`${spec.label}: filling the cache (cold compressBuild, int8)`);
        const fill = await run(['fill', buildJson, cacheDir], 900_000, true);
        if (fill.error) log(`${spec.label}: cache fill failed: ${fill.error}`);
        else {
          size.fillMs = fill.r!.ms;
          size.fillTimings = fill.r!.timings;
        }
        await new Promise((r) => setTimeout(r, 300)); // past the stat cache's racy window for a fresh entry
        await run(['hit', buildJson, cacheDir]); // settles stats.json
      }

      const ops: OpResult[] = OPS.map((op) => ({ op, ms: [], wallMs: [], rss: [], cpuMs: [], loadMs: [], firstMs: [], decodeMs: [], failures: [] }));
      size.ops = ops;
      const spent = new Map<Op, number>();
      for (let r = 0; r < RUNS; r++) {
        const base = await run(['noop']);
        if (!base.error) size.baselineRss.push(base.m.peakRssBytes);
        for (const o of ops) {
          if (o.failures.length && !o.ms.length) continue; // failed once, nothing measured: do not retry
          if (o.ms.length >= 1 && ((spent.get(o.op) ?? 0) > OP_BUDGET_MS || pastDeadline())) continue;
          if (o.op === 'lowrank' && !lowrankAvailable) {
            o.note = 'not available yet (src/transforms/lowrank/index.ts missing)';
            o.failures.push(o.note);
            continue;
          }
          const outDir = path.join(dir, 'out');
          mkdirSync(outDir, { recursive: true });
          const args =
            o.op === 'copy'
              ? ['copy', file, outDir]
              : o.op === 'read' || o.op === 'decode'
                ? [o.op, file]
                : o.op === 'hit'
                  ? ['hit', buildJson, cacheDir]
                  : [o.op, file, JSON.stringify(params[o.op])];
          const res = await run(args);
          rmSync(outDir, { recursive: true, force: true });
          spent.set(o.op, (spent.get(o.op) ?? 0) + res.m.wallMs);
          if (res.error) {
            o.failures.push(res.error);
            log(`${spec.label} ${o.op} run ${r + 1}: ${res.error}`);
            continue;
          }
          if (o.op === 'hit' && res.r!.cached?.some((c) => !c)) o.note = 'a call missed the cache';
          o.ms.push(res.r!.ms);
          o.wallMs.push(res.m.wallMs);
          o.rss.push(res.m.peakRssBytes);
          o.cpuMs.push(res.m.userMs + res.m.sysMs);
          if (res.r!.loadMs !== undefined) o.loadMs.push(res.r!.loadMs);
          if (res.r!.firstMs !== undefined) o.firstMs.push(res.r!.firstMs);
          if (res.r!.decodeMs !== undefined) o.decodeMs.push(res.r!.decodeMs);
        }
        log(`${spec.label}: round ${r + 1}/${RUNS} done (load ${loadAverage()})`);
      }
      if (!KEEP) rmSync(dir, { recursive: true, force: true });
      report(false);
    }
  } finally {
    if (!KEEP) rmSync(tmp, { recursive: true, force: true });
    else console.log(`kept ${tmp}`);
  }

  // ------------------------------------------------------------------ report
  function report(final: boolean): void {
    const md: string[] = [];
    const targets: { what: string; target: string; value: string; floor?: string; met: boolean | undefined }[] = [];
    const MBof = (b: number) => b / 1e6;
    const opLabel: Record<Op, string> = {
      read: 'floor: read the file(s)',
      copy: 'floor: read + write a copy',
      decode: 'readModel (read + decode + external data)',
      int8: 'quantize int8',
      int4: 'quantize int4',
      fp16: 'quantize fp16',
      prune: 'prune magnitude 50 % unstructured',
      lowrank: 'low-rank rank 128 (svd)',
      hit: 'cache hit (2nd compressBuild in a process)',
    };
    md.push("**Steps only, not the user's path**: each operation timed alone (no verification, size figures or manifest); `onnx-compress build` as a whole is measured by bench/build.ts.", '');
    md.push(
      `Synthetic BERT-shaped models (bench/lib/synthetic.ts \`transformerStack\`); every run is a fresh process (${childHow}) under ${timeBin ? '`/usr/bin/time -v`' : 'no GNU time'}. ` +
        `**in-process** = the operation alone, as timed inside the child (model already read; for \`hit\`, the call's whole time); **process** = wall time of the whole child (start, read, operation, exit). ` +
        `Medians of up to ${RUNS} runs (min–max); \`n=\` where an operation used its ${OP_BUDGET_MS / 1000} s budget first${Number.isFinite(DEADLINE_MS) ? ` or the bench's ${DEADLINE_MS / 1000} s deadline had passed` : ''}.`,
      '',
    );
    for (const s of results) {
      const head = `${s.spec.label}: ${s.spec.layers} layer${s.spec.layers > 1 ? 's' : ''} × hidden ${s.spec.hidden} / ff ${s.spec.ff}, ${S.fmtBytes(s.bytes)}${s.spec.external ? ' (external data)' : ''}`;
      md.push(`#### ${head}`, '');
      if (s.skipped) {
        md.push(`Skipped: ${s.skipped}.`, '');
        continue;
      }
      const base = S.median(s.baselineRss);
      const copy = s.ops.find((o) => o.op === 'copy');
      const copyWall = copy ? S.median(copy.wallMs) : NaN;
      md.push(
        `Generated and written in ${S.fmtMs(s.generateMs)}; cache filled (a cold compressBuild, int8) in ${S.fmtMs(s.fillMs ?? NaN)}` +
          (s.fillTimings
            ? ` (${Object.entries(s.fillTimings)
                .filter(([k, v]) => k !== 'total' && v >= 1)
                .map(([k, v]) => `${k} ${S.fmtMs(v)}`)
                .join(', ')})`
            : '') +
          `; a child that only starts (no model) peaks at ${S.fmtMiB(base)}.`,
        '',
      );
      const rows: string[][] = [];
      for (const o of s.ops) {
        const ms = S.summarize(o.ms);
        const wall = S.summarize(o.wallMs);
        const rss = S.summarize(o.rss);
        let target = '';
        let met: boolean | undefined;
        const mbIs = (x: number) => Math.abs(s.spec.targetMb - x) < 1;
        const dec = S.summarize(o.decodeMs);
        if (o.op === 'decode' && mbIs(400)) {
          target = 'decode alone ≤ 50 ms (380 MB)';
          met = dec.n ? dec.median <= 50 : undefined;
        } else if (o.op === 'decode' && ms.n) {
          target = 'RSS ≤ file + 64 MiB (codec target)';
          met = rss.median <= s.bytes + 64 * S.MiB;
        } else if (o.op === 'hit' && mbIs(100)) {
          target = '≤ 150 ms (100 MB)';
          met = ms.n ? ms.median <= 150 : undefined;
        } else if (o.op === 'prune' && mbIs(400)) {
          target = '≤ 3 s (BERT-base)';
          met = ms.n ? ms.median <= 3000 : undefined;
        } else if (o.op === 'lowrank' && mbIs(400)) {
          target = '≤ 60 s (BERT-base)';
          met = ms.n ? ms.median <= 60_000 : undefined;
        }
        if (target) {
          const value = o.op === 'decode' && mbIs(400) ? `decode ${S.fmtStat(dec)}` : `${S.fmtStat(ms)} in-process, ${S.fmtStat(wall)} process, ${S.fmtMiB(rss.median)}`;
          const floor = o.op === 'hit' || o.op === 'decode' ? `read of the file ${S.fmtMs(S.median(s.ops.find((x) => x.op === 'read')?.ms ?? []))}` : `copy process ${S.fmtMs(copyWall)}`;
          targets.push({ what: `${s.spec.label} model: ${opLabel[o.op]}`, target, value, floor, met });
        }
        const note = o.note ?? (o.failures.length ? `${o.failures.length} failed: ${o.failures[0]}` : '');
        rows.push([
          opLabel[o.op] +
            (o.op === 'hit' && o.firstMs.length ? ` (1st call ${S.fmtMs(S.median(o.firstMs))})` : '') +
            (o.op === 'decode' && dec.n ? `; decode alone ${S.fmtStat(dec)}` : ''),
          ms.n ? S.fmtStat(ms, S.fmtMs, RUNS) : note || '–',
          ms.n ? (MBof(s.bytes) ? (ms.median / MBof(s.bytes)).toFixed(2) : '–') : '',
          S.fmtStat(wall, S.fmtMs),
          wall.n && copyWall && o.op !== 'copy' ? S.fmtRatio(wall.median / copyWall) : '',
          S.fmtStat(rss, S.fmtMiB),
          rss.n ? S.fmtRatio(rss.median / s.bytes) : '',
          target,
          target ? S.mark(met) : '',
        ]);
        if (ms.n && note) rows[rows.length - 1][0] += ` (${note})`;
      }
      md.push(
        S.markdownTable(
          ['operation', 'in-process median (min–max)', 'ms/MB', 'process wall', 'process / copy floor', 'peak RSS', 'RSS / file', 'target', 'result'],
          rows,
          ['left', 'right', 'right', 'right', 'right', 'right', 'right', 'left', 'left'],
        ),
        '',
      );
    }

    // linearity: ms/MB of each op across sizes
    const measured = results.filter((r) => !r.skipped && r.ops.length);
    const linearity: Record<string, unknown> = {};
    if (measured.length >= 2) {
      const linRows: string[][] = [];
      for (const op of OPS) {
        const pts = measured
          .map((s) => ({ s, o: s.ops.find((o) => o.op === op) }))
          .filter((p) => p.o && p.o.ms.length)
          .map((p) => ({ mb: MBof(p.s.bytes), ms: S.median(p.o!.ms), rss: S.median(p.o!.rss), label: p.s.spec.label }));
        if (pts.length < 2) continue;
        const perMb = pts.map((p) => p.ms / p.mb);
        const first = perMb[0];
        const last = perMb[perMb.length - 1];
        const from100 = pts.findIndex((p) => p.mb >= 50);
        const ratioLarge = from100 >= 0 && from100 < pts.length - 1 ? last / perMb[from100] : NaN;
        const fit = S.linearFit(
          pts.map((p) => p.mb),
          pts.map((p) => p.ms),
        );
        const ratio = last / first;
        const judge = (x: number) => (!Number.isFinite(x) ? '' : x > 1.5 ? 'super-linear' : x < 0.67 ? 'sub-linear (fixed costs)' : 'linear');
        const verdict = Number.isFinite(ratioLarge) ? judge(ratioLarge) : judge(ratio);
        linearity[op] = { points: pts, msPerMb: perMb, ratioLargestSmallest: ratio, ratioLargestTo100: ratioLarge, fit, verdict };
        linRows.push([
          opLabel[op],
          pts.map((p, i) => `${p.label}: ${perMb[i].toFixed(2)}`).join(', '),
          S.fmtRatio(ratio),
          Number.isFinite(ratioLarge) ? S.fmtRatio(ratioLarge) : '–',
          `${fit.slope.toFixed(2)} ms/MB ${fit.intercept < 0 ? '−' : '+'} ${S.fmtMs(Math.abs(fit.intercept))}${pts.length > 2 ? ` (r² ${fit.r2.toFixed(3)})` : ''}`,
          pts.map((p) => (p.rss / (p.mb * 1e6)).toFixed(2)).join(', '),
          verdict,
        ]);
      }
      md.push(
        '#### Does cost grow linearly with size?',
        '',
        'ms/MB = in-process median ÷ model MB. The 10 MB model has another layer shape and is dominated by fixed costs, so the verdict compares the largest size with 100 MB ' +
          '(linear: within 0.67–1.5×); the ratio largest/smallest is shown as asked. RSS/file per size shows whether memory stays proportional.',
        '',
        S.markdownTable(
          ['operation', 'ms/MB per size', 'largest / smallest', 'largest / 100 MB', 'least-squares fit', 'RSS / file per size', 'verdict'],
          linRows,
          ['left', 'left', 'right', 'right', 'left', 'left', 'left'],
        ),
        '',
      );
    }

    const elapsedMs = performance.now() - started;
    md.push(`Elapsed ${S.fmtMs(elapsedMs)}; load average at the end ${loadAverage()}.`);
    if (!final) md.push('**Partial**: the run was still going (or was stopped) when this was written.');
    const markdown = md.join('\n');
    if (final) console.log(markdown);
    mkdirSync(OUT, { recursive: true });
    writeFileSync(
      path.join(OUT, 'scaling.json'),
      JSON.stringify(
        {
          bench: 'scaling',
          partial: !final,
          quick: QUICK,
          date: new Date().toISOString(),
          machine,
          runs: RUNS,
          opBudgetMs: OP_BUDGET_MS,
          child: childHow,
          params,
          sizes: results,
          linearity,
          targets,
          elapsedMs,
          markdown,
        },
        null,
        2,
      ) + '\n',
    );
  }
  report(true);
}

if (process.argv[2] !== '--child') await parent();
