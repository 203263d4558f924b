/**
 * The single-op gradient cases of test/autodiff.test.ts and the code that turns a case into its
 * training graph, shared by that test (gradients against finite differences) and by
 * bench/gpu/grad-ops.ts (the same training graphs on the CPU and on a GPU execution provider).
 * Free of vitest, so that the bench script can be bundled with esbuild.
 *
 * The loss of a case is Σ y·R (R random), so a check covers the whole vector-Jacobian product.
 */
import * as ort from 'onnxruntime-node';
import { buildTrainingGraph, probeShapes, type ShapeInfo, type TrainingGraph } from '../src/autodiff/index.js';
import { DataType } from '../src/onnx/dtypes.js';
import { makeAttribute, makeNode } from '../src/onnx/graph.js';
import { makeInt64Tensor, makeTensor } from '../src/onnx/tensor.js';
import type { AttributeProto, ModelProto, NodeProto, TensorProto } from '../src/onnx/types.js';
import { openSession } from '../src/runtime/session.js';
import { seededRandom } from '../src/random.js';

// ---------------------------------------------------------------------------------------- helpers

export const rng = seededRandom;

export type Spec =
  | number[] // trainable float, uniform in [-1, 1]
  | { dims: number[]; init?: 'positive' | 'distinct' | 'away'; feed?: boolean; values?: number[] } // float
  | { ints: number[]; dims?: number[] } // int64 constant
  | { feedInts: number[]; dims: number[] }; // int64 graph input

export interface Case {
  name: string;
  nodes: NodeProto[];
  inputs: Record<string, Spec>;
  opset?: number;
  /** Extra feed sets (same non-trainable names, other batch sizes) for the shape probe; the check runs on `checkFeeds`. */
  dynamic?: { probe: Record<string, number[]>[]; check: Record<string, number[]> };
  /** Drop these values from the probed shapes (forces run-time shape code paths). */
  forget?: string[];
  /** Run in float32 only. */
  float32?: boolean;
}

let nodeCount = 0;
export const n = (op: string, inputs: string[], outputs: string[] = ['y'], attrs: Record<string, number | number[] | string | { f: number } | TensorProto> = {}): NodeProto =>
  makeNode(op, inputs, outputs, {
    name: `${op}_${nodeCount++}`,
    attributes: Object.entries(attrs).map(([k, v]): AttributeProto => {
      if (typeof v === 'object' && !Array.isArray(v) && 'f' in v) return makeAttribute(k, v.f);
      return makeAttribute(k, v as number, typeof v === 'number' || Array.isArray(v));
    }),
  });

