/**
 * The int32 bias of a fused Conv / Gemm is round(b / (x_scale · w_scale[c])). A channel whose weights are
 * all near zero (dead filters: PP-OCRv4's detector and recognizer have some) gets a tiny weight scale, and
 * its bias then needs more than 31 bits: clamped, the channel's output loses its bias and is wrong
 * everywhere (PP-OCRv4 det static uint8 fell to cosine 0.86 from one such channel). As TensorFlow Lite's
 * quantizer does (AdjustWeightsForBiasScale), the channel's weight scale is widened instead until its
 * bias fits, and its weight codes re-rounded with the wider scale: its weights are negligible next to
 * its bias, which is now exact to one part in 2^30.
 */
import { dimsOf, tensorFloat32 } from '../../onnx/tensor.js';
import { splitAt } from './layout.js';
import type { Target } from './select.js';
import type { StaticPlan } from './static-types.js';
import type { WeightQuant } from './weights.js';

/** The largest |int32 bias| written: 2^30 leaves the accumulator room for the products it is added to. */
export const BIAS_LIMIT = 2 ** 30;

/**
 * Widens, in place, the per-channel scales (layout 'axis') of `t` whose bias would exceed BIAS_LIMIT
 * with the smallest input scale among its fused uses, and re-rounds those channels' codes. Returns how
 * many channels were widened.
 */
export function fitBias(t: Target, q: WeightQuant, plan: StaticPlan): number {
  let xScale = Infinity;
  let bias: Float32Array | undefined;
  for (const a of plan.anchors.values()) {
    if (a.target !== t || a.kind === 'matmul' || !a.node.input[2]) continue;
    const p = plan.values.get(a.input)?.params;
    const site = plan.index.weight(a.node.input[2]);
    if (!p || !site || dimsOf(site.tensor).length !== 1) continue;
    xScale = Math.min(xScale, p.scale);
    bias ??= tensorFloat32(site.tensor);
  }
  if (!bias || !(xScale < Infinity)) return 0;
  const [outer, C, inner] = splitAt(q.dims, q.axis);
  if (C !== bias.length || q.scales.length !== C) return 0;
  let widened = 0;
  for (let c = 0; c < C; c++) {
    const s = q.scales[c];
    const need = Math.abs(bias[c]) / (xScale * BIAS_LIMIT);
    if (!(need > s)) continue;
    // fround may round down: one ulp up keeps round(b / (x · s')) within the limit.
    let wide = Math.fround(need);
    if (wide < need) wide = Math.fround(need * (1 + 2 ** -23));
    const z = q.zeros[c];
    const hi = (1 << q.bits) - 1;
    for (let o = 0; o < outer; o++) {
      const base = (o * C + c) * inner;
      for (let i = 0; i < inner; i++) {
        const k = base + i;
        const v = Math.round(((q.codes[k] - z) * s) / wide) + z;
        q.codes[k] = v < 0 ? 0 : v > hi ? hi : v;
      }
    }
    q.scales[c] = wide;
    widened++;
  }
  return widened;
}
