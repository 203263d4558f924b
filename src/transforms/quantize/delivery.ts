/**
 * What each layer gets against what it was asked for (precisions in precision.ts's notation: `int4:32`,
 * `int8`, `int8:tensor`, `float16`, `float32`). They differ when the model's opset has no form for the
 * request (forms.ts), or when a smaller form exists:
 *
 * - depthwise-separable networks: their Convs are 8-bit under a 4-bit request (separable.ts);
 * - streaming models: the weights that feed a recurrent state carried across calls are 8-bit under a
 *   4-bit request (recurrent.ts);
 * - size-aware 4-bit: a layer whose 4-bit form (codes + scales + zero points) is not smaller than its
 *   8-bit form is written 8-bit; any layer whose quantized form is not smaller than the float weight
 *   stays float. So a 4-bit model is never larger than the 8-bit one, layer by layer.
 * - the per-layer table (the step report's `layers`) states `requested`, `delivered` and `reason`; one
 *   warning line per model sums the differences up; `quantize.strict` turns that line into an error.
 */
import { opsetVersion } from '../../onnx/graph.js';
import { NEWEST_OPSET, upgradeOpset } from '../../onnx/opset/index.js';
import type { ModelProto } from '../../onnx/types.js';
import type { LayerReport } from '../types.js';
import type { QuantizeStep } from './config.js';
import { opsetNeeded, planTarget, STATIC_KINDS, type FormEnv, type Plan } from './forms.js';
import { deliveredPrecision, requestedPrecision } from './precision.js';
import type { Target } from './select.js';
import { plannedBytes } from './size.js';

const join = (...parts: (string | undefined)[]) => parts.filter(Boolean).join('; ') || undefined;

/** The precision a layer's parameters ask for (int8 per tensor included, which an assignment never sets). */
export function askedPrecision(p: QuantizeStep): string | undefined {
  if ((p.dtype === 'int8' || p.dtype === 'uint8') && p.granularity === 'per-tensor') return 'int8:tensor';
  return requestedPrecision(p);
}

/** The precision a plan delivers: float16 for a weight left float when the model goes float16 (q4f16). */
export function planPrecision(plan: Plan, float16: boolean): string {
  if (plan.keepFloat) return float16 ? 'float16' : 'float32';
  return deliveredPrecision(plan.bits, plan.granularity);
}

/**
 * The plan for a weight, with the smallest of 4-bit / 8-bit / float chosen as the file comment says.
 * `eightBit`: why this weight must not be 4-bit (separable.ts, recurrent.ts), when it must not.
 */
export function sizeAwarePlan(t: Target, p: QuantizeStep, env: FormEnv, eightBit?: string): Plan {
  let plan = planTarget(t, p, env);
  if (plan.keepFloat) return plan;
  const elements = t.shape.reduce((a, b) => a * b, 1);
  if (p.dtype === 'int4' || p.dtype === 'uint4') {
    // The 4-bit form as an opset that has it would write it: when every layer ends up 8-bit (by size or by
    // a rule) the opset is not raised, and the reason to state is the size or the rule, not the opset.
    const four = plan.bits === 4 ? plan : planTarget(t, p, { opset: NEWEST_OPSET });
    const eight = planTarget(t, { ...p, dtype: four.signed ? 'int8' : 'uint8', granularity: 'per-channel' }, env);
    if (four.bits === 4 && !four.keepFloat && !eight.keepFloat) {
      const b4 = plannedBytes(t, four);
      const b8 = plannedBytes(t, eight);
      // The size reason first: it holds whatever the network.
      if (b4 >= b8) plan = { ...eight, lowered: join(eight.lowered, `its 4-bit form with scales (${b4} B) is not smaller than 8-bit (${b8} B)`) };
      else if (eightBit) plan = { ...eight, lowered: join(eight.lowered, eightBit) };
    }
  }
  // Static quantization quantizes a fused op's weight whatever its size: the gain is speed, not bytes.
  if (p.activations && plan.bits === 8 && plan.form === 'dq' && STATIC_KINDS.includes(t.kind)) return plan;
  // float16 (q4f16) halves what the weight would cost if left float.
  const floatBytes = elements * (p.float16 ? 2 : 4);
  const b = plannedBytes(t, plan);
  if (b >= floatBytes) {
    const why = `its quantized form (${b} B) is not smaller than ${p.float16 ? 'float16' : 'float32'} (${floatBytes} B)`;
    return { ...plan, keepFloat: why, lowered: join(plan.lowered, why) };
  }
  return plan;
}

/** The newest opset the chosen forms need for these weights (`assigned`: a layer's own parameters from a
 *  precision assignment), as if any opset were available. */
export function wantedOpset(targets: Target[], p: QuantizeStep, assigned: (t: Target) => QuantizeStep | undefined, eightBit: (t: Target) => string | undefined = () => undefined): number {
  let need = 1;
  const env = { opset: NEWEST_OPSET };
  for (const t of targets) {
    const a = assigned(t);
    need = Math.max(need, opsetNeeded(a ? planTarget(t, a, env) : sizeAwarePlan(t, p, env, eightBit(t))));
  }
  return need;
}

/**
 * The forms' environment the quantize step will have after raising the opset (without raising it):
 * the newest of 21, 13, 11, 10 that every node converts to, and what blocks the newer ones. For the
 * precision search, which must predict what the build writes.
 */
export function predictedEnv(model: ModelProto): FormEnv {
  const from = opsetVersion(model, '') ?? 1;
  let blocker: string | undefined;
  for (const to of [NEWEST_OPSET, 13, 11, 10]) {
    if (to <= from) break;
    const r = upgradeOpset(model, to, undefined, { dryRun: true });
    if (!r.unconvertible.length) return { opset: to, ...(blocker !== undefined && { blocker }) };
    const u = r.unconvertible[0];
    blocker ??= `${u.op} node "${u.node}" cannot be converted to opset ${to}: ${u.reason}`;
  }
  return { opset: from, ...(blocker !== undefined && { blocker }) };
}

/** One line summing up the layers delivered at another precision than asked, or undefined. */
export function deliverySummary(layers: LayerReport[]): string | undefined {
  const asked = layers.filter((l) => l.requested !== undefined);
  const differing = asked.filter((l) => l.requested !== l.delivered);
  if (!differing.length) return undefined;
  const byDelivered = new Map<string, number>();
  const requested = new Set<string>();
  const reasons = new Set<string>();
  for (const l of differing) {
    requested.add(l.requested!);
    byDelivered.set(l.delivered!, (byDelivered.get(l.delivered!) ?? 0) + 1);
    // Byte counts differ per layer; the summary names the kind of reason once.
    for (const r of (l.reason ?? 'no reason recorded').split('; ')) reasons.add(r.replace(/ \(\d+ B\)/g, ''));
  }
  const got = [...byDelivered].map(([d, n]) => `${n} as ${d}`).join(', ');
  return `${differing.length} of ${asked.length} layers delivered at another precision than the requested ${[...requested].join('/')}: ${got} (${[...reasons].join('; ')}); see the per-layer table`;
}
