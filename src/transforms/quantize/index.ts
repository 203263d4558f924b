/**
 * The quantize step: weights of MatMul, Gemm, Conv, ConvTranspose and Gather to 8 or 4 bits (RTN or
 * GPTQ) in the op form the target runtime runs best (forms.ts), and/or the whole model to float16
 * (float16.ts). The input model is not modified (tensor bytes are shared, not copied).
 *
 *   quantizeStep({ dtype: 'int4', granularity: 32, method: 'gptq', target: 'wasm', … })(model, ctx)
 */
import { dirname } from 'node:path';
import { CompressError } from '../../errors.js';
import type { MatrixEngine } from '../../linalg/engine.js';
import { cloneModel } from '../../onnx/edit.js';
import { ensureOpset, indexModel, NameScope, opsetVersion } from '../../onnx/graph.js';
import type { GraphProto, ModelProto, TensorProto } from '../../onnx/types.js';
import { forEachTensor } from '../../onnx/walk.js';
import type { QuantizeStep } from './config.js';
import type { LayerReport, Step, StepContext, StepReport } from '../types.js';
import { emitDequantize, type Emitted } from './dq.js';
import { askedPrecision, deliverySummary, planPrecision, sizeAwarePlan, wantedOpset } from './delivery.js';
import { emitConvInteger, emitMatMulInteger } from './dynamic.js';
import { GraphEdits } from './edits.js';
import { convertToFloat16, DEFAULT_KEEP_FLOAT32_OPS } from './float16.js';
import { planTarget, STATIC_KINDS, type FormEnv, type Plan } from './forms.js';
import { emitGatherBlockQuantized } from './gather.js';
import { gptqQuantize } from './gptq.js';
import type { Hessian } from './hessian.js';
import { splitAt, toRows } from './layout.js';
import { isLazy, loadLazy, weightFloats } from '../../onnx/lazy.js';
import { emitMatMulNBits } from './matmulnbits.js';
import { emitFloat16Weight, paramsFor, type LayerPrecision } from './precision.js';
import { relativeRms } from './rtn.js';
import { selectWeights, type Target } from './select.js';
import { recurrentStateRule } from './recurrent.js';
import { separableRule } from './separable.js';
import { quantizeWeight, type WeightQuant } from './weights.js';
import { quantizeParallel } from './parallel.js';

export { checkWebCompatibility, type WebCheckOptions, type WebCheckReport } from './webcheck.js';
export { readModelLazy } from '../../onnx/lazy.js';
export { DEFAULT_KEEP_FLOAT32_OPS, convertToFloat16, toFloat16Clamped } from './float16.js';
export type { Plan, Form } from './forms.js';

export interface QuantizeExtras {
  /** Weights with fewer elements are skipped (default 1024). */
  minElements?: number;
  /** GPTQ calibration: samples per run (default 32) and ORT threads (default 1). */
  calibrationBatch?: number;
  intraOpThreads?: number;
}

/** The quantize step for a normalized recipe block. */
export function quantizeStep(params: QuantizeStep, extras: QuantizeExtras = {}): Step {
  return async (model: ModelProto, ctx: StepContext) => {
    const t0 = performance.now();
    const report: StepReport = { step: 'quantize', params: { ...params }, layers: [], skipped: [], warnings: [], ms: 0, totals: {} };
    const out = cloneModel(model);
    const names = new NameScope(out);
    const modelDir = dirname(ctx.file);
    const read = (t: TensorProto) => weightFloats(t, modelDir);
    if (params.dtype === 'auto' && !params.layers) {
      throw new CompressError('recipe', 'quantize.dtype auto is resolved by the budget search: the build needs a budget (and evaluate data for accuracy limits)', { file: ctx.file });
    }
    if (params.dtype !== 'float16') await quantizeWeights(out, model, params, extras, ctx, report, names, read);
    if (params.dtype === 'float16' || params.float16) {
      const r = convertToFloat16(out, { keepIoTypes: params.keepIoTypes, keepFloat32Ops: params.keepFloat32Ops, minElements: extras.minElements, read }, names);
      for (const w of r.weights) {
        report.layers.push({ name: w.name, op: w.op, weight: w.name, shape: w.shape, dtypeBefore: 'float32', dtypeAfter: 'float16', bytesBefore: w.bytesBefore, bytesAfter: w.bytesAfter, error: w.error, errorKind: 'weight' });
      }
      report.warnings.push(...r.warnings);
      report.totals!.float16 = { tensors: r.tensors, bytesBefore: r.bytesBefore, bytesAfter: r.bytesAfter, keptFloat32: r.kept, casts: r.casts, keepFloat32Ops: [...DEFAULT_KEEP_FLOAT32_OPS, ...params.keepFloat32Ops] };
    }
    // Tensors a lazy read left on disk and nothing converted: into the model, so it stands alone.
    forEachTensor(out, (t) => {
      if (isLazy(t, ctx.file)) loadLazy(t, ctx.file);
    });
    report.ms = performance.now() - t0;
    ctx.progress?.(1);
    return { model: out, report };
  };
}

