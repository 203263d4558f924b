/**
 * Bytes a weight takes in a planned form (codes, scales and zero points), without quantizing it: to
 * choose, per layer, the smallest of 4-bit, 8-bit and float. A 4-bit layer whose reduce axis is short
 * pays one float scale per few codes (a [130, 1, 128] Conv has K = 1: one scale per weight, larger
 * than the float weight itself), so 4-bit is not always smaller.
 *
 *   form            codes                       scales (float32)           zero points
 *   dq per-tensor   n·bits/8                    1                          1 (when not signed-symmetric)
 *   dq per-channel  n·bits/8                    C                          C·bits/8
 *   dq block b      n·bits/8                    R·⌈K/b⌉                    R·⌈K/b⌉·bits/8
 *   matmulnbits /   N·⌈K/b⌉·b·bits/8            N·⌈K/b⌉                    N·⌈⌈K/b⌉·bits/8⌉
 *   gatherblock     (K padded to whole blocks)
 *   dynamic forms   n                           C (or 1)                   C (or 1)
 */
import { splitAt } from './layout.js';
import type { Plan } from './forms.js';
import type { Target } from './select.js';

export function plannedBytes(t: Target, plan: Plan): number {
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (plan.keepFloat) return n * 4;
  const bits = plan.bits;
  const [outer, K, inner] = splitAt(t.shape, t.reduceAxis);
  const R = outer * inner;
  const zeroPoints = !(plan.signed && plan.symmetric);
  const packed = (count: number) => Math.ceil((count * bits) / 8);
  if (plan.form === 'matmulnbits' || plan.form === 'gatherblock') {
    const block = plan.opBlock ?? (typeof plan.granularity === 'number' ? plan.granularity : K);
    const nb = Math.ceil(K / block);
    return R * nb * ((block * bits) / 8) + R * nb * 4 + (zeroPoints ? R * packed(nb) : 0);
  }
  const C = t.shape[t.channelAxis] ?? 1;
  const groups = plan.granularity === 'per-tensor' ? 1 : plan.granularity === 'per-channel' ? C : R * Math.ceil(K / Math.min(plan.granularity, K));
  return packed(n) + groups * 4 + (zeroPoints ? packed(groups) : 0);
}
