/**
 * Truncated SVD of a weight W [K, N] (row-major float32) into two factors, left [K, r] and
 * right [r, N], with ORT doing every product that touches W:
 *
 * - randomized (Halko, Martinsson & Tropp 2011): Y = W·Ω for a Gaussian Ω [N, l], l = r + 10
 *   oversampling; two power iterations Z = Wᵀ·Q, Y = W·Q_Z, each followed by re-orthonormalization
 *   (Cholesky-QR twice, float64 in ORT; Gram–Schmidt in JS when that breaks down); then the core
 *   B = Qᵀ·W [l, N] is decomposed through the eigenvectors of B·Bᵀ (l×l, JS).
 * - exact: the eigen-decomposition of the Gram matrix of the smaller side (WᵀW or W·Wᵀ, float64 in
 *   ORT, eigen in JS) — gives the whole spectrum, which `energy` needs and which small layers can
 *   afford.
 *
 * Factors are balanced: left = U·√Σ, right = √Σ·Vᵀ, so both have the same scale (kinder to a later
 * quantization step).
 */
import { cholesky, gaussian, invertLower, orthonormalizeRows, transpose } from '../../linalg/dense.js';
import { symmetricEigen } from '../../linalg/eigen.js';
import type { MatrixEngine } from '../../linalg/engine.js';

export interface Factors {
  left: Float32Array;
  right: Float32Array;
  rank: number;
  /** Singular values found, descending (all of them for the exact path, l for the randomized one). */
  sigma: Float64Array;
  /** Σ σ² of the whole matrix (‖W‖²_F). */
  total: number;
}

export interface SvdOptions {
  oversample?: number;
  powerIterations?: number;
  seed?: number;
  /** Force a path; default: exact when min(K, N) ≤ 256 or l ≥ min(K, N)/2. */
  method?: 'exact' | 'randomized';
}

export function frobenius2(w: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += w[i] * w[i];
  return s;
}

/** Smallest r whose Σ_{i<r} σ_i² reaches `energy`·total. */
export function rankForEnergy(sigma: Float64Array, total: number, energy: number): number {
  let acc = 0;
  for (let r = 0; r < sigma.length; r++) {
    acc += sigma[r] * sigma[r];
    if (acc >= energy * total * (1 - 1e-12)) return r + 1;
  }
  return sigma.length;
}

/** Fraction of Σσ² the first r singular values hold. */
export function energyKept(sigma: Float64Array, total: number, r: number): number {
  let acc = 0;
  for (let i = 0; i < Math.min(r, sigma.length); i++) acc += sigma[i] * sigma[i];
  return total > 0 ? Math.min(1, acc / total) : 1;
}

/** Orthonormal basis of the columns of Y [rows, cols] (float64): Cholesky-QR2, or Gram–Schmidt. */
async function orthonormalize(engine: MatrixEngine, y: Float64Array, rows: number, cols: number): Promise<Float64Array> {
  let q = y;
  for (let pass = 0; pass < 2; pass++) {
    const g = await engine.gram(q, rows, cols);
    if (!cholesky(g, cols)) return gramSchmidt(y, rows, cols);
    // R = Lᵀ; Q = Y·R⁻¹ = Y·L⁻ᵀ
    const inv = invertLower(g, cols);
    q = await engine.gemm(q, [rows, cols], inv, [cols, cols], { transB: true });
  }
  return q;
}

function gramSchmidt(y: Float64Array, rows: number, cols: number): Float64Array {
  const t = transpose(y, rows, cols);
  orthonormalizeRows(t, cols, rows);
  return transpose(t, cols, rows);
}

const f32 = (a: Float64Array) => Float32Array.from(a);
const f64 = (a: Float32Array) => Float64Array.from(a);

/** Builds balanced factors from U [K, r] (column j = u_j) and Vᵀ·Σ rows, given σ. */
function balance(u: Float64Array, K: number, sv: Float64Array, N: number, sigma: Float64Array, r: number): { left: Float32Array; right: Float32Array } {
  // u: K×r with unit columns; sv: r×N with row j = σ_j·v_jᵀ
  const left = new Float32Array(K * r);
  const right = new Float32Array(r * N);
  for (let j = 0; j < r; j++) {
    const s = Math.sqrt(Math.max(sigma[j], 0));
    const inv = s > 0 ? 1 / s : 0;
    for (let k = 0; k < K; k++) left[k * r + j] = u[k * r + j] * s;
    for (let n = 0; n < N; n++) right[j * N + n] = sv[j * N + n] * inv;
  }
  return { left, right };
}

