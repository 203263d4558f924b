/**
 * Pooling.
 *
 *   MaxPool   run again with its Indices output (positions in the flattened input, padding not
 *             counted) and scatter g to those positions. Overlapping windows may pick one position
 *             twice: that needs ScatterElements' reduction="add", i.e. opset ≥ 16.
 *   AveragePool  dX = ConvTranspose(g / count, ones kernel) per channel (channels folded into the
 *             batch), count = the window size, or with count_include_pad = 0 the number of real
 *             (unpadded) inputs per window, itself a Conv of ones by ones.
 *   GlobalAveragePool  dX = expand(g) / (spatial size);   GlobalMaxPool  dX = (x == y) ? g : 0
 */
import { CompressError } from '../../errors.js';
import { attrInt, attrInts } from '../../onnx/graph.js';
import { aInt, aInts, aStr, aTensor } from '../builder.js';
import type { GradRules } from '../types.js';
import { outputPadding, windowGeometry } from './conv.js';

export const poolRules: GradRules = {
  MaxPool: (b, node, [g], wants) => {
    if (!g || !wants[0]) return [];
    const x = node.input[0];
    if (attrInt(node, 'storage_order', 0) !== 0) throw new CompressError('compress', `autodiff: MaxPool "${node.name ?? ''}" with storage_order=1 is not supported`);
    const kernel = attrInts(node, 'kernel_shape') ?? [];
    const geo = windowGeometry(b, node, kernel);
    const overlapping = kernel.some((k, i) => geo.strides[i] < (k - 1) * geo.dilations[i] + 1);
    if (overlapping && b.opset < 16) {
      throw new CompressError('compress', `autodiff: MaxPool "${node.name ?? ''}" has overlapping windows; its gradient needs opset ≥ 16 (ScatterElements reduction), the model has ${b.opset}`);
    }
    const [, indices] = b.opN('MaxPool', [x], 2, node.attribute, 'maxpool');
    const size = b.op('Size', [x]);
    const zeros = b.op('ConstantOfShape', [b.reshape(size, b.ints([1]))], [aTensor('value', b.floatTensor(0))]);
    const attrs = [aInt('axis', 0), ...(overlapping ? [aStr('reduction', 'add')] : [])];
    const flat = b.op('ScatterElements', [zeros, b.reshape(indices, b.ints([-1])), b.reshape(g, b.ints([-1]))], attrs);
    return [b.reshapeLike(flat, x)];
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
