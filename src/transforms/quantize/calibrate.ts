/**
 * Activation ranges for static quantization, from streaming statistics over the calibration samples.
 *
 *   minmax      the smallest and largest value seen (ONNX Runtime's MinMax calibrator)
 *   percentile  |x| at the given percentile of all values seen, clipped to [min, max] (ORT's Percentile
 *               calibrator with symmetric=True, its default)
 *   entropy     the |x| threshold whose 8-bit quantization keeps the distribution closest to the
 *               original in KL divergence (TensorRT's entropy calibration over 2048 bins; ORT's
 *               calibrate.py runs the same search, but with its default 128 bins it has one
 *               candidate: the whole range)
 *
 * Memory is bounded: per tensor a min, a max and, for percentile / entropy, a histogram of |x| with a
 * fixed number of bins (2048, 16 KB). When a value beyond the histogram's range arrives, bins are merged
 * pairwise and their width doubled, which keeps every count exact: the edges of the coarser histogram
 * are edges of the finer one.
 */

export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy';

export const HISTOGRAM_BINS = 2048;

/** The streaming statistics of one tensor's values. */
export class ValueStats {
  min = Infinity;
  max = -Infinity;
  count = 0;
  /** Histogram of |x|: bin i counts |x| in [i·width, (i+1)·width); the last bin also holds |x| = bins·width. */
  readonly hist: Float64Array | undefined;
  width = 0;
  /** Values seen while every value so far was 0 (no width yet). */
  private zeros = 0;

  /**
   * Per-channel sums along `channelAxis` (1: NCHW / NCL activations; −1: the last axis, a MatMul's K),
   * for channelNoise: how much the quietest channels lose to one per-tensor scale.
   */
  private channels?: { sum: Float64Array; sq: Float64Array; n: number };
  private channelAxis?: 1 | -1;

  constructor(histogram: boolean, readonly bins = HISTOGRAM_BINS, channelAxis?: 1 | -1) {
    this.hist = histogram ? new Float64Array(bins) : undefined;
    this.channelAxis = channelAxis;
  }

  /** Adds one tensor's values, and with `dims` (and a channelAxis) its per-channel sums. */
  addTensor(x: ArrayLike<number>, dims: readonly number[]): void {
    this.add(x);
    if (this.channelAxis === undefined || dims.length < 2) return;
    const axis = this.channelAxis < 0 ? dims.length - 1 : this.channelAxis;
    let outer = 1;
    let inner = 1;
    for (let i = 0; i < axis; i++) outer *= dims[i];
    for (let i = axis + 1; i < dims.length; i++) inner *= dims[i];
    const C = dims[axis];
    if (this.channels && this.channels.sum.length !== C) {
      this.channels = this.channelAxis = undefined; // the channel count changed between samples: no per-channel figure
      return;
    }
    const ch = (this.channels ??= { sum: new Float64Array(C), sq: new Float64Array(C), n: 0 });
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < C; c++) {
        const base = (o * C + c) * inner;
        let s = 0;
        let q = 0;
        for (let i = 0; i < inner; i++) {
          const v = x[base + i];
          s += v;
          q += v * v;
        }
        ch.sum[c] += s;
        ch.sq[c] += q;
      }
    }
    ch.n += outer * inner;
  }

  /**
   * The mean, over channels that vary, of each channel's quantization noise (scale² / 12, uniform
   * rounding) relative to its variance: near 10^(−SQNR/10) when every channel spans the range, and
   * large when quiet channels get a few levels of a scale set by loud ones. Layers after a Conv
   * (BatchNormalization, the next Conv) weigh channels by their own statistics, not by their range, so
   * a quiet channel's noise is amplified as much as a loud channel's signal. Undefined without
   * per-channel sums.
   */
  channelNoise(scale: number): number | undefined {
    const ch = this.channels;
    if (!ch || ch.n === 0) return undefined;
    const vars: number[] = [];
    for (let c = 0; c < ch.sum.length; c++) {
      const m = ch.sum[c] / ch.n;
      vars.push(Math.max(0, ch.sq[c] / ch.n - m * m));
    }
    const top = Math.max(...vars);
    // Channels that do not vary (dead filters, padding) carry no signal to lose.
    const live = vars.filter((v) => v > top * 1e-8);
    if (!live.length) return undefined;
    const noise = (scale * scale) / 12;
    return live.reduce((a, v) => a + noise / v, 0) / live.length;
  }

  add(x: ArrayLike<number>): void {
    let lo = this.min;
    let hi = this.max;
    let amax = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      const a = v < 0 ? -v : v;
      if (a > amax) amax = a;
    }
    if (Number.isNaN(amax) || amax === Infinity) throw new RangeError('activation values are NaN or infinite');
    this.min = lo;
    this.max = hi;
    this.count += x.length;
    const h = this.hist;
    if (!h) return;
    if (this.width === 0) {
      if (amax === 0) {
        this.zeros += x.length;
        return;
      }
      this.width = amax / this.bins;
      h[0] += this.zeros;
      this.zeros = 0;
    }
    while (amax > this.width * this.bins) this.coarsen();
    const inv = 1 / this.width;
    const last = this.bins - 1;
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      const b = ((v < 0 ? -v : v) * inv) | 0;
      h[b > last ? last : b]++;
    }
  }

  /** Merges bins pairwise and doubles the width. */
  private coarsen(): void {
    const h = this.hist!;
    const half = this.bins >> 1;
    for (let i = 0; i < half; i++) h[i] = h[2 * i] + h[2 * i + 1];
    h.fill(0, half);
    this.width *= 2;
  }

  /** Histogram counts with the not-yet-binned zeros in bin 0. */
  counts(): Float64Array {
    const h = Float64Array.from(this.hist!);
    h[0] += this.zeros;
    return h;
  }
}

