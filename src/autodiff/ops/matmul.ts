/**
 * Matrix products.
 *
 * MatMul (numpy semantics, batch dims broadcast; a 1-d operand is a row / column vector):
 *   dA = g · Bᵀ   dB = Aᵀ · g   each summed over the batch dims its operand was broadcast along.
 *   When B is a 2-d weight and A has batch dims, dB is one Gemm on the flattened rows:
 *   reshape(A, [−1, K])ᵀ · reshape(g, [−1, N]) — one big product instead of a batch of small ones.
 *
 * Gemm: y = α·A'·B' + β·C with A' = transA ? Aᵀ : A, B' = transB ? Bᵀ : B.
 *   dA' = α·g·B'ᵀ,  dB' = α·A'ᵀ·g,  dC = β·g summed to C's shape — each written as one Gemm whose
 *   trans flags undo the forward ones.
 */
import { attrFloat, attrInt } from '../../onnx/graph.js';
import { aFloat, aInt, type Dim, type GradBuilder } from '../builder.js';
import type { GradRules } from '../types.js';

/** The permutation swapping the last two axes of a rank-r tensor. */
function swapLast(r: number): number[] {
  const p = Array.from({ length: r }, (_, i) => i);
  [p[r - 2], p[r - 1]] = [p[r - 1], p[r - 2]];
  return p;
}

/** x (shaped like `like`) reshaped to [−1, last dim]. */
function rows(b: GradBuilder, x: string, like = x): string {
  const r = b.rank(like);
  const last = b.dims(like)![r - 1];
  const shape = last !== null ? b.ints([-1, last]) : b.op('Concat', [b.ints([-1]), b.shapeSlice(like, r - 1, r)], [aInt('axis', 0)]);
  return b.reshape(x, shape);
}

export const matmulRules: GradRules = {
  MatMul: (b, node, [g], wants) => {
    if (!g) return [];
    const [a, w] = node.input;
    const y = node.output[0];
    const ra = b.rank(a);
    const rb = b.rank(w);
    let dA: string | undefined;
    let dB: string | undefined;
    if (ra >= 2 && rb >= 2) {
      if (wants[0]) dA = b.unbroadcast(b.op('MatMul', [g, b.transpose(w, swapLast(rb))]), y, a);
      if (wants[1]) {
        dB = rb === 2 && ra > 2
          ? b.op('Gemm', [rows(b, a), rows(b, g, y)], [aInt('transA', 1)])
          : b.unbroadcast(b.op('MatMul', [b.transpose(a, swapLast(ra)), g]), y, w);
      }
      return [dA, dB];
    }
    // A vector operand: promote it to a matrix (and g with it), then the matrix rules apply.
    const yd = b.dims(y)!;
    const ad = b.dims(a)!;
    const wd = b.dims(w)!;
    const a2 = ra === 1 ? b.declare(b.unsqueeze(a, [0]), [1, ...ad]) : a;
    const w2 = rb === 1 ? b.declare(b.unsqueeze(w, [1]), [...wd, 1]) : w;
    let gd: Dim[] = yd;
    let g2 = g;
    if (rb === 1) [g2, gd] = [b.unsqueeze(g2, [gd.length]), [...gd, 1]];
    if (ra === 1) [g2, gd] = [b.unsqueeze(g2, [gd.length - 1]), [...gd.slice(0, -1), 1, gd[gd.length - 1]]];
    const y2 = b.declare(b.name('promoted'), gd);
    const r2a = Math.max(ra, 2);
    const r2b = Math.max(rb, 2);
    if (wants[0]) dA = b.reshapeLike(b.unbroadcast(b.op('MatMul', [g2, b.transpose(w2, swapLast(r2b))]), y2, a2), a);
    if (wants[1]) dB = b.reshapeLike(b.unbroadcast(b.op('MatMul', [b.transpose(a2, swapLast(r2a)), g2]), y2, w2), w);
    return [dA, dB];
  },
  Gemm: (b, node, [g], wants) => {
    if (!g) return [];
    const [a, w, c] = node.input;
    const alpha = attrFloat(node, 'alpha', 1);
    const beta = attrFloat(node, 'beta', 1);
    const transA = attrInt(node, 'transA', 0);
    const transB = attrInt(node, 'transB', 0);
    const gemm = (p: string, q: string, tp: number, tq: number) =>
      b.op('Gemm', [p, q], [aInt('transA', tp), aInt('transB', tq), ...(alpha !== 1 ? [aFloat('alpha', alpha)] : [])]);
    const dA = wants[0] ? (transA ? gemm(w, g, transB, 1) : gemm(g, w, 0, transB ? 0 : 1)) : undefined;
    const dB = wants[1] ? (transB ? gemm(g, a, 1, transA) : gemm(a, g, transA ? 0 : 1, 0)) : undefined;
    let dC: string | undefined;
    if (c && wants[2]) dC = b.unbroadcast(beta === 1 ? g : b.op('Mul', [g, b.scalar(beta)]), node.output[0], c);
    return [dA, dB, dC];
  },
};
