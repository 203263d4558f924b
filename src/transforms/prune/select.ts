/**
 * Which layers a prune / lowrank step touches: the recipe's include/exclude (the dialect every step shares,
 * src/transforms/select.ts), the weight behind each layer (initializer or Constant node), how its elements
 * map to input features and output units, and the layers no step should touch by default (the final classifier).
 *
 * Weight layouts (ONNX):
 * - MatMul(X, B): B is [K, N]; y[n] = Σ_k x[k]·B[k, n].
 * - Gemm(A, B, C): B is [K, N], or [N, K] with transB = 1.
 * - Conv(X, W, b): W is [O, C/group, kh, kw]; each filter o reads F = C/group·kh·kw inputs (stored
 *   contiguously, in that order).
 */
import { globMatch, isSelected, namedByInclude, type Patterns } from '../select.js';
import { DataType } from '../../onnx/dtypes.js';
import { attrInt, indexModel, type GraphIndex, type WeightSite } from '../../onnx/graph.js';
import { dimsOf, tensorFloat32 } from '../../onnx/tensor.js';
import type { GraphProto, ModelProto, NodeProto, TensorProto } from '../../onnx/types.js';

export type LayerOp = 'MatMul' | 'Gemm' | 'Conv';

/** A weighted layer and its weight as a K (inputs) × N (outputs) matrix. */
export interface Layer {
  node: NodeProto;
  op: LayerOp;
  /** Node name, or the weight's name when the node has none. */
  name: string;
  index: GraphIndex;
  graph: GraphProto;
  /** Input slot of the weight (1 for all three ops). */
  slot: number;
  weightName: string;
  site: WeightSite;
  dims: number[];
  /** Inputs per output unit (K) and output units (N). */
  K: number;
  N: number;
  /** Offset of element (k, n) = k·strideK + n·strideN in the stored tensor. */
  strideK: number;
  strideN: number;
  /** For Conv: kernel elements per input channel (kh·kw), and channels per group; 1 otherwise. */
  kernelSize: number;
  group: number;
}

/** The step's include/exclude patterns (src/transforms/select.ts has the dialect). */
export type Selection = Patterns;

export { globMatch };

/** Reasons a layer candidate cannot be used, or the layer. */
export function layerOf(index: GraphIndex, node: NodeProto): Layer | string | undefined {
  const op = node.opType;
  if ((node.domain ?? '') !== '' || (op !== 'MatMul' && op !== 'Gemm' && op !== 'Conv')) return undefined;
  const weightName = node.input[1];
  if (!weightName) return undefined;
  const site = index.weight(weightName);
  if (!site) return undefined; // activation × activation (attention scores): not a weighted layer
  const name = node.name || weightName;
  const t = site.tensor;
  if (t.dataType !== DataType.FLOAT) return `weight "${weightName}" is ${t.dataType === DataType.FLOAT16 ? 'float16' : `of data type ${t.dataType}`}, only float32 weights are handled`;
  if (t.dataLocation === 1) return `weight "${weightName}" is in external data that was not loaded`;
  const dims = dimsOf(t);
  const base = { node, name, index, graph: index.graph, slot: 1, weightName, site, dims, kernelSize: 1, group: 1 };
  if (op === 'MatMul') {
    if (dims.length !== 2) return `MatMul weight "${weightName}" has ${dims.length} dims (a 2-D weight is needed)`;
    return { ...base, op, K: dims[0], N: dims[1], strideK: dims[1], strideN: 1 };
  }
  if (op === 'Gemm') {
    if (dims.length !== 2) return `Gemm weight "${weightName}" has ${dims.length} dims`;
    const transB = attrInt(node, 'transB', 0) === 1;
    return transB ? { ...base, op, K: dims[1], N: dims[0], strideK: 1, strideN: dims[1] } : { ...base, op, K: dims[0], N: dims[1], strideK: dims[1], strideN: 1 };
  }
  if (dims.length < 3) return `Conv weight "${weightName}" has ${dims.length} dims`;
  const kernelSize = dims.slice(2).reduce((a, b) => a * b, 1);
  const F = dims[1] * kernelSize;
  return { ...base, op: 'Conv', K: F, N: dims[0], strideK: 1, strideN: F, kernelSize, group: attrInt(node, 'group', 1) };
}

/**
 * Ops a final classifier's output may pass through on its way to a graph output (Add/Sub/Mul/Div only
 * with a constant: a residual Add is not the end of the network).
 */
