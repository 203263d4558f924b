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
 * - **Relu after an anchor** is folded into the anchor's QuantizeLinear, as quantize_static does: the
 *   Q takes the Relu output's range [0, max] with its zero point at the type's minimum (0 for uint8,
 *   −128 for int8), so the Q's clamp is the Relu. int8 values are otherwise symmetric (zero point 0);
 *   a folded Relu's output is the one exception, since a symmetric Q cannot clamp at 0 (the Relu would
 *   stay in float between a DQ and a Q, and ORT would fuse Gemm + Relu into a float FusedGemm).
 * - **Ops that move or select values without computing** (MaxPool, Flatten, Reshape, Transpose,
 *   Squeeze, Unsqueeze) run on the 8-bit tensor itself with the same scale and zero point when their
 *   input is quantized: the graph ORT's "drop QDQ" rewrite would make, written directly (ONNX types
 *   them for int8/uint8 from opset 12/13, and Flatten would not be dropped by ORT at all).
 * - Values that stay float where a float op reads a quantized one get a DequantizeLinear.
 *
 * Only the main graph is rewritten: anchors inside If/Loop bodies keep weight-only quantization.
 */
import { CompressError } from '../../errors.js';
import type { Sample } from '../../data/types.js';
import { DataType, dataTypeName } from '../../onnx/dtypes.js';
import { attrFloat, attrInt, GraphIndex, opsetVersion } from '../../onnx/graph.js';
import { dimsOf } from '../../onnx/tensor.js';
import type { GraphProto, ModelProto, NodeProto } from '../../onnx/types.js';
import type { QuantizeStep } from './config.js';
import type { Plan } from './forms.js';
import type { Target } from './select.js';
import { activationParams, calibratedRange, ValueStats, type ActivationParams } from './calibrate.js';

export type AnchorKind = 'conv' | 'gemm' | 'matmul';

export interface Anchor {
  node: NodeProto;
  /** The activation input (input 0) as the original graph names it. */
  input: string;
  target: Target;
  kind: AnchorKind;
}

/** A value carried as 8-bit integers. */
export interface QuantizedValue {
  /** The float value's name in the original graph. */
  name: string;
  /**
   * Where its integers come from: a QuantizeLinear after a graph input or a float op, after an anchor
   * (its output renamed, or read before a folded Relu), or a move op running on the 8-bit input.
   */
  source: 'input' | 'float' | 'anchor' | 'move';
  producer?: NodeProto;
  /** The Relu folded into the anchor's QuantizeLinear (source anchor). */
  folded?: NodeProto;
  /** source move: the quantized value it moves (same scale and zero point). */
  from?: QuantizedValue;
  /** Set after calibration (shared with `from` for moves). */
  params?: ActivationParams;
}

export interface StaticPlan {
  graph: GraphProto;
  index: GraphIndex;
  activations: 'uint8' | 'int8';
  calibrate: NonNullable<QuantizeStep['calibrate']>;
  anchors: Map<NodeProto, Anchor>;
  values: Map<string, QuantizedValue>;
  /** Weights asked for static quantization that keep float activations, and why. */
  refused: Map<Target, string>;
}

/** Ops that only move or select values: run on 8-bit data with the input's scale and zero point. */
const MOVE_OPS = new Set(['MaxPool', 'Flatten', 'Reshape', 'Transpose', 'Squeeze', 'Unsqueeze']);
/** MaxPool takes int8/uint8 from opset 12; the others from 13 at the latest. */
const MOVE_MIN_OPSET = 13;

const KIND_OF: Record<string, AnchorKind | undefined> = { Conv: 'conv', Gemm: 'gemm', MatMul: 'matmul' };

/** A value's element type where the graph declares it (inputs, value_info, outputs). */
function elemTypeOf(g: GraphProto, name: string): number | undefined {
  const v = [...g.input, ...g.valueInfo, ...g.output].find((i) => i.name === name);
  return v?.type?.tensorType?.elemType ?? undefined;
}

