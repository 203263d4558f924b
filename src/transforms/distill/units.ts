/**
 * Which layers of a student are compressed versions of a teacher's layers, seen as Y = X·W (+ b) with
 * W a K×N matrix: a MatMul / Gemm / Conv whose output value the teacher also has (same name) and whose
 * weight differs from the teacher's — pruned (≥ 1 % exact zeros), factorized into X·U·V (what the
 * lowrank step writes: MatMul·MatMul, MatMul·Gemm, Conv·1×1 Conv), or changed otherwise (e.g. input
 * channels removed by channel pruning).
 */
import { transpose } from '../../linalg/dense.js';
import { DataType } from '../../onnx/dtypes.js';
import { attrFloat, attrInt, GraphIndex } from '../../onnx/graph.js';
import { dimsOf, makeTensor, tensorFloat32 } from '../../onnx/tensor.js';
import type { ModelProto, NodeProto, TensorProto } from '../../onnx/types.js';
import { PRUNED_ZEROS } from './trainable.js';

export type Kind = 'pruned' | 'factorized' | 'dense';

/**
 * How a weight tensor holds its K×N matrix: 'KN' as stored (MatMul, Gemm), 'NK' transposed (Gemm
 * with transB, Conv [O, C·k…]).
 */
export type Layout = 'KN' | 'NK';

/** A compressed layer of the student, seen as Y = X·W (+ b) with W a K×N matrix (W = U·V when factorized). */
export interface Unit {
  name: string;
  op: 'MatMul' | 'Gemm' | 'Conv';
  kind: Kind;
  /** The node that reads X (for a Conv: its window attributes make the im2col patches). */
  node: NodeProto;
  conv: boolean;
  /** The layer's input X. */
  input: string;
  /** The value compared with the teacher's value of the same name (after the bias). */
  output: string;
  /** Weight initializer (U for a factorized layer) and, for a factorized layer, V. */
  weight: string;
  layout: Layout;
  second?: string;
  secondLayout?: Layout;
  bias?: string;
  K: number;
  N: number;
}

// ------------------------------------------------------------------------------ finding the layers

function floatInit(index: GraphIndex, name: string | undefined): TensorProto | undefined {
  const t = name ? index.initializers.get(name) : undefined;
  return t && t.dataType === DataType.FLOAT && !index.graphInputs.has(name!) ? t : undefined;
}

function sameTensor(a: TensorProto, b: TensorProto): boolean {
  const da = dimsOf(a);
  const db = dimsOf(b);
  if (da.length !== db.length || da.some((d, i) => d !== db[i])) return false;
  const va = tensorFloat32(a);
  const vb = tensorFloat32(b);
  for (let i = 0; i < va.length; i++) if (va[i] !== vb[i]) return false;
  return true;
}

function zeroFraction(t: TensorProto): number {
  const v = tensorFloat32(t);
  let z = 0;
  for (let i = 0; i < v.length; i++) if (v[i] === 0) z++;
  return z / v.length;
}

/** The Add after `node` whose other operand is a float initializer: the layer's bias. */
function biasAdd(index: GraphIndex, value: string): { add: NodeProto; bias: string } | undefined {
  const users = index.consumersOf(value);
  if (users.length !== 1 || users[0].opType !== 'Add' || index.isGraphOutput(value)) return undefined;
  const add = users[0];
  const other = add.input[0] === value ? add.input[1] : add.input[0];
  const t = floatInit(index, other);
  return t && elementCount(t) === lastDim(t) ? { add, bias: other } : undefined;
}

const elementCount = (t: TensorProto) => dimsOf(t).reduce((a, b) => a * b, 1);
const lastDim = (t: TensorProto) => dimsOf(t).at(-1) ?? 1;

/** A layer node reading a weight initializer, with the weight's layout; undefined for anything else. */
function layerNode(index: GraphIndex, node: NodeProto): { weight: TensorProto; layout: Layout } | undefined {
  const w = floatInit(index, node.input[1]);
  if (!w) return undefined;
  const rank = dimsOf(w).length;
  switch (node.opType) {
    case 'MatMul':
      return rank === 2 ? { weight: w, layout: 'KN' } : undefined;
    case 'Gemm':
      if (attrInt(node, 'transA', 0) !== 0 || attrFloat(node, 'alpha', 1) !== 1 || attrFloat(node, 'beta', 1) !== 1) return undefined;
      return { weight: w, layout: attrInt(node, 'transB', 0) ? 'NK' : 'KN' };
    case 'Conv':
      return attrInt(node, 'group', 1) === 1 ? { weight: w, layout: 'NK' } : undefined;
  }
  return undefined;
}

