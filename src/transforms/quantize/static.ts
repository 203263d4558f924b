/**
 * Static quantization (`activations: uint8 | int8`): which values of the graph are carried as 8-bit
 * integers, and their ranges calibrated on the calibration samples. static-emit.ts writes the graph.
 *
 * The graph is written in the QDQ form onnxruntime's quantize_static writes, so that onnxruntime's
 * graph optimizer (CPU EP, and the same code compiled to wasm in onnxruntime-web) fuses each group
 *
 *   DQ(x) , DQ(W) [, DQ(bias int32)] → Conv   → Q(y)        into QLinearConv
 *   DQ(a) , DQ(B) [, DQ(C int32)]    → Gemm  [→ Q(y)]       into QGemm (float output without the Q)
 *   DQ(a) , DQ(B)                    → MatMul → Q(y)        into QLinearMatMul
 *   DQ(a) , DQ(B)                    → MatMul (float out)   into MatMulIntegerToFloat
 *
 * ("anchors": the MatMul / Gemm / Conv nodes whose weight is quantized to int8). Around them:
 *
 * - **Anchor inputs** are quantized per tensor (QuantizeLinear after the producer, or after the graph
 *   input), and every anchor reads them through its own DequantizeLinear (ORT fuses a DQ only when the
 *   target is its one consumer).
 * - **Conv outputs** are always quantized: QLinearConv has an 8-bit output, so ORT fuses only a Conv
 *   whose output feeds a QuantizeLinear alone. Gemm / MatMul outputs are quantized when an anchor or an
 *   op below reads them quantized; otherwise they stay float (QGemm / MatMulIntegerToFloat).
 * - **Relu (and Clip / Max / Min with constant bounds) after an anchor** is folded into the anchor's
 *   QuantizeLinear, as quantize_static folds Relu: the Q takes the clamp's range with its lowest code
 *   at the clamp's lower bound, so the Q's saturation is the clamp. int8 values are otherwise
 *   symmetric (zero point 0); a folded clamp's output is the one exception, since a symmetric Q cannot
 *   saturate at 0 (the Relu would stay in float between a DQ and a Q, and ORT would fuse Gemm + Relu
 *   into a float FusedGemm).
 * - **Ops that move or select values without computing** (MaxPool, Flatten, Reshape, Transpose,
 *   Squeeze, Unsqueeze, Resize) run on the 8-bit tensor itself with the same scale and zero point when
 *   their input is quantized: the graph ORT's "drop QDQ" rewrite would make, written directly (ONNX
 *   types them for int8/uint8 from opset 12/13, and Flatten would not be dropped by ORT at all).
 * - **Integer ops** between anchors (Add, Mul, Concat, LeakyRelu, Sigmoid, GlobalAveragePool,
 *   AveragePool) get DQ inputs and a Q output when their inputs are quantized and something reads
 *   their output as integers: ORT runs them as QLinearAdd, QLinearConcat, … (static-values.ts).
 * - Values that stay float where a float op reads a quantized one get a DequantizeLinear.
 * - **The activation guard** (static-guard.ts) then keeps float the activations that cost the output
 *   most on the calibration samples, until its cosine with float32 is at least activationCosine.
 *
 * Only the main graph is rewritten: anchors inside If/Loop bodies keep weight-only quantization.
 */
import { CompressError } from '../../errors.js';
import type { Sample } from '../../data/types.js';
import { DataType, dataTypeName } from '../../onnx/dtypes.js';
import { attrFloat, attrInt, GraphIndex } from '../../onnx/graph.js';
import { dimsOf } from '../../onnx/tensor.js';
import type { GraphProto, ModelProto, NodeProto } from '../../onnx/types.js';
import type { QuantizeStep } from './config.js';
import type { Plan } from './forms.js';
import type { Target } from './select.js';
import { activationParams, calibratedRange, clampParams, ValueStats } from './calibrate.js';
import { planValues } from './static-values.js';

export type { Anchor, AnchorKind, QOp, QuantizedValue, StaticPlan } from './static-types.js';
import type { Anchor, AnchorKind, QuantizedValue, StaticPlan } from './static-types.js';

const KIND_OF: Record<string, AnchorKind | undefined> = { Conv: 'conv', Gemm: 'gemm', MatMul: 'matmul' };

/** A value's element type where the graph declares it (inputs, value_info, outputs). */
function elemTypeOf(g: GraphProto, name: string): number | undefined {
  const v = [...g.input, ...g.valueInfo, ...g.output].find((i) => i.name === name);
  return v?.type?.tensorType?.elemType ?? undefined;
}

/** Ops whose output is one position per sample when their non-constant inputs are. */
const POSITIONWISE = new Set(['Conv', 'Relu', 'LeakyRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Clip', 'Add', 'Sub', 'Mul', 'Div', 'BatchNormalization', 'Identity']);

