/**
 * The `prune` step: zero or remove the least important weights of MatMul / Gemm / Conv layers.
 *
 * - structure `unstructured`: exactly round(rate·n) zeros per layer (scope layer) or over all selected
 *   layers (scope global). Dense storage keeps the raw size; brotli/gzip shrink.
 * - structure "N:M": in every M consecutive input weights of an output unit keep the N best.
 * - structure `channels`: remove output units and everything that only serves them (channels.ts):
 *   smaller tensors, smaller file, faster model.
 * Scores: magnitude, or activation-aware (Wanda |W|·‖X‖ for weights; activation norm × outgoing
 * weight norm for channels) from the calibration samples. Without calibration data activation-aware
 * falls back to magnitude with a warning.
 */
import { forgetValueInfo, indexModel, NameScope, removeDeadCode, setValueInfo } from '../../onnx/graph.js';
import { DataType } from '../../onnx/dtypes.js';
import { cloneModel } from '../../onnx/edit.js';
import { dimsOf, makeTensor, tensorFloat32 } from '../../onnx/tensor.js';
import type { GraphProto, ModelProto } from '../../onnx/types.js';
import type { PruneStep } from './config.js';
import type { Sample } from '../../data/types.js';
import { inputSpecs } from '../../runtime/specs.js';
import { CompressError } from '../../errors.js';
import { LazyEngine, type MatrixEngine } from '../../linalg/engine.js';
import type { LayerReport, Step, StepContext, StepReport } from '../types.js';
import { activationScores, lowest, magnitudeScores, traceChannels, type Absorber, type ChannelPlan } from './channels.js';
import { blockScores, compensate } from './compensate.js';
import { applyEdits, type KeptEdit, type ReshapeEdit } from './edit.js';
import { pruneNM } from './nm.js';
import { layerBias, layerBiasSite, readCount, replaceWeight, selectLayers, type Layer } from './select.js';
import { modelSize } from './size.js';
import { collectStats, featureNorms, layerInputRequest, layerOutputError, matrix64, MAX_GRAM_FEATURES, outputEnergy, statsKey, type FeatureStats, type StatsRequest } from './stats.js';
import { pruneMagnitude, pruneMagnitudeInPlace, pruneWandaGlobal, pruneWandaRows, wandaScores, type PruneResult } from './unstructured.js';
import { pruneInPlaceParallel, type Pruned } from './parallel.js';

export { globMatch, selectLayers } from './select.js';
export { cloneModel } from '../../onnx/edit.js';
export { satisfiesNM } from './nm.js';

export interface PruneOptions {
  /** intraOpNumThreads for the ORT sessions the step opens (default 1). */
  threads?: number;
  /** Measure brotli sizes (default true; skipped above 64 MiB anyway). */
  brotli?: boolean;
  /**
   * channels: round each layer's kept count to a multiple of this (when the layer's count is one), so
   * kernels keep their vector-friendly sizes: onnxruntime's NCHWc convolutions want multiples of 16
   * (AVX-512) — a CNN with 22/45 channels measured no faster than with 32/64. Default 1.
   */
  channelMultiple?: number;
}

/**
 * LayerReport plus what pruning changes about the shape. `error` (errorKind 'output') is the relative
 * RMS error of the layer's output on the calibration data for unstructured / N:M, and of the outputs of
 * the layers that read the removed channels for `channels`; without calibration data it is the
 * relative weight error.
 */
export interface PruneLayerReport extends LayerReport {
  shapeAfter: number[];
  paramsBefore: number;
  paramsAfter: number;
  /** channels: units kept of the total. */
  kept?: number;
}

export function parseNM(structure: string): { keep: number; group: number } | undefined {
  const m = /^(\d+):(\d+)$/.exec(structure);
  return m ? { keep: Number(m[1]), group: Number(m[2]) } : undefined;
}