/** Why an anchor candidate cannot be fused by ORT (undefined: it can). */
function ineligible(t: Target, plan: Plan | undefined, node: NodeProto, idx: GraphIndex, inMain: boolean): string | undefined {
  if (!plan || plan.keepFloat) return 'its weight stays float';
  if (plan.bits !== 8 || plan.form !== 'dq') return `its weight is written as ${plan.bits}-bit ${plan.form}, not int8 DequantizeLinear`;
  if (!inMain) return 'the layer is inside a subgraph (only the main graph is rewritten)';
  const x = node.input[0];
  if (!x || idx.weight(x)) return 'its input is a constant';
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
  for (const t of targets) {
    const kind = KIND_OF[t.op];
    if (!kind || t.kind !== kind) continue;
    let why: string | undefined;
    for (const u of t.uses) {
      why = ineligible(t, plans.get(t), u.node, index, u.graph === g);
      if (why) break;
    }
    if (why) {
      if (plans.has(t) && !plans.get(t)!.keepFloat) refused.set(t, why);
      continue;
    }
    for (const u of t.uses) anchors.set(u.node, { node: u.node, input: u.node.input[0], target: t, kind });
  }

  const values = new Map<string, QuantizedValue>();
  const want = (name: string): void => {
    if (values.has(name)) return;
    const producer = index.producer.get(name);
    if (!producer) values.set(name, { name, source: 'input' });
    else values.set(name, { name, source: anchors.has(producer) ? 'anchor' : 'float', producer });
  };
  for (const a of anchors.values()) {
    want(a.node.input[0]);
    if (a.kind === 'conv') want(a.node.output[0]);
  }
  // A Relu right after an anchor becomes the clamp of the anchor's QuantizeLinear.
  for (const n of g.node) {
    if (n.opType !== 'Relu' || (n.domain ?? '') !== '') continue;
    const e = n.input[0];
    const producer = index.producer.get(e);
    if (!producer || !anchors.has(producer) || producer.output[0] !== e) continue;
    if (index.consumersOf(e).length !== 1 || index.isGraphOutput(e)) continue;
    values.delete(e);
    values.set(n.output[0], { name: n.output[0], source: 'anchor', producer, folded: n });
  }
  // Move ops on quantized inputs run quantized (graph order is topological, so chains follow).
  if ((opsetVersion(model, '') ?? 1) >= MOVE_MIN_OPSET) {
    for (const n of g.node) {
      if (!MOVE_OPS.has(n.opType ?? '') || (n.domain ?? '') !== '') continue;
      const from = values.get(n.input[0]);
      if (!from) continue;
      if (n.output.slice(1).some((o) => o && (index.consumersOf(o).length || index.isGraphOutput(o)))) continue;
      values.set(n.output[0], { name: n.output[0], source: 'move', producer: n, from });
    }
  }
  return { graph: g, index, activations, calibrate: params.calibrate ?? 'minmax', anchors, values, refused };
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
  const stats = new Map(names.map((n) => [n, new ValueStats(histogram)]));
  if (names.length) {
    const { captureActivations, tensorToFloat32 } = await import('../../runtime/capture.js');
    let seen = -1;
    await captureActivations(model, names, samples, {
      batch: opts.batch,
      intraOpThreads: opts.intraOpThreads,
      onValue: (name, value, i) => {
        const data = value.type === 'float32' ? (value.data as Float32Array) : tensorToFloat32(value);
        try {
          stats.get(name)!.add(data);
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
    // A folded Relu's range starts at 0: asymmetric, so the Q clamps there (int8 zero point −128).
    v.params = activationParams(v.folded ? { lo: 0, hi: range.hi } : range, plan.activations, plan.activations === 'int8' && !v.folded);
  }
  for (const v of plan.values.values()) {
    if (v.source !== 'move') continue;
    let root = v.from!;
    while (root.source === 'move') root = root.from!;
    v.params = root.params;
  }
}
