/**
 * Per-op gradient probe for a GPU execution provider: which backward ops compute other gradients on
 * the GPU than on the CPU?
 *
 * 1. Every single-op case of test/autodiff.test.ts (test/autodiff-cases.ts), in float32: the training
 *    graph (loss Σ y·R) is built once, run on the CPU and on `--device` with the same inputs, and the
 *    gradients compared: the largest relative L2 difference over the case's parameters, OK when
 *    ≤ GRADIENT_TOLERANCE (1e-3, the distill step's guard), else MISMATCH (ERROR: the device could not
 *    open or run it).
 * 2. The two fixtures as the distill step trains them (KD loss, appendKdLoss, trainable parameters of
 *    selectTrainable), spam transformer at batch 32 and Fashion-MNIST CNN at batch 64, each in two
 *    variants, with the top 5 parameters by difference:
 *    - `as bench/distill.ts`: the teacher is the model itself and the one-hot labels are zeros. The
 *      loss then sits at its exact minimum (≈ 0), so the true gradient is 0 and what comes out is float
 *      rounding noise (‖g‖ ~ 1e-8): two devices give unrelated noise, a relative difference of ~1 says
 *      nothing about the backward ops. Kept to show that.
 *    - `real labels`: the same plus the hard-label cross-entropy on the fixtures' labels: real gradients.
 *      With --trace (default), the training graph is also run with every value as an output, and the
 *      first values (graph order: forward, then backward) whose relative L2 difference exceeds the
 *      tolerance are listed, with their ops: where a divergence starts.
 *
 * The teacher logits are computed on the CPU once and fed to both sides, so only the training graph
 * differs between them. `--device cpu` compares the CPU with itself (everything must be OK: a check
 * of this script).
 *
 * Bundle (onnxruntime-node stays external, resolved from the node_modules next to the output):
 *   npx esbuild bench/gpu/grad-ops.ts --bundle --platform=node --format=esm --external:onnxruntime-node --outfile=bench/out/gpu-grad/grad-ops.mjs
 *   node bench/out/gpu-grad/grad-ops.mjs [--device gpu|auto|cpu] [--root <repo>] [--threads 4] [--only <text>] [--no-models] [--no-trace | --trace]
 * Writes $OUT/grad-ops.json (OUT defaults to bench/out). Fixtures are read under --root (default: cwd).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { buildTrainingGraph } from '../../src/autodiff/backward.js';
import { probeShapes } from '../../src/autodiff/shapes.js';
import { stackSamples } from '../../src/data/batch.js';
import { loadFashionMnist, loadSpamTestSet } from '../lib/fixtures.js';
import type { Sample } from '../../src/data/types.js';
import { DataType } from '../../src/onnx/dtypes.js';
import { readModel } from '../../src/onnx/io.js';
import { tensorFloat32 } from '../../src/onnx/tensor.js';
import type { ModelProto } from '../../src/onnx/types.js';
import { inputSpecs, openSession, outputNames, probeGpu, type DeviceRequest } from '../../src/runtime/session.js';
import { compareGradients, GRADIENT_TOLERANCE, relativeL2, type GradientDifference } from '../../src/transforms/distill/gradcheck.js';
import { appendKdLoss } from '../../src/transforms/distill/loss.js';
import { TeacherLogits } from '../../src/transforms/distill/teacher.js';
import { selectTrainable } from '../../src/transforms/distill/trainable.js';
import { buildCase, caseFeeds, cases, dynamicCases, type Case } from '../../test/autodiff-cases.js';

const argv = process.argv.slice(2);
const arg = (name: string, fallback: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : fallback;
};
const flag = (name: string) => argv.includes(`--${name}`);
const ROOT = path.resolve(arg('root', process.cwd()));
const DEVICE = arg('device', 'gpu') as DeviceRequest;
const THREADS = Number(arg('threads', String(Math.min(4, os.availableParallelism()))));
const ONLY = arg('only', '');
const MODELS = !flag('no-models');
// The trace of the whole models: on by default against a GPU, off against the CPU unless asked for.
const TRACE = flag('trace') || (!flag('no-trace') && DEVICE !== 'cpu');
const OUT = path.resolve(process.env.OUT || 'bench/out');
const TOL = GRADIENT_TOLERANCE;
if (!['cpu', 'gpu', 'auto'].includes(DEVICE)) throw new Error(`--device must be cpu, gpu or auto (got ${DEVICE})`);

const fmt = (d: number | undefined) => (d === undefined ? '-' : Number.isFinite(d) ? d.toExponential(2) : String(d));
const short = (e: unknown) => (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').slice(0, 240);
const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const started = performance.now();
const secs = () => ((performance.now() - started) / 1000).toFixed(1);

function ortVersion(): string {
  try {
    return (JSON.parse(readFileSync(path.join(ROOT, 'node_modules/onnxruntime-node/package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Runs a model on the CPU and on DEVICE with the same feeds; the device side's EP, or the error that stopped it. */