async function quantizeWeights(
  model: ModelProto,
  input: ModelProto,
  params: QuantizeStep,
  extras: QuantizeExtras,
  ctx: StepContext,
  report: StepReport,
  names: NameScope,
  read: (t: TensorProto) => Float32Array,
): Promise<void> {
  // Mixed precision: a layer the assignment keeps float32 is left alone; float16 ones get no plan.
  const assigned = (t: Target): LayerPrecision | undefined => params.layers?.[t.name];
  const paramsOf = (t: Target): QuantizeStep => {
    const a = assigned(t);
    return a ? paramsFor(params, a) : params;
  };
  const quantizable = (t: Target) => assigned(t) !== 'float32' && assigned(t) !== 'float16';
  // Raise the opset first when the chosen forms need a newer one (the upgrade rewrites nodes, so weights
  // are selected again afterwards).
  const selectOpts = { include: params.include, exclude: params.exclude, minElements: extras.minElements, ...(params.activations && { anySize: STATIC_KINDS }) };
  let opset = opsetVersion(model, '') ?? 1;
  let blocker: string | undefined;
  // Layers 4-bit wrecks, 8-bit under a 4-bit request: the Convs of depthwise-separable networks
  // (separable.ts) and whatever feeds a recurrent state carried across calls (recurrent.ts).
  const separable = separableRule(model);
  const recurrent = recurrentStateRule(model);
  const eightBit = (t: Target) => [separable(t), recurrent(t)].filter(Boolean).join('; ') || undefined;
  const wanted = wantedOpset(selectWeights(model, selectOpts).targets.filter(quantizable), params, (t) => (assigned(t) ? paramsOf(t) : undefined), eightBit);
  if (wanted > opset) {
    const { upgradeForQuantize, describeUpgrade } = await import('./upgrade.js');
    const u = await upgradeForQuantize(model, input, wanted, names, ctx.calibration, ctx.seed);
    if (u) {
      report.totals!.opset = u;
      report.warnings.push(describeUpgrade(u));
      blocker = u.blocker;
      opset = opsetVersion(model, '') ?? 1;
    }
  }
  const selection = selectWeights(model, selectOpts);
  report.skipped.push(...selection.skipped);
  const fp16 = new Set<Target>();
  selection.targets = selection.targets.filter((t) => {
    const a = assigned(t);
    if (a === 'float32') report.skipped.push({ name: t.name, reason: 'kept float32 by the precision assignment' });
    if (a === 'float16') fp16.add(t);
    return a !== 'float32';
  });
  const env: FormEnv = { opset, ...(blocker !== undefined && { blocker }) };
  const plans = new Map<Target, Plan>();
  const notes = new Map<string, number>();
  for (const t of selection.targets) {
    if (fp16.has(t)) continue;
    // A precision the search assigned is its choice (it weighs bytes itself); the recipe's dtype is
    // delivered in the smallest form (delivery.ts).
    const plan = assigned(t) ? planTarget(t, paramsOf(t), env) : sizeAwarePlan(t, params, env, eightBit(t));
    plans.set(t, plan);
    if (plan.note) notes.set(plan.note, (notes.get(plan.note) ?? 0) + 1);
  }
  for (const [note, count] of notes) report.warnings.push(count > 1 ? `${note} (${count} weights)` : note);

  // Static activations: planned and calibrated on the graph before any weight is rewritten.
  const statik = params.activations
    ? await (await import('./static-step.js')).StaticQuantization.prepare(model, selection.targets, plans, params, ctx, { intraOpThreads: extras.intraOpThreads, batch: extras.calibrationBatch })
    : undefined;

  // GPTQ: Hessians of each MatMul/Gemm input over the calibration samples, in one pass.
  let hessians: Map<string, Hessian> | undefined;
  const gptqTargets = new Set<Target>();
  if (params.method === 'gptq') {
    // The recipe loader rejects gptq without calibration data (at the recipe line); this is data with no samples.
    if (!ctx.calibration?.length) throw new CompressError('data', 'quantize: method gptq got no calibration samples', { file: ctx.file });
    const main = model.graph!;
    for (const t of selection.targets) {
      if (fp16.has(t) || plans.get(t)?.keepFloat) continue;
      const why = gptqIneligible(t, main);
      if (why) report.warnings.push(`${t.name}: ${why}; quantized with rtn`);
      else gptqTargets.add(t);
    }
    const requests = [...gptqTargets].flatMap((t) => t.uses.map((u) => ({ value: u.node.input[0], K: t.shape[t.reduceAxis] })));
    if (requests.length) ctx.log(`gptq: collecting ${requests.length} Hessians over ${ctx.calibration.length} calibration samples`);
    // onnxruntime is loaded only here: RTN and float16 never start the native runtime.
    const { collectHessians } = await import('./hessian.js');
    hessians = requests.length === 0 ? new Map() : await collectHessians(model, requests, ctx.calibration, {
      batch: extras.calibrationBatch,
      intraOpThreads: extras.intraOpThreads,
    });
  }

  const edits = new GraphEdits(names);
  const indexes = indexModel(model);
  // ORT's float64 Gemm for GPTQ's large products; under ~2M multiply-adds JS is cheaper than a session
  // call. Loaded lazily, so RTN quantization never loads the native runtime.
  const mm = gptqTargets.size ? (await import('../../runtime/matrix.js')).matrixEngine({ threads: extras.intraOpThreads ?? 1, jsBelow: 2_000_000 }) : undefined;
  // Round-to-nearest weights on all cores at once (undefined: one thread, weight by weight below).
  const rtn = selection.targets.filter((t) => !gptqTargets.has(t) && !fp16.has(t) && plans.has(t) && !plans.get(t)!.keepFloat);
  const parallel = await quantizeParallel(rtn, plans, ctx.file, read);
  let usesMicrosoft = false;
  try {
    let done = 0;
    for (const t of selection.targets) {
      const plan0 = plans.get(t);
      if (plan0?.keepFloat) {
        // Left float here; float16: true converts it with the rest afterwards (its own layer entry).
        const bytes = t.shape.reduce((a, b) => a * b, 1) * 4;
        const precision = { requested: assigned(t) ?? askedPrecision(params), delivered: planPrecision(plan0, params.float16), reason: plan0.lowered };
        report.layers.push(Object.assign({ name: t.name, op: t.op, weight: t.weight, shape: t.shape, dtypeBefore: 'float32', dtypeAfter: 'float32', bytesBefore: bytes, bytesAfter: bytes, error: 0, errorKind: 'weight' as const }, { form: 'float', ...precision }));
        ctx.progress?.((++done / selection.targets.length) * 0.95);
        continue;
      }
      if (fp16.has(t)) {
        const w = read(t.site.tensor); // valid until the next read: used up within this iteration
        const e = emitFloat16Weight(t, w, edits);
        report.layers.push(Object.assign(
          { name: t.name, op: t.op, weight: t.weight, shape: t.shape, dtypeBefore: 'float32', dtypeAfter: e.dtypeAfter, bytesBefore: w.length * 4, bytesAfter: e.bytesAfter, error: e.error, errorKind: 'weight' as const },
          { form: 'cast', requested: 'float16', delivered: 'float16' },
        ));
        ctx.progress?.((++done / selection.targets.length) * 0.95);
        continue;
      }
      const plan = plans.get(t)!;
      const ready = parallel?.get(t);
      let q: WeightQuant;
      let method = 'rtn';
      if (ready) {
        q = ready;
        parallel!.delete(t); // its codes are garbage once emitted, as on one thread
      }
      else if (gptqTargets.has(t) && hessians && mm) {
        q = await gptqWeight(t, plan, read(t.site.tensor), hessians, mm, params.actOrder);
        method = 'gptq';
      } else q = quantizeWeight(t, plan, read(t.site.tensor)); // read's values: valid until the next read
      let emitted: Emitted;
      switch (plan.form) {
        case 'dq':
          statik?.weightQuantized(t, q);
          emitted = emitDequantize(t, plan, q, edits, statik?.dequantizeOptions(t));
          break;
        case 'matmulnbits':
          emitted = emitMatMulNBits(t, plan, q, edits, accuracyLevel(params.target));
          usesMicrosoft = true;
          break;
        case 'matmulinteger':
          emitted = emitMatMulInteger(t, plan, q, edits);
          break;
        case 'convinteger':
          emitted = emitConvInteger(t, plan, q, edits, (u) => indexes.get(u.graph)!, read);
          break;
        case 'gatherblock':
          emitted = emitGatherBlockQuantized(t, plan, q, edits);
          usesMicrosoft = true;
          break;
      }
      const layer: LayerReport = {
        name: t.name,
        op: t.op,
        weight: t.weight,
        shape: t.shape,
        dtypeBefore: 'float32',
        dtypeAfter: emitted.dtypeAfter,
        bytesBefore: t.shape.reduce((a, b) => a * b, 1) * 4,
        bytesAfter: emitted.bytesAfter,
        error: relativeRms(q),
        errorKind: 'weight',
      };
      const requested = assigned(t) ?? askedPrecision(params);
      const delivered = planPrecision(plan, params.float16);
      const reason = requested !== delivered ? plan.lowered : undefined;
      report.layers.push(Object.assign(layer, { form: plan.form, method, granularity: plan.granularity, ...(requested && { requested, delivered }), ...(reason && { reason }) }));
      ctx.progress?.((++done / selection.targets.length) * 0.95);
    }
  } finally {
    await mm?.release();
  }
  statik?.emit(edits);
  edits.apply();
  statik?.report(report);
  if (usesMicrosoft) ensureOpset(model, 'com.microsoft', 1);
  const done = report.layers.filter((l) => l.dtypeAfter !== 'float32');
  const before = done.reduce((s, l) => s + l.bytesBefore, 0);
  const after = done.reduce((s, l) => s + l.bytesAfter, 0);
  report.totals!.weights = { quantized: done.length, keptFloat: report.layers.length - done.length, skipped: report.skipped.length, bytesBefore: before, bytesAfter: after };
  const summary = deliverySummary(report.layers);
  if (summary) {
    if (params.strict) throw new CompressError('compress', `quantize.strict: ${summary}`, { file: ctx.file });
    report.warnings.push(summary);
  }
}


