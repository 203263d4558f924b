/**
 * Small dense linear algebra in float64, row-major (`a[i * cols + j]`). These are the steps of the
 * factorizations that stay in JS: everything here is O(n³) on the small side (rank, or a Gram matrix),
 * while products with full weight matrices go to onnxruntime (see matrix engines).
 */
import { seededRandom } from '../random.js';

/** In-place lower Cholesky factor of a symmetric positive definite n×n matrix (upper triangle zeroed). False when not PD. */
export function cholesky(a: Float64Array, n: number): boolean {
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let d = a[rj + j];
    for (let k = 0; k < j; k++) d -= a[rj + k] * a[rj + k];
    if (!(d > 0)) return false;
    const l = Math.sqrt(d);
    a[rj + j] = l;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let s = a[ri + j];
      for (let k = 0; k < j; k++) s -= a[ri + k] * a[rj + k];
      a[ri + j] = s / l;
    }
    for (let k = j + 1; k < n; k++) a[rj + k] = 0;
  }
  return true;
}

/** Inverse of an n×n lower triangular matrix (column by column). */
export function invertLower(l: Float64Array, n: number): Float64Array {
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

/** Solves L·X = B in place for X by forward substitution (L lower n×n, B n×m row-major). */
export function solveLower(l: Float64Array, n: number, b: Float64Array, m: number): void {
  for (let i = 0; i < n; i++) {
    const bi = i * m;
    for (let k = 0; k < i; k++) {
      const lik = l[i * n + k];
      if (lik === 0) continue;
      const bk = k * m;
      for (let j = 0; j < m; j++) b[bi + j] -= lik * b[bk + j];
    }
    const d = l[i * n + i];
    for (let j = 0; j < m; j++) b[bi + j] /= d;
  }
}

/** Solves Lᵀ·X = B in place for X (L lower n×n, B n×m row-major). */
export function solveLowerTransposed(l: Float64Array, n: number, b: Float64Array, m: number): void {
  for (let i = n - 1; i >= 0; i--) {
    const bi = i * m;
    for (let k = i + 1; k < n; k++) {
      const lki = l[k * n + i];
      if (lki === 0) continue;
      const bk = k * m;
      for (let j = 0; j < m; j++) b[bi + j] -= lki * b[bk + j];
    }
    const d = l[i * n + i];
    for (let j = 0; j < m; j++) b[bi + j] /= d;
  }
}

/** Lᵀ·B for L lower n×n and B n×m (row-major): the whitened weight S·W with S = Lᵀ. */
export function multiplyLowerTransposed(l: Float64Array, n: number, b: ArrayLike<number>, m: number): Float64Array {
  const out = new Float64Array(n * m);
  for (let k = 0; k < n; k++) {
    const bk = k * m;
    // row k of L contributes L[k][i]·B[k] to output row i (i ≤ k)
    for (let i = 0; i <= k; i++) {
      const lki = l[k * n + i];
      if (lki === 0) continue;
      const oi = i * m;
      for (let j = 0; j < m; j++) out[oi + j] += lki * b[bk + j];
    }
  }
  return out;
}

/**
 * Orthonormalizes the rows of a rows×cols matrix in place (classical Gram–Schmidt run twice, which is
 * as stable as Householder for this use). Rows that are numerically dependent become zero rows.
 */
export function orthonormalizeRows(a: Float64Array, rows: number, cols: number): void {
  const h = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    const ri = i * cols;
    let before = 0;
    for (let c = 0; c < cols; c++) before += a[ri + c] * a[ri + c];
    for (let pass = 0; pass < 2; pass++) {
      for (let j = 0; j < i; j++) {
        const rj = j * cols;
        let s = 0;
        for (let c = 0; c < cols; c++) s += a[rj + c] * a[ri + c];
        h[j] = s;
      }
      for (let j = 0; j < i; j++) {
        const s = h[j];
        if (s === 0) continue;
        const rj = j * cols;
        for (let c = 0; c < cols; c++) a[ri + c] -= s * a[rj + c];
      }
    }
    let norm = 0;
    for (let c = 0; c < cols; c++) norm += a[ri + c] * a[ri + c];
    norm = Math.sqrt(norm);
    const inv = norm > 1e-10 * Math.sqrt(before) && norm > 0 ? 1 / norm : 0;
    for (let c = 0; c < cols; c++) a[ri + c] *= inv;
  }
}

/** A copy of the block [r0, r1) × [c0, c1) of a matrix with `lda` columns. */
export function copyBlock(a: Float64Array, lda: number, r0: number, r1: number, c0: number, c1: number): Float64Array {
  const cols = c1 - c0;
  const out = new Float64Array((r1 - r0) * cols);
  for (let r = r0; r < r1; r++) out.set(a.subarray(r * lda + c0, r * lda + c1), (r - r0) * cols);
  return out;
}

/** Transpose of a rows×cols row-major matrix. */
export function transpose<T extends Float32Array | Float64Array>(a: T, rows: number, cols: number, out?: T): T {
  const t = (out ?? new (a.constructor as { new (n: number): T })(rows * cols)) as T;
  const B = 32;
  for (let i0 = 0; i0 < rows; i0 += B) {
    const i1 = Math.min(rows, i0 + B);
    for (let j0 = 0; j0 < cols; j0 += B) {
      const j1 = Math.min(cols, j0 + B);
      for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) t[j * rows + i] = a[i * cols + j];
    }
  }
  return t;
}

/** A·B for small matrices (m×k times k×n) in float64. */
export function matmulSmall(a: ArrayLike<number>, m: number, k: number, b: ArrayLike<number>, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const oi = i * n;
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p];
      if (aip === 0) continue;
      const bp = p * n;
      for (let j = 0; j < n; j++) out[oi + j] += aip * b[bp + j];
    }
  }
  return out;
}

/** A·Aᵀ for a rows×cols matrix (rows small): a rows×rows symmetric matrix. */
export function gramRows(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const g = new Float64Array(rows * rows);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      const ri = i * cols;
      const rj = j * cols;
      for (let c = 0; c < cols; c++) s += a[ri + c] * a[rj + c];
      g[i * rows + j] = s;
      g[j * rows + i] = s;
    }
  }
  return g;
}

/** Deterministic standard normal numbers (mulberry32 and Box–Muller), seeded. */
export function gaussian(count: number, seed: number): Float32Array {
  const next = seededRandom(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const u = 1 - next();
    const v = next();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < count) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}
