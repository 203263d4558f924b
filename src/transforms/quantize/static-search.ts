/**
 * Static quantization as the budget search sees it (src/pipeline/search/): which layers can run with
 * 8-bit activations, their calibrated values, and for any set of layers given 8-bit activations the
 * values that set carries as integers — so that the search can fake-quantize activations per layer, the
 * way it fake-quantizes weights, and decide layer by layer whether activations are 8-bit (QLinear
 * kernels) or float (weight-only int8 for that layer).
 *
 * It is planned as the quantize step plans a build the search assigns (every layer int8 per channel,
 * the opset raised as the step raises it), on a copy of the model, and calibrated on the same
 * calibration samples with the same method, so the values and ranges are those the build writes.
 */
import type { Sample } from '../../data/types.js';
import { cloneModel } from '../../onnx/edit.js';
import { NameScope, opsetVersion } from '../../onnx/graph.js';
import type { ModelProto } from '../../onnx/types.js';
import type { QuantizeStep } from './config.js';
import { wantedOpset } from './delivery.js';
import { planTarget, STATIC_KINDS, type FormEnv, type Plan } from './forms.js';
import { paramsFor } from './precision.js';
import { selectWeights, type Target } from './select.js';
import { calibrateStatic, planStatic, type QuantizedValue } from './static.js';
import { planValues } from './static-values.js';

export interface ActivationSpace {
  /** The model the plan names values of (a copy, with the opset the step will raise it to). */
  model: ModelProto;
  activations: 'uint8' | 'int8';
  /** Layers (Target.name) whose activations can be 8-bit: every use of their weight is a fused group. */
  layers: string[];
  /** Layers asked for static quantization that cannot have 8-bit activations, and why (planStatic's reasons). */
  refused: Map<string, string>;
  /** Every value some set of layers carries as integers (moves aside: they share their root's integers), calibrated. */
  measured: QuantizedValue[];
  /** The measured values carried as integers when exactly these layers have 8-bit activations. */
  valuesFor(eightBit: ReadonlySet<string>): string[];
  /** The opset upgrade, when the step will raise it (its summary), for the log. */
  opset: { from: number; to: number };
}

export async function activationSpace(
  model: ModelProto,
  params: QuantizeStep,
  calibration: Sample[],
  opts: { minElements?: number; intraOpThreads?: number; batch?: number; seed?: number } = {},
): Promise<ActivationSpace> {
  const m = cloneModel(model);
  const names = new NameScope(m);
  const int8 = paramsFor(params, 'int8');
  const selectOpts = { include: params.include, exclude: params.exclude, minElements: opts.minElements, anySize: STATIC_KINDS };
  const from = opsetVersion(m, '') ?? 1;
  const wanted = wantedOpset(selectWeights(m, selectOpts).targets, params, () => int8);
  let env: FormEnv = { opset: from };
  if (wanted > from) {
    const { upgradeForQuantize } = await import('./upgrade.js');
    const u = await upgradeForQuantize(m, model, wanted, names, calibration, opts.seed ?? 0);
    env = { opset: opsetVersion(m, '') ?? from, ...(u?.blocker !== undefined && { blocker: u.blocker }) };
  }
  const targets = selectWeights(m, selectOpts).targets;
  const plans = new Map<Target, Plan>(targets.map((t) => [t, planTarget(t, int8, env)]));
  const plan = planStatic(m, targets, plans, params);
  const anchored = new Set([...plan.anchors.values()].map((a) => a.target));
  const uint8 = plan.activations === 'uint8';
  const plansFor = (eightBit: ReadonlySet<string>) => planValues(m, plan.index, new Map([...plan.anchors].filter(([, a]) => eightBit.has(a.target.name))), new Set(), uint8).values;
  // Every value some set of layers can carry as integers, each measured as its own tensor: the values
  // of the full plan, of each layer alone, and the moves of the full plan (MaxPool after a float layer
  // is a quantized value of its own: its range is not its input's under percentile or entropy).
  // A value that is a folded clamp somewhere keeps that form (its range starts at the clamp's bound).
  const union = new Map<string, QuantizedValue>();
  const add = (v: QuantizedValue) => {
    if (!union.has(v.name)) union.set(v.name, v.source === 'move' ? { name: v.name, source: 'float', producer: v.producer } : v);
  };
  const full = [...plan.values.values()];
  for (const v of full) if (v.source !== 'move') add(v);
  for (const t of anchored) for (const v of plansFor(new Set([t.name])).values()) if (v.source !== 'move') add(v);
  for (const v of full) if (v.source === 'move') add(v);
  await calibrateStatic(m, { ...plan, values: union }, calibration, params, { intraOpThreads: opts.intraOpThreads, batch: opts.batch });
  const measured = [...union.values()].filter((v) => v.params);
  const known = new Set(measured.map((v) => v.name));
  const memo = new Map<string, string[]>();
  return {
    model: m,
    activations: plan.activations,
    layers: targets.filter((t) => anchored.has(t)).map((t) => t.name),
    refused: new Map([...plan.refused].map(([t, why]) => [t.name, why])),
    measured,
    opset: { from, to: env.opset },
    valuesFor(eightBit) {
      const key = [...eightBit].sort().join('\u0000');
      let hit = memo.get(key);
      if (hit) return hit;
      // A value no single layer and not the full plan quantizes (none seen) has no calibrated range: it is left float.
      hit = [...plansFor(eightBit).values()].filter((v) => v.source !== 'move' && known.has(v.name)).map((v) => v.name);
      memo.set(key, hit);
      return hit;
    },
  };
}
