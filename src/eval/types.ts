/**
 * What an evaluation reports and what a budget limits. Types only: evaluate.ts produces a report and
 * budget.ts checks it, and neither imports the other (a cache hit checks a budget without onnxruntime).
 */
import type { OutputMetrics } from './metrics.js';

export interface EvalReport {
  samples: number;
  /** The output the headline metrics and accuracy are for. */
  output: string;
  device: string;
  /** Samples whose label was used for accuracy. */
  labeled: number;
  original: { accuracy?: number; latencyMs: { median: number; p90: number } };
  compressed: { accuracy?: number; latencyMs: { median: number; p90: number } };
  metrics: OutputMetrics;
  perOutput: Record<string, OutputMetrics>;
  /** NaN / ±Inf values in the compressed model's outputs. */
  nonFinite: number;
  warnings: string[];
  ms: number;
}

/** A recipe's `budget` block: limits a compressed model must meet, checked by checkBudget. */
export interface Budget {
  maxAccuracyDrop?: number;
  minAgreement?: number;
  minCosine?: number;
  /** Largest relative RMS error ‖ref − test‖ / ‖ref‖ of the output (for single-value outputs, where agreement means nothing). */
  maxRelRms?: number;
  /** Largest absolute error of any output value. */
  maxAbsError?: number;
  /** The output the limits apply to (default: evaluate.output, else the first output). */
  output?: string;
  /** Bytes ("2MB" etc. already converted). */
  maxBytes?: number;
  onFail: 'error' | 'warn';
}