export function values(spec: { dims: number[]; init?: string; values?: number[] }, r: () => number): Float64Array {
  const count = spec.dims.reduce((a, b) => a * b, 1);
  if (spec.values) return Float64Array.from(spec.values);
  const out = new Float64Array(count);
  if (spec.init === 'distinct') {
    // A shuffled grid: every pair differs by ≥ 0.05, so max / ties never flip under the FD step.
    const perm = Array.from({ length: count }, (_, i) => i);
    for (let i = count - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    for (let i = 0; i < count; i++) out[i] = (perm[i] - count / 2) * 0.05;
    return out;
  }
  for (let i = 0; i < count; i++) {
    const u = r() * 2 - 1;
    out[i] = spec.init === 'positive' ? 0.5 + Math.abs(u) : spec.init === 'away' ? Math.sign(u) * (0.2 + Math.abs(u)) : u;
  }
  return out;
}

export function floatTensor(name: string, type: number, dims: number[], v: Float64Array): TensorProto {
  return makeTensor(name, type, dims, type === DataType.DOUBLE ? v : Float32Array.from(v));
}

export function ortTensor(type: number, dims: number[], v: Float64Array): ort.Tensor {
  return type === DataType.DOUBLE ? new ort.Tensor('float64', v, dims) : new ort.Tensor('float32', Float32Array.from(v), dims);
}

export function modelOf(c: Case, type: number, inits: TensorProto[], feeds: string[], nodes: NodeProto[], output: string, feedTypes: Map<string, number>): ModelProto {
  return {
    irVersion: 8,
    opsetImport: [{ domain: '', version: c.opset ?? 17 }],
    metadataProps: [],
    trainingInfo: [],
    functions: [],
    graph: {
      name: c.name,
      node: nodes,
      initializer: inits,
      input: feeds.map((name) => ({ name, type: { tensorType: { elemType: feedTypes.get(name) ?? type } }, metadataProps: [] })),
      output: [{ name: output, metadataProps: [] }],
      valueInfo: [],
      quantizationAnnotation: [],
      sparseInitializer: [],
      metadataProps: [],
    },
  };
}

/** Sessions of the checks: the CPU, one thread (deterministic). */
export const opts = { intraOpThreads: 1 } as const;

export async function run(model: ModelProto, feeds: Record<string, ort.Tensor>, fetch: string[]): Promise<Record<string, ort.Tensor>> {
  const { session } = await openSession(model, opts);
  try {
    return (await session.run(feeds, fetch)) as Record<string, ort.Tensor>;
  } finally {
    await session.release();
  }
}

// ------------------------------------------------------------------------------------------ cases

export const cases: Case[] = [
  // matmul.ts
  { name: 'MatMul 2d·2d', nodes: [n('MatMul', ['a', 'b'])], inputs: { a: [3, 4], b: [4, 5] } },
  { name: 'MatMul 3d·2d (weight)', nodes: [n('MatMul', ['a', 'b'])], inputs: { a: [2, 3, 4], b: [4, 5] } },
  { name: 'MatMul batch broadcast', nodes: [n('MatMul', ['a', 'b'])], inputs: { a: [2, 1, 3, 4], b: [3, 4, 2] } },
  { name: 'MatMul vector·matrix', nodes: [n('MatMul', ['a', 'b'])], inputs: { a: [4], b: [2, 4, 3] } },
  { name: 'MatMul matrix·vector', nodes: [n('MatMul', ['a', 'b'])], inputs: { a: [2, 3, 4], b: [4] } },
  { name: 'Gemm', nodes: [n('Gemm', ['a', 'b', 'c'], ['y'], { alpha: { f: 0.7 }, beta: { f: 1.3 } })], inputs: { a: [3, 4], b: [4, 5], c: [5] } },
  { name: 'Gemm transA transB', nodes: [n('Gemm', ['a', 'b', 'c'], ['y'], { transA: 1, transB: 1, alpha: { f: 1.5 } })], inputs: { a: [4, 3], b: [5, 4], c: [3, 1] } },
  { name: 'Gemm transB (Linear)', nodes: [n('Gemm', ['a', 'b', 'c'], ['y'], { transB: 1 })], inputs: { a: [3, 4], b: [5, 4], c: [5] } },
  { name: 'Gemm transA', nodes: [n('Gemm', ['a', 'b'], ['y'], { transA: 1 })], inputs: { a: [4, 3], b: [4, 5] } },
  // elementwise.ts
  { name: 'Add broadcast', nodes: [n('Add', ['a', 'b'])], inputs: { a: [2, 3, 4], b: [4] } },
  { name: 'Add broadcast (1 axes)', nodes: [n('Add', ['a', 'b'])], inputs: { a: [2, 1, 4], b: [3, 1] } },
  { name: 'Sub broadcast', nodes: [n('Sub', ['a', 'b'])], inputs: { a: [3, 1], b: [2, 3, 4] } },
  { name: 'Mul broadcast', nodes: [n('Mul', ['a', 'b'])], inputs: { a: [2, 3, 4], b: [3, 1] } },
  { name: 'Div broadcast', nodes: [n('Div', ['a', 'b'])], inputs: { a: [2, 3, 4], b: { dims: [4], init: 'positive' } } },
  { name: 'Pow', nodes: [n('Pow', ['a', 'b'])], inputs: { a: { dims: [3, 4], init: 'positive' }, b: { dims: [4], init: 'positive' } } },
  { name: 'Pow (integer exponent)', nodes: [n('Pow', ['a', 'e'])], inputs: { a: [3, 4], e: { ints: [2], dims: [] } } },
  { name: 'Sqrt', nodes: [n('Sqrt', ['a'])], inputs: { a: { dims: [3, 4], init: 'positive' } } },
  { name: 'Neg', nodes: [n('Neg', ['a'])], inputs: { a: [3, 4] } },
  { name: 'Exp', nodes: [n('Exp', ['a'])], inputs: { a: [3, 4] } },
  { name: 'Log', nodes: [n('Log', ['a'])], inputs: { a: { dims: [3, 4], init: 'positive' } } },
  { name: 'Reciprocal', nodes: [n('Reciprocal', ['a'])], inputs: { a: { dims: [3, 4], init: 'positive' } } },
  { name: 'Abs', nodes: [n('Abs', ['a'])], inputs: { a: { dims: [3, 4], init: 'away' } } },
  { name: 'Sum (3 inputs, broadcast)', nodes: [n('Sum', ['a', 'b', 'c'])], inputs: { a: [2, 3], b: [3], c: [2, 1] } },
  { name: 'Max', nodes: [n('Max', ['a', 'b'])], inputs: { a: { dims: [2, 3], values: [0.1, -0.5, 0.9, 0.3, -0.2, 0.7] }, b: { dims: [3], values: [0.4, 0.05, -0.35] } } },
  { name: 'Min', nodes: [n('Min', ['a', 'b'])], inputs: { a: { dims: [2, 3], values: [0.1, -0.5, 0.9, 0.3, -0.2, 0.7] }, b: { dims: [3], values: [0.4, 0.05, -0.35] } } },
  { name: 'Where', nodes: [n('Greater', ['c', 'zero'], ['m']), n('Where', ['m', 'a', 'b'])], inputs: { c: { dims: [2, 3], init: 'away', feed: true }, zero: { dims: [], values: [0], feed: true }, a: [2, 3], b: [3] } },
  { name: 'Clip', nodes: [n('Clip', ['a', 'lo', 'hi'])], inputs: { a: { dims: [4, 5], init: 'distinct' }, lo: { dims: [], values: [-0.33], feed: true }, hi: { dims: [], values: [0.41], feed: true } } },
  { name: 'Identity · Dropout', nodes: [n('Identity', ['a'], ['t']), n('Dropout', ['t'])], inputs: { a: [3, 4] } },
  { name: 'Cast float→float', nodes: [n('Cast', ['a'], ['t'], { to: DataType.DOUBLE }), n('Cast', ['t'], ['y'], { to: DataType.FLOAT })], inputs: { a: [3, 4] }, float32: true },
  // activations.ts
  { name: 'Relu', nodes: [n('Relu', ['a'])], inputs: { a: { dims: [3, 4], init: 'away' } } },
  { name: 'LeakyRelu', nodes: [n('LeakyRelu', ['a'], ['y'], { alpha: { f: 0.1 } })], inputs: { a: { dims: [3, 4], init: 'away' } } },
  { name: 'Elu', nodes: [n('Elu', ['a'], ['y'], { alpha: { f: 0.8 } })], inputs: { a: { dims: [3, 4], init: 'away' } } },
  { name: 'PRelu', nodes: [n('PRelu', ['a', 's'])], inputs: { a: { dims: [2, 3, 4], init: 'away' }, s: [3, 1] } },
  { name: 'Tanh', nodes: [n('Tanh', ['a'])], inputs: { a: [3, 4] } },
  { name: 'Sigmoid', nodes: [n('Sigmoid', ['a'])], inputs: { a: [3, 4] } },
  { name: 'Softplus', nodes: [n('Softplus', ['a'])], inputs: { a: [3, 4] } },
  { name: 'Erf', nodes: [n('Erf', ['a'])], inputs: { a: [3, 4] } },
  {
    name: 'Gelu via Erf (the spam model form)',
    nodes: [n('Div', ['a', 's2'], ['d']), n('Erf', ['d'], ['e']), n('Add', ['e', 'one'], ['e1']), n('Mul', ['a', 'e1'], ['m']), n('Mul', ['m', 'half'])],
    inputs: { a: [3, 4], s2: { dims: [], values: [Math.SQRT2] }, one: { dims: [], values: [1] }, half: { dims: [], values: [0.5] } },
  },
  { name: 'Gelu (opset 20)', nodes: [n('Gelu', ['a'])], inputs: { a: [3, 4] }, opset: 20 },
  { name: 'Gelu tanh (opset 20)', nodes: [n('Gelu', ['a'], ['y'], { approximate: 'tanh' })], inputs: { a: [3, 4] }, opset: 20 },
  // softmax.ts
  { name: 'Softmax', nodes: [n('Softmax', ['a'])], inputs: { a: [2, 3, 5] } },
  { name: 'Softmax axis 1', nodes: [n('Softmax', ['a'], ['y'], { axis: 1 })], inputs: { a: [2, 3, 5] } },
  { name: 'LogSoftmax', nodes: [n('LogSoftmax', ['a'])], inputs: { a: [3, 5] } },
  // norm.ts
  { name: 'LayerNormalization', nodes: [n('LayerNormalization', ['a', 'g', 'b'], ['y'], { axis: -1, epsilon: { f: 1e-5 } })], inputs: { a: [2, 3, 6], g: [6], b: [6] } },
  { name: 'LayerNormalization axis 1', nodes: [n('LayerNormalization', ['a', 'g'], ['y'], { axis: 1 })], inputs: { a: [2, 3, 4], g: [3, 4] } },
  {
    name: 'LayerNorm decomposed (ReduceMean/Sub/Pow/Sqrt/Div)',
    nodes: [
      n('ReduceMean', ['a'], ['mu'], { axes: [-1] }),
      n('Sub', ['a', 'mu'], ['xc']),
      n('Pow', ['xc', 'two'], ['sq']),
      n('ReduceMean', ['sq'], ['var'], { axes: [-1] }),
      n('Add', ['var', 'eps'], ['ve']),
      n('Sqrt', ['ve'], ['sd']),
      n('Div', ['xc', 'sd'], ['xh']),
      n('Mul', ['xh', 'g'], ['xg']),
      n('Add', ['xg', 'b']),
    ],
    inputs: { a: [2, 3, 6], two: { dims: [], values: [2], feed: true }, eps: { dims: [], values: [1e-5], feed: true }, g: [6], b: [6] },
  },
  {
    name: 'BatchNormalization (inference)',
    nodes: [n('BatchNormalization', ['a', 's', 'b', 'm', 'v'], ['y'], { epsilon: { f: 1e-3 } })],
    inputs: { a: [2, 3, 4, 4], s: [3], b: [3], m: { dims: [3], feed: true }, v: { dims: [3], init: 'positive', feed: true } },
  },
  // reduce.ts
  { name: 'ReduceSum keepdims=0', nodes: [n('ReduceSum', ['a', 'ax'], ['y'], { keepdims: 0 })], inputs: { a: [2, 3, 4], ax: { ints: [1] } } },
  { name: 'ReduceSum all', nodes: [n('ReduceSum', ['a'], ['y'], { keepdims: 1 })], inputs: { a: [2, 3, 4] } },
  { name: 'ReduceMean axes attr', nodes: [n('ReduceMean', ['a'], ['y'], { axes: [0, 2], keepdims: 0 })], inputs: { a: [2, 3, 4] } },
  { name: 'ReduceSumSquare', nodes: [n('ReduceSumSquare', ['a'], ['y'], { axes: [1], keepdims: 1 })], inputs: { a: [2, 3, 4] } },
  // shape.ts
  { name: 'Reshape', nodes: [n('Reshape', ['a', 's'], ['r']), n('Mul', ['r', 'w'])], inputs: { a: [2, 3, 4], s: { ints: [6, -1] }, w: [4] } },
  { name: 'Flatten', nodes: [n('Flatten', ['a'], ['y'], { axis: 2 })], inputs: { a: [2, 3, 2, 2] } },
  { name: 'Transpose', nodes: [n('Transpose', ['a'], ['y'], { perm: [2, 0, 1] })], inputs: { a: [2, 3, 4] } },
  { name: 'Unsqueeze · Squeeze', nodes: [n('Unsqueeze', ['a', 'ax'], ['u']), n('Mul', ['u', 'w'], ['m']), n('Squeeze', ['m', 'ax'])], inputs: { a: [3, 4], ax: { ints: [1] }, w: [3, 1, 4] } },
  { name: 'Concat', nodes: [n('Concat', ['a', 'b', 'c'], ['y'], { axis: 1 })], inputs: { a: [2, 1, 3], b: [2, 4, 3], c: [2, 2, 3] } },
  { name: 'Split (one output unused)', nodes: [n('Split', ['a', 'sp'], ['p', 'q', 'r'], { axis: 1 }), n('Mul', ['p', 'r'])], inputs: { a: [2, 6], sp: { ints: [2, 2, 2] } } },
  { name: 'Slice', nodes: [n('Slice', ['a', 'st', 'en', 'ax'])], inputs: { a: [3, 8], st: { ints: [1] }, en: { ints: [6] }, ax: { ints: [1] } } },
  { name: 'Slice negative start, end past the dim', nodes: [n('Slice', ['a', 'st', 'en', 'ax'])], inputs: { a: [3, 8], st: { ints: [-5, 1] }, en: { ints: [1000, 3] }, ax: { ints: [-1, 0] } } },
  {
    name: 'Slice with run-time bounds (the spam model form)',
    nodes: [
      n('Shape', ['a'], ['sh']),
      n('Gather', ['sh', 'one'], ['d'], { axis: 0 }),
      n('Sub', ['d', 'three'], ['st']),
      n('Slice', ['a', 'st', 'd', 'ax']),
    ],
    inputs: { a: [3, 8], one: { ints: [1] }, three: { ints: [3] }, ax: { ints: [1] } },
  },
  { name: 'Slice steps & negative', nodes: [n('Slice', ['a', 'st', 'en', 'ax', 'sp'])], inputs: { a: [4, 9], st: { ints: [-1, 1] }, en: { ints: [-100, 8] }, ax: { ints: [1, 0] }, sp: { ints: [-2, 2] } } },
  { name: 'Gather axis 0 (repeated indices)', nodes: [n('Gather', ['a', 'i'], ['y'], { axis: 0 })], inputs: { a: [5, 3], i: { feedInts: [0, 2, 2, 4, -1, 0], dims: [2, 3] } } },
  { name: 'Gather axis 1 (scalar index)', nodes: [n('Gather', ['a', 'i'], ['y'], { axis: 1 })], inputs: { a: [2, 4, 3], i: { ints: [0], dims: [] } } },
  { name: 'Expand', nodes: [n('Expand', ['a', 's'])], inputs: { a: [3, 1], s: { ints: [2, 3, 4] } } },
  { name: 'Pad', nodes: [n('Pad', ['a', 'p'])], inputs: { a: [2, 3, 3], p: { ints: [0, 1, 0, 0, 2, 1] } } },
  {
    name: 'Constant and Shape (non-differentiable path)',
    nodes: [
      makeNode('Constant', [], ['c'], { name: 'c', attributes: [makeAttribute('value', makeTensor('v', DataType.INT64, [2], BigInt64Array.of(-1n, 4n)))] }),
      n('Shape', ['a'], ['sh']),
      n('Reshape', ['a', 'c'], ['r']),
      n('Cast', ['sh'], ['shf'], { to: DataType.DOUBLE }),
      n('ReduceSum', ['shf'], ['total'], { keepdims: 1 }),
      n('Mul', ['r', 'total']),
    ],
    inputs: { a: [2, 3, 4] },
  },
  // conv.ts / pool.ts
  { name: 'Conv', nodes: [n('Conv', ['x', 'w', 'b'], ['y'], { pads: [1, 1, 1, 1] })], inputs: { x: [2, 3, 5, 5], w: [4, 3, 3, 3], b: [4] } },
  { name: 'Conv stride 2 (dropped rows)', nodes: [n('Conv', ['x', 'w'], ['y'], { strides: [2, 2], pads: [0, 1, 1, 0] })], inputs: { x: [2, 2, 6, 5], w: [3, 2, 3, 2] } },
  { name: 'Conv dilation', nodes: [n('Conv', ['x', 'w'], ['y'], { dilations: [2, 1], pads: [2, 1, 1, 0] })], inputs: { x: [1, 2, 6, 6], w: [2, 2, 3, 3] } },
  { name: 'Conv auto_pad SAME_UPPER, stride 2', nodes: [n('Conv', ['x', 'w'], ['y'], { strides: [2, 2], auto_pad: 'SAME_UPPER' })], inputs: { x: [1, 2, 6, 5], w: [2, 2, 3, 3] } },
  { name: 'Conv group 2', nodes: [n('Conv', ['x', 'w', 'b'], ['y'], { group: 2, pads: [1, 1, 1, 1] })], inputs: { x: [2, 4, 4, 4], w: [6, 2, 3, 3], b: [6] } },
  { name: 'Conv depthwise', nodes: [n('Conv', ['x', 'w'], ['y'], { group: 3 })], inputs: { x: [2, 3, 5, 5], w: [3, 1, 3, 3] } },
  { name: 'Conv 1d', nodes: [n('Conv', ['x', 'w', 'b'], ['y'], { strides: [2] })], inputs: { x: [2, 3, 9], w: [4, 3, 3], b: [4] } },
  { name: 'MaxPool', nodes: [n('MaxPool', ['x'], ['y'], { kernel_shape: [2, 2], strides: [2, 2] })], inputs: { x: { dims: [2, 3, 4, 6], init: 'distinct' } } },
  {
    name: 'MaxPool overlapping, padded (opset 16)',
    nodes: [n('MaxPool', ['x'], ['y'], { kernel_shape: [3, 3], strides: [1, 2], pads: [1, 1, 1, 1] })],
    inputs: { x: { dims: [1, 2, 5, 5], init: 'distinct' } },
    opset: 16,
  },
  { name: 'MaxPool ragged (rows and columns no window covers)', nodes: [n('MaxPool', ['x'], ['y'], { kernel_shape: [2, 2], strides: [2, 2] })], inputs: { x: { dims: [2, 2, 5, 7], init: 'distinct' } } },
  { name: 'MaxPool kernel 2×3 = strides', nodes: [n('MaxPool', ['x'], ['y'], { kernel_shape: [2, 3], strides: [2, 3] })], inputs: { x: { dims: [1, 2, 4, 7], init: 'distinct' } } },
  { name: 'MaxPool 1d kernel 3 = stride', nodes: [n('MaxPool', ['x'], ['y'], { kernel_shape: [3], strides: [3] })], inputs: { x: { dims: [2, 3, 10], init: 'distinct' } } },
  {
    // A 2-way tie in the first window: the mask form gives each tied position g/2, which is what a
    // central difference measures there (+h raises the max by h, −h leaves the other one): the
    // Indices form (all of g to one position) would fail this.
    name: 'MaxPool 2-way tie splits the gradient',
    nodes: [n('MaxPool', ['x'], ['y'], { kernel_shape: [2, 2], strides: [2, 2] })],
    inputs: { x: { dims: [1, 1, 2, 4], values: [0.5, 0.1, 0.3, 0.9, 0.5, -0.2, 0.2, 0.4] } },
  },
  {
    name: 'MaxPool stride > kernel (Indices fallback)',
    nodes: [n('MaxPool', ['x'], ['y'], { kernel_shape: [2, 2], strides: [3, 3] })],
    inputs: { x: { dims: [1, 2, 7, 7], init: 'distinct' } },
  },
  {
    name: 'MaxPool padded, non-overlapping (Indices fallback)',
    nodes: [n('MaxPool', ['x'], ['y'], { kernel_shape: [2, 2], strides: [2, 2], pads: [1, 0, 1, 0] })],
    inputs: { x: { dims: [1, 2, 4, 4], init: 'distinct' } },
  },
  { name: 'AveragePool', nodes: [n('AveragePool', ['x'], ['y'], { kernel_shape: [2, 2], strides: [2, 2] })], inputs: { x: [2, 3, 4, 4] } },
  {
    name: 'AveragePool padded, count_include_pad=0',
    nodes: [n('AveragePool', ['x'], ['y'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] })],
    inputs: { x: [1, 2, 5, 5] },
  },
  {
    name: 'AveragePool padded, count_include_pad=1',
    nodes: [n('AveragePool', ['x'], ['y'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad: 1 })],
    inputs: { x: [1, 2, 5, 5] },
  },
  { name: 'GlobalAveragePool', nodes: [n('GlobalAveragePool', ['x'])], inputs: { x: [2, 3, 4, 4] } },
  { name: 'GlobalMaxPool', nodes: [n('GlobalMaxPool', ['x'])], inputs: { x: { dims: [2, 3, 3, 3], init: 'distinct' } } },
];

