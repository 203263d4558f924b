/**
 * Activation-aware low-rank (SVD-LLM style whitening). With H = XᵀX the Gram matrix of the layer's
 * calibration inputs and S = Lᵀ its Cholesky factor (H + λI = L·Lᵀ), the output error of any
 * replacement W' is ‖X(W − W')‖_F = ‖S(W − W')‖_F. So the best rank-r W' for the outputs is
 * S⁻¹·trunc_r(S·W): factor S·W ≈ A·B, then left = S⁻¹·A = L⁻ᵀ·A, right = B.
 *
 * λ = 1 % of H's mean diagonal (raised until the factorization succeeds) covers features that never
 * vary on the calibration data.
 */
import { dampedCholesky, solveLowerTransposedBlocked } from '../../linalg/blocked.js';
import type { MatrixEngine } from '../../linalg/engine.js';
import { rankForEnergy, singularValues, truncatedSvd, type Factors, type SvdOptions } from './svd.js';

export interface WhitenedFactors extends Factors {
  damping: number;
}

/** The whitened matrix S·W [K, N] (float32) and the factor L, from H [K, K] and W [K, N]. */
export async function whiten(engine: MatrixEngine, w: Float32Array, K: number, N: number, gram: Float64Array, damping = 0.01): Promise<{ sw: Float32Array; l: Float64Array; damping: number }> {
  const { l, damping: used } = await dampedCholesky(gram, K, damping, engine);
  const sw = await engine.gemm(l, [K, K], Float64Array.from(w), [K, N], { transA: true });
  return { sw: Float32Array.from(sw), l, damping: used };
}

/**
 * Rank-r factors of W that minimize the output error on the calibration inputs; `rank` may be a
 * function of the whitened spectrum (for `energy`: the smallest rank keeping that share of the output
 * energy ‖XW‖²).
 */
export async function whitenedSvd(
  engine: MatrixEngine,
  w: Float32Array,
  K: number,
  N: number,
  gram: Float64Array,
  rank: number | { energy: number },
  opts: SvdOptions & { damping?: number } = {},
): Promise<WhitenedFactors> {
  const { sw, l, damping } = await whiten(engine, w, K, N, gram, opts.damping);
  let r: number;
  if (typeof rank === 'number') r = rank;
  else {
    const sigma = await singularValues(engine, sw, K, N);
    let total = 0;
    for (const s of sigma) total += s * s;
    r = rankForEnergy(sigma, total, rank.energy);
  }
  // (energy here is of the output, ‖XW‖²: the lowrank step picks ranks from the weight instead.)
  const f = await truncatedSvd(engine, sw, K, N, r, opts);
  const left = Float64Array.from(f.left);
  await solveLowerTransposedBlocked(engine, l, K, left, f.rank);
  return { ...f, left: Float32Array.from(left), damping };
}
