/**
 * Activation-aware channel pruning, the data-driven parts (calibration Gram matrices of the readers'
 * inputs, H = XᵀX over features, s = Σx, n rows):
 *
 * - blockScores: the exact output energy a channel carries into its readers, Σ ‖X_c·W_c‖² =
 *   Σ tr(W_cᵀ H_cc W_c) over the channel's input features c (the diagonal of H_cc alone gives the
 *   "activation norm × weight norm" score).
 * - compensate: after removing features R, the kept rows K of the reader (and its bias, as the weight
 *   of a constant feature) are refit by least squares so the reader's output changes least:
 *   (H_KK + λI)·Δ = H_KR·W_R, W_K += Δ. λ = 1 % of the mean diagonal keeps the fit from chasing noise
 *   when there are fewer calibration rows than features.
 */
import { solveDamped } from '../../linalg/blocked.js';
import type { MatrixEngine } from '../../linalg/engine.js';
import type { Absorber, ChannelPlan } from './channels.js';
import type { FeatureStats } from './stats.js';
import type { Layer } from './select.js';

export function blockScores(plan: ChannelPlan, stats: (a: Absorber) => FeatureStats | undefined, weight: (a: Absorber) => Float32Array): Float64Array | undefined {
  const s = new Float64Array(plan.channels);
  for (const a of plan.absorbers) {
    const st = stats(a);
    if (!st?.gram) return undefined;
    const w = weight(a);
    const { N, K, strideK, strideN } = a.layer;
    const f = a.features;
    const wc = new Float64Array(f);
    for (let c = 0; c < plan.channels; c++) {
      let e = 0;
      for (let n = 0; n < N; n++) {
        for (let j = 0; j < f; j++) wc[j] = w[(c * f + j) * strideK + n * strideN];
        for (let i = 0; i < f; i++) {
          const row = (c * f + i) * K + c * f;
          let hi = 0;
          for (let j = 0; j < f; j++) hi += st.gram[row + j] * wc[j];
          e += wc[i] * hi;
        }
      }
      s[c] += Math.max(0, e);
    }
  }
  for (let c = 0; c < plan.channels; c++) s[c] = Math.sqrt(s[c]);
  return s;
}

/**
 * Refits a reader's kept input rows (stored layout in, stored layout out; removed rows are zeroed)
 * and its bias. Returns undefined when the statistics do not fit the layer.
 */
export async function compensate(
  engine: MatrixEngine,
  layer: Layer,
  st: FeatureStats,
  w: Float32Array,
  bias: Float32Array | undefined,
  removedFeatures: readonly number[],
  damping = 0.01,
): Promise<{ weight: Float32Array; bias?: Float32Array } | undefined> {
  const { K, N, strideK, strideN } = layer;
  if (!st.gram || st.features !== K || layer.group !== 1) return undefined;
  const gone = new Set(removedFeatures);
  const kept = Array.from({ length: K }, (_, k) => k).filter((k) => !gone.has(k));
  const removed = [...gone].sort((a, b) => a - b);
  const withBias = !!bias;
  const m = kept.length + (withBias ? 1 : 0);
  // Augmented Gram over kept features (+ the constant feature for the bias).
  const hkk = new Float64Array(m * m);
  for (let i = 0; i < kept.length; i++) {
    const ri = kept[i] * K;
    for (let j = 0; j < kept.length; j++) hkk[i * m + j] = st.gram[ri + kept[j]];
    if (withBias) {
      hkk[i * m + m - 1] = st.sum[kept[i]];
      hkk[(m - 1) * m + i] = st.sum[kept[i]];
    }
  }
  if (withBias) hkk[m * m - 1] = st.rows;
  // Right-hand side H_KR·W_R (m×N).
  const rhs = new Float64Array(m * N);
  const wr = new Float64Array(removed.length * N);
  removed.forEach((r, i) => {
    for (let n = 0; n < N; n++) wr[i * N + n] = w[r * strideK + n * strideN];
  });
  const hkr = new Float64Array(m * removed.length);
  for (let i = 0; i < kept.length; i++) for (let j = 0; j < removed.length; j++) hkr[i * removed.length + j] = st.gram[kept[i] * K + removed[j]];
  if (withBias) for (let j = 0; j < removed.length; j++) hkr[(m - 1) * removed.length + j] = st.sum[removed[j]];
  if (removed.length) rhs.set(await engine.matmul(hkr, m, removed.length, wr, N));
  await solveDamped(hkk, m, rhs, N, { damping, engine });
  const out = w.slice();
  for (const r of removed) for (let n = 0; n < N; n++) out[r * strideK + n * strideN] = 0;
  kept.forEach((k, i) => {
    for (let n = 0; n < N; n++) out[k * strideK + n * strideN] += rhs[i * N + n];
  });
  const newBias = bias?.map((b, n) => b + rhs[(m - 1) * N + n]);
  return { weight: out, bias: newBias };
}
