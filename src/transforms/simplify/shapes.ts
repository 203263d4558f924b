/**
 * Static shape inference for the main graph, enough to fold the shape subgraphs exporters leave
 * behind (Shape → Gather → Unsqueeze → Concat → Reshape). Sound, not complete: a dim it cannot prove
 * is `null`, an unknown rank is `undefined`, and an op it does not know gives unknown outputs.
 *
 * Dims: a number (static), a string (a symbolic dim of a graph input: equal strings are equal sizes),
 * or null (unknown). Small integer tensors (shapes, axes, indices) are also tracked element by element
 * with the same Dim type, so `Concat(Unsqueeze(Gather(Shape(x), 0)), [4], [32])` is known to be
 * `[batch, 4, 32]` and a later `Shape → Gather(2)` on the reshaped value folds to 32.
 */
import { attribute, attrInt, attrInts } from '../../onnx/graph.js';
import { DataType } from '../../onnx/dtypes.js';
import { dimsOf, tensorValues } from '../../onnx/tensor.js';
import type { GraphProto, NodeProto, TensorProto, TypeProto } from '../../onnx/types.js';

export type Dim = number | string | null;
export type Shape = Dim[] | undefined;

/** Integer values of a small tensor, element by element; `scalar` for 0-d. */
export interface IntValue {
  scalar: boolean;
  values: Dim[];
}

export interface ShapeInfo {
  shapes: Map<string, Shape>;
  ints: Map<string, IntValue>;
}

/** Integer tensors with at most this many elements are tracked by value. */
const MAX_TRACKED = 64;

const UNARY = new Set([
  'Abs', 'Acos', 'Acosh', 'Asin', 'Asinh', 'Atan', 'Atanh', 'BatchNormalization', 'Cast', 'CastLike', 'Ceil', 'Celu', 'Clip',
  'Cos', 'Cosh', 'Dropout', 'Elu', 'Erf', 'Exp', 'Floor', 'Gelu', 'HardSigmoid', 'HardSwish', 'Hardmax', 'Identity',
  'InstanceNormalization', 'IsInf', 'IsNaN', 'LayerNormalization', 'LeakyRelu', 'Log', 'LogSoftmax', 'LpNormalization', 'LRN',
  'MeanVarianceNormalization', 'Mish', 'Neg', 'Not', 'Reciprocal', 'Relu', 'Round', 'Selu', 'Shrink', 'Sigmoid', 'Sign', 'Sin',
  'Sinh', 'Softmax', 'Softplus', 'Softsign', 'Sqrt', 'Tan', 'Tanh', 'ThresholdedRelu', 'QuantizeLinear', 'DequantizeLinear',
]);
const BROADCAST = new Set([
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Mod', 'Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'And', 'Or', 'Xor',
  'Where', 'Max', 'Min', 'Sum', 'Mean', 'PRelu', 'BitShift', 'BitwiseAnd', 'BitwiseOr', 'BitwiseXor',
]);
const REDUCE = new Set(['ReduceMean', 'ReduceSum', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare', 'ArgMax', 'ArgMin']);
/** Reductions whose axes moved from an attribute to an input (ReduceSum at 13, the others at 18). */
const axesInputSince = (op: string) => (op === 'ReduceSum' ? 13 : op.startsWith('Arg') ? Infinity : 18);

export function typeShape(t: TypeProto | undefined): Shape {
  const s = t?.tensorType?.shape;
  if (!s) return undefined;
  // A negative declared dim (a malformed file) is unknown, not a size: folded into a Reshape or a constant
  // shape it made a model that crashes onnxruntime natively (SIGFPE, a division by zero).
  return s.dim.map((d) => (d.dimValue !== undefined && Number(d.dimValue) >= 0 ? Number(d.dimValue) : d.dimParam ? d.dimParam : null));
}

/** Values of a small integer tensor, or undefined. */
export function intValues(t: TensorProto): IntValue | undefined {
  const dt = t.dataType;
  if (dt !== DataType.INT64 && dt !== DataType.INT32) return undefined;
  const dims = dimsOf(t);
  if (dims.length > 1 || (dims[0] ?? 1) > MAX_TRACKED || t.dataLocation === 1) return undefined;
  const v = tensorValues(t);
  return { scalar: dims.length === 0, values: Array.from(v as ArrayLike<number | bigint>, (x) => Number(x)) };
}

function broadcast(a: Shape, b: Shape): Shape {
  if (!a || !b) return undefined;
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const x = i < n - a.length ? 1 : a[i - (n - a.length)];
    const y = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (x === 1) out.push(y);
    else if (y === 1) out.push(x);
    else if (x === y) out.push(x);
    // A static size other than 1 wins: the other side must be 1 or equal for the model to run.
    else if (typeof x === 'number') out.push(x);
    else if (typeof y === 'number') out.push(y);
    else out.push(null);
  }
  return out;
}

/**
 * Integer arithmetic on tracked values (sizes: non-negative). A symbolic operand gives a symbolic
 * result named after the expression, so two values computed the same way from the same dims compare
 * equal (`(batch*4)`), which is all later inference needs.
 */
const ARITH: Record<string, (a: number, b: number) => number | null> = {
  Add: (a, b) => a + b,
  Sub: (a, b) => (a - b >= 0 ? a - b : null),
  Mul: (a, b) => a * b,
  // Integer Div truncates; for non-negative operands that is floor.
  Div: (a, b) => (b > 0 && a >= 0 ? Math.floor(a / b) : null),
};
const SYMBOL: Record<string, string> = { Add: '+', Sub: '-', Mul: '*', Div: '/' };

function arith(op: string, a: IntValue | undefined, b: IntValue | undefined): IntValue | undefined {
  if (!a || !b) return undefined;
  const n = Math.max(a.values.length, b.values.length);
  if ((a.values.length !== n && a.values.length !== 1) || (b.values.length !== n && b.values.length !== 1)) return undefined;
  const values: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const x = a.values[a.values.length === 1 ? 0 : i];
    const y = b.values[b.values.length === 1 ? 0 : i];
    if (x === null || y === null) values.push(null);
    else if (typeof x === 'number' && typeof y === 'number') values.push(x < 0 || y < 0 ? null : ARITH[op](x, y));
    else if (op === 'Mul' && (x === 1 || y === 1)) values.push(x === 1 ? y : x);
    else values.push(`(${x}${SYMBOL[op]}${y})`);
  }
  return { scalar: a.scalar && b.scalar, values };
}