/** A 1×1 Conv with unit strides and no padding: a matrix product over channels. */
function isPointwise(node: NodeProto, w: TensorProto): boolean {
  const d = dimsOf(w);
  const ones = (a: number[] | undefined) => !a || a.every((x) => x === 1);
  const pads = node.attribute.find((a) => a.name === 'pads')?.ints.map(Number);
  return d.slice(2).every((x) => x === 1) && ones(node.attribute.find((a) => a.name === 'strides')?.ints.map(Number)) && (!pads || pads.every((p) => p === 0));
}

/** The student's compressed layers, in graph order, and the layers passed over with the reason. */
export function findUnits(student: ModelProto, teacher: ModelProto): { units: Unit[]; skipped: { name: string; reason: string }[] } {
  const s = new GraphIndex(student.graph!);
  const t = new GraphIndex(teacher.graph!);
  const units: Unit[] = [];
  const skipped: { name: string; reason: string }[] = [];
  const teacherWeight = (value: string): TensorProto | undefined => {
    let p = t.producer.get(value);
    if (p?.opType === 'Add') p = [p.input[0], p.input[1]].map((v) => t.producer.get(v)).find((n) => n && ['MatMul', 'Gemm', 'Conv'].includes(n.opType ?? ''));
    return p ? floatInit(t, p.input[1]) : undefined;
  };
  // X·U·V pairs (what the lowrank step writes): MatMul·MatMul, MatMul·Gemm, Conv·(1×1 Conv), joined
  // by a value only the second reads and the teacher does not have.
  const inners = new Map<NodeProto, NodeProto>(); // outer → inner
  for (const node of student.graph!.node) {
    const outer = layerNode(s, node);
    const inner = s.producer.get(node.input[0]);
    if (!outer || !inner || !layerNode(s, inner) || s.consumersOf(node.input[0]).length !== 1 || t.producer.has(node.input[0])) continue;
    const convPair = inner.opType === 'Conv' && node.opType === 'Conv' && isPointwise(node, outer.weight);
    const matPair = inner.opType === 'MatMul' && (node.opType === 'MatMul' || node.opType === 'Gemm');
    if (convPair || matPair) inners.set(node, inner);
  }
  const claimed = new Set(inners.values());
  for (const node of student.graph!.node) {
    const layer = layerNode(s, node);
    if (!layer || claimed.has(node)) continue;
    const op = node.opType as Unit['op'];
    const name = node.name || node.output[0];
    const inner = inners.get(node);
    const first = inner ? layerNode(s, inner)! : layer;
    let output = node.output[0];
    let bias: string | undefined;
    if (op === 'MatMul') {
      const b = biasAdd(s, output);
      if (b && t.producer.has(b.add.output[0])) [bias, output] = [b.bias, b.add.output[0]];
    } else if (node.input[2]) {
      const b = floatInit(s, node.input[2]);
      const n = layer.layout === 'NK' ? dimsOf(layer.weight)[0] : dimsOf(layer.weight)[1];
      if (b && elementCount(b) === n && lastDim(b) === n) bias = node.input[2];
    }
    if (!t.producer.has(output)) {
      skipped.push({ name, reason: `the teacher has no value "${output}" to match` });
      continue;
    }
    const kind: Kind = inner ? 'factorized' : zeroFraction(layer.weight) >= PRUNED_ZEROS ? 'pruned' : 'dense';
    const tw = teacherWeight(output);
    if (kind !== 'factorized' && tw && sameTensor(tw, layer.weight)) continue; // not compressed
    const wd = dimsOf(first.weight);
    const K = first.layout === 'NK' ? elementCount(first.weight) / wd[0] : wd[0];
    const ld = dimsOf(layer.weight);
    const N = layer.layout === 'NK' ? ld[0] : ld[1];
    units.push({
      name, op, kind, node: inner ?? node, conv: op === 'Conv', input: (inner ?? node).input[0], output,
      weight: first.weight.name!, layout: first.layout,
      ...(inner ? { second: node.input[1], secondLayout: layer.layout } : {}),
      bias, K, N,
    });
  }
  return { units, skipped };
}

// ------------------------------------------------------------------- weights as K×N matrices

/** A weight tensor as its rows×cols float64 matrix (row-major): as stored, or transposed for 'NK'. */
export function readMatrix(t: TensorProto, layout: Layout): Float64Array {
  const v = tensorFloat32(t);
  if (layout === 'KN') return Float64Array.from(v);
  const n = dimsOf(t)[0];
  return transpose(Float64Array.from(v), n, v.length / n);
}

export function writeMatrix(t: TensorProto, m: Float64Array, layout: Layout): TensorProto {
  const d = dimsOf(t);
  const v = layout === 'KN' ? Float32Array.from(m) : Float32Array.from(transpose(m, m.length / d[0], d[0]));
  return makeTensor(t.name!, DataType.FLOAT, d, v);
}
