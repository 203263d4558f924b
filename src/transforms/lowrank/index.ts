/**
 * The `lowrank` step: replace a weight W [K, N] by two factors U [K, r]·V [r, N] where that saves
 * parameters (r·(K + N) < K·N).
 *
 * - MatMul(X, W)            → MatMul(MatMul(X, U), V)   (the bias Add after it is untouched)
 * - Gemm(A, B, C)           → MatMul(A, α·U) then Gemm(·, V, C, β), or MatMul when there is no C
 *                             (transA: Gemm(A, α·U, transA=1))
 * - Conv (k×k or 1×1)       → Conv k×k to r channels, then 1×1 Conv to the outputs (conv.ts)
 *
 * Rank: `rank`, `ratio` (round(ratio·min(K, N))) or `energy` (smallest r keeping that share of Σσ²,
 * from the full spectrum). method `svd`: plain truncated SVD (svd.ts; randomized with ORT for large
 * layers). method `activation-aware`: whitened by the calibration Gram matrix (whiten.ts); without
 * calibration data it falls back to plain SVD with a warning.
 */
import { CompressError } from '../../errors.js';
import { DataType } from '../../onnx/dtypes.js';
import { cloneModel } from '../../onnx/edit.js';
import { attrInt, makeAttribute, makeNode, NameScope, opsetVersion, removeDeadCode } from '../../onnx/graph.js';
import { makeTensor, tensorFloat32 } from '../../onnx/tensor.js';
import type { ModelProto, NodeProto, TensorProto } from '../../onnx/types.js';
import type { LowrankStep } from './config.js';
import type { MatrixEngine } from '../../linalg/engine.js';
import { matrixEngine } from '../../runtime/matrix.js';
import type { LayerReport, Step, StepContext, StepReport } from '../types.js';
import { layerBias, selectLayers, weightMatrix, type Layer } from '../prune/select.js';
import { collectStats, layerInputRequest, outputEnergy, quadraticError, statsKey, type FeatureStats, type StatsRequest } from '../prune/stats.js';
import { modelSize } from '../prune/size.js';
import { factorizeConv } from './conv.js';
import { energyKept, frobenius2, rankForEnergy, singularValues, truncatedSvd, type Factors } from './svd.js';
import { whitenedSvd } from './whiten.js';

export { truncatedSvd, randomizedSvd, exactSvd, singularValues, rankForEnergy, energyKept } from './svd.js';
export { whitenedSvd } from './whiten.js';

export interface LowrankOptions {
  /** intraOpNumThreads for the ORT sessions the step opens (default 1). */
  threads?: number;
  /** Randomized SVD power iterations (default 2) and oversampling (default 10). */
  powerIterations?: number;
  oversample?: number;
}

export interface LowrankLayerReport extends LayerReport {
  /** Shapes of the two factors. */
  factors: [number[], number[]];
  paramsBefore: number;
  paramsAfter: number;
  /** Relative weight error ‖W − U·V‖/‖W‖ (also when `error` is the output error). */
  weightError: number;
  method: 'svd' | 'activation-aware';
  /** What `energy` is a share of: Σσ² of W (svd), or of the whitened S·W, i.e. of ‖XW‖² (activation-aware). */
  energyOf: 'weight' | 'output';
}

/** The rank a layer gets (before the "does it save anything" check). */
export function chooseRank(params: LowrankStep, K: number, N: number): number | { energy: number } {
  const small = Math.min(K, N);
  if (params.rank !== undefined) return Math.max(1, Math.min(small, Math.floor(params.rank)));
  if (params.ratio !== undefined) return Math.max(1, Math.min(small, Math.round(params.ratio * small)));
  if (params.energy !== undefined) return { energy: params.energy };
  throw new Error('lowrank: no rank, ratio or energy (lowrank/config.ts requires one)');
}

