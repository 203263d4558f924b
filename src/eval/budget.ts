/**
 * Budgets: a report and a byte count checked against the recipe's limits. Pure (no onnxruntime), so a
 * cache hit can check a budget without loading the runtime.
 */
import type { Budget, EvalReport } from './types.js';

/** A number with enough digits that the printed value still compares with the printed limit as the value does. */
function fmt(v: number, limit: number, violates: (x: number, l: number) => boolean): string {
  if (!Number.isFinite(v)) return String(v);
  for (let p = 3; p <= 12; p++) {
    const s = Number(v.toPrecision(p));
    if (violates(s, limit)) return String(s);
  }
  return String(v);
}

/**
 * Checks a report (and the compressed size in bytes) against a budget. Each violation is one line:
 * "<metric> <value> <op> <limit name> <limit>", e.g. "accuracy drop 0.0123 > maxAccuracyDrop 0.01".
 * A NaN metric always violates.
 */
export function checkBudget(report: EvalReport, budget: Budget, bytes: number): { ok: boolean; violations: string[] } {
  const v: string[] = [];
  const gt = (x: number, l: number) => x > l;
  const lt = (x: number, l: number) => x < l;
  if (budget.maxAccuracyDrop !== undefined) {
    const o = report.original.accuracy;
    const c = report.compressed.accuracy;
    if (o === undefined || c === undefined) {
      v.push(`maxAccuracyDrop ${budget.maxAccuracyDrop} needs labeled evaluation data, but none of the ${report.samples} samples had a usable label (give labels and set evaluate.labels)`);
    } else {
      const drop = o - c;
      if (!(drop <= budget.maxAccuracyDrop)) {
        v.push(`accuracy drop ${fmt(drop, budget.maxAccuracyDrop, gt)} > maxAccuracyDrop ${budget.maxAccuracyDrop} (accuracy ${o.toFixed(4)} → ${c.toFixed(4)})`);
      }
    }
  }
  const m = (budget.output !== undefined && report.perOutput[budget.output]) || report.metrics;
  const on = budget.output !== undefined && budget.output !== report.output ? ` of output "${budget.output}"` : '';
  const nonFinite = report.nonFinite ? ` (the compressed model produced ${report.nonFinite} NaN/Inf values)` : '';
  if (budget.output !== undefined && !report.perOutput[budget.output]) {
    v.push(`budget.output "${budget.output}" was not compared (outputs compared: ${Object.keys(report.perOutput).map((n) => `"${n}"`).join(', ')})`);
  }
  if (budget.minAgreement !== undefined && m.rowSize === 1) {
    v.push(`minAgreement does not apply to output "${budget.output ?? report.output}": it has one value per row (use minCosine, maxRelRms or maxAbsError)`);
  } else if (budget.minAgreement !== undefined && !(m.agreement >= budget.minAgreement)) {
    v.push(`agreement${on} ${fmt(m.agreement, budget.minAgreement, lt)} < minAgreement ${budget.minAgreement}${nonFinite}`);
  }
  if (budget.minCosine !== undefined && !(m.cosine >= budget.minCosine)) {
    v.push(`cosine${on} ${fmt(m.cosine, budget.minCosine, lt)} < minCosine ${budget.minCosine}${nonFinite}`);
  }
  if (budget.maxRelRms !== undefined && !(m.relRms <= budget.maxRelRms)) {
    v.push(`relative RMS error${on} ${fmt(m.relRms, budget.maxRelRms, gt)} > maxRelRms ${budget.maxRelRms}${nonFinite}`);
  }
  if (budget.maxAbsError !== undefined && !(m.maxAbs <= budget.maxAbsError)) {
    v.push(`max abs error${on} ${fmt(m.maxAbs, budget.maxAbsError, gt)} > maxAbsError ${budget.maxAbsError}${nonFinite}`);
  }
  if (budget.maxBytes !== undefined && !(bytes <= budget.maxBytes)) {
    v.push(`size ${bytes} > maxBytes ${budget.maxBytes}`);
  }
  return { ok: v.length === 0, violations: v };
}
