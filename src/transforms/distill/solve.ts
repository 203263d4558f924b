/**
 * The closed-form solves of layer-wise distillation, in float64 from sufficient statistics
 * (Stats: Gram matrices accumulated by onnxruntime). Small dense algebra in JS (src/linalg/): the
 * systems are K×K (inputs of one layer) and r×r (a rank).
 */
import { CompressError } from '../../errors.js';
import { NotPositiveDefiniteError, solveDamped } from '../../linalg/blocked.js';
import { matmulSmall as matmul, transpose } from '../../linalg/dense.js';
import type { Unit } from './units.js';

export interface Stats {
  /** Augmented Gram [[XᵀX, Σx], [Σxᵀ, rows]] ((K+1)², float64). */
  G: Float64Array;
  /** Augmented cross [[XᵀY], [ΣY]] ((K+1)×Nt). */
  C: Float64Array;
  /** ‖Y‖² per teacher column. */
  yy: Float64Array;
  /** Student outputs × teacher outputs (Ns×Nt) and ‖Ys‖² per column, when Ns ≠ Nt. */
  cross?: Float64Array;
  ss?: Float64Array;
  rows: number;
  Nt: number;
}

/**
 * Ridge-damped normal equations: solves (A + λ·I)·X = B + λ·X₀ for symmetric positive semi-definite
 * A (n×n), B n×m, λ = δ·mean(diag A) — least squares pulled toward the current weights X₀ (zero
 * when absent), so an input that never varies on the data (a dead ReLU) keeps its weight instead of
 * losing it. δ grows tenfold until the Cholesky factorization succeeds. In JS (no engine), so the
 * result does not depend on one.
 */
export async function solveSpd(A: Float64Array, n: number, B: Float64Array, m: number, ridge: number, prior?: Float64Array): Promise<Float64Array> {
  const X = Float64Array.from(B);
  try {
    await solveDamped(A, n, X, m, { damping: ridge, prior });
  } catch (e) {
    if (e instanceof NotPositiveDefiniteError) throw new CompressError('compress', 'layerwise distillation: a Gram matrix is not positive definite even with damping');
    throw e;
  }
  return X;
}

export function concat(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Σ_n wₙᵀ·G·wₙ − 2·wₙᵀ·cₙ + ‖yₙ‖² for W (K+1)×N (bias in the last row) against target columns `cols`. */
export function objective(st: Stats, W: Float64Array, N: number, cols: number[]): number {
  const A = Math.round(Math.sqrt(st.G.length));
  const GW = matmul(st.G, A, A, W, N);
  let f = 0;
  for (let n = 0; n < N; n++) {
    const c = cols[n];
    for (let k = 0; k < A; k++) f += W[k * N + n] * (GW[k * N + n] - 2 * st.C[k * st.Nt + c]);
    f += st.yy[c];
  }
  return f;
}

/** Student channel → teacher channel, greedily by cosine of their activations (each teacher channel once). */
export function matchChannels(st: Stats, N: number): number[] {
  if (!st.cross) return Array.from({ length: N }, (_, i) => i);
  const pairs: [number, number, number][] = [];
  for (let i = 0; i < N; i++) for (let j = 0; j < st.Nt; j++) pairs.push([st.cross[i * st.Nt + j] / Math.sqrt(st.ss![i] * st.yy[j] || 1), i, j]);
  pairs.sort((a, b) => b[0] - a[0]);
  const match = new Array<number>(N).fill(-1);
  const used = new Set<number>();
  for (const [, i, j] of pairs) {
    if (match[i] >= 0 || used.has(j)) continue;
    match[i] = j;
    used.add(j);
  }
  return match;
}

/** Rows/cols `keep` of a square matrix, and entries `keep` of column `col` of a (K+1)×Nt matrix. */
function subSystem(st: Stats, keep: number[], col: number): { A: Float64Array; b: Float64Array } {
  const n = keep.length;
  const S = Math.round(Math.sqrt(st.G.length));
  const A = new Float64Array(n * n);
  const b = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) A[i * n + j] = st.G[keep[i] * S + keep[j]];
    b[i] = st.C[keep[i] * st.Nt + col];
  }
  return { A, b };
}

export interface Solution {
  W: Float64Array; // (K+1)×N effective weight with the bias row
  U?: Float64Array;
  V?: Float64Array;
}