async function bothSides(model: ModelProto, feeds: Record<string, ort.Tensor>, fetches: string[]) {
  const cpu = await openSession(model, { device: 'cpu', intraOpThreads: THREADS });
  let ref: Record<string, ort.Tensor>;
  try {
    ref = (await cpu.session.run(feeds, fetches)) as Record<string, ort.Tensor>;
  } finally {
    await cpu.session.release();
  }
  let ep = DEVICE as string;
  try {
    const dev = await openSession(model, { device: DEVICE, intraOpThreads: THREADS });
    ep = dev.device;
    try {
      const got = (await dev.session.run(feeds, fetches)) as Record<string, ort.Tensor>;
      return { ref, got, ep };
    } finally {
      await dev.session.release();
    }
  } catch (e) {
    return { ref, ep, error: short(e) };
  }
}

const norm2 = (v: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
};

const floats = (t: ort.Tensor | undefined): ArrayLike<number> | undefined =>
  t && (t.type === 'float32' || t.type === 'float64') ? (t.data as Float32Array | Float64Array) : undefined;

// ------------------------------------------------------------------------------------------ ops

interface OpRow {
  case: string;
  type: 'float32' | 'float64';
  ep: string;
  maxDiff?: number;
  worstParam?: string;
  lossDiff?: number;
  gradNorm?: number;
  status: 'OK' | 'MISMATCH' | 'ERROR';
  error?: string;
}

async function opCase(c: Case): Promise<OpRow> {
  // float32 (what training and the GPU EPs run); float64 only for a graph that cannot be float32.
  let type: number = DataType.FLOAT;
  let built;
  try {
    built = await buildCase(c, type);
  } catch (e32) {
    try {
      type = DataType.DOUBLE;
      built = await buildCase(c, type);
    } catch {
      return { case: c.name, type: 'float32', ep: '-', status: 'ERROR', error: `build: ${short(e32)}` };
    }
  }
  const typeName = type === DataType.DOUBLE ? 'float64' : 'float32';
  const { training } = built;
  const fetches = [training.loss, ...training.gradients.values()];
  const { ref, got, ep, error } = await bothSides(training.model, caseFeeds(built, type), fetches);
  if (!got) return { case: c.name, type: typeName, ep, status: 'ERROR', error };
  const pick = (out: Record<string, ort.Tensor>) => new Map([...training.gradients].map(([p, o]) => [p, out[o]?.data as Float32Array]).filter(([, v]) => v) as [string, Float32Array][]);
  const cmp = compareGradients(pick(ref), pick(got), TOL);
  let gradNorm = 0;
  for (const g of pick(ref).values()) gradNorm = Math.max(gradNorm, norm2(g));
  return {
    case: c.name, type: typeName, ep,
    maxDiff: cmp.worst?.difference, worstParam: cmp.worst?.param,
    lossDiff: relativeL2(floats(ref[training.loss])!, floats(got[training.loss]) ?? []),
    gradNorm,
    status: cmp.ok ? 'OK' : 'MISMATCH',
  };
}

// --------------------------------------------------------------------------------- whole models

interface TraceRow {
  value: string;
  op: string;
  node: string;
  diff: number;
  norm: number;
}

interface ModelRow {
  model: string;
  variant: string;
  batch: number;
  ep: string;
  loss?: { cpu: number; device: number };
  /** Largest ‖g_cpu‖ over the parameters (≈ 1e-8 or less: the gradient is rounding noise). */
  gradNorm?: number;
  maxDiff?: number;
  status: 'OK' | 'MISMATCH' | 'ERROR';
  top?: (GradientDifference & { norm: number; dims: number[] })[];
  mismatched?: number;
  params?: number;
  trace?: { compared: number; over: number; first: TraceRow[]; error?: string };
  error?: string;
  ms: number;
}