/**
 * MatMulNBits accuracy_level: 4 (int8 activations, ORT's fastest CPU path with AVX-512 VNNI/AVX2) for
 * target node; unset for wasm/webgpu, whose kernels compute with float activations anyway, so native
 * ORT computes the same numbers as the browser.
 */
function accuracyLevel(target: QuantizeStep['target']): number {
  return target === 'node' ? 4 : 0;
}

/** Why GPTQ cannot run on a weight (undefined: it can). */
function gptqIneligible(t: Target, main: GraphProto): string | undefined {
  if (t.kind !== 'matmul' && t.kind !== 'gemm') return `GPTQ is done for MatMul/Gemm only, not ${t.op}`;
  if (t.uses.some((u) => u.graph !== main)) return 'the layer is inside a subgraph (its inputs cannot be captured)';
  if (t.kind === 'gemm' && t.uses.some((u) => (u.node.attribute.find((a) => a.name === 'transA')?.i ?? 0) !== 0)) return 'Gemm with transA=1';
  return undefined;
}

async function gptqWeight(t: Target, plan: Plan, w: Float32Array, hessians: Map<string, Hessian>, mm: MatrixEngine, actOrder: boolean): Promise<WeightQuant> {
  const [outer, K, inner] = splitAt(t.shape, t.reduceAxis);
  const N = outer * inner;
  const rows = toRows(w, outer, K, inner, (n) => new Float32Array(n));
  // Sum of the Hessians of every input that reads this weight.
  const h = new Float64Array(K * K);
  for (const u of t.uses) {
    const hu = hessians.get(u.node.input[0]);
    if (hu) for (let i = 0; i < h.length; i++) h[i] += hu.h[i];
  }
  const group = typeof plan.granularity === 'number' ? plan.granularity : K;
  const q = await gptqQuantize(rows, N, K, h, { bits: plan.bits, symmetric: plan.symmetric, group, perTensor: plan.granularity === 'per-tensor', actOrder }, mm);
  return { ...q, layout: 'rows', axis: t.reduceAxis, group: Math.min(group, K), dims: t.shape };
}
