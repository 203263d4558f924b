/**
 * Softmax and LogSoftmax along one axis (opset ≥ 13 semantics: the axis alone, default −1).
 *
 *   Softmax     dx = y · (g − Σ_axis g·y)
 *   LogSoftmax  dx = g − e^y · Σ_axis g
 */
import { attrInt } from '../../onnx/graph.js';
import type { GradRules } from '../types.js';

export const softmaxRules: GradRules = {
  Softmax: (b, node, [g], wants) => {
    if (!g || !wants[0]) return [];
    const y = node.output[0];
    const axis = attrInt(node, 'axis', -1);
    const dot = b.reduceSum(b.op('Mul', [g, y]), [axis], true);
    return [b.op('Mul', [y, b.op('Sub', [g, dot])])];
  },
  LogSoftmax: (b, node, [g], wants) => {
    if (!g || !wants[0]) return [];
    const y = node.output[0];
    const axis = attrInt(node, 'axis', -1);
    const total = b.reduceSum(g, [axis], true);
    return [b.op('Sub', [g, b.op('Mul', [b.op('Exp', [y]), total])])];
  },
};