/**
 * Values that hold one position per sample: the outputs of a global pool and of what computes on them
 * alone (a squeeze-excitation block: GlobalAveragePool → Conv 1×1 → Relu → Conv 1×1 → HardSigmoid).
 */
function globalValues(idx: GraphIndex): Set<string> {
  const global = new Set<string>();
  for (const n of idx.graph.node) {
    if ((n.domain ?? '') !== '') continue;
    const op = n.opType ?? '';
    const reads = n.input.filter((i) => i && !idx.weight(i));
    if (op === 'GlobalAveragePool' || op === 'GlobalMaxPool' || (POSITIONWISE.has(op) && reads.length && reads.every((i) => global.has(i)))) {
      for (const o of n.output) if (o) global.add(o);
    }
  }
  return global;
}

/** Why an anchor candidate cannot be fused by ORT, or is not worth it (undefined: it is). */
function ineligible(t: Target, plan: Plan | undefined, node: NodeProto, idx: GraphIndex, inMain: boolean, global: Set<string>): string | undefined {
  if (!plan || plan.keepFloat) return 'its weight stays float';
  if (plan.bits !== 8 || plan.form !== 'dq') return `its weight is written as ${plan.bits}-bit ${plan.form}, not int8 DequantizeLinear`;
  if (!inMain) return 'the layer is inside a subgraph (only the main graph is rewritten)';
  const x = node.input[0];
  if (!x || idx.weight(x)) return 'its input is a constant';
  // A squeeze-excitation Conv computes one position per sample: an integer kernel saves nothing there,
  // and its range would be measured on one value per channel per calibration sample (PP-OCRv4 det:
  // held-out images exceeded those ranges by up to 2×, on 2–17 % of their values).
  if (node.opType === 'Conv' && global.has(x)) return 'it computes one position per sample (after a global pool): nothing to gain from 8-bit activations there';
  const type = elemTypeOf(idx.graph, x);
  if (type !== undefined && type !== DataType.FLOAT) return `its input is ${dataTypeName(type)}, not float32`;
  if (node.opType === 'Conv' || node.opType === 'Gemm') {
    const b = node.input[2];
    if (b) {
      const site = idx.weight(b);
      const channels = t.shape[t.channelAxis];
      if (!site || site.tensor.dataType !== DataType.FLOAT) return 'its bias is not a float constant';
      const dims = dimsOf(site.tensor);
      if (dims.length !== 1 || dims[0] !== channels) return `its bias has shape [${dims.join(', ')}], not [${channels}]`;
      if (node.opType === 'Gemm' && attrFloat(node, 'beta', 1) !== 1) return 'Gemm with beta ≠ 1 (onnxruntime fuses only beta = 1)';
    }
  }
  if (node.opType === 'Gemm' && attrInt(node, 'transB', 0) === 0 && t.channelAxis !== 1) return 'unexpected Gemm weight layout';
  return undefined;
}

/**
 * Decides the static form for the selected weights: the anchors, the values carried as integers, and
 * the weights that keep float activations (and why). Ranges are filled in by calibrateStatic.
 */
export function planStatic(model: ModelProto, targets: Target[], plans: Map<Target, Plan>, params: QuantizeStep): StaticPlan {
  const g = model.graph!;
  const index = new GraphIndex(g);
  const activations = params.activations!;
  const anchors = new Map<NodeProto, Anchor>();
  const refused = new Map<Target, string>();
  const global = globalValues(index);
  for (const t of targets) {
    const kind = KIND_OF[t.op];
    if (!kind || t.kind !== kind) continue;
    let why: string | undefined;
    for (const u of t.uses) {
      why = ineligible(t, plans.get(t), u.node, index, u.graph === g, global);
      if (why) break;
    }
    if (why) {
      if (plans.has(t) && !plans.get(t)!.keepFloat) refused.set(t, why);
      continue;
    }
    for (const u of t.uses) anchors.set(u.node, { node: u.node, input: u.node.input[0], target: t, kind });
  }

  const disabled = new Set<NodeProto>();
  const { values, qops } = planValues(model, index, anchors, disabled, activations === 'uint8');
  return { graph: g, index, activations, calibrate: params.calibrate ?? 'minmax', anchors, values, qops, disabled, refused };
}

/**
 * Keeps the named values float: every anchor that reads one, or writes one (a Conv's output), keeps
 * float activations for `reason` (all uses of its weight, as planStatic decides them), and the values
 * are planned again for the anchors left. Calibrated parameters carry over by value name (a move
 * takes its root's again). Returns the weights newly refused.
 */