export function lowrankStep(params: LowrankStep, opts: LowrankOptions = {}): Step {
  return async (input: ModelProto, ctx: StepContext) => {
    const start = performance.now();
    const model = cloneModel(input);
    const g = model.graph;
    if (!g) throw new CompressError('model', 'the model has no graph', { file: ctx.file });
    const report: StepReport = { step: 'lowrank', params: { ...params }, layers: [], skipped: [], warnings: [], ms: 0 };
    const calibration = ctx.calibration?.length ? ctx.calibration : undefined;
    let method = params.method;
    if (method === 'activation-aware' && !calibration) {
      report.warnings.push('activation-aware low-rank needs calibration data; used plain SVD instead');
      method = 'svd';
    }
    const engine = matrixEngine({ threads: opts.threads ?? 1 });
    const before = modelSize(input, false);
    try {
      const { layers: candidates, skipped } = selectLayers(model, params);
      report.skipped.push(...skipped);
      const layers = candidates.filter((l) => {
        if (l.op === 'Conv' && l.group !== 1) return void report.skipped.push({ name: l.name, reason: 'grouped convolution' });
        if (l.op === 'Gemm' && attrInt(l.node, 'transA', 0) && (opsetVersion(model) ?? 0) < 11) return void report.skipped.push({ name: l.name, reason: 'Gemm with transA before opset 11' });
        const r = chooseRank(params, l.K, l.N);
        if (typeof r === 'number' && r * (l.K + l.N) >= l.K * l.N) return void report.skipped.push({ name: l.name, reason: `rank ${r} of [${l.K}×${l.N}] saves no parameters` });
        return true;
      });
      // Calibration statistics (Gram of each layer's inputs): whitening and output errors.
      const requests = new Map<Layer, StatsRequest>();
      let stats = new Map<string, FeatureStats>();
      if (calibration) {
        for (const l of layers) {
          const r = layerInputRequest(l, true);
          if (r?.gram) requests.set(l, r);
        }
        stats = await collectStats(model, [...requests.values()], calibration, engine, { device: ctx.device, threads: opts.threads ?? 1 });
      }
      const statsOf = (l: Layer) => {
        const r = requests.get(l);
        const st = r ? stats.get(statsKey(r)) : undefined;
        return st?.gram && st.features === l.K ? st : undefined;
      };
      const scope = new NameScope(model);
      let done = 0;
      for (const l of layers) {
        const entry = await factorizeLayer(engine, l, params, method, statsOf(l), scope, opts, ctx, report);
        if (entry) report.layers.push(entry);
        ctx.progress?.(++done / layers.length);
      }
      removeDeadCode(g);
    } finally {
      await engine.release();
    }
    const after = modelSize(model, false);
    const layers = report.layers as LowrankLayerReport[];
    const paramsBefore = layers.reduce((s, l) => s + l.paramsBefore, 0);
    const paramsAfter = layers.reduce((s, l) => s + l.paramsAfter, 0);
    report.totals = { method, layers: layers.length, paramsBefore, paramsAfter, bytesBefore: before.bytes, bytesAfter: after.bytes };
    report.ms = performance.now() - start;
    ctx.log(`lowrank ${method}: ${layers.length} layers, ${paramsBefore} → ${paramsAfter} params, file ${before.bytes} → ${after.bytes} bytes`);
    return { model, report };
  };
}

