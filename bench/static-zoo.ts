/**
 * Static int8 on the model zoo (bench/lib/zoo.ts): every model built through the CLI as float32,
 * weight-only int8 and static int8 (uint8 activations with minmax, percentile and entropy calibration;
 * int8 activations with minmax), calibrated on the zoo's calibration modules (other audio and images
 * than the held-out ones: test/fixtures/zoo/calib-*.mjs) and evaluated on the held-out modules, so every
 * figure is held out.
 *
 * Per model and variant:
 * - fidelity on the held-out data, from the build's manifest (evaluate, with the state carried for
 *   streaming models): cosine with float32, top-1 agreement where the output is a class axis;
 * - how many layers run with 8-bit activations (and the activation guard's figures);
 * - what onnxruntime runs (its optimized graph: QLinearConv, QGemm, … and the float Convs left);
 * - latency in onnxruntime-node, one intra-op and one inter-op thread, no spinning, optimization level
 *   all, every session open at once and run in rotation on the held-out samples (interleaved), median
 *   and p90; the floor is a second float32 session in the same rotation (its ratio to the first is this
 *   machine's noise);
 * - onnxruntime-web (wasm backend from Node, one thread): loads and runs like onnxruntime-node
 *   (checkWebCompatibility on two held-out samples, with the float32 outputs: a static build may differ
 *   by one 8-bit step somewhere, which counts as agreement when the RMS difference is at most the
 *   build's own RMS error against float32), and its median in the same kind of rotation.
 *
 *   npx tsx bench/static-zoo.ts [--models a,b] [--variants w8,su8mm,su8bud] [--seconds 12]   → stdout table + bench/out/static-zoo.json
 *
 * The `su8bud` variant is static uint8 minmax with a budget at the model's 8-bit cosine floor
 * (`budget: { minCosine: <floor>, onFail: warn }`): the budget search then decides per layer whether its
 * activations are 8-bit (docs/static-quantization.md), measured on the calibration samples, and the
 * held-out figure says whether that choice holds on other data.
 *
 * With ORT_PYTHON set to a Python that has the onnxruntime and onnx packages, ONNX Runtime's own
 * quantize_static (bench/ort-quantize.py: QDQ, uint8 activations, int8 per-channel weights, MinMax; add
 * methods with ORT_METHODS=MinMax,Percentile,Entropy) runs on the same calibration samples and gets a row
 * of its own (models without carried state).
 *
 * Targets: every static build meets its model's 8-bit fidelity floor (docs/zoo.md), and loads and runs
 * in onnxruntime-web's wasm backend.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { rotation, type Runner } from './lib/stats.js';
import { loadSamples } from '../src/data/load.js';
import type { Sample } from '../src/data/types.js';
import { evaluateModels } from '../src/eval/evaluate.js';
import { readModel } from '../src/onnx/io.js';
import { inputSpecs } from '../src/runtime/session.js';
import { checkWebCompatibility } from '../src/transforms/quantize/webcheck.js';
import { loadAverage, machineInfo } from './lib/machine.js';
import { writeNpy } from './lib/npy.js';
import { fmtBytes, fmtRatio, markdownTable, mark, median, percentile } from './lib/stats.js';
import { ZOO, type ZooModel } from './lib/zoo.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = join(root, 'test/fixtures/zoo');
const argv = process.argv.slice(2);
const opt = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const MODELS = opt('--models')?.split(',');
const ONLY = opt('--variants')?.split(',');
/** Seconds of interleaved timing per model and runtime. */
const SECONDS = Number(opt('--seconds') ?? 12);
const log = (m: string) => console.error(`static-zoo: ${m} (load ${loadAverage()})`);
const ORT_PYTHON = process.env.ORT_PYTHON;
const ORT_METHODS = (process.env.ORT_METHODS ?? 'MinMax').split(',');

/**
 * ONNX Runtime's quantize_static on the calibration samples (bench/ort-quantize.py): variant id → file,
 * or the error it gave.
 */
