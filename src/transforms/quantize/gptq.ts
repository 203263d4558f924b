/**
 * GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
 * Transformers"): quantize a weight column by column along K, and after each column spread its
 * rounding error over the columns not yet quantized, weighted by the inverse Hessian of the layer's
 * squared output error, H = 2·XᵀX / n (X: the layer's calibration inputs, [rows, K]).
 *
 * Layout: W as rows [N, K] (one row per output channel, K contiguous), as in layout.ts.
 * Steps: dead inputs (H_ii = 0) get H_ii = 1 and W[:, i] = 0; optional act-order (columns by H_ii,
 * largest first); dampening λ = 1 % of mean(diag H) added to the diagonal; U = upper Cholesky factor of
 * H⁻¹; then blocks of 128 columns: inside a block each column is rounded and its error
 * e = (w − q) / U_ii is subtracted from the block's later columns (e · U_i,j), the block's errors are
 * applied to all later columns at once (W[:, i2:] −= E · U[i1:i2, i2:], one matrix product).
 *
 * Groups (block-wise scales): without act-order a group's scale and zero point are computed when its
 * first column is reached, from the already error-corrected weights (as the reference implementation
 * does); with act-order, groups are fixed up front from the original weights ("static groups"), so the
 * stored layout needs no column permutation (no g_idx).
 */
import type { MatrixEngine } from '../../linalg/engine.js';
import { inverseCholeskyUpper } from '../../linalg/inverse.js';
import { groupParams, type Bits, type Quantized } from './rtn.js';

export interface GptqOptions {
  bits: Bits;
  symmetric: boolean;
  /** Values per scale along K: a block size, or K for per-channel. */
  group: number;
  /** One scale for the whole matrix. */
  perTensor?: boolean;
  actOrder: boolean;
  /** Fraction of mean(diag H) added to the diagonal (default 0.01). */
  damp?: number;
  /** Columns per lazy-update block (default 128). */
  blockSize?: number;
}

/**
 * Quantizes `w` ([N, K] rows layout) with Hessian `h` ([K, K], not modified). Returns codes in rows
 * layout and scales/zeros [N, ceil(K / group)], as rtn.quantizeBlocks does.
 */