async function factorizeLayer(
  engine: MatrixEngine,
  l: Layer,
  params: LowrankStep,
  method: 'svd' | 'activation-aware',
  st: FeatureStats | undefined,
  scope: NameScope,
  opts: LowrankOptions,
  ctx: StepContext,
  report: StepReport,
): Promise<LowrankLayerReport | undefined> {
  const { K, N } = l;
  const w = weightMatrix(l, tensorFloat32(l.site.tensor));
  const wanted = chooseRank(params, K, N);
  const svdOpts = { seed: ctx.seed, powerIterations: opts.powerIterations, oversample: opts.oversample };
  let used = method;
  if (used === 'activation-aware' && !st) {
    report.warnings.push(`${l.name}: no input statistics (${K} inputs), used plain SVD`);
    used = 'svd';
  }
  // The rank comes from the weight (for energy: its full spectrum), whichever method factorizes it,
  // so both methods give files of the same size.
  let rank: number;
  let weightEnergy: number | undefined;
  if (typeof wanted === 'number') rank = wanted;
  else {
    const sigma = await singularValues(engine, w, K, N);
    const total = frobenius2(w);
    rank = rankForEnergy(sigma, total, wanted.energy);
    weightEnergy = energyKept(sigma, total, rank);
  }
  if (rank * (K + N) >= K * N) {
    report.skipped.push({ name: l.name, reason: `rank ${rank} of [${K}×${N}]${typeof wanted === 'number' ? '' : ` (energy ${wanted.energy})`} saves no parameters` });
    return undefined;
  }
  let f: Factors;
  let energy: number;
  if (used === 'activation-aware') {
    f = await whitenedSvd(engine, w, K, N, st!.gram!, rank, svdOpts);
    energy = energyKept(f.sigma, f.total, f.rank); // share of the output energy ‖S·W‖² kept
  } else {
    f = await truncatedSvd(engine, w, K, N, rank, svdOpts);
    energy = weightEnergy ?? energyKept(f.sigma, f.total, f.rank);
  }
  const r = f.rank;
  if (r * (K + N) >= K * N) {
    report.skipped.push({ name: l.name, reason: `rank ${r} of [${K}×${N}] saves no parameters` });
    return undefined;
  }
  // Errors: weight always; output error on calibration data when statistics exist.
  const approx = await engine.matmul(f.left, K, r, f.right, N);
  const delta = new Float64Array(K * N);
  let d2 = 0;
  for (let i = 0; i < delta.length; i++) {
    delta[i] = w[i] - approx[i];
    d2 += delta[i] * delta[i];
  }
  const total = frobenius2(w);
  const weightError = total > 0 ? Math.sqrt(d2 / total) : 0;
  let outputError: number | undefined;
  if (st?.gram) {
    const err = await quadraticError(engine, st.gram, delta, K, N);
    const base = await outputEnergy(engine, st, Float64Array.from(w), K, N, layerBias(l));
    outputError = base > 0 ? Math.sqrt(err / base) : undefined;
  }
  rewrite(l, f.left, f.right, r, scope);
  return {
    name: l.name,
    op: l.op,
    weight: l.weightName,
    shape: l.dims,
    factors: [[K, r], [r, N]],
    dtypeBefore: 'float32',
    dtypeAfter: 'float32',
    bytesBefore: K * N * 4,
    bytesAfter: r * (K + N) * 4,
    paramsBefore: K * N,
    paramsAfter: r * (K + N),
    rank: r,
    energy,
    error: outputError ?? weightError,
    errorKind: outputError !== undefined ? 'output' : 'weight',
    weightError,
    method: used,
    energyOf: used === 'activation-aware' ? 'output' : 'weight',
  };
}

/** Replaces the layer's node by the two factor nodes (same place in the node list). */
function rewrite(l: Layer, left: Float32Array, right: Float32Array, r: number, scope: NameScope): void {
  const { node, graph } = l;
  let nodes: NodeProto[];
  let tensors: TensorProto[];
  if (l.op === 'Conv') ({ nodes, tensors } = factorizeConv(l, left, right, r, scope));
  else {
    const alpha = l.op === 'Gemm' ? (node.attribute.find((a) => a.name === 'alpha')?.f ?? 1) : 1;
    const u = makeTensor(scope.unique(`${l.weightName}_lowrank_u`), DataType.FLOAT, [l.K, r], alpha === 1 ? left : left.map((x) => x * alpha));
    const v = makeTensor(scope.unique(`${l.weightName}_lowrank_v`), DataType.FLOAT, [r, l.N], right);
    const mid = scope.unique(`${node.output[0]}_lowrank`);
    const base = node.name || node.output[0];
    const transA = l.op === 'Gemm' && attrInt(node, 'transA', 0) === 1;
    const first = transA
      ? makeNode('Gemm', [node.input[0], u.name!], [mid], { name: scope.unique(`${base}/lowrank_u`), attributes: [makeAttribute('transA', 1, true)] })
      : makeNode('MatMul', [node.input[0], u.name!], [mid], { name: scope.unique(`${base}/lowrank_u`) });
    const c = l.op === 'Gemm' ? node.input[2] : undefined;
    const beta = node.attribute.find((a) => a.name === 'beta')?.f ?? 1;
    const second = c
      ? makeNode('Gemm', [mid, v.name!, c], [node.output[0]], { name: scope.unique(`${base}/lowrank_v`), attributes: beta === 1 ? [] : [makeAttribute('beta', beta)] })
      : makeNode('MatMul', [mid, v.name!], [node.output[0]], { name: scope.unique(`${base}/lowrank_v`) });
    nodes = [first, second];
    tensors = [u, v];
  }
  const at = graph.node.indexOf(node);
  graph.node.splice(at, 1, ...nodes);
  graph.initializer.push(...tensors);
}