const PASS_TO_OUTPUT = new Set(['Add', 'Sub', 'Mul', 'Div', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Softmax', 'LogSoftmax', 'Sigmoid', 'Identity', 'Cast', 'Transpose', 'ArgMax', 'TopK', 'Relu', 'Tanh']);

/**
 * The final classifier: a weighted layer whose output reaches a graph output through none but the
 * light ops above (bias, reshape, softmax …) and no other weighted layer.
 */
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div']);

export function isFinalClassifier(index: GraphIndex, node: NodeProto): boolean {
  const seen = new Set<string>();
  const stack = [...node.output];
  while (stack.length) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    if (index.isGraphOutput(v)) return true;
    for (const c of index.consumersOf(v)) {
      if (!c.opType || !PASS_TO_OUTPUT.has(c.opType)) continue;
      if (BINARY.has(c.opType) && c.input.some((x) => x && x !== v && !index.weight(x))) continue;
      stack.push(...c.output);
    }
  }
  return false;
}

/** Number of times `name` is read by any node of the graph (and its subgraphs) or is a graph output. */
export function readCount(index: GraphIndex, name: string): number {
  let n = index.isGraphOutput(name) ? 1 : 0;
  for (const c of index.consumersOf(name)) n += Math.max(1, c.input.filter((i) => i === name).length);
  return n;
}

export interface Candidates {
  layers: Layer[];
  skipped: { name: string; reason: string }[];
}

/**
 * The weighted layers of the main graph the selection picks, in graph order. The final classifier is
 * skipped unless an include pattern names it; weights read by several nodes are skipped (changing
 * them would change the other readers too).
 */
export function selectLayers(model: ModelProto, sel: Selection, ops: readonly LayerOp[] = ['MatMul', 'Gemm', 'Conv']): Candidates {
  const out: Candidates = { layers: [], skipped: [] };
  const g = model.graph;
  if (!g) return out;
  const index = indexModel(model).get(g)!;
  for (const node of g.node) {
    if (!ops.includes(node.opType as LayerOp)) continue;
    const layer = layerOf(index, node);
    if (layer === undefined) continue;
    const name = typeof layer === 'string' ? node.name || node.input[1] || '' : layer.name;
    if (!isSelected(sel, node, name)) continue;
    if (typeof layer === 'string') {
      out.skipped.push({ name, reason: layer });
      continue;
    }
    if (isFinalClassifier(index, node) && !namedByInclude(sel, name)) {
      out.skipped.push({ name, reason: 'final classifier (name it in include to change it)' });
      continue;
    }
    if (readCount(index, layer.weightName) > 1) {
      out.skipped.push({ name, reason: `weight "${layer.weightName}" is shared with other nodes` });
      continue;
    }
    out.layers.push(layer);
  }
  return out;
}

/** Replaces the weight behind `site` with `tensor` (same name). */
export function replaceWeight(site: WeightSite, tensor: TensorProto): void {
  if (site.kind === 'initializer') {
    const i = site.graph.initializer.indexOf(site.tensor);
    site.graph.initializer[i] = tensor;
  } else {
    site.attribute.t = tensor;
  }
}

/** Copy of the weight as a contiguous K×N float32 matrix (row k = input k). */
export function weightMatrix(layer: Layer, data: Float32Array): Float32Array {
  const { K, N, strideK, strideN } = layer;
  if (strideN === 1 && strideK === N) return data.slice();
  const out = new Float32Array(K * N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) out[k * N + n] = data[k * strideK + n * strideN];
  return out;
}

/**
 * Index into a per-layer feature table of group·K entries for weight input k of output n: for plain
 * layers k itself; a grouped Conv's filters in group g read entries [g·K, (g+1)·K).
 */
export function inputFeature(layer: Layer, k: number, n: number): number {
  return layer.group === 1 ? k : Math.floor(n / (layer.N / layer.group)) * layer.K + k;
}

/**
 * Where the bias added to the layer's outputs lives, if it is a constant: Conv input 2, Gemm C (scaled
 * by beta), or the Add right after a MatMul.
 */
export function layerBiasSite(layer: Layer): { name: string; site: WeightSite; scale: number } | undefined {
  const { node, index } = layer;
  let name: string | undefined;
  let scale = 1;
  if (layer.op === 'Conv') name = node.input[2];
  else if (layer.op === 'Gemm') {
    name = node.input[2];
    scale = node.attribute.find((a) => a.name === 'beta')?.f ?? 1;
  } else {
    const next = index.consumersOf(node.output[0]);
    if (next.length === 1 && next[0].opType === 'Add') name = next[0].input.find((x) => x !== node.output[0]);
  }
  const site = name ? index.weight(name) : undefined;
  if (!name || !site || site.tensor.dataType !== DataType.FLOAT) return undefined;
  return { name, site, scale };
}

/** The bias as N values (broadcast from a scalar, times Gemm's beta), or undefined. */
export function layerBias(layer: Layer): Float32Array | undefined {
  const b = layerBiasSite(layer);
  if (!b) return undefined;
  const v = tensorFloat32(b.site.tensor);
  if (v.length === layer.N) return b.scale === 1 ? v : v.map((x) => x * b.scale);
  if (v.length === 1) return new Float32Array(layer.N).fill(v[0] * b.scale);
  return undefined;
}
