/**
 * Pooling.
 *
 *   MaxPool, non-overlapping tiles (strides = kernel_shape, no padding, no dilation, every window
 *             inside the input — the usual 2×2 / stride 2 of a CNN): a mask, no Indices. X is cut to
 *             the tiled part and viewed as [N, C, D1, k1, D2, k2, …], Y (the forward output) as
 *             [N, C, D1, 1, D2, 1, …]; M = Equal(X, Y) by broadcasting marks each window's maxima,
 *             count = ReduceSum(M) over the k axes, and dX = Where(M, g / count, 0), padded back with
 *             zeros over the rows / columns no window covered. Ties split g evenly between the tied
 *             positions (a valid subgradient, and what a central finite difference sees for a 2-way
 *             tie), so a window never passes on more than g. Only Equal, Cast, ReduceSum, Div, Where,
 *             Reshape, Slice and Pad: kernels that onnxruntime's CPU and WebGPU providers both
 *             implement. (WebGPU registers MaxPool with two outputs but fails at run time with
 *             "The Indices output is not supported yet", and does not fall back to the CPU.)
 *   MaxPool, anything else (overlapping windows, strides ≠ kernel, padding, dilation, ceil_mode
 *             windows past the input): run again with its Indices output (positions in the flattened
 *             input, padding not counted) and scatter g to those positions; ties go to the one
 *             position MaxPool reports. Overlapping windows may pick one position twice: that needs
 *             ScatterElements' reduction="add", i.e. opset ≥ 16. This form runs on the CPU provider
 *             only — not on WebGPU (Indices output, see above).
 *   AveragePool  dX = ConvTranspose(g / count, ones kernel) per channel (channels folded into the
 *             batch), count = the window size, or with count_include_pad = 0 the number of real
 *             (unpadded) inputs per window, itself a Conv of ones by ones.
 *   GlobalAveragePool  dX = expand(g) / (spatial size);   GlobalMaxPool  dX = (x == y) ? g : 0
 */
import { CompressError } from '../../errors.js';
import { attrInt, attrInts } from '../../onnx/graph.js';
import type { NodeProto } from '../../onnx/types.js';
import { aInt, aInts, aStr, aTensor, range, type GradBuilder } from '../builder.js';
import type { GradRules } from '../types.js';
import { outputPadding, windowGeometry, type WindowGeometry } from './conv.js';

export const poolRules: GradRules = {
  MaxPool: (b, node, [g], wants) => {
    if (!g || !wants[0]) return [];
    const kernel = attrInts(node, 'kernel_shape') ?? [];
    const geo = windowGeometry(b, node, kernel);
    return [tiledMaxPoolGrad(b, node, g, geo) ?? indexedMaxPoolGrad(b, node, g, geo)];
  },
  AveragePool: (b, node, [g], wants) => {
    if (!g || !wants[0]) return [];
    const x = node.input[0];
    const kernel = attrInts(node, 'kernel_shape') ?? [];
    const geo = windowGeometry(b, node, kernel);
    if (geo.dilations.some((d) => d !== 1)) throw new CompressError('compress', `autodiff: AveragePool "${node.name ?? ''}" with dilations is not supported`);
    const padding = outputPadding(geo);
    if (padding.some((p, i) => p < 0 || p >= geo.strides[i])) {
      throw new CompressError('compress', `autodiff: AveragePool "${node.name ?? ''}" with ceil_mode windows past the input is not supported`);
    }
    const ones = b.floats(new Array<number>(kernel.reduce((a, c) => a * c, 1)).fill(1), [1, 1, ...kernel]);
    const window = [aInts('strides', geo.strides), aInts('pads', geo.pads)];
    const perChannel = b.reshape(g, b.ints([-1, 1, ...geo.outDims]));
    let scaled: string;
    if (attrInt(node, 'count_include_pad', 0) === 1 || geo.pads.every((p) => p === 0)) {
      scaled = b.op('Mul', [perChannel, b.scalar(1 / kernel.reduce((a, c) => a * c, 1))]);
    } else {
      const image = b.op('ConstantOfShape', [b.ints([1, 1, ...geo.inDims])], [aTensor('value', b.floatTensor(1))]);
      scaled = b.op('Div', [perChannel, b.op('Conv', [image, ones], window)]);
    }
    const dx = b.op('ConvTranspose', [scaled, ones], [...window, aInts('output_padding', padding)]);
    return [b.reshapeLike(dx, x)];
  },
  GlobalAveragePool: (b, node, [g], wants) => {
    if (!g || !wants[0]) return [];
    const [x] = node.input;
    return [b.op('Div', [b.op('Expand', [g, b.shape(x)]), b.sizeRatio(x, node.output[0])])];
  },
  GlobalMaxPool: (b, node, [g], wants) => {
    if (!g || !wants[0]) return [];
    const [x] = node.input;
    return [b.op('Where', [b.op('Equal', [x, node.output[0]]), g, b.scalar(0)])];
  },
};

