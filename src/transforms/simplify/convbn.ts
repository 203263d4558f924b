/**
 * Conv + BatchNormalization → Conv with the normalization folded into its weights:
 *   s = scale / sqrt(var + eps);  W'[c] = W[c] · s[c];  B'[c] = (B[c] − mean[c]) · s[c] + bias[c]
 * (per output channel; Conv weights are [Cout, Cin/group, k…], each output channel contiguous).
 * Only float32 constants, inference-mode BatchNormalization, and a Conv whose result nothing else reads.
 * New weights get new names: the old ones may be shared, and dead-code removes them when they are not.
 */
import { DataType } from '../../onnx/dtypes.js';
import { attrFloat, attrInt, GraphIndex, NameScope } from '../../onnx/graph.js';
import { dimsOf, makeTensor, tensorFloat32 } from '../../onnx/tensor.js';
import type { ModelProto, NodeProto, TensorProto } from '../../onnx/types.js';
import { constantOf, copyModel, forEachScopeSync, hasOp, isDefaultDomain, soleConsumer, type PassResult, type SimplifyPass } from './pass.js';

const floats = (t: TensorProto | undefined, n: number): Float32Array | undefined =>
  t && t.dataType === DataType.FLOAT && dimsOf(t).reduce((a, b) => a * b, 1) === n ? tensorFloat32(t) : undefined;

function foldOne(idx: GraphIndex, names: NameScope, conv: NodeProto, bn: NodeProto): { weight: TensorProto; bias: TensorProto } | undefined {
  const w = constantOf(idx, conv.input[1]);
  if (!w || w.dataType !== DataType.FLOAT) return undefined;
  const wd = dimsOf(w);
  const cout = wd[0];
  const W = tensorFloat32(w);
  const B = conv.input[2] ? floats(constantOf(idx, conv.input[2]), cout) : new Float32Array(cout);
  const [scale, beta, mean, variance] = [1, 2, 3, 4].map((i) => floats(constantOf(idx, bn.input[i]), cout));
  if (!B || !scale || !beta || !mean || !variance) return undefined;
  const eps = attrFloat(bn, 'epsilon', 1e-5);
  const per = W.length / cout;
  const W2 = new Float32Array(W.length);
  const B2 = new Float32Array(cout);
  for (let c = 0; c < cout; c++) {
    const s = scale[c] / Math.sqrt(variance[c] + eps);
    for (let k = 0; k < per; k++) W2[c * per + k] = W[c * per + k] * s;
    B2[c] = (B[c] - mean[c]) * s + beta[c];
  }
  return {
    weight: makeTensor(names.unique(`${w.name ?? 'conv'}_bn`), DataType.FLOAT, wd, W2),
    bias: makeTensor(names.unique(`${conv.input[2] || w.name || 'conv'}_bn_bias`), DataType.FLOAT, [cout], B2),
  };
}

export const foldConvBatchNorm: SimplifyPass = {
  name: 'conv-bn',
  run(input: ModelProto): PassResult {
    if (!hasOp(input, ['BatchNormalization'])) return { model: input, changed: 0 };
    const { model } = copyModel(input);
    const names = new NameScope(model);
    let changed = 0;
    forEachScopeSync(model, (g, idx) => {
      const removed = new Set<NodeProto>();
      for (const bn of g.node) {
        if (bn.opType !== 'BatchNormalization' || !isDefaultDomain(bn) || bn.input.length < 5) continue;
        if (attrInt(bn, 'training_mode', 0) === 1 || attrInt(bn, 'spatial', 1) !== 1 || bn.output.slice(1).some(Boolean)) continue;
        const conv = idx.producer.get(bn.input[0]);
        if (!conv || conv.opType !== 'Conv' || !isDefaultDomain(conv) || soleConsumer(idx, bn.input[0]) !== bn) continue;
        const folded = foldOne(idx, names, conv, bn);
        if (!folded) continue;
        g.initializer.push(folded.weight, folded.bias);
        conv.input = [conv.input[0], folded.weight.name!, folded.bias.name!];
        conv.output = [bn.output[0]];
        removed.add(bn);
      }
      g.node = g.node.filter((n) => !removed.has(n));
      changed += removed.size;
    });
    return changed ? { model, changed } : { model: input, changed: 0 };
  },
};