async function wholeModel(name: string, model: ModelProto, samples: Sample[], batch: number): Promise<ModelRow[]> {
  const specs = inputSpecs(model);
  const chosen = samples.slice(0, batch);
  const feeds = stackSamples(chosen, specs)!.feeds;
  const teacher = await TeacherLogits.compute(model, chosen, { device: 'cpu', intraOpThreads: THREADS });
  const trained = selectTrainable(model);
  const kd = appendKdLoss(model, { logits: outputNames(model)[0], temperature: 2, labels: true });
  const oneHot = (n: number, real: boolean) => {
    const v = new Float32Array(n * teacher.classes);
    if (real) for (let i = 0; i < n; i++) v[i * teacher.classes + Number(chosen[i].label)] = 1;
    return v;
  };
  const extra = (n: number, real: boolean): Record<string, ort.Tensor> => ({
    [kd.teacherInput]: new ort.Tensor('float32', teacher.batch(Array.from({ length: n }, (_, i) => i)), [n, ...teacher.dims]),
    [kd.labelInput!]: new ort.Tensor('float32', oneHot(n, real), [n, ...teacher.dims]),
  });
  const two = stackSamples(chosen.slice(0, 2), specs)!.feeds;
  const shapes = await probeShapes(kd.model, [{ ...chosen[0].feeds, ...extra(1, true) }, { ...two, ...extra(2, true) }], { intraOpThreads: THREADS });
  const graph = buildTrainingGraph(kd.model, { params: trained.map((p) => p.name), loss: kd.loss, shapes });
  const inits = new Map(model.graph!.initializer.map((t) => [t.name ?? '', t]));
  const paramFeeds = Object.fromEntries(trained.map((p) => [p.name, new ort.Tensor('float32', tensorFloat32(inits.get(p.name)!).slice(), p.dims)]));
  const dims = new Map(trained.map((p) => [p.name, p.dims]));
  const fetches = [kd.loss, ...graph.gradients.values()];
  const rows: ModelRow[] = [];
  for (const [variant, real] of [['as bench/distill.ts (teacher = itself, zero labels)', false], ['real labels', true]] as const) {
    const t0 = performance.now();
    const trainFeeds = { ...feeds, ...extra(batch, real), ...paramFeeds };
    const { ref, got, ep, error } = await bothSides(graph.model, trainFeeds, fetches);
    if (!got) {
      rows.push({ model: name, variant, batch, ep, status: 'ERROR', error, ms: performance.now() - t0 });
      continue;
    }
    const pick = (out: Record<string, ort.Tensor>) => new Map([...graph.gradients].map(([p, o]) => [p, out[o].data as Float32Array]));
    const cpuGrads = pick(ref);
    const cmp = compareGradients(cpuGrads, pick(got), TOL);
    const norm = (p: string) => norm2(cpuGrads.get(p)!);
    const row: ModelRow = {
      model: name, variant, batch, ep,
      loss: { cpu: Number(ref[kd.loss].data[0]), device: Number(got[kd.loss].data[0]) },
      gradNorm: Math.max(...[...cpuGrads.keys()].map(norm)),
      maxDiff: cmp.worst?.difference,
      status: cmp.ok ? 'OK' : 'MISMATCH',
      top: cmp.differences.slice(0, 5).map((d) => ({ ...d, norm: norm(d.param), dims: dims.get(d.param) ?? [] })),
      mismatched: cmp.mismatched.length,
      params: cmp.differences.length,
      ms: 0,
    };
    if (real && TRACE) row.trace = await trace(graph.model, trainFeeds);
    row.ms = performance.now() - t0;
    rows.push(row);
  }
  return rows;
}

/** The training graph with every node output as a graph output, on both sides: the first values that differ. */
async function trace(model: ModelProto, feeds: Record<string, ort.Tensor>): Promise<NonNullable<ModelRow['trace']>> {
  const g = model.graph!;
  const producers = new Map<string, { op: string; node: string }>();
  const outputs: string[] = [];
  const seen = new Set<string>();
  for (const n of g.node) {
    for (const o of n.output) {
      if (!o || seen.has(o)) continue;
      seen.add(o);
      outputs.push(o);
      producers.set(o, { op: n.opType ?? '', node: n.name ?? '' });
    }
  }
  const declared = new Set(g.output.map((o) => o.name));
  const all: ModelProto = { ...model, graph: { ...g, output: [...g.output, ...outputs.filter((o) => !declared.has(o)).map((name) => ({ name, metadataProps: [] }))] } };
  try {
    const { ref, got, error } = await bothSides(all, feeds, outputs);
    if (!got) return { compared: 0, over: 0, first: [], error };
    const first: TraceRow[] = [];
    let compared = 0;
    let over = 0;
    for (const o of outputs) {
      const a = floats(ref[o]);
      const b = floats(got[o]);
      if (!a || !b) continue;
      compared++;
      const norm = norm2(a);
      const diff = relativeL2(a, b);
      if (!(diff <= TOL)) {
        over++;
        if (first.length < 12) first.push({ value: o, ...producers.get(o)!, diff, norm });
      }
    }
    return { compared, over, first };
  } catch (e) {
    return { compared: 0, over: 0, first: [], error: short(e) };
  }
}

// -------------------------------------------------------------------------------------------- main

