/**
 * How far a compressed model's outputs are from the original's, and how accurate they are against
 * labels. Pure functions on Float32Array + dims; "rows" are the vectors along the last axis (one per
 * sample for [batch, classes] logits).
 *
 * - agreement: fraction of rows whose argmax is the same (top-1 agreement).
 * - cosine: cosine similarity of the whole outputs (1 when both are all zeros).
 * - relRms: ‖ref − test‖ / ‖ref‖ (0 when both are zero, Infinity when only ref is).
 * - maxAbs: max |ref − test|.
 * - kl: mean over rows of KL(softmax(ref) ‖ softmax(test)), in nats.
 *
 * Batched evaluation feeds MetricAccumulator batch by batch; the one-shot functions use it too.
 * NaN in an output makes cosine / relRms / maxAbs / kl NaN (never silently "good").
 */

export interface OutputMetrics {
  agreement: number;
  cosine: number;
  relRms: number;
  maxAbs: number;
  kl: number;
  /** Values per row (the last axis): 1 for a single-value output, where agreement and KL mean nothing. */
  rowSize?: number;
}

/** Size of the last axis (1 for a 0-d value). */
export function lastAxis(dims: readonly number[]): number {
  return dims.length ? dims[dims.length - 1] : 1;
}

/** Index of the largest value in data[start, start+n) (the first one on ties; NaN never wins). */
export function argmax(data: ArrayLike<number>, start = 0, n = data.length - start): number {
  if (n <= 0) return 0;
  let best = 0;
  let bestV = data[start];
  for (let i = 1; i < n; i++) {
    const v = data[start + i];
    if (v > bestV || (bestV !== bestV && v === v)) {
      best = i;
      bestV = v;
    }
  }
  return best;
}

/** Argmax of every row along the last axis. */
export function argmaxRows(data: Float32Array, dims: readonly number[]): Int32Array {
  const c = lastAxis(dims);
  const rows = c === 0 ? 0 : data.length / c;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) out[r] = argmax(data, r * c, c);
  return out;
}

/** log softmax of data[start, start+n) into out. */
function logSoftmax(data: Float32Array, start: number, n: number, out: Float64Array): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (data[start + i] > max) max = data[start + i];
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(data[start + i] - max);
  const lse = max + Math.log(sum);
  for (let i = 0; i < n; i++) out[i] = data[start + i] - lse;
}

/** Sums that make every metric, added to batch by batch. */
export class MetricAccumulator {
  rows = 0;
  agree = 0;
  dot = 0;
  refSq = 0;
  testSq = 0;
  diffSq = 0;
  maxAbs = 0;
  klSum = 0;
  nonFinite = 0;
  rowSize?: number;
  private hasNaN = false;
  private lpRef = new Float64Array(0);
  private lpTest = new Float64Array(0);

  add(ref: Float32Array, test: Float32Array, dims: readonly number[]): this {
    if (ref.length !== test.length) throw new RangeError(`outputs differ in size: ${ref.length} vs ${test.length}`);
    let dot = 0, rs = 0, ts = 0, ds = 0, mx = this.maxAbs;
    for (let i = 0; i < ref.length; i++) {
      const a = ref[i];
      const b = test[i];
      if (!Number.isFinite(b)) this.nonFinite++;
      dot += a * b;
      rs += a * a;
      ts += b * b;
      const d = a - b;
      ds += d * d;
      const ad = Math.abs(d);
      if (ad > mx) mx = ad;
      else if (ad !== ad) this.hasNaN = true;
    }
    this.dot += dot;
    this.refSq += rs;
    this.testSq += ts;
    this.diffSq += ds;
    this.maxAbs = mx;
    const c = lastAxis(dims);
    this.rowSize = c;
    const rows = c === 0 ? 0 : ref.length / c;
    if (this.lpRef.length < c) {
      this.lpRef = new Float64Array(c);
      this.lpTest = new Float64Array(c);
    }
    for (let r = 0; r < rows; r++) {
      const s = r * c;
      if (argmax(ref, s, c) === argmax(test, s, c)) this.agree++;
      logSoftmax(ref, s, c, this.lpRef);
      logSoftmax(test, s, c, this.lpTest);
      let kl = 0;
      for (let i = 0; i < c; i++) {
        const lp = this.lpRef[i];
        const p = Math.exp(lp);
        if (p > 0) kl += p * (lp - this.lpTest[i]);
      }
      this.klSum += kl;
    }
    this.rows += rows;
    return this;
  }