// Batch-dynamic graphs: probed at batch 2 and 3, checked at batch 4.
const dyn = (dims: (b: number) => number[], name: string) => ({ probe: [{ [name]: dims(2) }, { [name]: dims(3) }], check: { [name]: dims(4) } });
export const dynamicCases: Case[] = [
  {
    name: 'dynamic batch: Linear (MatMul + bias) → Relu',
    nodes: [n('MatMul', ['x', 'w'], ['h']), n('Add', ['h', 'b'], ['z']), n('Relu', ['z'])],
    inputs: { x: { dims: [2, 5, 4], feed: true }, w: [4, 3], b: [3] },
    dynamic: dyn((b) => [b, 5, 4], 'x'),
  },
  {
    name: 'dynamic batch: LayerNorm → Softmax',
    nodes: [n('Mul', ['x', 'w'], ['h']), n('LayerNormalization', ['h', 'g', 'b'], ['l']), n('Softmax', ['l'])],
    inputs: { x: { dims: [2, 3, 6], feed: true }, w: [6], g: [6], b: [6] },
    dynamic: dyn((b) => [b, 3, 6], 'x'),
  },
  {
    name: 'dynamic batch: Conv → MaxPool → Flatten → Gemm',
    nodes: [
      n('Conv', ['x', 'w', 'cb'], ['c'], { pads: [1, 1, 1, 1] }),
      n('MaxPool', ['c'], ['p'], { kernel_shape: [2, 2], strides: [2, 2] }),
      n('Flatten', ['p'], ['f']),
      n('Gemm', ['f', 'fw', 'fb'], ['y'], { transB: 1 }),
    ],
    inputs: { x: { dims: [2, 1, 4, 4], feed: true }, w: [2, 1, 3, 3], cb: [2], fw: [3, 8], fb: [3] },
    dynamic: dyn((b) => [b, 1, 4, 4], 'x'),
  },
  {
    name: 'run-time broadcast axes (shapes unknown to the builder)',
    nodes: [n('Mul', ['x', 'w'], ['h']), n('Add', ['h', 'b'])],
    inputs: { x: { dims: [2, 3, 4], feed: true }, w: [4], b: [3, 1] },
    dynamic: dyn((b) => [b, 3, 4], 'x'),
    forget: ['h', 'y', 'w', 'b', 'x'],
  },
];