function ortQuantize(m: ZooModel, calibration: Sample[], dir: string): { id: string; label: string; file?: string; error?: string }[] {
  const calib = join(dir, 'ort-calib');
  mkdirSync(calib, { recursive: true });
  calibration.forEach((s, i) => {
    for (const [name, t] of Object.entries(s.feeds)) writeNpy(join(calib, `${i}_${name}.npy`), t.data as Float32Array, [...t.dims]);
  });
  return ORT_METHODS.map((method) => {
    const id = `ort-${method.toLowerCase()}`;
    const label = `ORT quantize_static ${method}`;
    const file = join(dir, `${id}.onnx`);
    const r = spawnSync(ORT_PYTHON!, [join(root, 'bench', 'ort-quantize.py'), m.file, calib, file, method], { encoding: 'utf8', maxBuffer: 16 << 20 });
    const line = r.stdout.trim().split('\n').at(-1) ?? '';
    try {
      const res = JSON.parse(line) as { ok: boolean; error?: string };
      return res.ok ? { id, label, file } : { id, label, error: res.error };
    } catch {
      return { id, label, error: (r.stderr || r.stdout).trim().split('\n').at(-1)?.slice(0, 200) ?? 'failed' };
    }
  });
}

interface Variant {
  id: string;
  label: string;
  quantize?: string;
  /** A budget at the model's 8-bit cosine floor (the search decides activations per layer). */
  budget?: boolean;
}
const ALL_VARIANTS: Variant[] = [
  { id: 'fp32', label: 'float32' },
  { id: 'w8', label: 'int8 weight-only', quantize: '{ dtype: int8 }' },
  { id: 'su8mm', label: 'static uint8 minmax', quantize: '{ dtype: int8, activations: uint8, calibrate: minmax }' },
  { id: 'su8pc', label: 'static uint8 percentile', quantize: '{ dtype: int8, activations: uint8, calibrate: percentile }' },
  { id: 'su8en', label: 'static uint8 entropy', quantize: '{ dtype: int8, activations: uint8, calibrate: entropy }' },
  { id: 'si8mm', label: 'static int8 minmax', quantize: '{ dtype: int8, activations: int8, calibrate: minmax }' },
  { id: 'su8bud', label: 'static uint8 minmax, budget at the floor', quantize: '{ dtype: int8, activations: uint8, calibrate: minmax }', budget: true },
];
const VARIANTS = ALL_VARIANTS.filter((v) => !v.quantize || !ONLY || ONLY.includes(v.id));

interface Manifest {
  output: { bytes: number; file: string };
  accuracy?: { metrics: { cosine: number; agreement: number; maxAbs: number } };
  steps: {
    step: string;
    layers?: { activations?: string }[];
    totals?: {
      static?: { layers: number; floatActivationLayers: number; guard?: { cosine: number; cosineAfter: number; kept: unknown[]; ms: number } };
      search?: { met: boolean; runs: number; ms: { sensitivity: number; search: number }; activations?: { layers: number; eightBit: number }; points: { cosine: number }[]; chosen: number };
    };
  }[];
  warnings: string[];
}

interface Row {
  model: string;
  id: string;
  label: string;
  file: string;
  bytes: number;
  cosine?: number;
  agreement?: number;
  maxAbs?: number;
  /** Static builds: layers with 8-bit activations, of those asked. */
  staticLayers?: string;
  guard?: string;
  ops: string;
  node?: { median: number; p90: number };
  web: { loads: boolean; error?: string; maxAbsDiff?: number; rms?: { web: number; quantization: number }; median?: number };
  error?: string;
}

function recipe(m: ZooModel): string {
  const carry = m.carry ? `, carry: { ${Object.entries(m.carry).map(([o, i]) => `${o}: ${i}`).join(', ')} }` : '';
  const ev = [`data: ${JSON.stringify(join(fixtures, m.data))}`, 'runs: 0', ...(m.samples ? [`samples: ${m.quickSamples ?? m.samples}`] : []), ...(m.output ? [`output: ${m.output}`] : [])].join(', ');
  return [
    'defaults:',
    '  device: cpu',
    'models:',
    `  ${m.name}:`,
    `    source: ${JSON.stringify(m.file)}`,
    `    calibration: { data: ${JSON.stringify(join(fixtures, m.calibration))}, samples: 128${carry} }`,
    `    evaluate: { ${ev}${carry} }`,
    '    variants:',
    ...VARIANTS.filter((v) => v.quantize).map((v) => `      ${v.id}: { quantize: ${v.quantize}${v.budget ? `, budget: { minCosine: ${m.floors.eight.minCosine ?? 0.99}, onFail: warn }` : ''} }`),
    '',
  ].join('\n');
}