  result(): OutputMetrics {
    const refNorm = Math.sqrt(this.refSq);
    const testNorm = Math.sqrt(this.testSq);
    const nan = this.hasNaN || Number.isNaN(this.dot);
    let cosine: number;
    if (nan) cosine = NaN;
    else if (refNorm === 0 && testNorm === 0) cosine = 1;
    else if (refNorm === 0 || testNorm === 0) cosine = 0;
    else cosine = Math.min(1, Math.max(-1, this.dot / (refNorm * testNorm)));
    const diff = Math.sqrt(this.diffSq);
    const relRms = nan ? NaN : refNorm === 0 ? (diff === 0 ? 0 : Infinity) : diff / refNorm;
    return {
      agreement: this.rows ? this.agree / this.rows : 1,
      cosine,
      relRms,
      maxAbs: nan ? NaN : this.maxAbs,
      kl: this.rows ? this.klSum / this.rows : 0,
      ...(this.rowSize !== undefined && { rowSize: this.rowSize }),
    };
  }
}

export function compareOutputs(ref: Float32Array, test: Float32Array, dims: readonly number[]): OutputMetrics {
  return new MetricAccumulator().add(ref, test, dims).result();
}

export function agreement(ref: Float32Array, test: Float32Array, dims: readonly number[]): number {
  const c = lastAxis(dims);
  const rows = c === 0 ? 0 : ref.length / c;
  let agree = 0;
  for (let r = 0; r < rows; r++) if (argmax(ref, r * c, c) === argmax(test, r * c, c)) agree++;
  return rows ? agree / rows : 1;
}

export function cosineSimilarity(a: Float32Array, b: Float32Array): number {
  return compareOutputs(a, b, [a.length]).cosine;
}

export function relativeRms(ref: Float32Array, test: Float32Array): number {
  return compareOutputs(ref, test, [ref.length]).relRms;
}

export function maxAbsError(ref: Float32Array, test: Float32Array): number {
  return compareOutputs(ref, test, [ref.length]).maxAbs;
}

export function meanKl(ref: Float32Array, test: Float32Array, dims: readonly number[]): number {
  return compareOutputs(ref, test, dims).kl;
}

/** Counts NaN and ±Inf values. */
export function countNonFinite(data: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) n++;
  return n;
}

/**
 * Top-1 correctness against class-index labels. `labels[r]` is the label of row r; negative labels
 * (e.g. -100, the usual "ignore" index) are not counted. Returns correct and counted rows.
 */
export function top1Correct(logits: Float32Array, dims: readonly number[], labels: ArrayLike<number>): { correct: number; counted: number } {
  const c = lastAxis(dims);
  const rows = c === 0 ? 0 : logits.length / c;
  if (labels.length !== rows) throw new RangeError(`${labels.length} labels for ${rows} rows`);
  let correct = 0;
  let counted = 0;
  for (let r = 0; r < rows; r++) {
    const l = labels[r];
    if (!(l >= 0)) continue;
    counted++;
    if (argmax(logits, r * c, c) === l) correct++;
  }
  return { correct, counted };
}

/** Top-1 accuracy against class-index labels (NaN when no row is labeled). */
export function accuracy(logits: Float32Array, dims: readonly number[], labels: ArrayLike<number>): number {
  const { correct, counted } = top1Correct(logits, dims, labels);
  return counted ? correct / counted : NaN;
}

/** Quantile with linear interpolation between order statistics (numpy's default). */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export function latencyStats(ms: readonly number[]): { median: number; p90: number } {
  return { median: quantile(ms, 0.5), p90: quantile(ms, 0.9) };
}