const probe = DEVICE === 'cpu' ? undefined : await probeGpu();
console.log(`grad-ops: CPU vs ${DEVICE}${probe ? ` (GPU probe: ${probe.provider ?? 'none'}${probe.failures.length ? `; failed: ${probe.failures.map((f) => `${f.provider}: ${f.reason}`).join('; ')}` : ''})` : ''}; ${os.cpus()[0]?.model ?? '?'}, ${os.availableParallelism()} cores, node ${process.version}, onnxruntime-node ${ortVersion()}, ${THREADS} intra-op threads; tolerance ${TOL} (relative L2 per parameter gradient)`);

const ops: OpRow[] = [];
const selected = [...cases, ...dynamicCases].filter((c) => !ONLY || c.name.toLowerCase().includes(ONLY.toLowerCase()));
const width = Math.max(...selected.map((c) => c.name.length), 4);
console.log(`\n${pad('case', width)}  type     EP       max rel L2   loss rel L2  status`);
for (const c of selected) {
  const row = await opCase(c).catch((e): OpRow => ({ case: c.name, type: 'float32', ep: '-', status: 'ERROR', error: short(e) }));
  ops.push(row);
  const detail = row.status === 'MISMATCH' ? `  (worst: ${row.worstParam}, ‖g_cpu‖ ${fmt(row.gradNorm)})` : row.error ? `  ${row.error}` : '';
  console.log(`${pad(row.case, width)}  ${pad(row.type, 7)}  ${pad(row.ep, 7)}  ${pad(fmt(row.maxDiff), 11)}  ${pad(fmt(row.lossDiff), 11)}  ${row.status}${detail}`);
}
const count = (s: OpRow['status']) => ops.filter((r) => r.status === s).length;
console.log(`\nops: ${count('OK')} OK, ${count('MISMATCH')} MISMATCH, ${count('ERROR')} ERROR of ${ops.length} (${secs()} s)`);
const bad = ops.filter((r) => r.status !== 'OK');
if (bad.length) console.log(`not OK: ${bad.map((r) => r.case).join(' | ')}`);

const models: ModelRow[] = [];
if (MODELS) {
  const fx = (p: string) => path.join(ROOT, 'test/fixtures', p);
  const load: [string, () => { model: ModelProto; samples: Sample[] }, number][] = [
    ['spam transformer', () => ({ model: readModel(fx('spam-tinybert/model.onnx')), samples: loadSpamTestSet(fx('spam-tinybert/test-split.json'), 32) }), 32],
    ['fmnist CNN', () => ({ model: readModel(fx('fmnist-cnn/model.onnx')), samples: loadFashionMnist(fx('fmnist-cnn/t10k-images-idx3-ubyte.gz'), fx('fmnist-cnn/t10k-labels-idx1-ubyte.gz'), 64) }), 64],
  ];
  for (const [name, get, batch] of load) {
    let rows: ModelRow[];
    try {
      const { model, samples } = get();
      rows = await wholeModel(name, model, samples, batch);
    } catch (e) {
      rows = [{ model: name, variant: '-', batch, ep: '-', status: 'ERROR', error: short(e), ms: 0 }];
    }
    for (const r of rows) {
      models.push(r);
      console.log(`\n${r.model}, batch ${r.batch}, ${r.variant}: ${r.status} on ${r.ep}${r.error ? `: ${r.error}` : ''}`);
      if (r.loss) console.log(`  loss cpu ${r.loss.cpu.toPrecision(6)} / ${r.ep} ${r.loss.device.toPrecision(6)}; largest ‖g_cpu‖ ${fmt(r.gradNorm)}; max rel L2 ${fmt(r.maxDiff)}; ${r.mismatched} of ${r.params} parameters over ${TOL}`);
      for (const t of r.top ?? []) console.log(`    ${pad(fmt(t.difference), 9)}  ${t.param} [${t.dims.join('×')}]  ‖g_cpu‖ ${fmt(t.norm)}`);
      if (r.trace) {
        if (r.trace.error) console.log(`  trace: ${r.trace.error}`);
        else {
          console.log(`  trace: ${r.trace.over} of ${r.trace.compared} float values of the training graph differ by > ${TOL}${r.trace.over ? '; the first (graph order: forward, then backward):' : ''}`);
          for (const t of r.trace.first) console.log(`    ${pad(fmt(t.diff), 9)}  ${pad(t.op, 20)} ${t.value}  (node ${t.node}, ‖cpu‖ ${fmt(t.norm)})`);
        }
      }
    }
  }
}

mkdirSync(OUT, { recursive: true });
const file = path.join(OUT, 'grad-ops.json');
const json = JSON.stringify(
  { device: DEVICE, probe, tolerance: TOL, threads: THREADS, cpu: os.cpus()[0]?.model, cores: os.availableParallelism(), node: process.version, onnxruntimeNode: ortVersion(), date: new Date().toISOString(), seconds: Number(secs()), ops, models },
  (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v),
  2,
);
writeFileSync(file, json);
console.log(`\nwrote ${file} (${secs()} s)`);
