/**
 * Unstructured pruning: zero the lowest-scoring weights, exactly `round(rate·n)` of them.
 *
 * - magnitude, per layer or global: the k-th smallest |w| is found by a two-pass radix select on the
 *   float bits (|x| as uint32 is order-preserving for non-negative floats): 65,536-bin histogram of the
 *   top 16 bits, then of the low 16 bits inside the chosen bin. O(n), no sort.
 * - activation-aware (Wanda): score |W_kn|·‖X_k‖, compared within each output unit (row of the
 *   output); `global` pools scores normalized by each layer's RMS score.
 * Ties at the threshold are pruned in storage order, so the count is exact.
 */
import { inputFeature, type Layer } from './select.js';
import { pruneSmallestSimd } from './magnitude-simd.js';

const ABS = 0x7fffffff;

/** Bits of the k-th smallest key (1 ≤ k ≤ total) and how many keys are strictly below it. */
export function radixSelect(keys: Uint32Array[], k: number, mask = ABS): { bits: number; below: number } {
  const hi = new Float64Array(65536);
  for (const a of keys) for (let i = 0; i < a.length; i++) hi[(a[i] & mask) >>> 16]++;
  let below = 0;
  let b = 0;
  for (; b < 65536; b++) {
    if (below + hi[b] >= k) break;
    below += hi[b];
  }
  const lo = new Float64Array(65536);
  for (const a of keys) {
    for (let i = 0; i < a.length; i++) {
      const v = a[i] & mask;
      if (v >>> 16 === b) lo[v & 0xffff]++;
    }
  }
  let l = 0;
  for (; l < 65536; l++) {
    if (below + lo[l] >= k) break;
    below += lo[l];
  }
  return { bits: ((b << 16) | l) >>> 0, below };
}

/** What a pruning pass did to one tensor. */
export interface PruneResult {
  values: Float32Array;
  zeros: number;
  /** Relative weight error ‖W − W'‖/‖W‖. */
  weightError: number;
}

/**
 * Keeps the elements of `values` whose key is not among the k smallest (over all arrays together)
 * and zeroes the rest: radixSelect finds the k-th smallest key T and how many keys are below it, then one
 * pass writes the output: keys below T zeroed, keys above kept, and of the keys equal to T the first
 * (k − below) in storage order (array by array) zeroed.
 */
function zeroSmallest(keys: Uint32Array[], values: Float32Array[], k: number, mask = ABS, inPlace = false): PruneResult[] {
  // T = −1 when nothing goes: every key (≥ 0 once masked) is above it.
  const sel = k > 0 ? radixSelect(keys, k, mask) : undefined;
  const threshold = { bits: sel ? sel.bits : -1, ties: sel ? k - sel.below : 0 };
  return values.map((w, a) => writePass(w, keys[a], mask, threshold, inPlace ? w : new Float32Array(w.length)));
}

/**
 * Copies w into `out` (which may be w itself), zeroing the elements whose key is below `t.bits`, and
 * `t.ties` of those equal to it (counting them down). Branch-free on the keep/drop decision (it is a
 * coin flip at 50 %, and mispredicted branches tripled the time): the output bits are the input bits
 * masked by 0 or ~0; only the rare key equal to the threshold takes a branch. In place (out = w, keys =
 * w's bits) is safe: element i's key and value are read before it is written.
 */
function writePass(w: Float32Array, key: Uint32Array, mask: number, t: { bits: number; ties: number }, out: Float32Array): PruneResult {
  const wb = new Uint32Array(w.buffer, w.byteOffset, w.length);
  const ob = new Uint32Array(out.buffer, out.byteOffset, out.length);
  const bits = t.bits;
  let ties = t.ties;
  let dropped = 0;
  let zerosKept = 0;
  let removed = 0;
  let total = 0;
  for (let i = 0; i < w.length; i++) {
    const x = w[i];
    const x2 = x * x;
    const kv = key[i] & mask;
    // Keys are < 2^31 once masked, so bits − kv fits an int32: its sign bit says kv > bits.
    let keep = ((bits - kv) >>> 31) & 1;
    if (kv === bits) {
      keep = ties > 0 ? 0 : 1;
      ties -= 1 - keep;
    }
    const zero = (wb[i] & 0x7fffffff) === 0;
    ob[i] = wb[i] & -keep;
    total += x2;
    removed += x2 * (1 - keep);
    dropped += 1 - keep;
    if (zero) zerosKept += keep;
  }
  t.ties = ties;
  return { values: out, zeros: dropped + zerosKept, weightError: total > 0 ? Math.sqrt(removed / total) : 0 };
}