// ------------------------------------------------------------------------------ a case, built

export interface BuiltCase {
  /** The case's random generator, after everything drawn to build it (the checks draw on from here). */
  r: () => number;
  /** Trainable inputs (initializers of the case, graph inputs of the training graph) and their values. */
  params: Map<string, { dims: number[]; v: Float64Array }>;
  /** Non-trainable feeds at which the gradients are checked. */
  checkFeeds: Record<string, ort.Tensor>;
  /** The case's graph with the loss Σ y·R appended. */
  lossModel: ModelProto;
  training: TrainingGraph;
}

/**
 * Builds a case's training graph in `type` (DataType.FLOAT or DOUBLE): random inputs from `seed`,
 * y's shape at the check feeds (one CPU run), the loss Σ y·R and the probed shapes.
 */
export async function buildCase(c: Case, type: number, seed = 1): Promise<BuiltCase> {
  const r = rng(seed);
  const params = new Map<string, { dims: number[]; v: Float64Array }>();
  const inits: TensorProto[] = [];
  const feedNames: string[] = [];
  const feedTypes = new Map<string, number>();
  const baseFeeds: Record<string, ort.Tensor> = {};
  const makeFeeds = (dimsFor: Record<string, number[]>): Record<string, ort.Tensor> => {
    const out: Record<string, ort.Tensor> = {};
    for (const [name, dims] of Object.entries(dimsFor)) {
      const s = c.inputs[name] as { dims: number[]; init?: string };
      out[name] = ortTensor(type, dims, values({ ...s, dims }, r));
    }
    return out;
  };
  for (const [name, s] of Object.entries(c.inputs)) {
    if (Array.isArray(s) || ('dims' in s && !('feedInts' in s) && !('ints' in s))) {
      const spec = Array.isArray(s) ? { dims: s } : (s as { dims: number[]; init?: string; feed?: boolean; values?: number[] });
      const v = values(spec, r);
      if ('feed' in spec && spec.feed) {
        feedNames.push(name);
        baseFeeds[name] = ortTensor(type, spec.dims, v);
      } else {
        params.set(name, { dims: spec.dims, v });
        inits.push(floatTensor(name, type, spec.dims, v));
      }
    } else if ('ints' in s) inits.push(makeInt64Tensor(name, s.ints, s.dims ?? [s.ints.length]));
    else {
      feedNames.push(name);
      feedTypes.set(name, DataType.INT64);
      baseFeeds[name] = new ort.Tensor('int64', BigInt64Array.from(s.feedInts.map(BigInt)), s.dims);
    }
  }
  const checkFeeds = c.dynamic ? { ...baseFeeds, ...makeFeeds(c.dynamic.check) } : baseFeeds;

  // y's shape at the check feeds, then the loss Σ y·R.
  const forward = modelOf(c, type, inits, feedNames, c.nodes, 'y', feedTypes);
  const y = (await run(forward, checkFeeds, ['y'])).y;
  const R = values({ dims: [...y.dims] }, r);
  const lossNodes = [...c.nodes, n('Mul', ['y', 'R'], ['yR']), n('ReduceSum', ['yR'], ['loss'], { keepdims: 0 })];
  const lossModel = modelOf(c, type, [...inits, floatTensor('R', type, [...y.dims], R)], feedNames, lossNodes, 'loss', feedTypes);
  const probeSets = c.dynamic ? c.dynamic.probe.map((d) => ({ ...baseFeeds, ...makeFeeds(d) })) : [baseFeeds];
  // The probe runs at other batch sizes than the check: R must broadcast, so probe without it.
  let shapes: ShapeInfo;
  if (c.dynamic) {
    shapes = await probeShapes(forward, probeSets, opts);
    for (const name of ['R', 'yR', 'loss']) shapes.delete(name);
    const yDims = shapes.get('y')!.dims;
    shapes.set('R', { dims: yDims, type: shapes.get('y')!.type });
    shapes.set('yR', { dims: yDims, type: shapes.get('y')!.type });
    shapes.set('loss', { dims: [], type: shapes.get('y')!.type });
  } else shapes = await probeShapes(lossModel, probeSets, opts);
  for (const f of c.forget ?? []) shapes.delete(f);

  const training = buildTrainingGraph(lossModel, { params: [...params.keys()], loss: 'loss', shapes });
  return { r, params, checkFeeds, lossModel, training };
}

/** The feeds of a built case's training graph: the check feeds and every parameter (one entry moved by `delta`). */
export function caseFeeds(b: BuiltCase, type: number, name?: string, index?: number, delta?: number): Record<string, ort.Tensor> {
  const f: Record<string, ort.Tensor> = { ...b.checkFeeds };
  for (const [p, { dims, v }] of b.params) {
    let w = v;
    if (p === name) {
      w = v.slice();
      w[index!] += delta!;
    }
    f[p] = ortTensor(type, dims, w);
  }
  return f;
}
