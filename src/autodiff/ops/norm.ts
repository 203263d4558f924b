/**
 * Normalizations. Statistics are recomputed in the backward pass (cheap next to the matrix products).
 *
 * LayerNormalization over axes [axis, rank): x̂ = (x − μ)·r, r = 1/√(σ² + ε), y = x̂·γ + β
 *   dγ = Σ g·x̂,  dβ = Σ g  (over the axes γ/β are broadcast along)
 *   dx = r · (g' − mean(g') − x̂·mean(g'·x̂)),  g' = g·γ
 * Its optional Mean / InvStdDev outputs are treated as constants.
 *
 * BatchNormalization in inference mode (training_mode = 0): an affine map per channel (axis 1) with
 * fixed statistics: y = (x − mean)·s + β with s = γ/√(var + ε)
 *   dx = g·s,  dγ = Σ g·(x − mean)/√(var + ε),  dβ = Σ g  (over every axis but 1)
 * Running mean / var get no gradient.
 */
import { CompressError } from '../../errors.js';
import { attrFloat, attrInt } from '../../onnx/graph.js';
import { normAxis, range } from '../builder.js';
import type { GradRules } from '../types.js';

export const normRules: GradRules = {
  LayerNormalization: (b, node, [g], wants) => {
    if (!g) return [];
    const [x, scale, bias] = node.input;
    const y = node.output[0];
    const r = b.rank(x);
    const axes = range(r, normAxis(attrInt(node, 'axis', -1), r));
    const eps = attrFloat(node, 'epsilon', 1e-5);
    const mean = b.reduceMean(x, axes, true);
    const xc = b.op('Sub', [x, mean]);
    const variance = b.reduceMean(b.op('Mul', [xc, xc]), axes, true);
    const rstd = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [variance, b.scalar(eps)])])]);
    const xhat = b.op('Mul', [xc, rstd]);
    let dx: string | undefined;
    if (wants[0]) {
      const gs = b.op('Mul', [g, scale]);
      const m1 = b.reduceMean(gs, axes, true);
      const m2 = b.reduceMean(b.op('Mul', [gs, xhat]), axes, true);
      dx = b.op('Mul', [rstd, b.op('Sub', [b.op('Sub', [gs, m1]), b.op('Mul', [xhat, m2])])]);
    }
    const dScale = wants[1] ? b.unbroadcast(b.op('Mul', [g, xhat]), y, scale) : undefined;
    const dBias = bias && wants[2] ? b.unbroadcast(g, y, bias) : undefined;
    return [dx, dScale, dBias];
  },
  BatchNormalization: (b, node, [g], wants) => {
    if (!g) return [];
    if (attrInt(node, 'training_mode', 0) === 1) {
      throw new CompressError('compress', `autodiff: BatchNormalization "${node.name ?? ''}" runs in training mode; only inference mode (fixed statistics) is supported`);
    }
    const [x, scale, , mean, variance] = node.input;
    const r = b.rank(x);
    const eps = attrFloat(node, 'epsilon', 1e-5);
    const perChannel = (v: string) => b.unsqueeze(v, range(r - 1, 1)); // [C] → [C, 1, …, 1]
    const inv = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [variance, b.scalar(eps)])])]);
    const others = [0, ...range(r, 2)];
    const dx = wants[0] ? b.op('Mul', [g, perChannel(b.op('Mul', [scale, inv]))]) : undefined;
    let dScale: string | undefined;
    if (wants[1]) {
      const xhat = b.op('Mul', [b.op('Sub', [x, perChannel(mean)]), perChannel(inv)]);
      dScale = b.reduceSum(b.op('Mul', [g, xhat]), others, false);
    }
    const dBias = wants[2] ? b.reduceSum(g, others, false) : undefined;
    return [dx, dScale, dBias];
  },
};