/** Op types of onnxruntime's optimized graph that say what runs in integers and what in float. */
async function fusedOps(file: string): Promise<string> {
  const path = `${file}.optimized.onnx`;
  const s = await ort.InferenceSession.create(file, { graphOptimizationLevel: 'all', optimizedModelFilePath: path, intraOpNumThreads: 1, logSeverityLevel: 3 });
  await s.release();
  const ops = new Map<string, number>();
  const walk = (nodes: { opType?: string; attribute?: { g?: { node: unknown[] }; graphs?: { node: unknown[] }[] }[] }[]) => {
    for (const n of nodes) {
      ops.set(n.opType!, (ops.get(n.opType!) ?? 0) + 1);
      for (const a of n.attribute ?? []) for (const g of [a.g, ...(a.graphs ?? [])]) if (g) walk(g.node as typeof nodes);
    }
  };
  walk(readModel(path).graph!.node as Parameters<typeof walk>[0]);
  rmSync(path, { force: true });
  const shown = ['QLinearConv', 'QGemm', 'QLinearMatMul', 'MatMulIntegerToFloat', 'QLinearAdd', 'QLinearMul', 'QLinearConcat', 'QLinearGlobalAveragePool', 'QLinearAveragePool', 'QLinearSigmoid', 'QLinearLeakyRelu', 'QuantizeLinear', 'DequantizeLinear', 'Conv', 'FusedConv', 'Gemm', 'FusedGemm', 'MatMul', 'FusedMatMul'];
  return shown.filter((o) => ops.has(o)).map((o) => `${o} ×${ops.get(o)}`).join(', ');
}


/** Rounds that fit `SECONDS` given one round's cost (measured on the warm-up). */
async function roundsFor(runners: Runner[], feeds: (i: number) => Record<string, ort.Tensor>, min: number, max: number): Promise<number> {
  const t0 = performance.now();
  for (const r of runners) await r.run(feeds(0));
  const round = Math.max(0.01, performance.now() - t0);
  return Math.max(min, Math.min(max, Math.round((SECONDS * 1000) / round)));
}

