/**
 * Reductions: the gradient is g put back on the reduced axes (Unsqueeze when keepdims=0) and
 * broadcast to x's shape (Expand); a mean also divides by the number of elements reduced.
 *
 *   ReduceSum        dx = expand(g)
 *   ReduceMean       dx = expand(g) / n
 *   ReduceSumSquare  dx = 2·x·expand(g)
 *
 * Axes come from the `axes` attribute (ReduceSum before opset 13, the others before 18) or a constant
 * `axes` input; none means every axis (or nothing at all with noop_with_empty_axes=1).
 */
import { CompressError } from '../../errors.js';
import { attrInt, attrInts } from '../../onnx/graph.js';
import type { NodeProto } from '../../onnx/types.js';
import { normAxis, range, type GradBuilder } from '../builder.js';
import type { GradRule, GradRules } from '../types.js';

/** g (shaped like y) broadcast back to x's shape; undefined when the node is a no-op. */
function expandBack(b: GradBuilder, node: NodeProto, g: string): string {
  const x = node.input[0];
  const r = b.rank(x);
  let axes = attrInts(node, 'axes') ?? (node.input[1] ? b.constantInts(node.input[1]) : undefined);
  if (node.input[1] && !axes) {
    throw new CompressError('compress', `autodiff: ${node.opType} "${node.name ?? ''}" reduces over axes computed at run time; only constant axes are supported`);
  }
  if (!axes || axes.length === 0) {
    if (attrInt(node, 'noop_with_empty_axes', 0) === 1) return g;
    axes = range(r);
  }
  const norm = [...new Set(axes.map((a) => normAxis(a, r)))].sort((p, q) => p - q);
  const kept = attrInt(node, 'keepdims', 1) === 1 ? g : b.unsqueeze(g, norm);
  return b.op('Expand', [kept, b.shape(x)]);
}

function reduceRule(scale: (b: GradBuilder, node: NodeProto, expanded: string) => string): GradRule {
  return (b, node, [g], wants) => (g && wants[0] ? [scale(b, node, expandBack(b, node, g))] : []);
}

export const reduceRules: GradRules = {
  ReduceSum: reduceRule((_b, _node, e) => e),
  ReduceMean: reduceRule((b, node, e) => b.op('Div', [e, b.sizeRatio(node.input[0], node.output[0])])),
  ReduceSumSquare: reduceRule((b, node, e) => b.op('Mul', [e, b.op('Mul', [node.input[0], b.scalar(2)])])),
};
