/**
 * Channel (structured) pruning: remove whole output units of a MatMul / Gemm / Conv, and everything
 * that only exists for them — bias entries, BatchNormalization parameters, per-channel constants — and
 * the matching input rows / channels of every layer that reads them. The tensors get smaller, so the
 * file shrinks and the model runs faster.
 *
 * Tracing follows the channel axis forward from the layer's output. Axes are kept negative (counted
 * from the end) because broadcasting aligns from the end; `block` is how many consecutive elements of
 * the axis belong to one channel (1, or h·w after a Flatten of [n, c, h, w]).
 *
 * Refused (the caller reports it in `skipped`): a graph output, an Add/Mul with a value that does not
 * carry the same channels (a residual connection), normalization over the channel axis
 * (LayerNormalization, Softmax), a Reshape that splits the axis (attention heads), reads by
 * Shape/Gather/Concat/… and any op not listed here.
 */
import { attrInt, attrInts, type GraphIndex } from '../../onnx/graph.js';
import { dimsOf, tensorValues } from '../../onnx/tensor.js';
import type { NodeProto } from '../../onnx/types.js';
import { convPatches, type FeatureLayout, type FeatureStats } from './stats.js';
import { layerOf, type Layer } from './select.js';

/** A constant input to cut along one axis, channel c covering elements [c·block, (c+1)·block). */
export interface SliceEdit {
  node: NodeProto;
  slot: number;
  /** Non-negative axis of the tensor. */
  axis: number;
  block: number;
}

/** A Reshape whose shape constant holds the flattened channel size at `index`. */
export interface ShapeEdit {
  node: NodeProto;
  index: number;
  block: number;
}

/**
 * A layer that reads the channels, seen as its K×N weight matrix (select.ts): channel c is input
 * features [c·features, (c+1)·features) — h·w of them after a flatten, kh·kw for a Conv reader whose
 * inputs are taken as im2col patches.
 */
export interface Absorber {
  node: NodeProto;
  value: string;
  layer: Layer;
  layout: FeatureLayout | undefined;
  features: number;
}

export interface ValueAxis {
  axis: number;
  rank?: number;
  block: number;
}

export interface ChannelPlan {
  layer: Layer;
  channels: number;
  values: Map<string, ValueAxis>;
  edits: SliceEdit[];
  shapeEdits: ShapeEdit[];
  absorbers: Absorber[];
}

/** Trace result: a plan, a refusal, or shapes (of values, for one sample) needed to decide. */
export type TraceResult = { plan: ChannelPlan } | { refuse: string } | { needShapes: string[] };

const UNARY = new Set([
  'Relu', 'LeakyRelu', 'Elu', 'Selu', 'Celu', 'Gelu', 'Erf', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'Exp', 'Log', 'Neg', 'Abs', 'Sqrt',
  'Reciprocal', 'Softplus', 'Softsign', 'Identity', 'Cast', 'Floor', 'Ceil', 'Round', 'Sign', 'Sin', 'Cos', 'Mish', 'ThresholdedRelu', 'Dropout', 'Clip',
]);
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'PRelu']);
const POOL = new Set(['MaxPool', 'AveragePool', 'LpPool', 'GlobalAveragePool', 'GlobalMaxPool', 'GlobalLpPool']);

const product = (a: readonly number[]) => a.reduce((x, y) => x * y, 1);

