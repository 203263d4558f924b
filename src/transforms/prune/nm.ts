/**
 * N:M semi-structured sparsity: in every group of M consecutive input weights of one output unit, keep
 * the N with the highest score and zero the other M − N (the recipe's "at most N non-zero in every M";
 * 2:4 is what sparse tensor cores accelerate).
 *
 * Groups run along the input axis K: for MatMul B[K, N] (and Gemm transB = 0) they are M consecutive k
 * of one column n; for Gemm transB = 1 consecutive elements of a row of B[N, K]; for Conv consecutive
 * elements of a filter flattened as (c, kh, kw). K must be a multiple of M.
 */
import { inputFeature, type Layer } from './select.js';

export function pruneNM(layer: Layer, w: Float32Array, keep: number, group: number, featureNorm?: Float64Array): Float32Array {
  const out = w.slice();
  const score = new Float64Array(group);
  const order = new Int32Array(group);
  for (let n = 0; n < layer.N; n++) {
    for (let g0 = 0; g0 < layer.K; g0 += group) {
      for (let j = 0; j < group; j++) {
        const k = g0 + j;
        const v = Math.abs(w[k * layer.strideK + n * layer.strideN]);
        score[j] = featureNorm ? v * featureNorm[inputFeature(layer, k, n)] : v;
        order[j] = j;
      }
      // M is small (≤ 32): insertion sort by score descending, ties by position.
      for (let a = 1; a < group; a++) {
        const x = order[a];
        let b = a - 1;
        while (b >= 0 && score[order[b]] < score[x]) {
          order[b + 1] = order[b];
          b--;
        }
        order[b + 1] = x;
      }
      for (let j = keep; j < group; j++) out[(g0 + order[j]) * layer.strideK + n * layer.strideN] = 0;
    }
  }
  return out;
}

/** Checks the pattern on a pruned weight: every group has at most `keep` non-zeros. */
export function satisfiesNM(layer: Layer, w: Float32Array, keep: number, group: number): boolean {
  for (let n = 0; n < layer.N; n++) {
    for (let g0 = 0; g0 < layer.K; g0 += group) {
      let nz = 0;
      for (let j = 0; j < group; j++) if (w[(g0 + j) * layer.strideK + n * layer.strideN] !== 0) nz++;
      if (nz > keep) return false;
    }
  }
  return true;
}
