/**
 * Whether a build's quantize step is chosen by the precision search (pure: the cache key asks it on every
 * call, hits included, without loading onnxruntime).
 *
 * It is when the build quantizes to integers (or `dtype: auto`) and has a budget the search can aim at:
 * accuracy limits with evaluation data, or maxBytes with calibration or evaluation data. dtype float16 converts the whole graph and is not
 * searched.
 */
import type { Budget } from '../../eval/types.js';
import type { Build, QuantizeStep } from '../../recipe/types.js';

export function accuracyLimitsOf(b: Budget): ('maxAccuracyDrop' | 'minAgreement' | 'minCosine' | 'maxRelRms' | 'maxAbsError')[] {
  return (['maxAccuracyDrop', 'minAgreement', 'minCosine', 'maxRelRms', 'maxAbsError'] as const).filter((k) => b[k] !== undefined);
}

export function searchApplies(build: Build): boolean {
  const q = build.steps.quantize;
  const b = build.budget;
  if (!q || !b || q.dtype === 'float16') return false;
  if (q.dtype === 'auto') return true;
  // Accuracy limits are measured on evaluate data; maxBytes alone needs some data to rank layers by.
  return (accuracyLimitsOf(b).length > 0 && build.evaluate !== undefined) || (b.maxBytes !== undefined && (build.calibration ?? build.evaluate) !== undefined);
}

/**
 * Whether the search also decides activation precision per layer: static quantization
 * (`activations`) with accuracy limits (with maxBytes alone bytes decide, and activations cost none).
 */
export function searchesActivations(params: QuantizeStep, budget: Budget): boolean {
  return params.activations !== undefined && accuracyLimitsOf(budget).length > 0;
}

/** Bumped when the search would choose differently for the same inputs (2: activation precision of static builds). */
const SEARCH_VERSION = 2;

/** What the search's outcome depends on beyond the step config and data (for the cache key; onFail is not). */
export function searchKey(build: Build): Record<string, unknown> | undefined {
  if (!searchApplies(build)) return undefined;
  const { onFail: _, ...limits } = build.budget!;
  return { version: SEARCH_VERSION, budget: limits };
}