export interface Range {
  lo: number;
  hi: number;
}

/**
 * The calibrated range of a tensor. `levels`: the quantization levels the threshold will be spread over
 * on the |x| side (entropy only): 128 for int8 symmetric or signed data, 256 for uint8 over values ≥ 0.
 */
export function calibratedRange(s: ValueStats, method: CalibrationMethod, opts: { percentile?: number; levels?: number } = {}): Range {
  if (s.count === 0) return { lo: 0, hi: 0 };
  if (method === 'minmax' || !s.hist || s.width === 0) return { lo: s.min, hi: s.max };
  const t = method === 'percentile' ? percentileThreshold(s, opts.percentile ?? 99.99) : entropyThreshold(s, opts.levels ?? 128);
  return { lo: Math.max(s.min, -t), hi: Math.min(s.max, t) };
}

/** The upper edge of the bin where the share of |x| values at or below it reaches p %. */
export function percentileThreshold(s: ValueStats, p: number): number {
  const h = s.counts();
  const total = h.reduce((a, b) => a + b, 0);
  const want = (total * p) / 100;
  let acc = 0;
  for (let i = 0; i < h.length; i++) {
    acc += h[i];
    if (acc >= want) return (i + 1) * s.width;
  }
  return h.length * s.width;
}

/**
 * The KL threshold search (TensorRT's, in the form of MXNet's and ORT's calibrate.py): for every
 * candidate i (levels … bins), P = the first i bins with all counts beyond folded into bin i − 1 (what
 * clipping at i·width does), Q = the first i bins (without the folded counts) merged into `levels`
 * levels and spread back evenly over the bins where P is non-empty; the i with the least KL(P ‖ Q) wins.
 */