const normAxis = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);
const known = (v: IntValue | undefined): number[] | undefined => (v && v.values.every((x) => typeof x === 'number') ? (v.values as number[]) : undefined);

/** Infers shapes (and small integer values) for every value of the main graph, in node order. */
export function inferShapes(g: GraphProto, opset: number, weight: (name: string) => TensorProto | undefined): ShapeInfo {
  const shapes = new Map<string, Shape>();
  const ints = new Map<string, IntValue>();
  const hints = new Map<string, Shape>();
  for (const v of g.valueInfo) if (v.name) hints.set(v.name, typeShape(v.type));
  for (const v of g.input) if (v.name) shapes.set(v.name, typeShape(v.type));
  for (const t of g.initializer) {
    if (!t.name || shapes.has(t.name)) continue;
    shapes.set(t.name, dimsOf(t));
    const iv = intValues(t);
    if (iv) ints.set(t.name, iv);
  }
  const shapeOf = (name: string | undefined): Shape => (name ? shapes.get(name) : undefined);
  const intsOf = (name: string | undefined): IntValue | undefined => {
    if (!name) return undefined;
    const v = ints.get(name);
    if (v) return v;
    const w = weight(name);
    return w ? intValues(w) : undefined;
  };
  for (const n of g.node) {
    let out: Shape[] = [];
    try {
      out = inferNode(n, opset, shapeOf, intsOf, ints);
    } catch {
      out = [];
    }
    n.output.forEach((o, i) => {
      if (!o) return;
      let s = out[i];
      // value_info written by the exporter fills dims this inference could not prove.
      const h = hints.get(o);
      if (h && (!s || s.length === h.length)) s = (s ?? h.map(() => null)).map((d, j) => (d === null && typeof h[j] === 'number' ? h[j] : d));
      shapes.set(o, s);
    });
  }
  return { shapes, ints };
}

