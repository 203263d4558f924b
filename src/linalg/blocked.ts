/**
 * Blocked Cholesky factorization and triangular solves whose O(n³) parts run in onnxruntime (float64
 * Gemm), for Gram matrices too large for JS loops (a 3136×3136 Cholesky is ~10 s in JS). Small
 * matrices (n ≤ BLOCK) stay in JS (dense.ts).
 *
 * Layout: row-major float64; L lower triangular n×n; right-hand sides n×m.
 */
import { cholesky, solveLowerTransposed } from './dense.js';
import type { MatrixEngine } from '../runtime/matrix.js';

const BLOCK = 256;

function sub(a: Float64Array, lda: number, r0: number, r1: number, c0: number, c1: number): Float64Array {
  const cols = c1 - c0;
  const out = new Float64Array((r1 - r0) * cols);
  for (let r = r0; r < r1; r++) out.set(a.subarray(r * lda + c0, r * lda + c1), (r - r0) * cols);
  return out;
}

function put(a: Float64Array, lda: number, r0: number, c0: number, x: Float64Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) a.set(x.subarray(r * cols, (r + 1) * cols), (r0 + r) * lda + c0);
}

/** Inverse of a small lower-triangular matrix (JS). */
function invertLower(l: Float64Array, n: number): Float64Array {
  const inv = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    inv[j * n + j] = 1 / l[j * n + j];
    for (let i = j + 1; i < n; i++) {
      let s = 0;
      for (let k = j; k < i; k++) s += l[i * n + k] * inv[k * n + j];
      inv[i * n + j] = -s / l[i * n + i];
    }
  }
  return inv;
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
    const d = sub(l, n, i0, i1, i0, i1);
    // forward substitution on the diagonal block
    for (let i = 0; i < bs; i++) {
      for (let k = 0; k < i; k++) {
        const lik = d[i * bs + k];
        if (lik !== 0) for (let j = 0; j < m; j++) rhs[i * m + j] -= lik * rhs[k * m + j];
      }
      const di = d[i * bs + i];
      for (let j = 0; j < m; j++) rhs[i * m + j] /= di;
    }
    put(b, m, i0, 0, rhs, bs, m);
  }
}

/**
 * Solves (A + δ·mean(diag A)·I)·X = B for symmetric positive semi-definite A (n×n, not modified),
 * raising δ tenfold until the factorization succeeds. B (n×m) is overwritten with X.
 */
export async function solveDamped(engine: MatrixEngine, a: Float64Array, n: number, b: Float64Array, m: number, damping = 0.01): Promise<number> {
  let mean = 0;
  for (let i = 0; i < n; i++) mean += a[i * n + i];
  mean = mean / n || 1;
  for (let d = damping; d < 1e6; d = d === 0 ? 1e-6 : d * 10) {
    const l = Float64Array.from(a);
    for (let i = 0; i < n; i++) l[i * n + i] += d * mean;
    if (!(await choleskyBlocked(engine, l, n))) continue;
    await solveLowerBlocked(engine, l, n, b, m);
    await solveLowerTransposedBlocked(engine, l, n, b, m);
    return d;
  }
  throw new Error('matrix is not positive definite even with damping');
}

/** Lower Cholesky factor of A + δ·mean(diag A)·I, raising δ tenfold until it succeeds. */
export async function dampedCholeskyBlocked(engine: MatrixEngine, a: Float64Array, n: number, damping = 0.01): Promise<{ l: Float64Array; damping: number }> {
  let mean = 0;
  for (let i = 0; i < n; i++) mean += a[i * n + i];
  mean = mean / n || 1;
  for (let d = damping; d < 1e6; d = d === 0 ? 1e-6 : d * 10) {
    const l = Float64Array.from(a);
    for (let i = 0; i < n; i++) l[i * n + i] += d * mean;
    if (await choleskyBlocked(engine, l, n)) return { l, damping: d };
  }
  throw new Error('matrix is not positive definite even with damping');
}
