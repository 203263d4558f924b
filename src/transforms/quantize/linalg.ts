/**
 * The dense linear algebra GPTQ needs, in float64: Cholesky factorization and the inverse of a lower
 * triangular matrix, blocked so that the O(n³) work is matrix products, which run in onnxruntime
 * (ortmatmul.ts: a float64 MatMul, ~50× faster than JS loops for n in the thousands, FACTS.md) when the
 * matrices are large, and in JS when they are small. Matrices are row-major Float64Arrays. No
 * onnxruntime import here, so RTN quantization never loads the native runtime.
 */

/** C = A·B with A [m, k], B [k, n]. */
export type MatMul = (a: Float64Array, m: number, k: number, b: Float64Array, n: number) => Promise<Float64Array>;

/** Plain JS product (i-k-j order, contiguous inner loop). */
export function matmulJs(a: Float64Array, m: number, k: number, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const ci = i * n;
    for (let p = 0; p < k; p++) {
      const v = a[i * k + p];
      if (v === 0) continue;
      const bp = p * n;
      for (let j = 0; j < n; j++) c[ci + j] += v * b[bp + j];
    }
  }
  return c;
}

/** Copies the block [r0, r1) × [c0, c1) of an n-column matrix. */
function block(a: Float64Array, n: number, r0: number, r1: number, c0: number, c1: number): Float64Array {
  const w = c1 - c0;
  const out = new Float64Array((r1 - r0) * w);
  for (let r = r0; r < r1; r++) out.set(a.subarray(r * n + c0, r * n + c1), (r - r0) * w);
  return out;
}

/** Unblocked in-place lower Cholesky of a w×w matrix; returns false when it is not positive definite. */
function cholUnblocked(a: Float64Array, w: number): boolean {
  for (let j = 0; j < w; j++) {
    let d = a[j * w + j];
    for (let p = 0; p < j; p++) d -= a[j * w + p] * a[j * w + p];
    if (!(d > 0)) return false;
    const l = Math.sqrt(d);
    a[j * w + j] = l;
    for (let i = j + 1; i < w; i++) {
      let s = a[i * w + j];
      for (let p = 0; p < j; p++) s -= a[i * w + p] * a[j * w + p];
      a[i * w + j] = s / l;
    }
    for (let p = j + 1; p < w; p++) a[j * w + p] = 0;
  }
  return true;
}

/** Inverse of a w×w lower triangular matrix (JS). */
function invLowerUnblocked(l: Float64Array, w: number): Float64Array {
  const m = new Float64Array(w * w);
  for (let j = 0; j < w; j++) {
    m[j * w + j] = 1 / l[j * w + j];
    for (let i = j + 1; i < w; i++) {
      let s = 0;
      for (let p = j; p < i; p++) s += l[i * w + p] * m[p * w + j];
      m[i * w + j] = -s / l[i * w + i];
    }
  }
  return m;
}

const BLOCK = 128;

/**
 * Lower Cholesky factor of a symmetric positive definite n×n matrix (in place: the lower triangle is
 * L, the upper is zeroed). Right-looking blocked: factor a diagonal block, solve the panel below it,
 * update the trailing matrix with one product. Throws when the matrix is not positive definite.
 */
export async function cholesky(a: Float64Array, n: number, mm: MatMul): Promise<void> {
  for (let j0 = 0; j0 < n; j0 += BLOCK) {
    const j1 = Math.min(j0 + BLOCK, n);
    const w = j1 - j0;
    const d = block(a, n, j0, j1, j0, j1);
    if (!cholUnblocked(d, w)) throw new RangeError(`matrix is not positive definite (block at ${j0})`);
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
    const upd = await mm(l21, rows, w, l21t, rows);
    for (let r = 0; r < rows; r++) {
      const dst = (j1 + r) * n + j1;
      const src = r * rows;
      for (let c = 0; c <= r; c++) a[dst + c] -= upd[src + c];
    }
  }
  for (let r = 0; r < n; r++) a.fill(0, r * n + r + 1, (r + 1) * n);
}

/** Inverse of an n×n lower triangular matrix, blocked by rows: M[i, :i] = −M_ii · (L[i, :i] · M[:i, :i]). */
export async function invertLower(l: Float64Array, n: number, mm: MatMul): Promise<Float64Array> {
  const m = new Float64Array(n * n);
  for (let i0 = 0; i0 < n; i0 += BLOCK) {
    const i1 = Math.min(i0 + BLOCK, n);
    const w = i1 - i0;
    const mii = invLowerUnblocked(block(l, n, i0, i1, i0, i1), w);
    for (let r = 0; r < w; r++) m.set(mii.subarray(r * w, (r + 1) * w), (i0 + r) * n + i0);
    if (i0 === 0) continue;
    const t = await mm(block(l, n, i0, i1, 0, i0), w, i0, block(m, n, 0, i0, 0, i0), i0);
    const x = await mm(mii, w, w, t, i0);
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
export async function inverseCholeskyUpper(h: Float64Array, n: number, mm: MatMul): Promise<Float64Array> {
  const rev = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) rev[i * n + j] = h[(n - 1 - i) * n + (n - 1 - j)];
  await cholesky(rev, n, mm);
  const inv = await invertLower(rev, n, mm);
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) u[i * n + j] = inv[(n - 1 - i) * n + (n - 1 - j)];
  return u;
}