function inferNode(
  n: NodeProto,
  opset: number,
  shapeOf: (name: string | undefined) => Shape,
  intsOf: (name: string | undefined) => IntValue | undefined,
  ints: Map<string, IntValue>,
): Shape[] {
  if ((n.domain ?? '') !== '') return [];
  const op = n.opType ?? '';
  const x = shapeOf(n.input[0]);
  const setInts = (v: IntValue | undefined) => {
    if (v && v.values.length <= MAX_TRACKED) ints.set(n.output[0], v);
  };
  if (op === 'Constant') {
    const t = attribute(n, 'value')?.t;
    if (t) {
      setInts(intValues(t));
      return [dimsOf(t)];
    }
    const a = n.attribute[0];
    if (a?.name === 'value_int') setInts({ scalar: true, values: [Number(a.i)] });
    if (a?.name === 'value_ints') setInts({ scalar: false, values: a.ints.map(Number) });
    if (a?.name === 'value_float' || a?.name === 'value_int') return [[]];
    if (a?.name === 'value_floats') return [[a.floats.length]];
    if (a?.name === 'value_ints') return [[a.ints.length]];
    return [];
  }
  if (UNARY.has(op)) {
    if ((op === 'Cast' || op === 'Identity') && intsOf(n.input[0])) {
      const to = attrInt(n, 'to', DataType.INT64);
      if (op === 'Identity' || to === DataType.INT64 || to === DataType.INT32) setInts(intsOf(n.input[0]));
    }
    return [x];
  }
  if (BROADCAST.has(op)) {
    if (ARITH[op] && n.input.length === 2) setInts(arith(op, intsOf(n.input[0]), intsOf(n.input[1])));
    let s = shapeOf(n.input[0]);
    for (const i of n.input.slice(1)) s = broadcast(s, shapeOf(i));
    return [s];
  }
  switch (op) {
    case 'Shape': {
      if (!x) return [undefined];
      let start = attrInt(n, 'start', 0);
      let end = attrInt(n, 'end', x.length);
      start = Math.min(Math.max(normAxis(start, x.length), 0), x.length);
      end = Math.min(Math.max(normAxis(end, x.length), 0), x.length);
      const dims = x.slice(start, Math.max(start, end));
      setInts({ scalar: false, values: dims });
      return [[dims.length]];
    }
    case 'Size': {
      if (x && x.every((d) => typeof d === 'number')) setInts({ scalar: true, values: [(x as number[]).reduce((a, b) => a * b, 1)] });
      return [[]];
    }
    case 'Gather': {
      const idx = shapeOf(n.input[1]);
      if (!x || !idx) return [undefined];
      const axis = normAxis(attrInt(n, 'axis', 0), x.length);
      const data = intsOf(n.input[0]);
      const iv = known(intsOf(n.input[1]));
      if (data && !data.scalar && iv && axis === 0) {
        const picked = iv.map((i) => data.values[i < 0 ? i + data.values.length : i] ?? null);
        setInts({ scalar: idx.length === 0, values: picked });
      }
      return [[...x.slice(0, axis), ...idx, ...x.slice(axis + 1)]];
    }
    case 'Unsqueeze': {
      const axes = opset >= 13 ? known(intsOf(n.input[1])) : attrInts(n, 'axes');
      const v = intsOf(n.input[0]);
      if (v?.scalar && axes?.length === 1) setInts({ scalar: false, values: v.values });
      if (!x || !axes) return [undefined];
      const rank = x.length + axes.length;
      const set = new Set(axes.map((a) => normAxis(a, rank)));
      const out: Dim[] = [];
      let j = 0;
      for (let i = 0; i < rank; i++) out.push(set.has(i) ? 1 : x[j++]);
      return [out];
    }
    case 'Squeeze': {
      const axes = opset >= 13 ? (n.input[1] ? known(intsOf(n.input[1])) : []) : attrInts(n, 'axes') ?? [];
      const v = intsOf(n.input[0]);
      if (!x || !axes) return [undefined];
      if (v && !v.scalar && v.values.length === 1) setInts({ scalar: true, values: v.values });
      if (axes.length === 0) return x.every((d) => typeof d === 'number') ? [x.filter((d) => d !== 1)] : [undefined];
      const set = new Set(axes.map((a) => normAxis(a, x.length)));
      return [x.filter((_, i) => !set.has(i))];
    }
    case 'Concat': {
      const all = n.input.map((i) => shapeOf(i));
      const parts = n.input.map((i) => intsOf(i));
      if (parts.every((p) => p && !p.scalar)) setInts({ scalar: false, values: parts.flatMap((p) => p!.values) });
      if (all.some((s) => !s)) return [undefined];
      const rank = all[0]!.length;
      const axis = normAxis(attrInt(n, 'axis', 0), rank);
      const out = [...all[0]!];
      let sum: number | null = 0;
      for (const s of all) {
        const d = s![axis];
        sum = typeof d === 'number' && sum !== null ? sum + d : null;
      }
      out[axis] = sum;
      for (let i = 0; i < rank; i++) if (i !== axis) for (const s of all) if (out[i] === null || typeof out[i] === 'string') out[i] = typeof s![i] === 'number' ? s![i] : out[i];
      return [out];
    }
    case 'Reshape': {
      const target = intsOf(n.input[1]);
      if (!target) return [undefined];
      const allowzero = attrInt(n, 'allowzero', 0) === 1;
      const out: Dim[] = target.values.map((d, i) => (d === 0 && !allowzero ? (x?.[i] ?? null) : d === -1 ? -1 : d));
      const minus = out.indexOf(-1);
      if (minus >= 0) {
        const total = x && x.every((d) => typeof d === 'number') ? (x as number[]).reduce((a, b) => a * b, 1) : undefined;
        const rest = out.filter((_, i) => i !== minus);
        out[minus] = total !== undefined && rest.every((d) => typeof d === 'number') ? total / (rest as number[]).reduce((a, b) => a * b, 1) : null;
      }
      return [out];
    }
    case 'Flatten': {
      if (!x) return [undefined];
      const axis = normAxis(attrInt(n, 'axis', 1), x.length);
      const prod = (ds: Dim[]) => (ds.every((d) => typeof d === 'number') ? (ds as number[]).reduce((a, b) => a * b, 1) : ds.length === 1 ? ds[0] : null);
      return [[prod(x.slice(0, axis)), prod(x.slice(axis))]];
    }
    case 'Transpose': {
      if (!x) return [undefined];
      const perm = attrInts(n, 'perm') ?? x.map((_, i) => x.length - 1 - i);
      return [perm.map((p) => x[p])];
    }
    case 'MatMul': {
      const a = x;
      const b = shapeOf(n.input[1]);
      if (!a || !b) return [undefined];
      const a2 = a.length === 1 ? [1, a[0]] : a;
      const b2 = b.length === 1 ? [b[0], 1] : b;
      const batch = broadcast(a2.slice(0, -2), b2.slice(0, -2)) ?? [];
      const out = [...batch, a2[a2.length - 2], b2[b2.length - 1]];
      if (a.length === 1) out.splice(out.length - 2, 1);
      if (b.length === 1) out.splice(out.length - 1, 1);
      return [out];
    }
    case 'Gemm': {
      const b = shapeOf(n.input[1]);
      if (!x || !b || x.length !== 2 || b.length !== 2) return [undefined];
      return [[attrInt(n, 'transA', 0) ? x[1] : x[0], attrInt(n, 'transB', 0) ? b[0] : b[1]]];
    }
    case 'Slice':
      return [sliceShape(n, x, opset, intsOf, setInts)];
    case 'Expand': {
      const target = intsOf(n.input[1]);
      return [target ? broadcast(x, target.values) : undefined];
    }
    case 'ConstantOfShape': {
      const target = intsOf(n.input[0]);
      return [target ? target.values : undefined];
    }
    case 'Range': {
      const [s, l, d] = [1, 2, 3].map((i) => known(intsOf(n.input[i - 1]))?.[0]);
      if (s === undefined || l === undefined || d === undefined || d === 0) return [[null]];
      return [[Math.max(Math.ceil((l - s) / d), 0)]];
    }
    case 'Conv':
    case 'MaxPool':
    case 'AveragePool':
    case 'LpPool':
      return [poolShape(n, x, op === 'Conv' ? shapeOf(n.input[1]) : undefined), ...(op === 'MaxPool' ? [undefined] : [])];
    case 'GlobalAveragePool':
    case 'GlobalMaxPool':
    case 'GlobalLpPool':
      return [x ? [x[0], x[1], ...x.slice(2).map(() => 1)] : undefined];
    default:
      if (REDUCE.has(op)) {
        if (!x) return [undefined];
        const keep = attrInt(n, 'keepdims', 1) === 1;
        const fromInput = opset >= axesInputSince(op);
        let axes = op.startsWith('Arg') ? [attrInt(n, 'axis', 0)] : fromInput ? (n.input[1] ? known(intsOf(n.input[1])) : []) : attrInts(n, 'axes') ?? [];
        if (!axes) return [undefined];
        if (axes.length === 0) {
          if (fromInput && attrInt(n, 'noop_with_empty_axes', 0) === 1) return [x];
          axes = x.map((_, i) => i);
        }
        const set = new Set(axes.map((a) => normAxis(a, x.length)));
        return [keep ? x.map((d, i) => (set.has(i) ? 1 : d)) : x.filter((_, i) => !set.has(i))];
      }
      return [];
  }
}