export function entropyThreshold(s: ValueStats, levels: number): number {
  const h = s.counts();
  const n = h.length;
  if (levels >= n) return n * s.width;
  // Suffix sums give each candidate's folded mass in O(1).
  const tail = new Float64Array(n + 1);
  for (let i = n - 1; i >= 0; i--) tail[i] = tail[i + 1] + h[i];
  const total = tail[0];
  const q = new Float64Array(n);
  let best = n;
  let bestKl = Infinity;
  for (let i = levels; i <= n; i++) {
    const p = (k: number) => (k === i - 1 ? h[k] + tail[i] : h[k]);
    let qTotal = 0;
    for (let j = 0; j < levels; j++) {
      const start = Math.floor((j * i) / levels);
      const end = j === levels - 1 ? i : Math.floor(((j + 1) * i) / levels);
      let mass = 0;
      let nonEmpty = 0;
      for (let k = start; k < end; k++) {
        mass += h[k];
        if (p(k) > 0) nonEmpty++;
      }
      const each = nonEmpty ? mass / nonEmpty : 0;
      for (let k = start; k < end; k++) q[k] = p(k) > 0 ? each : 0;
      qTotal += mass;
    }
    let kl = 0;
    for (let k = 0; k < i; k++) {
      const pk = p(k);
      if (pk === 0) continue;
      const pn = pk / total;
      // A bin whose level holds no unclipped mass: a small floor instead of an infinite divergence.
      const qn = qTotal > 0 && q[k] > 0 ? q[k] / qTotal : 1e-10;
      kl += pn * Math.log(pn / qn);
    }
    if (kl < bestKl) {
      bestKl = kl;
      best = i;
    }
  }
  return best * s.width;
}

/** Scale and zero point of a per-tensor activation quantization over `r`. */
export interface ActivationParams {
  scale: number;
  /** The zero point in the stored type: 0..255 for uint8, −128..127 for int8. */
  zero: number;
  type: 'uint8' | 'int8';
  /** The range the parameters were computed from. */
  lo: number;
  hi: number;
}

/**
 * Asymmetric: over [min(lo, 0), max(hi, 0)], scale = span / 255, zero = qmin + round(−lo / scale), so 0 is
 * exact (ORT's compute_scale_zp). Symmetric (int8 only): scale = max|x| / 127, zero 0. An empty range gets
 * scale 1.
 */
export function activationParams(r: Range, type: 'uint8' | 'int8', symmetric = type === 'int8'): ActivationParams {
  const lo = Math.min(r.lo, 0);
  const hi = Math.max(r.hi, 0);
  const qmin = type === 'int8' ? -128 : 0;
  if (symmetric) {
    const m = Math.max(-lo, hi);
    return { scale: m > 0 ? Math.fround(m / 127) : 1, zero: 0, type, lo: r.lo, hi: r.hi };
  }
  const scale = Math.fround((hi - lo) / 255);
  if (!(scale > 0)) return { scale: 1, zero: qmin, type, lo: r.lo, hi: r.hi };
  const zero = qmin + Math.min(255, Math.max(0, Math.round(-lo / scale)));
  return { scale, zero, type, lo: r.lo, hi: r.hi };
}

/**
 * Asymmetric parameters for a value a folded clamp bounds below at `lo` ≤ 0 (Relu: 0; Max(x, −0.4):
 * −0.4), so that the QuantizeLinear's saturation at the type's minimum is the clamp: the lowest code
 * must dequantize to `lo` exactly. With lo = 0 the zero point is the minimum (as activationParams);
 * otherwise the scale is widened just enough that −lo / scale is a whole number of steps n, the zero
 * point sits n above the minimum, and [lo, hi] still fits in 255 steps (a `lo` within one step of 0
 * saturates at the step nearest to it).
 */
export function clampParams(lo: number, hi: number, type: 'uint8' | 'int8'): ActivationParams {
  const top = Math.max(hi, 0);
  if (lo >= 0 || !(top > lo)) return activationParams({ lo: Math.max(lo, 0), hi: top }, type, false);
  const qmin = type === 'int8' ? -128 : 0;
  const n = Math.floor((255 * -lo) / (top - lo));
  // lo within one step of 0: the saturation at the nearest step is as close as the rounding anyway.
  if (n < 1) return activationParams({ lo, hi: top }, type, false);
  let scale = Math.fround(-lo / n);
  // fround may round down: the top of the range must still fit.
  if ((255 - n) * scale < top) scale = Math.fround(scale * (1 + 2 ** -23));
  return { scale, zero: qmin + n, type, lo, hi };
}