export function pruneStep(params: PruneStep, opts: PruneOptions = {}): Step {
  return async (input: ModelProto, ctx: StepContext) => {
    const start = performance.now();
    const model = cloneModel(input);
    const g = model.graph;
    const report: StepReport = { step: 'prune', params: { ...params }, layers: [], skipped: [], warnings: [], ms: 0 };
    if (!g) throw new CompressError('model', 'the model has no graph', { file: ctx.file });
    // rate and structure were checked by the recipe loader (prune/config.ts), at the recipe line.
    const nm = parseNM(params.structure);
    const calibration = ctx.calibration?.length ? ctx.calibration : undefined;
    let method = params.method;
    if (method === 'activation-aware' && !calibration) {
      report.warnings.push('activation-aware pruning needs calibration data; pruned by magnitude instead');
      method = 'magnitude';
    }
    const before = modelSize(input, opts.brotli !== false);
    // onnxruntime (the matrix engine, activation capture) loads on first use: magnitude pruning uses neither.
    const engine = new LazyEngine(() => import('../../runtime/matrix.js').then((m) => m.matrixEngine({ threads: opts.threads ?? 1 })));
    let extra: Record<string, unknown> = {};
    try {
      const { layers, skipped } = selectLayers(model, params);
      report.skipped.push(...skipped);
      const env: Env = { model, g, params, method, calibration, engine, report, ctx, threads: opts.threads ?? 1, multiple: Math.max(1, Math.floor(opts.channelMultiple ?? 1)) };
      extra = params.structure === 'channels' ? await pruneChannels(env, layers) : await pruneWeights(env, layers, nm);
      removeDeadCode(g);
    } finally {
      await engine.release();
    }
    const after = modelSize(model, opts.brotli !== false);
    const layers = report.layers as PruneLayerReport[];
    const paramsBefore = layers.reduce((s, l) => s + l.paramsBefore, 0);
    const paramsAfter = layers.reduce((s, l) => s + l.paramsAfter, 0);
    const zeros = layers.reduce((s, l) => s + (l.sparsity ?? 0) * l.paramsAfter, 0);
    report.totals = {
      method,
      layers: layers.length,
      paramsBefore,
      paramsAfter,
      sparsity: paramsAfter ? zeros / paramsAfter : 0,
      bytesBefore: before.bytes,
      bytesAfter: after.bytes,
      ...(before.brotli !== undefined && after.brotli !== undefined ? { brotliBefore: before.brotli, brotliAfter: after.brotli } : {}),
      ...extra,
    };
    report.ms = performance.now() - start;
    ctx.log(
      `prune ${params.structure} ${method}: ${layers.length} layers, ${paramsBefore} → ${paramsAfter} params, file ${before.bytes} → ${after.bytes} bytes` +
        (before.brotli !== undefined && after.brotli !== undefined ? `, brotli ${before.brotli} → ${after.brotli}` : ''),
    );
    return { model, report };
  };
}

interface Env {
  model: ModelProto;
  g: GraphProto;
  params: PruneStep;
  method: 'magnitude' | 'activation-aware';
  calibration?: Sample[];
  engine: MatrixEngine;
  report: StepReport;
  ctx: StepContext;
  threads: number;
  multiple: number;
}

// ------------------------------------------------------------------ unstructured and N:M

