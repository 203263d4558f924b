/** Normalized recipe types: everything defaulted, every path absolute. Produced by loadRecipe / parseRecipe. */
import type { DataSpec } from '../data/types.js';
import type { Budget } from '../eval/types.js';

export type { Budget, DataSpec };

/** Steps run in this order when present. */
export const STEP_ORDER = ['prune', 'lowrank', 'distill', 'quantize'] as const;
export type StepName = (typeof STEP_ORDER)[number];

export interface Recipe {
  /** Absolute path of the recipe file. */
  file: string;
  /** Folder of the recipe; relative paths in it are resolved from here. */
  dir: string;
  builds: Build[];
}

/** Where a key was written in the recipe: 1-based line and column, and its key path there (e.g. `defaults.budget.maxBytes`). */
export interface SourcePosition {
  line: number;
  column: number;
  path: string;
}

/** One output file: a model, or one of its variants, with defaults and overrides merged and defaults filled in. */
export interface Build {
  /** Model name. */
  name: string;
  /** Variant name, absent for the main build. */
  variant?: string;
  /** `${name}` or `${name}.${variant}`. */
  id: string;
  /** Absolute path of the source .onnx. */
  source: string;
  /** Output file name relative to the output directory, e.g. 'spam.onnx' / 'spam.q4.onnx' (always `/`-separated). */
  output: string;
  emit: 'always' | 'imported';
  steps: Steps;
  calibration?: DataSpec;
  evaluate?: EvaluateSpec;
  device: 'cpu' | 'gpu' | 'auto';
  budget?: Budget;
  /**
   * Where each key of this build came from, for error messages later. Keys are paths in this object
   * ('' = the model or variant entry, 'source', 'steps.quantize', 'steps.quantize.dtype', 'calibration.data', ...);
   * keys filled by defaults have no entry — use `positionOf` to fall back to the nearest written ancestor.
   */
  positions: Record<string, SourcePosition>;
}

export interface Steps {
  prune?: PruneStep;
  lowrank?: LowrankStep;
  distill?: DistillStep;
  quantize?: QuantizeStep;
}

export interface PruneStep {
  /** Fraction of weights pruned, 0..1. */
  rate: number;
  method: 'magnitude' | 'activation-aware';
  /** 'N:M': at most N non-zero weights in every M consecutive ones, N < M ≤ 32. */
  structure: 'unstructured' | 'channels' | `${number}:${number}`;
  scope: 'layer' | 'global';
  include: string[];
  exclude: string[];
}

/** Exactly one of rank / ratio / energy is set. */
export interface LowrankStep {
  rank?: number;
  ratio?: number;
  energy?: number;
  method: 'svd' | 'activation-aware';
  include: string[];
  exclude: string[];
}

export interface DistillStep {
  /** Absolute path of the teacher model, or 'original' (the uncompressed source). */
  teacher: string;
  /** Absolute path or 'random'; defaults to calibration.data. */
  data: string;
  temperature: number;
  /** Exactly one of steps / epochs is set (epochs: 1 when the recipe sets neither). */
  steps?: number;
  epochs?: number;
  learningRate: number;
  batchSize: number;
  method: 'layerwise' | 'logits' | 'both';
  labels: boolean;
  seed: number;
}

export type QuantizeDtype = 'int8' | 'uint8' | 'int4' | 'uint4' | 'float16';

export interface QuantizeStep {
  dtype: QuantizeDtype;
  /** A number is a block size (16 | 32 | 64 | 128), only for int4/uint4. */
  granularity: 'per-tensor' | 'per-channel' | number;
  symmetric: boolean;
  method: 'rtn' | 'gptq';
  /** GPTQ only. */
  actOrder: boolean;
  target: 'wasm' | 'webgpu' | 'node';
  /** Op form forced by the recipe; absent = chosen from target. */
  format?: 'qdq' | 'dynamic' | 'matmulnbits';
  /** Convert the remaining float weights to fp16 ("q4f16"); always true for dtype float16. */
  float16: boolean;
  keepIoTypes: boolean;
  keepFloat32Ops: string[];
  include: string[];
  exclude: string[];
}

export interface EvaluateSpec extends DataSpec {
  labels?: boolean;
  output?: string;
  labelKey: string;
  runs: number;
}