export function keepFloat(model: ModelProto, plan: StaticPlan, kept: ReadonlySet<string>, reason: string): Target[] {
  // A move shares its root's integers: it is float when its root is.
  const names = new Set(kept);
  for (const v of plan.values.values()) if (v.source === 'move' && names.has(rootOf(v).name)) names.add(v.name);
  const hit = new Set<Target>();
  for (const a of plan.anchors.values()) {
    const out = plan.values.get(a.node.output[0]) ?? [...plan.values.values()].find((v) => v.source === 'anchor' && v.producer === a.node);
    if (names.has(a.input) || (a.kind === 'conv' && out && names.has(out.name))) hit.add(a.target);
  }
  for (const [n, a] of [...plan.anchors]) if (hit.has(a.target)) plan.anchors.delete(n);
  for (const t of hit) plan.refused.set(t, reason);
  for (const v of plan.values.values()) if (v.source === 'qop' && names.has(v.name)) plan.disabled.add(v.producer!);
  replan(model, plan);
  return [...hit];
}

/**
 * Keeps the named layers' activations float, each for its own reason (the budget search's choice,
 * QuantizeStep.floatActivations): their anchors are dropped and the values planned again for the
 * anchors left. Returns the layers that were anchors.
 */
export function keepLayersFloat(model: ModelProto, plan: StaticPlan, reasons: Readonly<Record<string, string>>): Target[] {
  const hit = new Set<Target>();
  for (const [n, a] of [...plan.anchors]) {
    const why = reasons[a.target.name];
    if (why === undefined) continue;
    plan.anchors.delete(n);
    plan.refused.set(a.target, why);
    hit.add(a.target);
  }
  if (hit.size) replan(model, plan);
  return [...hit];
}

/** Plans the values again for the anchors and disabled ops left; calibrated parameters carry over by value name. */
function replan(model: ModelProto, plan: StaticPlan): void {
  const old = plan.values;
  ({ values: plan.values, qops: plan.qops } = planValues(model, plan.index, plan.anchors, plan.disabled, plan.activations === 'uint8'));
  for (const v of plan.values.values()) {
    const o = old.get(v.name);
    if (o && v.source !== 'move') Object.assign(v, { params: o.params, channelNoise: o.channelNoise, channelAxis: o.channelAxis });
  }
  for (const v of plan.values.values()) if (v.source === 'move') v.params = rootOf(v).params;
}

function rootOf(v: QuantizedValue): QuantizedValue {
  let root = v;
  while (root.source === 'move') root = root.from!;
  return root;
}

/**
 * Runs the calibration samples through the model (before it is rewritten) and sets every quantized
 * value's scale and zero point. Statistics are streamed per sample: memory is the histograms, not the
 * activations.
 */
export async function calibrateStatic(
  model: ModelProto,
  plan: StaticPlan,
  samples: Sample[],
  params: QuantizeStep,
  opts: { intraOpThreads?: number; batch?: number; progress?: (f: number) => void },
): Promise<void> {
  const measured = [...plan.values.values()].filter((v) => v.source !== 'move');
  const names = measured.map((v) => v.name);
  const histogram = plan.calibrate !== 'minmax';
  const stats = new Map(measured.map((v) => [v.name, new ValueStats(histogram, undefined, v.channelAxis)]));
  if (names.length) {
    const { captureActivations, tensorToFloat32 } = await import('../../runtime/capture.js');
    let seen = -1;
    await captureActivations(model, names, samples, {
      batch: opts.batch,
      intraOpThreads: opts.intraOpThreads,
      onValue: (name, value, i) => {
        const data = value.type === 'float32' ? (value.data as Float32Array) : tensorToFloat32(value);
        try {
          stats.get(name)!.addTensor(data, value.dims);
        } catch (e) {
          throw new CompressError('data', `calibration sample ${i + 1}: value "${name}" ${(e as Error).message}`);
        }
        if (i !== seen) opts.progress?.((seen = i) / samples.length);
      },
    });
  }
  for (const v of measured) {
    const s = stats.get(v.name)!;
    // An asymmetric range over values ≥ 0 spreads its 256 levels over [0, t]; otherwise 128 per side.
    const levels = (plan.activations === 'uint8' || v.folded) && s.min >= 0 ? 256 : 128;
    const range = calibratedRange(s, plan.calibrate, { percentile: params.percentile, levels });
    // A folded clamp's range starts at its lower bound, exactly: asymmetric, so the Q saturates there.
    v.params = v.clamp ? clampParams(v.clamp.lo, Math.min(range.hi, v.clamp.hi), plan.activations) : activationParams(range, plan.activations);
    v.channelNoise = s.channelNoise(v.params.scale);
    if (process.env.SZOO_DEBUG) console.error(`value ${v.name} axis ${v.channelAxis} range ${range.lo.toFixed(3)}..${range.hi.toFixed(3)} channel SQNR ${v.channelNoise === undefined ? '-' : (-10 * Math.log10(v.channelNoise)).toFixed(1)} dB`);
  }
  for (const v of plan.values.values()) if (v.source === 'move') v.params = rootOf(v).params;
}