async function pruneWeights(env: Env, layers: Layer[], nm: { keep: number; group: number } | undefined): Promise<Record<string, unknown>> {
  const { report, params, calibration, engine } = env;
  if (nm) {
    layers = layers.filter((l) => {
      if (l.K % nm.group === 0) return true;
      report.skipped.push({ name: l.name, reason: `${l.K} inputs per output are not a multiple of ${nm.group}` });
      return false;
    });
  }
  // Calibration statistics: input norms for Wanda, Gram matrices for output errors.
  const requests = new Map<Layer, StatsRequest>();
  let stats = new Map<string, FeatureStats>();
  if (calibration) {
    for (const l of layers) {
      const r = layerInputRequest(l, true);
      if (r) requests.set(l, r);
      else if (env.method === 'activation-aware') report.warnings.push(`${l.name}: input statistics unavailable (transposed Gemm input), pruned by magnitude`);
    }
    stats = await collectStats(env.model, [...requests.values()], calibration, engine, { device: env.ctx.device, threads: env.threads });
  }
  const statsOf = (l: Layer) => {
    const r = requests.get(l);
    return r ? stats.get(statsKey(r)) : undefined;
  };
  const normsOf = (l: Layer) => {
    const r = requests.get(l);
    const st = statsOf(l);
    return r && st ? featureNorms(l, r, st) : undefined;
  };
  if (!nm && env.method === 'magnitude' && params.scope === 'layer' && !calibration && env.ctx.inPlace) return pruneInPlace(env, layers);
  const weights = layers.map((l) => tensorFloat32(l.site.tensor));
  let pruned: PruneResult[];
  if (nm) {
    pruned = layers.map((l, i) => measured(weights[i], pruneNM(l, weights[i], nm.keep, nm.group, env.method === 'activation-aware' ? normsOf(l) : undefined)));
  } else if (env.method === 'activation-aware') {
    const scores = layers.map((l, i) => {
      const norms = normsOf(l);
      if (!norms) report.warnings.push(`${l.name}: no input statistics, scored by magnitude`);
      return norms ? wandaScores(l, weights[i], norms) : weights[i].map(Math.abs);
    });
    pruned =
      params.scope === 'global'
        ? pruneWandaGlobal(weights, scores, params.rate)
        : layers.map((l, i) => measured(weights[i], pruneWandaRows(l, weights[i], scores[i], params.rate)));
  } else {
    pruned = pruneMagnitude(weights, params.rate, params.scope === 'global');
  }
  for (let i = 0; i < layers.length; i++) {
    const l = layers[i];
    const t = l.site.tensor;
    const after = pruned[i].values;
    replaceWeight(l.site, makeTensor(t.name ?? l.weightName, DataType.FLOAT, l.dims, after));
    const st = statsOf(l);
    const outputError = st ? await layerOutputError(engine, l, st, weights[i], after, layerBias(l)) : undefined;
    const n = after.length;
    report.layers.push(zeroedLayerReport(l, n, pruned[i].zeros / n, outputError ?? pruned[i].weightError, outputError !== undefined ? 'output' : 'weight'));
    env.ctx.progress?.((i + 1) / layers.length);
  }
  return nm ? { pattern: `${nm.keep}:${nm.group}` } : {};
}

/** The report of a layer whose weights were zeroed in place: same shape, type and bytes; its sparsity and error. */
function zeroedLayerReport(l: Layer, n: number, sparsity: number, error: number, errorKind: 'weight' | 'output'): PruneLayerReport {
  return {
    name: l.name,
    op: l.op,
    weight: l.weightName,
    shape: l.dims,
    shapeAfter: l.dims,
    dtypeBefore: 'float32',
    dtypeAfter: 'float32',
    bytesBefore: n * 4,
    bytesAfter: n * 4,
    paramsBefore: n,
    paramsAfter: n,
    sparsity,
    error,
    errorKind,
  };
}

/**
 * Magnitude pruning per layer, in the bytes the model was read into (ctx.inPlace): one weight at a time,
 * through a scratch buffer only for weights whose bytes are not 4-aligned in the file, on worker threads
 * too where that pays (parallel.ts). Memory stays at the model's size instead of three times it (source,
 * float copies, pruned copies).
 */