export function traceChannels(index: GraphIndex, layer: Layer, shapes: Map<string, number[]>): TraceResult {
  const { node } = layer;
  const C = layer.N;
  const edits: SliceEdit[] = [];
  const shapeEdits: ShapeEdit[] = [];
  const absorbers: Absorber[] = [];
  const values = new Map<string, ValueAxis>();
  const need = new Set<string>();
  const pending: { node: NodeProto; inputs: string[]; info: ValueAxis }[] = [];
  const queue: string[] = [];
  const isConst = (name: string) => index.weight(name) !== undefined;
  const constDims = (name: string) => dimsOf(index.weight(name)!.tensor);
  const add = (name: string, info: ValueAxis): string | undefined => {
    const have = values.get(name);
    if (have) return have.axis === info.axis && have.block === info.block ? undefined : `"${name}" is reached with two different channel layouts`;
    values.set(name, info);
    queue.push(name);
    return undefined;
  };
  const shapeOf = (name: string): number[] | undefined => {
    const s = shapes.get(name);
    if (!s) need.add(name);
    return s;
  };

  // The layer itself.
  if (layer.op === 'Conv') {
    if (layer.group !== 1) return { refuse: 'grouped convolution' };
    edits.push({ node, slot: 1, axis: 0, block: 1 });
    if (node.input[2]) {
      if (!isConst(node.input[2])) return { refuse: 'bias is not a constant' };
      edits.push({ node, slot: 2, axis: 0, block: 1 });
    }
    add(node.output[0], { axis: 1 - layer.dims.length, rank: layer.dims.length, block: 1 });
  } else {
    edits.push({ node, slot: 1, axis: layer.strideN === 1 ? 1 : 0, block: 1 });
    if (layer.op === 'Gemm' && node.input[2]) {
      const b = node.input[2];
      if (!isConst(b)) return { refuse: 'Gemm bias C is not a constant' };
      const d = constDims(b);
      if (d.length && d[d.length - 1] === C) edits.push({ node, slot: 2, axis: d.length - 1, block: 1 });
      else if (product(d) !== 1) return { refuse: `Gemm bias C of shape [${d}] does not follow the outputs` };
    }
    add(node.output[0], { axis: -1, rank: layer.op === 'Gemm' ? 2 : undefined, block: 1 });
  }

  while (queue.length) {
    const v = queue.shift()!;
    const info = values.get(v)!;
    if (index.isGraphOutput(v)) return { refuse: `its channels reach the graph output "${v}"` };
    for (const c of index.consumersOf(v)) {
      const op = c.opType ?? '';
      const label = `${op} "${c.name || c.output[0]}"`;
      if ((c.domain ?? '') !== '') return { refuse: `${label} (domain ${c.domain}) reads the channels` };
      const slots = c.input.map((x, i) => (x === v ? i : -1)).filter((i) => i >= 0);
      if (slots.length === 0) return { refuse: `${label} reads the channels inside a subgraph` };
      const usedOutputs = c.output.filter((o, i) => i > 0 && o && (index.consumersOf(o).length > 0 || index.isGraphOutput(o)));

      if (UNARY.has(op)) {
        if (slots.some((s) => s !== 0)) return { refuse: `${label} takes the channels as a parameter` };
        if (usedOutputs.length) return { refuse: `${label} has a second output in use` };
        if (op === 'Clip') for (const x of c.input.slice(1)) if (x && (!isConst(x) || product(constDims(x)) !== 1)) return { refuse: `${label} has non-scalar bounds` };
        const err = add(c.output[0], { ...info });
        if (err) return { refuse: err };
        continue;
      }
      if (BINARY.has(op)) {
        if (op === 'Pow' && slots.includes(1)) return { refuse: `${label} uses the channels as an exponent` };
        const others: string[] = [];
        let rank = info.rank;
        for (let i = 0; i < c.input.length; i++) {
          const x = c.input[i];
          if (x === v || !x) continue;
          if (isConst(x)) {
            const d = constDims(x);
            const ai = d.length + info.axis;
            if (rank !== undefined && d.length > rank) rank = undefined;
            if (ai < 0 || d[ai] === 1) continue;
            if (d[ai] !== C * info.block) return { refuse: `${label} has a constant of shape [${d}] that does not match the ${C} channels` };
            edits.push({ node: c, slot: i, axis: ai, block: info.block });
          } else others.push(x);
        }
        if (others.length) pending.push({ node: c, inputs: others, info });
        const err = add(c.output[0], { axis: info.axis, rank, block: info.block });
        if (err) return { refuse: err };
        continue;
      }
      if (op === 'BatchNormalization') {
        if (slots.some((s) => s !== 0)) return { refuse: `${label} takes the channels as a parameter` };
        if (info.rank === undefined || info.rank + info.axis !== 1 || info.block !== 1) return { refuse: `${label} normalizes another axis than the channels` };
        if (usedOutputs.length) return { refuse: `${label} runs in training mode` };
        for (let i = 1; i <= 4; i++) {
          if (!isConst(c.input[i])) return { refuse: `${label} parameter "${c.input[i]}" is not a constant` };
          edits.push({ node: c, slot: i, axis: 0, block: 1 });
        }
        const err = add(c.output[0], { ...info });
        if (err) return { refuse: err };
        continue;
      }
      if (POOL.has(op)) {
        if (info.rank === undefined || info.rank + info.axis !== 1 || info.block !== 1) return { refuse: `${label} pools over the channel axis` };
        if (usedOutputs.length) return { refuse: `${label} has its indices output in use` };
        const err = add(c.output[0], { ...info });
        if (err) return { refuse: err };
        continue;
      }
      if (op === 'Transpose') {
        const perm = attrInts(c, 'perm');
        if (!perm || info.block !== 1) return { refuse: `${label} without perm` };
        const inPos = perm.length + info.axis;
        const err = add(c.output[0], { axis: perm.indexOf(inPos) - perm.length, rank: perm.length, block: 1 });
        if (err) return { refuse: err };
        continue;
      }
      if (op === 'LayerNormalization' || op === 'Softmax' || op === 'LogSoftmax') {
        // LayerNormalization normalizes [axis, rank); Softmax normalizes one axis (opset ≥ 13) or [axis, rank)
        // (before): refusing every channel axis at or after `axis` is right for all of them.
        const a = attrInt(c, 'axis', -1);
        const rank = info.rank ?? shapeOf(v)?.length;
        if (rank === undefined) continue;
        const pos = rank + info.axis;
        const start = a < 0 ? rank + a : a;
        if (pos >= start) return { refuse: `${label} normalizes over the channel axis` };
        if (usedOutputs.length) return { refuse: `${label} has extra outputs in use` };
        const err = add(c.output[0], { ...info, rank });
        if (err) return { refuse: err };
        continue;
      }
      if (op === 'Flatten' || op === 'Reshape') {
        if (slots.some((s) => s !== 0)) return { refuse: `${label} takes the channels as its shape` };
        const sIn = shapeOf(v);
        const sOut = shapeOf(c.output[0]);
        if (!sIn || !sOut) continue;
        const pos = sIn.length + info.axis;
        // Sound only as a flatten that starts at the channel axis: [..., c, h, w] → [..., c·h·w].
        const keepsLeading = sOut.length === pos + 1 && sIn.slice(0, pos).every((d, i) => d === sOut[i]);
        if (!keepsLeading || sOut[pos] !== product(sIn.slice(pos))) {
          return { refuse: `${label} reshapes the channel axis [${sIn}] → [${sOut}] (only a flatten from the channel axis can be followed)` };
        }
        if (op === 'Flatten' && attrInt(c, 'axis', 1) !== pos) return { refuse: `${label} does not flatten from the channel axis` };
        if (op === 'Reshape') {
          const shape = c.input[1];
          if (!isConst(shape)) return { refuse: `${label} has a computed shape` };
          const t = index.weight(shape)!.tensor;
          const vals = Array.from(tensorValues(t) as BigInt64Array, Number);
          if (vals[pos] === -1) {
            // inferred: nothing to change
          } else if (vals[pos] === sOut[pos] && !vals.includes(-1)) {
            shapeEdits.push({ node: c, index: pos, block: info.block * product(sIn.slice(pos + 1)) });
          } else return { refuse: `${label} shape [${vals}] cannot be adjusted` };
        }
        const err = add(c.output[0], { axis: -1, rank: sOut.length, block: info.block * product(sIn.slice(pos + 1)) });
        if (err) return { refuse: err };
        continue;
      }
      if (op === 'MatMul' || op === 'Gemm') {
        if (slots.length !== 1 || slots[0] !== 0) return { refuse: `${label} multiplies the channels by another activation` };
        if (info.axis !== -1) return { refuse: `${label} reads the channels on another axis than its inner dimension` };
        if (op === 'Gemm' && attrInt(c, 'transA', 0) !== 0) return { refuse: `${label} transposes its input` };
        const w = c.input[1];
        if (!isConst(w)) return { refuse: `${label} has no constant weight` };
        const d = constDims(w);
        const axis = op === 'Gemm' && attrInt(c, 'transB', 0) === 1 ? 1 : 0;
        if (d.length !== 2 || d[axis] !== C * info.block) return { refuse: `${label} weight [${d}] does not match ${C}×${info.block} inputs` };
        edits.push({ node: c, slot: 1, axis, block: info.block });
        const reader = layerOf(index, c);
        if (typeof reader !== 'object') return { refuse: `${label}: ${reader ?? 'not a weighted layer'}` };
        absorbers.push({ node: c, value: v, layer: reader, layout: { kind: 'last' }, features: info.block });
        continue;
      }
      if (op === 'Conv') {
        if (slots.length !== 1 || slots[0] !== 0) return { refuse: `${label} uses the channels as weights` };
        if (attrInt(c, 'group', 1) !== 1) return { refuse: `${label} is a grouped convolution` };
        if (info.rank === undefined || info.rank + info.axis !== 1 || info.block !== 1) return { refuse: `${label} reads the channels on another axis` };
        if (!isConst(c.input[1])) return { refuse: `${label} has no constant weight` };
        const d = constDims(c.input[1]);
        if (d[1] !== C) return { refuse: `${label} weight [${d}] does not match ${C} channels` };
        edits.push({ node: c, slot: 1, axis: 1, block: 1 });
        const reader = layerOf(index, c);
        if (typeof reader !== 'object') return { refuse: `${label}: ${reader ?? 'not a weighted layer'}` };
        absorbers.push({ node: c, value: v, layer: reader, layout: convPatches(c, d), features: reader.kernelSize });
        continue;
      }
      return { refuse: `${label} reads the channels and cannot be adjusted` };
    }
  }
  if (need.size) return { needShapes: [...need] };
  for (const p of pending) {
    for (const x of p.inputs) {
      const o = values.get(x);
      if (!o || o.axis !== p.info.axis || o.block !== p.info.block) {
        return { refuse: `${p.node.opType} "${p.node.name || p.node.output[0]}" combines the channels with "${x}", which does not carry them (a residual connection)` };
      }
    }
  }
  if (absorbers.length === 0) return { refuse: 'no layer reads its outputs, nothing to shrink' };
  return { plan: { layer, channels: C, values, edits, shapeEdits, absorbers } };
}