async function benchModel(m: ZooModel, dir: string): Promise<{ rows: Row[]; floor?: number; buildS: number; heldOut: number; calibration: number }> {
  const mdir = join(dir, m.name);
  mkdirSync(mdir, { recursive: true });
  writeFileSync(join(mdir, 'compress.yaml'), recipe(m));
  log(`${m.name}: building ${VARIANTS.length - 1} variants with the CLI`);
  const t0 = performance.now();
  const cli = spawnSync(process.execPath, [join(root, 'dist/cli.js'), 'build', 'compress.yaml', '--out', 'out', '--no-cache', '-q', '-j', '2'], { cwd: mdir, encoding: 'utf8', maxBuffer: 64 << 20 });
  const buildS = (performance.now() - t0) / 1000;
  const specs = inputSpecs(readModel(m.file));
  const heldOut = await loadSamples({ data: join(fixtures, m.data), ...(m.samples && { samples: m.quickSamples ?? m.samples }) }, specs);
  const calibration = (await loadSamples({ data: join(fixtures, m.calibration), samples: 128 }, specs)).length;
  const rows: Row[] = [];
  for (const v of VARIANTS) {
    const row: Row = { model: m.name, id: v.id, label: v.label, file: m.file, bytes: readFileSync(m.file).byteLength, ops: '', web: { loads: false } };
    rows.push(row);
    if (v.quantize) {
      const mf = join(mdir, 'out', `${m.name}.${v.id}.manifest.json`);
      if (!existsSync(mf)) {
        row.error = cli.stderr.split('\n').find((l) => l.includes(`${m.name}.${v.id}`)) ?? cli.stderr.trim().split('\n').at(-1) ?? 'build failed';
        continue;
      }
      const man = JSON.parse(readFileSync(mf, 'utf8')) as Manifest;
      row.file = join(mdir, 'out', man.output.file);
      row.bytes = man.output.bytes;
      row.cosine = man.accuracy?.metrics.cosine;
      row.agreement = man.accuracy?.metrics.agreement;
      row.maxAbs = man.accuracy?.metrics.maxAbs;
      const st = man.steps.find((s) => s.step === 'quantize')?.totals?.static;
      if (st) {
        row.staticLayers = `${st.layers} of ${st.layers + st.floatActivationLayers}`;
        const g = st.guard;
        if (g) row.guard = g.kept.length ? `${g.cosine.toFixed(4)} → ${g.cosineAfter.toFixed(4)}, ${g.kept.length} kept float, ${(g.ms / 1000).toFixed(0)} s` : `${g.cosine.toFixed(4)}`;
      }
      const se = man.steps.find((s) => s.step === 'quantize')?.totals?.search;
      if (se) row.guard = `search${se.met ? '' : ' (missed)'}: cosine ${se.points[se.chosen].cosine.toFixed(4)}, ${se.activations ? `${se.activations.eightBit} of ${se.activations.layers} 8-bit, ` : ''}${se.runs} runs, ${((se.ms.sensitivity + se.ms.search) / 1000).toFixed(0)} s`;
    }
    row.ops = await fusedOps(row.file);
  }
  if (ORT_PYTHON && !m.carry) {
    log(`${m.name}: ONNX Runtime's quantize_static (${ORT_METHODS.join(', ')})`);
    const cal = await loadSamples({ data: join(fixtures, m.calibration), samples: 128 }, specs);
    for (const o of ortQuantize(m, cal, mdir)) {
      const row: Row = { model: m.name, id: o.id, label: o.label, file: o.file ?? m.file, bytes: 0, ops: '', web: { loads: false }, ...(o.error && { error: o.error }) };
      rows.push(row);
      if (!o.file) continue;
      row.bytes = readFileSync(o.file).byteLength;
      const ev = await evaluateModels(m.file, o.file, heldOut, { runs: 0, ...(m.output && { output: m.output }) });
      Object.assign(row, { cosine: ev.metrics.cosine, agreement: ev.metrics.agreement, maxAbs: ev.metrics.maxAbs, ops: await fusedOps(o.file) });
    }
  }
  const ok = rows.filter((r) => !r.error);
  const feeds = (i: number) => heldOut[i % heldOut.length].feeds as Record<string, ort.Tensor>;
  // onnxruntime-node: every variant and a second float32 session (the floor), interleaved.
  const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3, extra: { session: { intra_op: { allow_spinning: '0' } } } };
  const sessions = await Promise.all([...ok.map((r) => ort.InferenceSession.create(r.file, opts)), ort.InferenceSession.create(m.file, opts)]);
  for (let i = 0; i < 5; i++) for (const s of sessions) await s.run(feeds(i));
  const runs = await roundsFor(sessions, feeds, 30, 3000);
  log(`${m.name}: onnxruntime-node, ${runs} rounds of ${sessions.length} sessions`);
  const t = await rotation(sessions, feeds, runs, 5);
  ok.forEach((r, k) => (r.node = { median: median(t[k]), p90: percentile(t[k], 90) }));
  const floor = median(t[0]) / median(t[t.length - 1]);
  await Promise.all(sessions.map((s) => s.release()));
  // onnxruntime-web (wasm, one thread): loads and agrees with onnxruntime-node, then its latency.
  const web = ((await import('onnxruntime-web')) as unknown as { default?: typeof import('onnxruntime-web') }).default ?? (await import('onnxruntime-web'));
  web.env.wasm.numThreads = 1;
  web.env.logLevel = 'error';
  const webRunners: { row: Row; s: Awaited<ReturnType<typeof web.InferenceSession.create>> }[] = [];
  // Two held-out samples; the float32 outputs let a static build's one-step differences count as agreement
  // when they are smaller than its own 8-bit error (checkWebCompatibility's floatOutputs).
  const probe = [heldOut[0], heldOut[Math.floor(heldOut.length / 2)]];
  const fp32 = await ort.InferenceSession.create(m.file, { intraOpNumThreads: 1, logSeverityLevel: 3 });
  const floatOutputs: Record<string, Float32Array>[] = [];
  for (const p of probe) {
    const out = await fp32.run(p.feeds as Record<string, ort.Tensor>);
    floatOutputs.push(Object.fromEntries(Object.entries(out).filter(([, t]) => t.type === 'float32').map(([k, t]) => [k, (t.data as Float32Array).slice()])));
  }
  await fp32.release();
  for (const r of ok) {
    try {
      const check = await checkWebCompatibility(readModel(r.file), probe, { floatOutputs });
      const rms = check.outputs.find((o) => o.rms)?.rms;
      r.web = { loads: true, maxAbsDiff: Math.max(...check.outputs.map((o) => o.maxAbsDiff)), ...(rms && { rms }) };
    } catch (e) {
      r.web = { loads: false, error: (e as Error).message.split('\n')[0].slice(0, 160) };
      continue;
    }
    webRunners.push({ row: r, s: await web.InferenceSession.create(new Uint8Array(readFileSync(r.file)), { executionProviders: ['wasm'], graphOptimizationLevel: 'all' }) });
  }
  const webFeeds = (i: number) => {
    const f: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(feeds(i))) f[k] = new web.Tensor(x.type as 'float32', x.data as Float32Array, x.dims);
    return f as unknown as Record<string, ort.Tensor>;
  };
  const wr = webRunners.map((w) => w.s) as unknown as Runner[];
  if (wr.length) {
    const webRuns = await roundsFor(wr, webFeeds, 20, 1500);
    log(`${m.name}: onnxruntime-web wasm, ${webRuns} rounds of ${wr.length} sessions`);
    const tw = await rotation(wr, webFeeds, webRuns, 3);
    webRunners.forEach((w, i) => (w.row.web.median = median(tw[i])));
  }
  await Promise.all(webRunners.map((w) => w.s.release()));
  return { rows, floor, buildS, heldOut: heldOut.length, calibration };
}