async function pruneInPlace(env: Env, layers: Layer[]): Promise<Record<string, unknown>> {
  // float_data and other encodings: a new tensor of raw bytes first, as the copying path makes.
  const raws = layers.map((l) => {
    const t = l.site.tensor;
    const n = l.dims.reduce((a, b) => a * b, 1);
    if (t.rawData && t.rawData.byteLength === n * 4) return t.rawData;
    const w = tensorFloat32(t).slice();
    replaceWeight(l.site, makeTensor(t.name ?? l.weightName, DataType.FLOAT, l.dims, w));
    return l.site.tensor.rawData!;
  });
  const local = (i: number): Pruned => {
    const raw = raws[i];
    const n = raw.byteLength / 4;
    if (raw.byteOffset % 4 === 0) return pruneMagnitudeInPlace(new Float32Array(raw.buffer, raw.byteOffset, n), env.params.rate);
    if (scratch.length < n) scratch = new Float32Array(n);
    const w = scratch.subarray(0, n);
    new Uint8Array(w.buffer, 0, n * 4).set(raw);
    const r = pruneMagnitudeInPlace(w, env.params.rate);
    raw.set(new Uint8Array(w.buffer, 0, n * 4));
    return r;
  };
  let finished = 0;
  const progress = () => env.ctx.progress?.(++finished / layers.length);
  const results = (await pruneInPlaceParallel(raws, env.params.rate, local, progress)) ?? layers.map((_, i) => {
    const r = local(i);
    progress();
    return r;
  });
  layers.forEach((l, i) => {
    const n = raws[i].byteLength / 4;
    env.report.layers.push(zeroedLayerReport(l, n, results[i].zeros / n, results[i].weightError, 'weight'));
  });
  return {};
}

/**
 * Kept for the process's lifetime on purpose: glibc raises its mmap threshold to the size of each
 * mapped block the process frees, and a freed weight-sized scratch would make onnxruntime's later
 * weight-sized allocations (verification) come from a heap that is not given back.
 */
let scratch = new Float32Array(0);

/** Zero count and relative weight error of a pruned copy. */
function measured(before: Float32Array, after: Float32Array): PruneResult {
  let zeros = 0;
  let d = 0;
  let t = 0;
  for (let i = 0; i < before.length; i++) {
    t += before[i] * before[i];
    if (after[i] === 0) zeros++;
    d += (before[i] - after[i]) ** 2;
  }
  return { values: after, zeros, weightError: t > 0 ? Math.sqrt(d / t) : 0 };
}

// ------------------------------------------------------------------ channels

/** Shapes of values for one sample (calibration sample 0, else a random sample). */
async function probeShapes(env: Env, names: string[], into: Map<string, number[]>): Promise<string | undefined> {
  let sample: Sample[];
  if (env.calibration) sample = env.calibration.slice(0, 1);
  else {
    try {
      const { randomSamples } = await import('../../data/random.js');
      sample = randomSamples(inputSpecs(env.model), 1, env.ctx.seed, {});
    } catch (e) {
      return `needs the shapes of intermediate values: give calibration data (${(e as Error).message})`;
    }
  }
  const { captureActivations } = await import('../../runtime/capture.js');
  await captureActivations(env.model, names, sample, { device: env.ctx.device === 'gpu' ? 'auto' : env.ctx.device, intraOpThreads: env.threads, onValue: (name, t) => void into.set(name, t.dims.map(Number)) });
  return undefined;
}

