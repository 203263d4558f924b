/**
 * What every compression step is: a function from a model (plus context) to a new model and a report.
 * Steps know nothing of bundlers; the pipeline folds them in recipe order and the reports become the
 * manifest's `steps`.
 */
import type { ModelProto } from '../onnx/types.js';
import type { Sample } from '../data/types.js';
import type { Device } from '../device.js';
import type { StepName } from './steps.js';

export interface StepContext {
  /** The source model's path, for messages. */
  file: string;
  /** The uncompressed source model (teacher for `distill: { teacher: original }`, reference for errors). */
  original: ModelProto;
  /** Calibration samples, when the recipe gives calibration data. */
  calibration?: Sample[];
  device: Device;
  /** Deterministic seed for anything random. */
  seed: number;
  log(message: string): void;
  /** Fraction done of this step, 0..1. */
  progress?(fraction: number): void;
  /**
   * The step may overwrite the tensor bytes of its input model (and so of `original`, which shares
   * them): nothing reads them after it. Lets a step skip copying a model it rewrites value by value.
   */
  inPlace?: boolean;
}

/** One weight or layer the step touched (or skipped). */
export interface LayerReport {
  /** The node name (or the weight's name when the node has none). */
  name: string;
  op: string;
  weight: string;
  shape: number[];
  dtypeBefore: string;
  dtypeAfter: string;
  bytesBefore: number;
  bytesAfter: number;
  /** Fraction of zeros after pruning. */
  sparsity?: number;
  /** Rank kept by low-rank factorization, and the fraction of spectral energy it keeps. */
  rank?: number;
  energy?: number;
  /** Relative RMS error of the weight (or of the layer output on calibration data, see errorKind). */
  error?: number;
  errorKind?: 'weight' | 'output';
  /** Quantize: the precision the recipe asked for and the one delivered ("int4 block 32", "int8
   *  per-channel", "float32"), and why they differ when they do. */
  requested?: string;
  delivered?: string;
  reason?: string;
}

export interface StepReport {
  step: StepName;
  /** The normalized recipe block the step ran with. */
  params: Record<string, unknown>;
  layers: LayerReport[];
  skipped: { name: string; reason: string }[];
  warnings: string[];
  /** Step-specific totals (e.g. training loss curve for distill). */
  totals?: Record<string, unknown>;
  ms: number;
}

export interface StepResult {
  model: ModelProto;
  report: StepReport;
}

export type Step = (model: ModelProto, ctx: StepContext) => Promise<StepResult>;
