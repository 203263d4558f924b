/**
 * Which weights the quantize step touches: the constant weight operand of MatMul, Gemm, Conv,
 * ConvTranspose and Gather (embedding tables), found in initializers or Constant nodes of any graph
 * (If/Loop bodies included, weights from outer scopes too).
 *
 * Axes, per kind (the "channel" axis gets one scale per index for per-channel quantization; blocks
 * of block-wise quantization run along the "reduce" axis, the one the op sums over):
 *
 *   kind           weight layout            channel axis   reduce axis
 *   matmul         B [K, N]                 1 (N)          0 (K)
 *   gemm transB=0  B [K, N]                 1              0
 *   gemm transB=1  B [N, K]                 0              1
 *   conv           W [M, C/g, k…]           0 (M)          1 (C/g)
 *   convtranspose  W [C, M/g, k…]           1 (M/g)        0 (C)
 *   gather         table [V, D]             0 (row)        1 (D)
 *   recurrent      W [dirs, G·H, In]        1 (gate row)   2 (In)     LSTM / GRU / RNN inputs 1 (W) and 2 (R);
 *                  R [dirs, G·H, H]                                   the bias (input 3) stays float
 */
import { DataType } from '../../onnx/dtypes.js';
import { attrInt, indexModel, type GraphIndex, type WeightSite } from '../../onnx/graph.js';
import { dimsOf, elementCount } from '../../onnx/tensor.js';
import type { GraphProto, ModelProto, NodeProto, TensorProto } from '../../onnx/types.js';
import { subgraphsOf } from '../../onnx/walk.js';
import { rejection } from '../select.js';

export type TargetKind = 'matmul' | 'gemm' | 'conv' | 'convtranspose' | 'gather' | 'recurrent';

/** One use of a weight by an op we can quantize. */
export interface WeightUse {
  kind: TargetKind;
  node: NodeProto;
  /** The graph the node sits in. */
  graph: GraphProto;
  /** Which input of the node is the weight. */
  input: number;
}

/** A weight and every op that reads it (all of them quantizable, with one layout). */
export interface Target {
  /** The node name of the first use (the weight's name when the node has none). */
  name: string;
  op: string;
  kind: TargetKind;
  weight: string;
  site: WeightSite;
  shape: number[];
  channelAxis: number;
  reduceAxis: number;
  uses: WeightUse[];
}

export interface Selection {
  targets: Target[];
  skipped: { name: string; reason: string }[];
}

export interface SelectOptions {
  include: string[];
  exclude: string[];
  /** Weights with fewer elements are left alone (default 1024). */
  minElements?: number;
  /** Kinds quantized whatever their size (static quantization: a small Conv still runs faster fused). */
  anySize?: readonly TargetKind[];
}

const KIND: Record<string, TargetKind> = {
  MatMul: 'matmul',
  Gemm: 'gemm',
  Conv: 'conv',
  ConvTranspose: 'convtranspose',
  Gather: 'gather',
  LSTM: 'recurrent',
  GRU: 'recurrent',
  RNN: 'recurrent',
};

/** Why the recipe's include/exclude leave the node out (the dialect is src/transforms/select.ts). */
function selectedByPatterns(node: NodeProto, opts: SelectOptions): string | undefined {
  return rejection(opts, node);
}

/** Which input is the weight, and the axes, for a node of a quantizable kind (undefined = not applicable). */
function layoutOf(kind: TargetKind, node: NodeProto, rank: number): { input: number; channelAxis: number; reduceAxis: number } | string {
  switch (kind) {
    case 'matmul':
      return rank === 2 ? { input: 1, channelAxis: 1, reduceAxis: 0 } : `weight has rank ${rank}, not 2`;
    case 'gemm': {
      if (rank !== 2) return `weight has rank ${rank}, not 2`;
      const transB = attrInt(node, 'transB', 0) !== 0;
      return transB ? { input: 1, channelAxis: 0, reduceAxis: 1 } : { input: 1, channelAxis: 1, reduceAxis: 0 };
    }
    case 'conv':
      return rank >= 3 ? { input: 1, channelAxis: 0, reduceAxis: 1 } : `weight has rank ${rank}`;
    case 'convtranspose':
      if (rank < 3) return `weight has rank ${rank}`;
      // With groups, axis 1 holds M/group channels of each group: one scale per index of it would
      // mix channels of different groups, which is still correct (just coarser), so it stays.
      return { input: 1, channelAxis: 1, reduceAxis: 0 };
    case 'gather':
      if (attrInt(node, 'axis', 0) !== 0) return 'gathers along an axis other than 0';
      return rank === 2 ? { input: 0, channelAxis: 0, reduceAxis: 1 } : `table has rank ${rank}, not 2`;
    case 'recurrent':
      // One scale per gate row: the rows of W and R are the gates' (i, o, f, c / z, r, h) weights per unit.
      return rank === 3 ? { input: 1, channelAxis: 1, reduceAxis: 2 } : `weight has rank ${rank}, not 3`;
  }
}

/** Taps below which a 1-input-channel Conv is an ordinary (depthwise) conv rather than a filterbank. */
const FILTERBANK_MIN_TAPS = 64;