async function pruneChannels(env: Env, layers: Layer[]): Promise<Record<string, unknown>> {
  const { report, params, engine, g } = env;
  const index = indexModel(env.model).get(g)!;
  const shapes = new Map<string, number[]>();
  let traces = layers.map((l) => traceChannels(index, l, shapes));
  for (let round = 0; round < 4; round++) {
    const need = new Set<string>();
    for (const t of traces) if ('needShapes' in t) for (const n of t.needShapes) if (!shapes.has(n)) need.add(n);
    if (need.size === 0) break;
    const failed = await probeShapes(env, [...need], shapes);
    if (failed) {
      traces = traces.map((t) => ('needShapes' in t ? { refuse: failed } : t));
      break;
    }
    traces = layers.map((l) => traceChannels(index, l, shapes));
  }
  // Plans that cut a tensor along an axis another plan already cuts would conflict: keep the first.
  const plans: ChannelPlan[] = [];
  const claimed = new Set<string>();
  const ids = new Map<object, number>();
  const id = (o: object) => ids.get(o) ?? (ids.set(o, ids.size), ids.size - 1);
  traces.forEach((t, i) => {
    if ('refuse' in t) return void report.skipped.push({ name: layers[i].name, reason: t.refuse });
    if ('needShapes' in t) return void report.skipped.push({ name: layers[i].name, reason: `shapes of ${t.needShapes.join(', ')} unknown` });
    const keys = t.plan.edits.map((e) => `${id(e.node)}:${e.slot}:${e.axis}`);
    if (keys.some((k) => claimed.has(k))) return void report.skipped.push({ name: layers[i].name, reason: 'shares tensors with another pruned layer' });
    keys.forEach((k) => claimed.add(k));
    plans.push(t.plan);
  });

  // Scores.
  const calibration = env.calibration;
  let stats = new Map<string, FeatureStats>();
  const absorberRequest = (a: ChannelPlan['absorbers'][number]): StatsRequest | undefined =>
    a.layout && { value: a.value, layout: a.layout, gram: a.layer.K <= MAX_GRAM_FEATURES };
  if (calibration) {
    const requests = plans.flatMap((p) => p.absorbers.map(absorberRequest)).filter((r): r is StatsRequest => !!r);
    stats = await collectStats(env.model, requests, calibration, engine, { device: env.ctx.device, threads: env.threads });
  }
  const absorberStats = (a: ChannelPlan['absorbers'][number]) => {
    const r = absorberRequest(a);
    const st = r && stats.get(statsKey(r));
    return st && st.features === a.layer.K ? st : undefined;
  };
  const scores = plans.map((p) => {
    if (env.method !== 'activation-aware') return magnitudeScores(p.layer, tensorFloat32(p.layer.site.tensor));
    const weight = (a: Absorber) => tensorFloat32(a.layer.site.tensor);
    return blockScores(p, absorberStats, weight) ?? activationScores(p, absorberStats, weight);
  });

  // Which channels go.
  const removed: number[][] = plans.map(() => []);
  const maxRemove = (c: number) => c - Math.max(1, Math.ceil(0.1 * c));
  if (params.scope === 'global') {
    const pool: { plan: number; c: number; s: number }[] = [];
    scores.forEach((s, i) => {
      const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length) || 1;
      s.forEach((v, c) => pool.push({ plan: i, c, s: v / mean }));
    });
    pool.sort((a, b) => a.s - b.s);
    let budget = Math.round(params.rate * pool.length);
    for (const e of pool) {
      if (budget === 0) break;
      if (removed[e.plan].length >= maxRemove(plans[e.plan].channels)) continue;
      removed[e.plan].push(e.c);
      budget--;
    }
    removed.forEach((r) => r.sort((a, b) => a - b));
  } else {
    plans.forEach((p, i) => {
      const C = p.channels;
      let remove = Math.round(params.rate * C);
      const m = env.multiple;
      if (m > 1 && C % m === 0 && C > m) remove = C - Math.max(m, Math.round((C - remove) / m) * m);
      removed[i] = lowest(scores[i], Math.min(Math.max(0, C - 1), remove));
    });
  }

  // Readers: refit kept rows (activation-aware), and measure their output error.
  const errors: (number | undefined)[] = [];
  for (let i = 0; i < plans.length; i++) {
    let err = 0;
    let energy = 0;
    let ok = plans[i].absorbers.length > 0 && removed[i].length > 0;
    for (const a of plans[i].absorbers) {
      const st = absorberStats(a);
      const w = tensorFloat32(a.layer.site.tensor);
      const biasSite = layerBiasSite(a.layer);
      const bias = layerBias(a.layer);
      const features = removed[i].flatMap((c) => Array.from({ length: a.features }, (_, j) => c * a.features + j));
      let after: Float32Array = w.slice();
      for (const f of features) for (let n = 0; n < a.layer.N; n++) after[f * a.layer.strideK + n * a.layer.strideN] = 0;
      let biasAfter = bias;
      if (env.method === 'activation-aware' && st?.gram && readCount(index, a.layer.weightName) === 1) {
        const canBias = !!bias && !!biasSite && readCount(index, biasSite.name) === 1 && dimsOf(biasSite.site.tensor).reduce((x, y) => x * y, 1) === a.layer.N;
        const fit = await compensate(engine, a.layer, st, w, canBias ? bias : undefined, features);
        if (fit) {
          after = fit.weight;
          replaceWeight(a.layer.site, makeTensor(a.layer.site.tensor.name ?? a.layer.weightName, DataType.FLOAT, a.layer.dims, fit.weight));
          if (fit.bias && biasSite) {
            biasAfter = fit.bias;
            const scaled = biasSite.scale === 1 ? fit.bias : fit.bias.map((x) => x / biasSite.scale);
            replaceWeight(biasSite.site, makeTensor(biasSite.site.tensor.name ?? biasSite.name, DataType.FLOAT, dimsOf(biasSite.site.tensor), scaled));
          }
        }
      }
      const e = st?.gram ? await layerOutputError(engine, a.layer, st, w, after, bias, biasAfter) : undefined;
      if (e === undefined) {
        ok = false;
        continue;
      }
      const base = await readerEnergy(engine, a.layer, st!, w);
      err += e * e * base;
      energy += base;
    }
    errors.push(ok && energy > 0 ? Math.sqrt(err / energy) : undefined);
  }

  // Rewrite tensors.
  const edits: KeptEdit[] = [];
  const reshapes: ReshapeEdit[] = [];
  const keptOf = plans.map((p, i) => {
    const gone = new Set(removed[i]);
    return Array.from({ length: p.channels }, (_, c) => c).filter((c) => !gone.has(c));
  });
  plans.forEach((p, i) => {
    for (const e of p.edits) edits.push({ ...e, keep: keptOf[i] });
    for (const r of p.shapeEdits) reshapes.push({ node: r.node, index: r.index, size: keptOf[i].length * r.block });
  });
  const paramsBefore = plans.map((p) => p.layer.dims.reduce((a, b) => a * b, 1));
  const written = applyEdits(g, indexModel(env.model).get(g)!, new NameScope(env.model), edits, reshapes);
  plans.forEach((p, i) => {
    for (const [name, v] of p.values) {
      const info = g.valueInfo.find((x) => x.name === name);
      const dims = info?.type?.tensorType?.shape?.dim;
      const elem = info?.type?.tensorType?.elemType;
      if (!info) continue;
      if (!dims || elem === undefined) {
        forgetValueInfo(g, name);
        continue;
      }
      const pos = dims.length + v.axis;
      const d = dims.map((x) => (x.dimValue !== undefined ? Number(x.dimValue) : x.dimParam ?? '?'));
      if (pos >= 0 && typeof d[pos] === 'number') {
        d[pos] = keptOf[i].length * v.block;
        setValueInfo(g, name, elem, d);
      } else forgetValueInfo(g, name);
    }
  });
  const fresh = indexModel(env.model).get(g)!;
  plans.forEach((p, i) => {
    const node = p.layer.node;
    const w = fresh.weight(node.input[1]);
    const dimsAfter = w ? dimsOf(w.tensor) : p.layer.dims;
    const n = dimsAfter.reduce((a, b) => a * b, 1);
    const entry: PruneLayerReport = {
      name: p.layer.name,
      op: p.layer.op,
      weight: p.layer.weightName,
      shape: p.layer.dims,
      shapeAfter: dimsAfter,
      dtypeBefore: 'float32',
      dtypeAfter: 'float32',
      bytesBefore: paramsBefore[i] * 4,
      bytesAfter: n * 4,
      paramsBefore: paramsBefore[i],
      paramsAfter: n,
      kept: keptOf[i].length,
      sparsity: 0,
      ...(errors[i] !== undefined ? { error: errors[i], errorKind: 'output' as const } : {}),
    };
    report.layers.push(entry);
  });
  const tensorsBefore = written.reduce((s, t) => s + t.before.reduce((a, b) => a * b, 1), 0);
  const tensorsAfter = written.reduce((s, t) => s + t.after.reduce((a, b) => a * b, 1), 0);
  return { tensorsBefore, tensorsAfter, tensors: written };
}

/** ‖XW + b‖² of a reader layer on the calibration data. */
function readerEnergy(engine: MatrixEngine, layer: Layer, st: FeatureStats, w: Float32Array): Promise<number> {
  return outputEnergy(engine, st, matrix64(layer, w), layer.K, layer.N, layerBias(layer));
}