/** Magnitude score: L2 norm of each output unit's weights. */
export function magnitudeScores(layer: Layer, w: Float32Array): Float64Array {
  const s = new Float64Array(layer.N);
  for (let n = 0; n < layer.N; n++) {
    let ss = 0;
    for (let k = 0; k < layer.K; k++) {
      const x = w[k * layer.strideK + n * layer.strideN];
      ss += x * x;
    }
    s[n] = Math.sqrt(ss);
  }
  return s;
}

/**
 * Activation-aware score of channel c: sqrt(Σ over readers and the channel's input features f of
 * ‖X_f‖²·‖W_reader[f, :]‖²) — how much the channel contributes to what the next layers compute.
 * Readers without statistics count ‖X_f‖ as 1.
 */
export function activationScores(plan: ChannelPlan, stats: (a: Absorber) => FeatureStats | undefined, weight: (a: Absorber) => Float32Array): Float64Array {
  const s = new Float64Array(plan.channels);
  for (const a of plan.absorbers) {
    const st = stats(a);
    const w = weight(a);
    const { N, strideK, strideN } = a.layer;
    for (let c = 0; c < plan.channels; c++) {
      for (let j = 0; j < a.features; j++) {
        const f = c * a.features + j;
        let row = 0;
        for (let n = 0; n < N; n++) {
          const x = w[f * strideK + n * strideN];
          row += x * x;
        }
        s[c] += (st ? st.sumsq[f] : 1) * row;
      }
    }
  }
  for (let c = 0; c < plan.channels; c++) s[c] = Math.sqrt(s[c]);
  return s;
}

/** Indices of the `remove` lowest scores (ties: lower index first), ascending. */
export function lowest(scores: Float64Array, remove: number): number[] {
  const order = Array.from(scores.keys()).sort((a, b) => scores[a] - scores[b] || a - b);
  return order.slice(0, remove).sort((a, b) => a - b);
}