const us = (ms: number | undefined) => (ms === undefined ? '–' : ms >= 10 ? `${ms.toFixed(1)} ms` : `${(ms * 1000).toFixed(0)} µs`);

async function main(): Promise<void> {
  if (!existsSync(join(root, 'dist', 'cli.js'))) throw new Error('dist/cli.js is missing: npm run build first');
  const mInfo = machineInfo();
  const models = ZOO.filter((m) => !MODELS || MODELS.includes(m.name));
  const dir = mkdtempSync(join(tmpdir(), 'static-zoo-'));
  const startLoad = loadAverage();
  log(`start: ${models.length} models × ${VARIANTS.length} variants`);
  const md: string[] = [
    '## Static int8 on the model zoo (bench/static-zoo.ts)',
    '',
    `Each model built with \`node dist/cli.js build\` as the variants below, calibrated on the zoo's calibration modules (test/fixtures/zoo/calib-*.mjs: other texts, fonts, voices and noise than the held-out data), fidelity from the manifest's evaluation on the held-out modules (docs/zoo.md). Latency: onnxruntime-node ${mInfo.onnxruntimeNode}, 1 thread, no spinning, optimization level all, every session open and run in rotation on the held-out samples, median (p90); floor = a second float32 session in the same rotation. onnxruntime-web: wasm from Node, 1 thread, same rotation; max |Δ| against onnxruntime-node on two held-out samples (a static build also agrees when that difference's RMS is at most its own RMS error against float32: one 8-bit step apart somewhere, docs/static-quantization.md). ${mInfo.cpu}, ${mInfo.cores} cores, SIMD ${mInfo.simd.join(' ') || '–'}. Load average at the start ${startLoad}.`,
    '',
  ];
  const targets: { what: string; target: string; value: string; met: boolean | undefined }[] = [];
  const all: Record<string, unknown> = {};
  const belowFloor: string[] = [];
  const noWeb: string[] = [];
  let staticBuilds = 0;
  try {
    for (const m of models) {
      const r = await benchModel(m, dir);
      all[m.name] = r;
      const fp = r.rows[0];
      const floorCos = m.floors.eight.minCosine;
      const floorAgr = m.floors.eight.minAgreement;
      md.push(`### ${m.name}: ${r.calibration} calibration samples, ${r.heldOut} held out; ${VARIANTS.length - 1} builds in ${r.buildS.toFixed(0)} s; node floor ${fmtRatio(r.floor ?? NaN)}`, '');
      const table = r.rows.map((x) => {
        if (x.error) return [x.label, `build failed: ${x.error.slice(0, 120)}`, '', '', '', '', '', '', '', ''];
        return [
          x.label,
          fmtBytes(x.bytes),
          x.staticLayers ?? '',
          x === fp ? '' : `${x.cosine?.toFixed(4) ?? '–'}${m.classes && x.agreement !== undefined ? ` · agr ${x.agreement.toFixed(3)}` : ''}${m.floors.eight.maxAbs !== undefined && x.maxAbs !== undefined ? ` · max ${x.maxAbs.toFixed(3)}` : ''}`,
          x.guard ?? '',
          x.node ? `${us(x.node.median)} (${us(x.node.p90)})` : '–',
          x.node && fp.node ? fmtRatio(fp.node.median / x.node.median) : '–',
          x.web.loads ? `${us(x.web.median)} (${x.web.median && fp.web.median ? fmtRatio(fp.web.median / x.web.median) : '–'})` : `does not load: ${x.web.error}`,
          x.web.maxAbsDiff === undefined ? '–' : `${x.web.maxAbsDiff.toPrecision(2)}${x.web.rms ? ` (RMS ${x.web.rms.web.toPrecision(2)} ≤ own 8-bit error ${x.web.rms.quantization.toPrecision(2)})` : ''}`,
          x.ops,
        ];
      });
      md.push(markdownTable(['variant', 'bytes', '8-bit activation layers', 'held-out cosine vs fp32', 'guard or budget search, on calibration', 'node median (p90)', 'vs fp32', 'wasm median (vs fp32)', 'wasm vs node: max |Δ|', 'onnxruntime runs it as'], table), '');
      for (const x of r.rows.filter((x) => x.id.startsWith('s') && x.id !== 'fp32')) {
        staticBuilds++;
        if (x.error || (floorCos !== undefined && !((x.cosine ?? 0) >= floorCos)) || (m.classes && floorAgr !== undefined && !((x.agreement ?? 0) >= floorAgr))) belowFloor.push(`${m.name} ${x.label}`);
        if (!x.web.loads) noWeb.push(`${m.name} ${x.label}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  targets.push({ what: 'zoo static int8 builds that meet their model\'s 8-bit fidelity floor on held-out data', target: `${staticBuilds}`, value: `${staticBuilds - belowFloor.length}${belowFloor.length ? ` (below: ${belowFloor.join('; ')})` : ''}`, met: belowFloor.length === 0 });
  targets.push({ what: 'zoo static int8 builds that load and run in onnxruntime-web wasm like onnxruntime-node', target: `${staticBuilds}`, value: `${staticBuilds - noWeb.length}${noWeb.length ? ` (not: ${noWeb.join('; ')})` : ''}`, met: noWeb.length === 0 });
  md.push(markdownTable(['target', 'goal', 'measured', ''], targets.map((t) => [t.what, t.target, t.value, mark(t.met)])), '');
  md.push(`Load average at the end ${loadAverage()}.`);
  const markdown = md.join('\n');
  console.log(markdown);
  mkdirSync(join(root, 'bench', 'out'), { recursive: true });
  writeFileSync(join(root, 'bench', 'out', 'static-zoo.json'), JSON.stringify({ machine: mInfo, models: all, markdown, targets }, null, 1));
}

await main();
