/**
 * Ops that move elements without arithmetic. Their gradient puts g's elements back where they came
 * from; shape inputs (Reshape's shape, Slice's starts, …) are integers and get none.
 *
 *   Reshape / Flatten / Squeeze / Unsqueeze   dx = reshape(g, shape(x))
 *   Transpose   dx = transpose(g, inverse perm)
 *   Expand      dx = g summed over the broadcast axes
 *   Concat      dx_i = split(g) at the inputs' sizes;   Split  dx = concat(g_i, zeros for unused outputs)
 *   Slice       unit steps, constant axes: dx = Pad(g) by the clamped starts / ends (run-time values are
 *               fine); otherwise scatter g into zeros at the positions found by slicing an index
 *               tensor [0, size(x)) with the node's own inputs (any steps, negative indices)
 *   Gather      dx = einsum(g, onehot(indices)) — sums duplicate indices (embedding rows used twice),
 *               where ScatterElements without reduction would keep only one
 *   Pad (constant mode, constant pads ≥ 0)  dx = slice of g
 */
import { CompressError } from '../../errors.js';
import { attrInt, attrInts } from '../../onnx/graph.js';
import { aInt, aStr, aTensor, INT64_MAX, normAxis, range, type GradBuilder } from '../builder.js';
import type { NodeProto } from '../../onnx/types.js';
import type { GradRule, GradRules } from '../types.js';

const reshapeBack: GradRule = (b, node, [g], wants) => (g && wants[0] ? [b.reshapeLike(g, node.input[0])] : []);

/** Letters for einsum equations (a–m for data axes, n reserved, o–z and A–Z for index axes). */
const LETTERS = 'abcdefghijklmopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** The size of `x` along `axis` as a 1-d int64 value of one element. */
function sizeAlong(b: GradBuilder, x: string, axis: number): string {
  return b.shapeSlice(x, axis, axis + 1);
}

/**
 * Slice with unit steps and constant axes: dx = Pad(g) with pads computed at run time from the node's
 * own starts / ends, clamped as Slice clamps them (negative → + dim, then into [0, dim]):
 * begin = start, end = dim − max(end, start). Undefined when the Slice has other steps or run-time axes.
 */
function padBack(b: GradBuilder, node: NodeProto, g: string): string | undefined {
  const [x, starts, ends, axesName, stepsName] = node.input;
  const r = b.rank(x);
  if (stepsName && b.constantInts(stepsName)?.every((v) => v === 1) !== true) return undefined;
  const count = b.dims(starts)?.[0];
  const axes = axesName ? b.constantInts(axesName) : typeof count === 'number' ? range(count) : undefined;
  if (!axes) return undefined;
  const axis = axes.map((a) => normAxis(a, r));
  const zero = b.ints([0]);
  const clamp = (v: string, dim: string) => {
    const wrapped = b.op('Where', [b.op('Less', [v, zero]), b.op('Add', [v, dim]), v]);
    return b.op('Min', [b.op('Max', [wrapped, zero]), dim]);
  };
  const begin: string[] = range(r).map(() => zero);
  const end: string[] = range(r).map(() => zero);
  axis.forEach((a, i) => {
    const dim = b.shapeSlice(x, a, a + 1);
    const at = (v: string) => b.op('Slice', [v, b.ints([i]), b.ints([i + 1])]);
    const s = clamp(at(starts), dim);
    const e = b.op('Max', [clamp(at(ends), dim), s]);
    begin[a] = s;
    end[a] = b.op('Sub', [dim, e]);
  });
  return b.op('Pad', [g, b.op('Concat', [...begin, ...end], [aInt('axis', 0)])]);
}

/**
 * Any Slice: slice an index tensor [0, size(x)) with the node's own inputs, and scatter g into zeros
 * at the positions it picks (a Slice never picks a position twice).
 */
function scatterBack(b: GradBuilder, node: NodeProto, g: string): string {
  const [x, ...bounds] = node.input;
  const size = b.op('Size', [x]);
  const positions = b.reshapeLike(b.op('Range', [b.int(0), size, b.int(1)]), x);
  const picked = b.reshape(b.op('Slice', [positions, ...bounds]), b.ints([-1]));
  const zeros = b.op('ConstantOfShape', [b.reshape(size, b.ints([1]))], [aTensor('value', b.floatTensor(0))]);
  const flat = b.op('ScatterElements', [zeros, picked, b.reshape(g, b.ints([-1]))], [aInt('axis', 0)]);
  return b.reshapeLike(flat, x);
}