function bitsOf(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** Magnitude pruning of each weight separately (`global` false) or with one threshold over all. */
export function pruneMagnitude(weights: Float32Array[], rate: number, global: boolean): PruneResult[] {
  if (global) {
    const total = weights.reduce((s, w) => s + w.length, 0);
    return zeroSmallest(weights.map(bitsOf), weights, Math.round(rate * total));
  }
  return weights.map((w) => zeroSmallest([bitsOf(w)], [w], Math.round(rate * w.length))[0]);
}

/**
 * Magnitude pruning of one weight in place: exactly round(rate·n) elements zeroed in `w` itself, for a
 * pipeline that owns the model's bytes and needs no copy of them (a 378 MB model is then pruned in the
 * memory it was read into).
 */
export function pruneMagnitudeInPlace(w: Float32Array, rate: number): Omit<PruneResult, 'values'> {
  const k = Math.round(rate * w.length);
  // On WebAssembly where it runs (magnitude-simd.ts): the same elements zeroed, ~3× faster.
  const simd = pruneSmallestSimd(w, k);
  if (simd) return simd;
  return pruneMagnitudeInPlaceJs(w, rate);
}

/** pruneMagnitudeInPlace in JS: the reference, and what runs where WebAssembly does not. */
export function pruneMagnitudeInPlaceJs(w: Float32Array, rate: number): Omit<PruneResult, 'values'> {
  const [r] = zeroSmallest([bitsOf(w)], [w], Math.round(rate * w.length), ABS, true);
  return { zeros: r.zeros, weightError: r.weightError };
}

/** Wanda scores |W|·‖X_feature‖ in storage order. */
export function wandaScores(layer: Layer, w: Float32Array, featureNorm: Float64Array): Float32Array {
  const s = new Float32Array(w.length);
  for (let n = 0; n < layer.N; n++) {
    for (let k = 0; k < layer.K; k++) {
      const i = k * layer.strideK + n * layer.strideN;
      s[i] = Math.abs(w[i]) * featureNorm[inputFeature(layer, k, n)];
    }
  }
  return s;
}

/** Wanda within each output unit: round(rate·K) weights per output. */
export function pruneWandaRows(layer: Layer, w: Float32Array, scores: Float32Array, rate: number): Float32Array {
  const out = w.slice();
  const k = Math.round(rate * layer.K);
  if (k <= 0) return out;
  const row = new Float32Array(layer.K);
  for (let n = 0; n < layer.N; n++) {
    for (let j = 0; j < layer.K; j++) row[j] = scores[j * layer.strideK + n * layer.strideN];
    const sorted = row.slice().sort();
    const t = sorted[k - 1];
    let below = 0;
    for (let j = 0; j < layer.K; j++) if (row[j] < t) below++;
    let ties = k - below;
    for (let j = 0; j < layer.K; j++) {
      if (row[j] < t || (row[j] === t && ties-- > 0)) out[j * layer.strideK + n * layer.strideN] = 0;
    }
  }
  return out;
}

/** Global Wanda: scores divided by each layer's RMS score, one threshold over all layers. */
export function pruneWandaGlobal(weights: Float32Array[], scores: Float32Array[], rate: number): PruneResult[] {
  const normalized = scores.map((s) => {
    let ss = 0;
    for (let i = 0; i < s.length; i++) ss += s[i] * s[i];
    const rms = Math.sqrt(ss / Math.max(1, s.length)) || 1;
    const out = new Float32Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s[i] / rms;
    return out;
  });
  const total = weights.reduce((s, w) => s + w.length, 0);
  return zeroSmallest(normalized.map(bitsOf), weights, Math.round(rate * total));
}

export function countZeros(a: Float32Array): number {
  let z = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === 0) z++;
  return z;
}