/** Whether a MaxPool's windows tile the input: strides = kernel, no pads, no dilation, none past the end. */
function tilesInput(geo: WindowGeometry): boolean {
  return (
    geo.kernel.length > 0 &&
    geo.kernel.every((k, i) => geo.strides[i] === k && geo.dilations[i] === 1 && geo.outDims[i] * k <= geo.inDims[i]) &&
    geo.pads.every((p) => p === 0)
  );
}

/** The mask form (module comment), or undefined when the windows do not tile the input. */
function tiledMaxPoolGrad(b: GradBuilder, node: NodeProto, g: string, geo: WindowGeometry): string | undefined {
  if (!tilesInput(geo)) return undefined;
  const x = node.input[0];
  const y = node.output[0];
  const k = geo.kernel.length;
  const spatial = range(k + 2, 2);
  const covered = geo.outDims.map((d, i) => d * geo.kernel[i]);
  const ragged = covered.some((c, i) => c !== geo.inDims[i]);
  // Batch and channels stay as they are (0 in a Reshape shape copies the input's dim).
  const xs = ragged ? b.op('Slice', [x, b.ints(spatial.map(() => 0)), b.ints(covered), b.ints(spatial)]) : x;
  const xt = b.reshape(xs, b.ints([0, 0, ...geo.outDims.flatMap((d, i) => [d, geo.kernel[i]])]));
  const yt = b.reshape(y, b.ints([0, 0, ...geo.outDims.flatMap((d) => [d, 1])]));
  const gt = b.reshape(g, b.ints([0, 0, ...geo.outDims.flatMap((d) => [d, 1])]));
  const mask = b.op('Equal', [xt, yt]);
  const windowAxes = range(k).map((i) => 3 + 2 * i);
  const count = b.reduceSum(b.op('Cast', [mask], [aInt('to', b.floatType)]), windowAxes, true);
  const share = b.op('Div', [gt, count]);
  const dt = b.op('Where', [mask, share, b.scalar(0)]);
  const dx = b.reshape(dt, b.ints([0, 0, ...covered]));
  if (!ragged) return dx;
  const pads = [0, 0, ...range(k).map(() => 0), 0, 0, ...covered.map((c, i) => geo.inDims[i] - c)];
  return b.op('Pad', [dx, b.ints(pads)]);
}

/** Any MaxPool, through its Indices output (CPU provider only). */
function indexedMaxPoolGrad(b: GradBuilder, node: NodeProto, g: string, geo: WindowGeometry): string {
  const x = node.input[0];
  if (attrInt(node, 'storage_order', 0) !== 0) throw new CompressError('compress', `autodiff: MaxPool "${node.name ?? ''}" with storage_order=1 is not supported`);
  const overlapping = geo.kernel.some((k, i) => geo.strides[i] < (k - 1) * geo.dilations[i] + 1);
  if (overlapping && b.opset < 16) {
    throw new CompressError('compress', `autodiff: MaxPool "${node.name ?? ''}" has overlapping windows; its gradient needs opset ≥ 16 (ScatterElements reduction), the model has ${b.opset}`);
  }
  const [, indices] = b.opN('MaxPool', [x], 2, node.attribute, 'maxpool');
  const size = b.op('Size', [x]);
  const zeros = b.op('ConstantOfShape', [b.reshape(size, b.ints([1]))], [aTensor('value', b.floatTensor(0))]);
  const attrs = [aInt('axis', 0), ...(overlapping ? [aStr('reduction', 'add')] : [])];
  const flat = b.op('ScatterElements', [zeros, b.reshape(indices, b.ints([-1])), b.reshape(g, b.ints([-1]))], attrs);
  return b.reshapeLike(flat, x);
}