export const shapeRules: GradRules = {
  Reshape: reshapeBack,
  Flatten: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Transpose: (b, node, [g], wants) => {
    if (!g || !wants[0]) return [];
    const perm = attrInts(node, 'perm') ?? range(b.rank(node.input[0])).reverse();
    const inverse = new Array<number>(perm.length);
    perm.forEach((p, i) => (inverse[p] = i));
    return [b.transpose(g, inverse)];
  },
  Expand: (b, node, [g], wants) => (g && wants[0] ? [b.unbroadcast(g, node.output[0], node.input[0])] : []),
  Concat: (b, node, [g], wants) => {
    if (!g) return [];
    const axis = normAxis(attrInt(node, 'axis', 0), b.rank(node.output[0]));
    const sizes = node.input.map((x) => b.dims(x)?.[axis]);
    const split = sizes.every((s): s is number => typeof s === 'number')
      ? b.ints(sizes)
      : b.op('Concat', node.input.map((x) => sizeAlong(b, x, axis)), [aInt('axis', 0)]);
    const parts = b.opN('Split', [g, split], node.input.length, [aInt('axis', axis)]);
    return parts.map((p, i) => (wants[i] ? p : undefined));
  },
  Split: (b, node, dy, wants) => {
    if (!wants[0] || dy.every((g) => !g)) return [];
    const axis = attrInt(node, 'axis', 0);
    const parts = node.output.map((y, i) => dy[i] ?? b.zerosLike(y));
    return [b.op('Concat', parts, [aInt('axis', axis)])];
  },
  Slice: (b, node, [g], wants) => {
    if (!g || !wants[0]) return [];
    if (node.input.length < 3) throw new CompressError('compress', `autodiff: Slice "${node.name ?? ''}" uses the pre-opset-10 attribute form`);
    return [padBack(b, node, g) ?? scatterBack(b, node, g)];
  },
  Gather: (b, node, [g], wants) => {
    if (!g || !wants[0]) return [];
    const [data, indices] = node.input;
    const rd = b.rank(data);
    const ri = b.rank(indices);
    const axis = normAxis(attrInt(node, 'axis', 0), rd);
    if (axis + ri > 13 || ri > 26) throw new CompressError('compress', `autodiff: Gather "${node.name ?? ''}" has too many axes for the einsum gradient`);
    // OneHot wants indices of rank ≥ 1: a scalar index becomes [1] and its one-hot row [N] again.
    const hot = b.op('OneHot', [ri === 0 ? b.unsqueeze(indices, [0]) : indices, sizeAlong(b, data, axis), b.floats([0, 1], [2])], [aInt('axis', -1)]);
    const onehot = ri === 0 ? b.reshape(hot, b.ints([-1])) : hot;
    const pre = LETTERS.slice(0, axis);
    const post = LETTERS.slice(axis, rd - 1);
    const idx = LETTERS.slice(13, 13 + ri);
    const equation = `${pre}${idx}${post},${idx}n->${pre}n${post}`;
    return [b.op('Einsum', [g, onehot], [aStr('equation', equation)])];
  },
  Pad: (b, node, [g], wants) => {
    if (!g || !wants[0]) return [];
    const mode = node.attribute.find((a) => a.name === 'mode')?.s;
    if (mode && Buffer.from(mode).toString('utf8') !== 'constant') {
      throw new CompressError('compress', `autodiff: Pad "${node.name ?? ''}" in ${Buffer.from(mode).toString('utf8')} mode has no gradient rule (only constant mode)`);
    }
    const x = node.input[0];
    const r = b.rank(x);
    const pads = attrInts(node, 'pads') ?? b.constantInts(node.input[1]);
    if (!pads || pads.some((p) => p < 0)) throw new CompressError('compress', `autodiff: Pad "${node.name ?? ''}" needs constant, non-negative pads`);
    const axes = node.input[3] ? b.constantInts(node.input[3])?.map((a) => normAxis(a, r)) : range(r);
    if (!axes) throw new CompressError('compress', `autodiff: Pad "${node.name ?? ''}" needs constant axes`);
    const n = axes.length;
    const starts = axes.map((_, i) => BigInt(pads[i]));
    const ends = axes.map((_, i) => (pads[n + i] === 0 ? INT64_MAX : BigInt(-pads[n + i])));
    return [b.op('Slice', [g, b.bigints(starts), b.bigints(ends), b.ints(axes)])];
  },
};
