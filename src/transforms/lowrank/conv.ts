/**
 * Low-rank Conv by channel decomposition. A Conv weight W [O, C, k…] acts on each input patch as the
 * matrix [O, C·k…]; its factors (select.ts's K×N view: left [C·k…, r], right [r, O]) become
 *   Conv(x, leftᵀ reshaped [r, C, k…], original strides/pads/dilations)  →  r channels
 *   Conv(·, rightᵀ reshaped [O, r, 1…], original bias)                     →  O channels.
 * A 1×1 Conv is the same with k = 1. Grouped convolutions are not factorized.
 */
import { DataType } from '../../onnx/dtypes.js';
import { makeAttribute, makeNode, type NameScope } from '../../onnx/graph.js';
import { makeTensor } from '../../onnx/tensor.js';
import type { NodeProto, TensorProto } from '../../onnx/types.js';
import { transpose } from '../../linalg/dense.js';
import type { Layer } from '../prune/select.js';

export function factorizeConv(layer: Layer, left: Float32Array, right: Float32Array, r: number, scope: NameScope): { nodes: NodeProto[]; tensors: TensorProto[] } {
  const { node, dims, K, N } = layer;
  const spatial = dims.slice(2);
  const first = makeTensor(scope.unique(`${layer.weightName}_lowrank_u`), DataType.FLOAT, [r, dims[1], ...spatial], transpose(left, K, r));
  const second = makeTensor(scope.unique(`${layer.weightName}_lowrank_v`), DataType.FLOAT, [N, r, ...spatial.map(() => 1)], transpose(right, r, N));
  const mid = scope.unique(`${node.output[0]}_lowrank`);
  const base = node.name || node.output[0];
  const keep = node.attribute.filter((a) => a.name !== 'kernel_shape');
  const n1 = makeNode('Conv', [node.input[0], first.name!], [mid], {
    name: scope.unique(`${base}/lowrank_u`),
    attributes: [...keep, makeAttribute('kernel_shape', spatial, true)],
  });
  const n2 = makeNode('Conv', node.input[2] ? [mid, second.name!, node.input[2]] : [mid, second.name!], [node.output[0]], {
    name: scope.unique(`${base}/lowrank_v`),
    attributes: [makeAttribute('kernel_shape', spatial.map(() => 1), true)],
  });
  return { nodes: [n1, n2], tensors: [first, second] };
}