function sliceShape(
  n: NodeProto,
  x: Shape,
  opset: number,
  intsOf: (name: string | undefined) => IntValue | undefined,
  setInts: (v: IntValue | undefined) => void,
): Shape {
  let starts: number[] | undefined;
  let ends: number[] | undefined;
  let axes: number[] | undefined;
  let steps: number[] | undefined;
  if (opset < 10) {
    starts = attrInts(n, 'starts');
    ends = attrInts(n, 'ends');
    axes = attrInts(n, 'axes');
  } else {
    starts = known(intsOf(n.input[1]));
    ends = known(intsOf(n.input[2]));
    axes = n.input[3] ? known(intsOf(n.input[3])) : undefined;
    steps = n.input[4] ? known(intsOf(n.input[4])) : undefined;
    if ((n.input[3] && !axes) || (n.input[4] && !steps)) return undefined;
  }
  if (!x || !starts || !ends) return x ? x.map(() => null) : undefined;
  const out = [...x];
  const data = intsOf(n.input[0]);
  let sliced: Dim[] | undefined = data && !data.scalar ? data.values : undefined;
  starts.forEach((s0, i) => {
    const axis = normAxis(axes?.[i] ?? i, x.length);
    const step = steps?.[i] ?? 1;
    const d = x[axis];
    if (typeof d !== 'number') {
      out[axis] = null;
      sliced = undefined;
      return;
    }
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
    let s = s0 < 0 ? s0 + d : s0;
    let e = ends![i] < 0 ? ends![i] + d : ends![i];
    if (step > 0) {
      s = clamp(s, 0, d);
      e = clamp(e, 0, d);
    } else {
      s = clamp(s, 0, d - 1);
      e = clamp(e, -1, d - 1);
    }
    out[axis] = Math.max(0, Math.ceil((e - s) / step));
    if (sliced && axis === 0) {
      const picked: Dim[] = [];
      for (let k = s; step > 0 ? k < e : k > e; k += step) picked.push(sliced[k]);
      sliced = picked;
    }
  });
  if (sliced) setInts({ scalar: false, values: sliced });
  return out;
}