/** The spectrum (all σ, descending) from the Gram matrix of the smaller side. */
export async function singularValues(engine: MatrixEngine, w: Float32Array, K: number, N: number): Promise<Float64Array> {
  const w64 = f64(w);
  const g = N <= K ? await engine.gram(w64, K, N) : await engine.gemm(w64, [K, N], w64, [K, N], { transB: true });
  const { values } = symmetricEigen(g, Math.min(K, N), false);
  return values.map((v) => Math.sqrt(Math.max(v, 0)));
}

export async function exactSvd(engine: MatrixEngine, w: Float32Array, K: number, N: number, rank: number): Promise<Factors> {
  const w64 = f64(w);
  const total = frobenius2(w);
  const r = Math.min(rank, K, N);
  if (N <= K) {
    // WᵀW = V Σ² Vᵀ; U·Σ = W·V
    const { values, vectors } = symmetricEigen(await engine.gram(w64, K, N), N, true);
    const sigma = values.map((v) => Math.sqrt(Math.max(v, 0)));
    const vr = new Float64Array(N * r); // N×r, column j = v_j
    for (let j = 0; j < r; j++) for (let n = 0; n < N; n++) vr[n * r + j] = vectors![j * N + n];
    const us = await engine.matmul(w64, K, N, vr, r); // K×r = U·Σ
    const u = new Float64Array(K * r);
    for (let j = 0; j < r; j++) {
      const inv = sigma[j] > 0 ? 1 / sigma[j] : 0;
      for (let k = 0; k < K; k++) u[k * r + j] = us[k * r + j] * inv;
    }
    const sv = new Float64Array(r * N);
    for (let j = 0; j < r; j++) for (let n = 0; n < N; n++) sv[j * N + n] = sigma[j] * vectors![j * N + n];
    return { ...balance(u, K, sv, N, sigma, r), rank: r, sigma, total };
  }
  // W·Wᵀ = U Σ² Uᵀ; Σ·Vᵀ = Uᵀ·W
  const { values, vectors } = symmetricEigen(await engine.gemm(w64, [K, N], w64, [K, N], { transB: true }), K, true);
  const sigma = values.map((v) => Math.sqrt(Math.max(v, 0)));
  const ut = vectors!.subarray(0, r * K); // r×K, row j = u_j
  const sv = await engine.matmul(Float64Array.from(ut), r, K, w64, N); // r×N
  const u = transpose(Float64Array.from(ut), r, K); // K×r
  return { ...balance(u, K, sv, N, sigma, r), rank: r, sigma, total };
}

export async function randomizedSvd(engine: MatrixEngine, w: Float32Array, K: number, N: number, rank: number, opts: SvdOptions = {}): Promise<Factors> {
  const total = frobenius2(w);
  const r = Math.min(rank, K, N);
  const l = Math.min(r + (opts.oversample ?? 10), K, N);
  const wt = transpose(w, K, N); // N×K: products with Wᵀ as plain MatMuls (faster than transA in ORT)
  const omega = gaussian(N * l, opts.seed ?? 1);
  let q = await orthonormalize(engine, f64(await engine.matmul(w, K, N, omega, l)), K, l);
  for (let it = 0; it < (opts.powerIterations ?? 2); it++) {
    const z = await orthonormalize(engine, f64(await engine.matmul(wt, N, K, f32(q), l)), N, l);
    q = await orthonormalize(engine, f64(await engine.matmul(w, K, N, f32(z), l)), K, l);
  }
  // Bᵀ = Wᵀ·Q [N, l]; B·Bᵀ = (Bᵀ)ᵀ·Bᵀ [l, l]
  const bt = f64(await engine.matmul(wt, N, K, f32(q), l));
  const { values, vectors } = symmetricEigen(await engine.gram(bt, N, l), l, true);
  const sigma = values.map((v) => Math.sqrt(Math.max(v, 0)));
  const ub = new Float64Array(l * r); // l×r, column j = eigenvector j
  for (let j = 0; j < r; j++) for (let i = 0; i < l; i++) ub[i * r + j] = vectors![j * l + i];
  const u = await engine.matmul(q, K, l, ub, r); // K×r
  const svT = await engine.matmul(bt, N, l, ub, r); // N×r = (Ubᵀ·B)ᵀ
  const sv = transpose(svT, N, r);
  return { ...balance(u, K, sv, N, sigma, r), rank: r, sigma, total };
}

/** Rank-r factors by the path that suits the shape (see SvdOptions.method). */
export function truncatedSvd(engine: MatrixEngine, w: Float32Array, K: number, N: number, rank: number, opts: SvdOptions = {}): Promise<Factors> {
  const small = Math.min(K, N);
  const l = rank + (opts.oversample ?? 10);
  const method = opts.method ?? (small <= 256 || 2 * l >= small ? 'exact' : 'randomized');
  return method === 'exact' ? exactSvd(engine, w, K, N, rank) : randomizedSvd(engine, w, K, N, rank, opts);
}
