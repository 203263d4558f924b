/**
 * Figures of one assignment's outputs against the float32 reference outputs, on the search samples,
 * and whether they meet a budget. The same limits as checkBudget (src/eval/budget.ts), applied to the
 * budget's output, plus a continuous "damage" that ranks layers where the budget's own metric is a step
 * function (an accuracy drop moves by whole samples; KL between the class distributions does not).
 */
import type { Sample } from '../../data/types.js';
import { lastAxis, MetricAccumulator, top1Correct, type OutputMetrics } from '../../eval/metrics.js';
import type { Budget } from '../../eval/types.js';
import type { RunOutputs } from './fake.js';

export interface Figures {
  /** Metrics of the budget's output. */
  metrics: OutputMetrics;
  /** Accuracy against the samples' labels (undefined without labels); reference accuracy in `refAccuracy`. */
  accuracy?: number;
  refAccuracy?: number;
  /** The continuous error the search ranks by (0 = identical outputs). */
  damage: number;
  /** Every output's metrics. */
  perOutput: Record<string, OutputMetrics>;
}

/** Which damage ranks layers for a budget on an output whose rows have `classes` values. */
export function damageKind(budget: Budget, classes: number): 'kl' | 'cosine' | 'relRms' {
  if ((budget.maxAccuracyDrop !== undefined || budget.minAgreement !== undefined) && classes > 1) return 'kl';
  if (budget.minCosine !== undefined) return 'cosine';
  return 'relRms';
}

export function figuresOf(ref: RunOutputs, test: RunOutputs, output: string, samples: Sample[], budget: Budget): Figures {
  const perOutput: Record<string, OutputMetrics> = {};
  for (const [name, vals] of ref.values) {
    const acc = new MetricAccumulator();
    const dims = ref.dims.get(name)!;
    vals.forEach((v, i) => acc.add(v, test.values.get(name)![i], dims[i]));
    perOutput[name] = acc.result();
  }
  const metrics = perOutput[output];
  const dims = ref.dims.get(output)!;
  let accuracy: number | undefined;
  let refAccuracy: number | undefined;
  const labels = samples.map((s) => (typeof s.label === 'number' ? s.label : -1));
  if (labels.some((l) => l >= 0)) {
    let at = 0;
    let c = 0;
    let rc = 0;
    let n = 0;
    ref.values.get(output)!.forEach((v, i) => {
      const rows = v.length / Math.max(1, lastAxis(dims[i]));
      if (rows < 1) return;
      const l = labels.slice(at, at + rows);
      at += rows;
      const t = top1Correct(test.values.get(output)![i], dims[i], l);
      c += t.correct;
      rc += top1Correct(v, dims[i], l).correct;
      n += t.counted;
    });
    if (n > 0) {
      accuracy = c / n;
      refAccuracy = rc / n;
    }
  }
  const kind = damageKind(budget, lastAxis(dims[0] ?? []));
  const damage = kind === 'kl' ? metrics.kl : kind === 'cosine' ? 1 - metrics.cosine : metrics.relRms ** 2;
  return { metrics, ...(accuracy !== undefined && { accuracy, refAccuracy }), damage: Number.isFinite(damage) ? Math.max(0, damage) : Infinity, perOutput };
}

/** The budget's accuracy limits met by these figures (maxBytes is checked by the caller). */
export function meetsAccuracy(f: Figures, b: Budget): boolean {
  const m = f.metrics;
  if (b.maxAccuracyDrop !== undefined) {
    if (f.accuracy === undefined || f.refAccuracy === undefined) return false;
    if (!(f.refAccuracy - f.accuracy <= b.maxAccuracyDrop)) return false;
  }
  if (b.minAgreement !== undefined && !(m.agreement >= b.minAgreement)) return false;
  if (b.minCosine !== undefined && !(m.cosine >= b.minCosine)) return false;
  if (b.maxRelRms !== undefined && !(m.relRms <= b.maxRelRms)) return false;
  if (b.maxAbsError !== undefined && !(m.maxAbs <= b.maxAbsError)) return false;
  return true;
}

export function hasAccuracyLimits(b: Budget): boolean {
  return [b.maxAccuracyDrop, b.minAgreement, b.minCosine, b.maxRelRms, b.maxAbsError].some((x) => x !== undefined);
}