/** Output shape of Conv / MaxPool / AveragePool (explicit pads, VALID, SAME_UPPER/LOWER). */
function poolShape(n: NodeProto, x: Shape, w: Shape): Shape {
  if (!x || x.length < 3) return undefined;
  const spatial = x.length - 2;
  const kernel = w ? w.slice(2) : attrInts(n, 'kernel_shape');
  const kernelAttr = attrInts(n, 'kernel_shape');
  const k = kernelAttr ?? kernel;
  if (!k || k.length !== spatial) return [x[0], w ? w[0] : x[1], ...new Array(spatial).fill(null)];
  const strides = attrInts(n, 'strides') ?? new Array(spatial).fill(1);
  const dil = attrInts(n, 'dilations') ?? new Array(spatial).fill(1);
  const pads = attrInts(n, 'pads') ?? new Array(2 * spatial).fill(0);
  const autoPad = attribute(n, 'auto_pad')?.s ? Buffer.from(attribute(n, 'auto_pad')!.s!).toString() : 'NOTSET';
  const ceil = attrInt(n, 'ceil_mode', 0) === 1;
  const out: Dim[] = [x[0], w ? w[0] : x[1]];
  for (let i = 0; i < spatial; i++) {
    const d = x[2 + i];
    const ki = k[i];
    // ceil_mode drops a last window that would start in the padding: not worth modelling here.
    if (typeof d !== 'number' || typeof ki !== 'number' || ceil) {
      out.push(null);
      continue;
    }
    const ek = (ki - 1) * dil[i] + 1;
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') out.push(Math.ceil(d / strides[i]));
    else if (autoPad === 'VALID') out.push(Math.floor((d - ek) / strides[i]) + 1);
    else {
      out.push(Math.floor((d + pads[i] + pads[i + spatial] - ek) / strides[i]) + 1);
    }
  }
  return out;
}