export async function solveUnit(u: Unit, st: Stats, current: Solution, cols: number[], mask: Uint8Array | undefined, opts: { ridge?: number; alsRounds?: number }): Promise<Solution> {
  const ridge = opts.ridge ?? 1e-4;
  const { K, N } = u;
  const A = K + 1;
  const hasBias = u.bias !== undefined;
  const keepRows = (k: number) => k < K || hasBias;
  const target = new Float64Array(A * N);
  for (let k = 0; k < A; k++) for (let n = 0; n < N; n++) target[k * N + n] = st.C[k * st.Nt + cols[n]];
  if (u.kind === 'dense' || (u.kind === 'pruned' && !mask)) {
    const rows = Array.from({ length: A }, (_, k) => k).filter(keepRows);
    const { A: G } = subSystem(st, rows, 0);
    const B = new Float64Array(rows.length * N);
    const prior = new Float64Array(rows.length * N);
    rows.forEach((k, i) => {
      B.set(target.subarray(k * N, (k + 1) * N), i * N);
      prior.set(current.W.subarray(k * N, (k + 1) * N), i * N);
    });
    const X = await solveSpd(G, rows.length, B, N, ridge, prior);
    const W = new Float64Array(A * N);
    rows.forEach((k, i) => W.set(X.subarray(i * N, (i + 1) * N), k * N));
    return { W };
  }
  if (u.kind === 'pruned') {
    const W = new Float64Array(A * N);
    for (let n = 0; n < N; n++) {
      const keep = Array.from({ length: A }, (_, k) => k).filter((k) => (k < K ? mask![k * N + n] === 1 : hasBias));
      if (keep.length === 0) continue;
      const { A: G, b } = subSystem(st, keep, cols[n]);
      const x = await solveSpd(G, keep.length, b, 1, ridge, Float64Array.from(keep, (k) => current.W[k * N + n]));
      keep.forEach((k, i) => (W[k * N + n] = x[i]));
    }
    return { W };
  }
  // Factorized: W = U·V (K×r, r×N), bias b. Alternate: [V; b] with U fixed, then U with V, b fixed.
  let U = current.U!;
  let V = current.V!;
  const r = V.length / N;
  const Gxx = new Float64Array(K * K);
  for (let i = 0; i < K; i++) Gxx.set(st.G.subarray(i * A, i * A + K), i * K);
  const sx = Float64Array.from({ length: K }, (_, i) => st.G[i * A + K]);
  const Cx = target.subarray(0, K * N);
  const ty = target.subarray(K * N);
  let bias = current.W.slice(K * N);
  const effective = (): Float64Array => {
    const W = new Float64Array(A * N);
    W.set(matmul(U, K, r, V, N));
    W.set(bias, K * N);
    return W;
  };
  let best = { W: effective(), U, V, f: objective(st, effective(), N, cols) };
  for (let round = 0; round < (opts.alsRounds ?? 4); round++) {
    // V-step: H = [X·U, 1]; HᵀH = [[UᵀGU, Uᵀs], [sᵀU, rows]], HᵀY = [[UᵀCx], [ty]].
    const GU = matmul(Gxx, K, K, U, r);
    const Ut = transpose(U, K, r);
    const H = r + (hasBias ? 1 : 0);
    const HH = new Float64Array(H * H);
    const UGU = matmul(Ut, r, K, GU, r);
    for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) HH[i * H + j] = UGU[i * r + j];
    const Us = matmul(Ut, r, K, sx, 1);
    const HY = new Float64Array(H * N);
    HY.set(matmul(Ut, r, K, Cx, N));
    if (hasBias) {
      for (let i = 0; i < r; i++) HH[i * H + r] = HH[r * H + i] = Us[i];
      HH[r * H + r] = st.G[K * A + K];
      HY.set(ty, r * N);
    }
    const Vb = await solveSpd(HH, H, HY, N, ridge, hasBias ? concat(V, bias) : V);
    V = Vb.slice(0, r * N);
    if (hasBias) bias = Vb.slice(r * N);
    // U-step: Gxx·U·(V·Vᵀ) = (Cx − s·bᵀ)·Vᵀ.
    const Vt = transpose(V, r, N);
    const R = Float64Array.from(Cx);
    if (hasBias) for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) R[k * N + n] -= sx[k] * bias[n];
    const P = matmul(R, K, N, Vt, r);
    const VV = matmul(V, r, N, Vt, r);
    const Z = await solveSpd(Gxx, K, P, r, ridge, matmul(U, K, r, VV, r)); // Gxx⁻¹·P (K×r), pulled toward U·VVᵀ
    U = transpose(await solveSpd(VV, r, transpose(Z, K, r), K, ridge, transpose(U, K, r)), r, K); // Z·(VVᵀ)⁻¹
    const W = effective();
    const f = objective(st, W, N, cols);
    if (f < best.f) best = { W, U, V, f };
  }
  return { W: best.W, U: best.U, V: best.V };
}
