/**
 * Blocked Cholesky factorization and triangular solves whose O(n³) parts run in onnxruntime (float64
 * Gemm), for Gram matrices too large for JS loops (a 3136×3136 Cholesky is ~10 s in JS). Small
 * matrices (n ≤ BLOCK) stay in JS (dense.ts).
 *
 * Layout: row-major float64; L lower triangular n×n; right-hand sides n×m.
 */
import { cholesky, copyBlock as sub, invertLower, solveLower, solveLowerTransposed } from './dense.js';
import type { MatrixEngine } from './engine.js';

const BLOCK = 256;

function put(a: Float64Array, lda: number, r0: number, c0: number, x: Float64Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) a.set(x.subarray(r * cols, (r + 1) * cols), (r0 + r) * lda + c0);
}

/** In-place lower Cholesky factor (upper triangle zeroed); false when the matrix is not positive definite. */
export async function choleskyBlocked(engine: MatrixEngine, a: Float64Array, n: number): Promise<boolean> {
  if (n <= BLOCK) return cholesky(a, n);
  for (let j0 = 0; j0 < n; j0 += BLOCK) {
    const j1 = Math.min(n, j0 + BLOCK);
    const bs = j1 - j0;
    const d = sub(a, n, j0, j1, j0, j1);
    if (!cholesky(d, bs)) return false;
    put(a, n, j0, j0, d, bs, bs);
    if (j1 === n) break;
    const m = n - j1;
    const p = sub(a, n, j1, n, j0, j1);
    const x = await engine.gemm(p, [m, bs], invertLower(d, bs), [bs, bs], { transB: true }); // P·L⁻ᵀ
    put(a, n, j1, j0, x, m, bs);
    const update = await engine.gemm(x, [m, bs], x, [m, bs], { transB: true });
    for (let r = 0; r < m; r++) {
      const row = (j1 + r) * n + j1;
      for (let c = 0; c <= r; c++) a[row + c] -= update[r * m + c];
    }
  }
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) a[i * n + j] = 0;
  return true;
}

/** Solves Lᵀ·X = B (B n×m, overwritten with X). */
export async function solveLowerTransposedBlocked(engine: MatrixEngine, l: Float64Array, n: number, b: Float64Array, m: number): Promise<void> {
  if (n <= BLOCK) return solveLowerTransposed(l, n, b, m);
  const starts: number[] = [];
  for (let i0 = 0; i0 < n; i0 += BLOCK) starts.push(i0);
  for (const i0 of starts.reverse()) {
    const i1 = Math.min(n, i0 + BLOCK);
    const bs = i1 - i0;
    let rhs = sub(b, m, i0, i1, 0, m);
    if (i1 < n) {
      // B_i −= L[i1:, i0:i1]ᵀ · X[i1:]
      const li = sub(l, n, i1, n, i0, i1);
      const xs = b.subarray(i1 * m, n * m);
      const t = await engine.gemm(li, [n - i1, bs], Float64Array.from(xs), [n - i1, m], { transA: true });
      for (let i = 0; i < rhs.length; i++) rhs[i] -= t[i];
    }
    const d = sub(l, n, i0, i1, i0, i1);
    solveLowerTransposed(d, bs, rhs, m);
    put(b, m, i0, 0, rhs, bs, m);
    rhs = new Float64Array(0);
  }
}

/** Solves L·X = B (B n×m, overwritten with X). */
export async function solveLowerBlocked(engine: MatrixEngine, l: Float64Array, n: number, b: Float64Array, m: number): Promise<void> {
  for (let i0 = 0; i0 < n; i0 += BLOCK) {
    const i1 = Math.min(n, i0 + BLOCK);
    const bs = i1 - i0;
    const rhs = sub(b, m, i0, i1, 0, m);
    if (i0 > 0) {
      const li = sub(l, n, i0, i1, 0, i0);
      const t = await engine.gemm(li, [bs, i0], Float64Array.from(b.subarray(0, i0 * m)), [i0, m]);
      for (let i = 0; i < rhs.length; i++) rhs[i] -= t[i];
    }
    solveLower(sub(l, n, i0, i1, i0, i1), bs, rhs, m);
    put(b, m, i0, 0, rhs, bs, m);
  }
}

/** Thrown when a matrix stays indefinite whatever the damping. */
export class NotPositiveDefiniteError extends Error {
  constructor() {
    super('matrix is not positive definite even with damping');
  }
}

export interface DampedFactor {
  /** Lower Cholesky factor of A + λ·I (upper triangle zero). */
  l: Float64Array;
  /** δ, relative to the mean diagonal of A. */
  damping: number;
  /** λ = δ·mean(diag A), the shift actually added. */
  lambda: number;
}

/**
 * The one damping loop: the lower Cholesky factor of A + λ·I for symmetric positive semi-definite A
 * (n×n, not modified), λ = δ·mean(diag A), δ starting at `damping` and raised tenfold (from 1e-6 when
 * it is 0) until the factorization succeeds; past δ = 1e6 it throws NotPositiveDefiniteError. Without an
 * engine the factorization is the unblocked JS one at any size (callers whose results must not depend
 * on an engine: layer-wise distillation); with one, large matrices use choleskyBlocked on it.
 */
export async function dampedCholesky(a: Float64Array, n: number, damping = 0.01, engine?: MatrixEngine): Promise<DampedFactor> {
  let mean = 0;
  for (let i = 0; i < n; i++) mean += a[i * n + i];
  mean = mean / n || 1;
  for (let d = damping; ; d = d === 0 ? 1e-6 : d * 10) {
    const l = Float64Array.from(a);
    const lambda = d * mean;
    for (let i = 0; i < n; i++) l[i * n + i] += lambda;
    if (engine ? await choleskyBlocked(engine, l, n) : cholesky(l, n)) return { l, damping: d, lambda };
    if (d > 1e6) throw new NotPositiveDefiniteError();
  }
}

/**
 * Solves (A + λ·I)·X = B + λ·X₀ (λ as in dampedCholesky; X₀ = `prior`, zero when absent) — least
 * squares pulled toward X₀. B (n×m) is overwritten with X; returns δ.
 */
export async function solveDamped(
  a: Float64Array,
  n: number,
  b: Float64Array,
  m: number,
  opts: { damping?: number; engine?: MatrixEngine; prior?: Float64Array } = {},
): Promise<number> {
  const { l, damping, lambda } = await dampedCholesky(a, n, opts.damping, opts.engine);
  const prior = opts.prior;
  if (prior) for (let i = 0; i < b.length; i++) b[i] += lambda * prior[i];
  if (opts.engine) {
    await solveLowerBlocked(opts.engine, l, n, b, m);
    await solveLowerTransposedBlocked(opts.engine, l, n, b, m);
  } else {
    solveLower(l, n, b, m);
    solveLowerTransposed(l, n, b, m);
  }
  return damping;
}
