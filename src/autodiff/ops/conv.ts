/**
 * Convolution (any number of spatial dims, any group count). X [N, C, S…], W [O, C/g, K…], y [N, O, D…].
 *
 *   dX = ConvTranspose(g, W) with the forward strides / pads / dilations / group, and an
 *        output_padding that restores S when the forward conv dropped trailing rows (stride > 1).
 *   dW = a convolution of X by g with the roles of batch and channels swapped: X is viewed as
 *        [C/g, g·N, S…] (batch = input channel within the group), g as a weight [O, N, D…] with
 *        `group` groups, strides ↔ dilations. The result [C/g, O, K'…] (K' ≥ K) is cut to K and
 *        transposed to [O, C/g, K…].
 *   dB = Σ g over every axis but 1.
 *
 * Spatial dims must be fixed (the shape probe saw the same in every run); the batch may vary.
 */
import { CompressError } from '../../errors.js';
import { attrInt, attrInts, attribute } from '../../onnx/graph.js';
import type { NodeProto } from '../../onnx/types.js';
import { aInt, aInts, range, type GradBuilder } from '../builder.js';
import type { GradRules } from '../types.js';

export interface WindowGeometry {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** [begin…, end…] as in the ONNX `pads` attribute. */
  pads: number[];
  /** Spatial dims of the input and the output. */
  inDims: number[];
  outDims: number[];
}

/** Kernel, strides, dilations and explicit pads of a Conv / pooling node, with auto_pad resolved. */
export function windowGeometry(b: GradBuilder, node: NodeProto, kernel: number[]): WindowGeometry {
  const x = node.input[0];
  const y = node.output[0];
  const k = kernel.length;
  const xd = b.dims(x);
  const yd = b.dims(y);
  const inDims = xd?.slice(2);
  const outDims = yd?.slice(2);
  if (!inDims || !outDims || inDims.some((d) => d === null) || outDims.some((d) => d === null)) {
    throw new CompressError('compress', `autodiff: ${node.opType} "${node.name ?? ''}" needs fixed spatial dims for its gradient`);
  }
  const strides = attrInts(node, 'strides') ?? new Array<number>(k).fill(1);
  const dilations = attrInts(node, 'dilations') ?? new Array<number>(k).fill(1);
  let pads = attrInts(node, 'pads') ?? new Array<number>(2 * k).fill(0);
  const autoPad = attribute(node, 'auto_pad')?.s;
  const mode = autoPad ? Buffer.from(autoPad).toString('utf8') : 'NOTSET';
  if (mode === 'VALID') pads = new Array<number>(2 * k).fill(0);
  else if (mode === 'SAME_UPPER' || mode === 'SAME_LOWER') {
    pads = new Array<number>(2 * k).fill(0);
    for (let i = 0; i < k; i++) {
      const total = Math.max(0, ((outDims[i] as number) - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - (inDims[i] as number));
      const small = Math.floor(total / 2);
      pads[i] = mode === 'SAME_UPPER' ? small : total - small;
      pads[k + i] = total - pads[i];
    }
  }
  return { kernel, strides, dilations, pads, inDims: inDims as number[], outDims: outDims as number[] };
}

/** output_padding for a ConvTranspose that maps outDims back onto inDims. */
export function outputPadding(geo: WindowGeometry): number[] {
  const k = geo.kernel.length;
  return range(k).map((i) => geo.inDims[i] - ((geo.outDims[i] - 1) * geo.strides[i] + (geo.kernel[i] - 1) * geo.dilations[i] + 1 - geo.pads[i] - geo.pads[k + i]));
}

export const convRules: GradRules = {
  Conv: (b, node, [g], wants) => {
    if (!g) return [];
    const [x, w, bias] = node.input;
    const wDims = b.dims(w);
    if (!wDims || wDims.some((d) => d === null)) throw new CompressError('compress', `autodiff: Conv "${node.name ?? ''}" needs a weight of fixed shape`);
    const [, perGroup, ...kernel] = wDims as number[];
    const group = attrInt(node, 'group', 1);
    const geo = windowGeometry(b, node, attrInts(node, 'kernel_shape') ?? kernel);
    const k = kernel.length;
    const common = [aInts('pads', geo.pads), aInt('group', group)];
    let dx: string | undefined;
    if (wants[0]) {
      dx = b.op('ConvTranspose', [g, w], [...common, aInts('strides', geo.strides), aInts('dilations', geo.dilations), aInts('output_padding', outputPadding(geo))]);
    }
    let dw: string | undefined;
    if (wants[1]) {
      // X [N, C, S…] → [C/g, g·N, S…]: batch = channel within its group, channels = (group, sample).
      const spatial = range(k + 2, 2);
      let xs: string;
      if (group === 1) xs = b.transpose(x, [1, 0, ...spatial]);
      else {
        const split = b.reshape(x, b.ints([-1, group, perGroup, ...geo.inDims]));
        xs = b.reshape(b.transpose(split, [2, 1, 0, ...range(k + 3, 3)]), b.ints([perGroup, -1, ...geo.inDims]));
      }
      const gw = b.transpose(g, [1, 0, ...spatial]); // [O, N, D…]
      const full = b.op('Conv', [xs, gw], [...common, aInts('strides', geo.dilations), aInts('dilations', geo.strides)]);
      const cut = b.op('Slice', [full, b.ints(range(k).map(() => 0)), b.ints(kernel), b.ints(spatial)]);
      dw = b.transpose(cut, [1, 0, ...spatial]);
    }
    const db = bias && wants[2] ? b.reduceSum(g, [0, ...range(k + 2, 2)], false) : undefined;
    return [dx, dw, db];
  },
};