/**
 * A Conv with one input channel per group and a long kernel ([M, 1, k ≥ 64]) is a filterbank over a raw
 * signal: an STFT or mel basis (Silero VAD, openWakeWord). Its outputs go through magnitude and log, where
 * the quiet bins of quiet frames are dominated by the weights' rounding noise: quantizing Silero VAD's
 * STFT basis alone to int8 moves 3.5 % of frames by more than 0.05 with the state carried (legacy), while
 * every other conv of it together moves none. Returns the taps, or 0 for any other weight.
 */
function filterbankTaps(kind: TargetKind, shape: number[]): number {
  if (kind !== 'conv' || shape.length < 3 || shape[1] !== 1) return 0;
  const taps = shape.slice(2).reduce((a, b) => a * b, 1);
  return taps >= FILTERBANK_MIN_TAPS ? taps : 0;
}

function isWeightInput(kind: TargetKind, input: number): boolean {
  if (kind === 'recurrent') return input === 1 || input === 2;
  return input === (kind === 'gather' ? 0 : 1);
}

/** Same layout: same kind and, for Gemm, the same transB. */
function sameLayout(a: WeightUse, b: WeightUse): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'gemm') return attrInt(a.node, 'transB', 0) === attrInt(b.node, 'transB', 0);
  return true;
}

/**
 * Finds the weights to quantize. Every explicit read of a weight is looked at: a weight also read by
 * an op we do not quantize (or by ops with different layouts, or as a graph output) is skipped,
 * since quantizing it would keep the float copy too.
 */
export function selectWeights(model: ModelProto, opts: SelectOptions): Selection {
  const minElements = opts.minElements ?? 1024;
  const indexes = indexModel(model);
  const skipped: Selection['skipped'] = [];
  const skippedNames = new Set<string>();
  const skip = (name: string, reason: string) => {
    if (skippedNames.has(name)) return;
    skippedNames.add(name);
    skipped.push({ name, reason });
  };

  interface Entry {
    site: WeightSite;
    weight: string;
    uses: WeightUse[];
    other: string[];
    rejected?: string;
  }
  const byTensor = new Map<TensorProto, Entry>();
  const entry = (site: WeightSite, weight: string) => {
    let e = byTensor.get(site.tensor);
    if (!e) byTensor.set(site.tensor, (e = { site, weight, uses: [], other: [] }));
    return e;
  };

  const visit = (g: GraphProto) => {
    const idx = indexes.get(g) as GraphIndex;
    for (const node of g.node) {
      for (const sub of subgraphsOf(node)) visit(sub);
      const kind = KIND[node.opType ?? ''];
      const quantizable = kind !== undefined && (node.domain ?? '') === '';
      node.input.forEach((name, i) => {
        if (!name) return;
        const site = idx.weight(name);
        if (!site || site.tensor.dataType !== DataType.FLOAT) return;
        const e = entry(site, name);
        if (!quantizable || !isWeightInput(kind, i)) {
          const where = quantizable ? ` as input ${i} (not its weight input)` : '';
          e.other.push(`${node.opType}${node.name ? ` "${node.name}"` : ''}${where}`);
          return;
        }
        e.uses.push({ kind, node, graph: g, input: i });
      });
    }
    for (const o of g.output) {
      const site = o.name ? (indexes.get(g) as GraphIndex).weight(o.name) : undefined;
      if (site) entry(site, o.name!).other.push('a graph output');
    }
  };
  if (model.graph) visit(model.graph);

  const targets: Target[] = [];
  for (const e of byTensor.values()) {
    if (e.uses.length === 0) continue;
    const first = e.uses[0];
    const nodeName = first.node.name || e.weight;
    const shape = dimsOf(e.site.tensor);
    const reasons: string[] = [];
    for (const u of e.uses) {
      const r = selectedByPatterns(u.node, opts);
      if (r) reasons.push(r);
    }
    if (reasons.length === e.uses.length) {
      skip(nodeName, reasons[0]);
      continue;
    }
    if (reasons.length) {
      skip(nodeName, `weight "${e.weight}" is shared with a node that is ${reasons[0]}`);
      continue;
    }
    if (e.other.length) {
      skip(nodeName, `weight "${e.weight}" is also read by ${e.other[0]}`);
      continue;
    }
    if (e.uses.some((u) => !sameLayout(u, first))) {
      skip(nodeName, `weight "${e.weight}" is read by ops with different layouts`);
      continue;
    }
    const count = elementCount(shape);
    if (count < minElements && !opts.anySize?.includes(first.kind)) {
      skip(nodeName, `${count} elements (< ${minElements}): too small to matter`);
      continue;
    }
    const layout = layoutOf(first.kind, first.node, shape.length);
    if (typeof layout === 'string') {
      skip(nodeName, layout);
      continue;
    }
    const filterbank = filterbankTaps(first.kind, shape);
    if (filterbank) {
      skip(nodeName, `a filterbank over a raw signal (1 input channel, ${filterbank} taps: STFT, mel): 8-bit noise leaks across its frequency bins, so it stays float`);
      continue;
    }
    targets.push({
      name: nodeName,
      op: first.node.opType ?? '',
      kind: first.kind,
      weight: e.weight,
      site: e.site,
      shape,
      channelAxis: layout.channelAxis,
      reduceAxis: layout.reduceAxis,
      uses: e.uses,
    });
  }
  return { targets, skipped };
}