export async function gptqQuantize(w: Float32Array, N: number, K: number, h: Float64Array, opts: GptqOptions, mm: MatrixEngine): Promise<Quantized> {
  const { bits, symmetric } = opts;
  const G = Math.min(opts.group, K);
  const nG = Math.ceil(K / G);
  const B = opts.blockSize ?? 128;
  const qmax = (1 << bits) - 1;
  const H = h.slice();
  const W = Float64Array.from(w);

  // Dead inputs: never active in calibration, so any value is as good as another: quantize 0.
  for (let i = 0; i < K; i++) {
    if (H[i * K + i] === 0) {
      H[i * K + i] = 1;
      for (let n = 0; n < N; n++) W[n * K + i] = 0;
    }
  }

  const scales = new Float32Array(N * nG);
  const zeros = new Uint8Array(N * nG);
  const p = new Float64Array(2);
  const setParams = (n: number, g: number, lo: number, hi: number) => {
    groupParams(lo, hi, bits, symmetric, p);
    scales[n * nG + g] = p[0];
    zeros[n * nG + g] = p[1];
  };
  const staticGroups = opts.actOrder || opts.perTensor === true;
  if (opts.perTensor) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < W.length; i++) {
      if (W[i] < lo) lo = W[i];
      if (W[i] > hi) hi = W[i];
    }
    for (let n = 0; n < N; n++) for (let g = 0; g < nG; g++) setParams(n, g, lo, hi);
  } else if (staticGroups) {
    for (let n = 0; n < N; n++) {
      for (let g = 0; g < nG; g++) {
        let lo = Infinity;
        let hi = -Infinity;
        for (let k = g * G; k < Math.min((g + 1) * G, K); k++) {
          const v = W[n * K + k];
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
        setParams(n, g, lo, hi);
      }
    }
  }

  // Act-order: process columns by decreasing H_ii.
  let perm: Int32Array | undefined;
  if (opts.actOrder) {
    const order = Array.from({ length: K }, (_, i) => i).sort((a, b) => H[b * K + b] - H[a * K + a]);
    perm = Int32Array.from(order);
    const Wp = new Float64Array(N * K);
    for (let n = 0; n < N; n++) for (let c = 0; c < K; c++) Wp[n * K + c] = W[n * K + perm[c]];
    W.set(Wp);
    const Hp = new Float64Array(K * K);
    for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) Hp[i * K + j] = H[perm[i] * K + perm[j]];
    H.set(Hp);
  }

  let mean = 0;
  for (let i = 0; i < K; i++) mean += H[i * K + i];
  mean /= K;
  const damp = (opts.damp ?? 0.01) * mean;
  for (let i = 0; i < K; i++) H[i * K + i] += damp;
  const U = await inverseCholeskyUpper(H, K, mm);

  const codesPerm = new Uint8Array(N * K);
  const W1 = new Float64Array(N * B);
  const E = new Float64Array(N * B);
  for (let i1 = 0; i1 < K; i1 += B) {
    const i2 = Math.min(i1 + B, K);
    const count = i2 - i1;
    for (let n = 0; n < N; n++) for (let j = 0; j < count; j++) W1[n * count + j] = W[n * K + i1 + j];
    for (let i = 0; i < count; i++) {
      const c = i1 + i;
      const oc = perm ? perm[c] : c;
      const g = Math.floor(oc / G);
      if (!staticGroups && oc % G === 0) {
        // The group's range from the current (error-corrected) weights: in this block when the group
        // fits in it, else (per-channel, or groups longer than a block) from W.
        const end = Math.min(oc + G, K);
        for (let n = 0; n < N; n++) {
          let lo = Infinity;
          let hi = -Infinity;
          for (let k = oc; k < end; k++) {
            const v = k < i2 ? W1[n * count + (k - i1)] : W[n * K + k];
            if (v < lo) lo = v;
            if (v > hi) hi = v;
          }
          setParams(n, g, lo, hi);
        }
      }
      const d = U[c * K + c];
      const urow = c * K + i1; // U[c, i1 + j] = U[urow + j]
      for (let n = 0; n < N; n++) {
        const s = scales[n * nG + g];
        const z = zeros[n * nG + g];
        const row = n * count;
        const x = W1[row + i];
        let q = Math.round(x / s) + z;
        if (q < 0) q = 0;
        else if (q > qmax) q = qmax;
        codesPerm[n * K + c] = q;
        const e = (x - (q - z) * s) / d;
        E[row + i] = e;
        if (e !== 0) for (let j = i + 1; j < count; j++) W1[row + j] -= e * U[urow + j];
      }
    }
    if (i2 < K) {
      // W[:, i2:] −= E · U[i1:i2, i2:]
      const rest = K - i2;
      const u = new Float64Array(count * rest);
      for (let r = 0; r < count; r++) u.set(U.subarray((i1 + r) * K + i2, (i1 + r + 1) * K), r * rest);
      const upd = await mm.matmul(E.subarray(0, N * count), N, count, u, rest);
      for (let n = 0; n < N; n++) {
        const dst = n * K + i2;
        const src = n * rest;
        for (let j = 0; j < rest; j++) W[dst + j] -= upd[src + j];
      }
    }
  }

  // Back to the original column order; error against the original weights.
  const codes = new Uint8Array(N * K);
  let sqErr = 0;
  let sqRef = 0;
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < K; c++) {
      const oc = perm ? perm[c] : c;
      const q = codesPerm[n * K + c];
      codes[n * K + oc] = q;
      const g = Math.floor(oc / G);
      const x = w[n * K + oc];
      const dq = (q - zeros[n * nG + g]) * scales[n * nG + g];
      sqErr += (x - dq) * (x - dq);
      sqRef += x * x;
    }
  }
  return { bits, symmetric, codes, scales, zeros, sqErr, sqRef };
}
