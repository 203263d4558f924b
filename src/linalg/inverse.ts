/**
 * The inverse-Hessian factor GPTQ needs, in float64: a Cholesky factorization and the inverse of a lower
 * triangular matrix, blocked so that the O(n³) work is matrix products on a MatrixEngine (GPTQ uses the
 * hybrid one: ORT's Gemm for large products, far faster than JS loops — docs/facts.md "Matrix
 * products" — and JS for small ones, where a session call costs more). Matrices are row-major
 * Float64Arrays.
 *
 * This Cholesky differs from choleskyBlocked (blocked.ts) in its panel step: blocks of 128, the panel
 * solved by substitution in JS rather than multiplied by the inverse block. GPTQ's outputs are pinned to
 * this arithmetic, so the two stay separate; the unblocked kernels they share live in dense.ts.
 */
import { cholesky as choleskyDense, copyBlock as block, invertLower as invertLowerDense } from './dense.js';
import type { MatrixEngine } from './engine.js';


const BLOCK = 128;

/**
 * Lower Cholesky factor of a symmetric positive definite n×n matrix (in place: the lower triangle is
 * L, the upper is zeroed). Right-looking blocked: factor a diagonal block, solve the panel below it,
 * update the trailing matrix with one product. Throws when the matrix is not positive definite.
 */
export async function choleskyPanel(a: Float64Array, n: number, engine: MatrixEngine): Promise<void> {
  for (let j0 = 0; j0 < n; j0 += BLOCK) {
    const j1 = Math.min(j0 + BLOCK, n);
    const w = j1 - j0;
    const d = block(a, n, j0, j1, j0, j1);
    if (!choleskyDense(d, w)) throw new RangeError(`matrix is not positive definite (block at ${j0})`);
    for (let r = 0; r < w; r++) a.set(d.subarray(r * w, (r + 1) * w), (j0 + r) * n + j0);
    if (j1 === n) break;
    // Panel: L21 = A21 · L11⁻ᵀ, row by row (forward substitution).
    const rows = n - j1;
    const l21 = new Float64Array(rows * w);
    for (let r = 0; r < rows; r++) {
      const src = (j1 + r) * n + j0;
      const o = r * w;
      for (let c = 0; c < w; c++) {
        let s = a[src + c];
        for (let p = 0; p < c; p++) s -= l21[o + p] * d[c * w + p];
        l21[o + c] = s / d[c * w + c];
      }
      a.set(l21.subarray(o, o + w), src);
    }
    // Trailing update: A22 −= L21 · L21ᵀ (only the lower triangle is read later).
    const l21t = new Float64Array(w * rows);
    for (let r = 0; r < rows; r++) for (let c = 0; c < w; c++) l21t[c * rows + r] = l21[r * w + c];
    const upd = await engine.matmul(l21, rows, w, l21t, rows);
    for (let r = 0; r < rows; r++) {
      const dst = (j1 + r) * n + j1;
      const src = r * rows;
      for (let c = 0; c <= r; c++) a[dst + c] -= upd[src + c];
    }
  }
  for (let r = 0; r < n; r++) a.fill(0, r * n + r + 1, (r + 1) * n);
}

/** Inverse of an n×n lower triangular matrix, blocked by rows: M[i, :i] = −M_ii · (L[i, :i] · M[:i, :i]). */
export async function invertLowerBlocked(l: Float64Array, n: number, engine: MatrixEngine): Promise<Float64Array> {
  const m = new Float64Array(n * n);
  for (let i0 = 0; i0 < n; i0 += BLOCK) {
    const i1 = Math.min(i0 + BLOCK, n);
    const w = i1 - i0;
    const mii = invertLowerDense(block(l, n, i0, i1, i0, i1), w);
    for (let r = 0; r < w; r++) m.set(mii.subarray(r * w, (r + 1) * w), (i0 + r) * n + i0);
    if (i0 === 0) continue;
    const t = await engine.matmul(block(l, n, i0, i1, 0, i0), w, i0, block(m, n, 0, i0, 0, i0), i0);
    const x = await engine.matmul(mii, w, w, t, i0);
    for (let r = 0; r < w; r++) {
      const dst = (i0 + r) * n;
      for (let c = 0; c < i0; c++) m[dst + c] = -x[r * i0 + c];
    }
  }
  return m;
}

/**
 * The upper triangular U with H⁻¹ = Uᵀ·U (what GPTQ calls the Cholesky factor of the inverse Hessian),
 * from one Cholesky and one triangular inverse: with P the reversal permutation, P·H·P = L·Lᵀ gives
 * H⁻¹ = (P·L⁻¹·P)ᵀ · (P·L⁻¹·P), and P·L⁻¹·P is upper triangular.
 */
export async function inverseCholeskyUpper(h: Float64Array, n: number, engine: MatrixEngine): Promise<Float64Array> {
  const rev = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) rev[i * n + j] = h[(n - 1 - i) * n + (n - 1 - j)];
  await choleskyPanel(rev, n, engine);
  const inv = await invertLowerBlocked(rev, n, engine);
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) u[i * n + j] = inv[(n - 1 - i) * n + (n - 1 - j)];
  return u;
}
