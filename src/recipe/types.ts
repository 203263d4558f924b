/** Normalized recipe types: everything defaulted, every path absolute. Produced by loadRecipe / parseRecipe. */
import type { DataSpec } from '../data/types.js';
import type { Budget } from '../eval/types.js';
import type { Device } from '../device.js';
import type { Steps } from '../transforms/steps.js';

export type { Budget, DataSpec };

// Step parameters are declared beside each step (src/transforms/<step>/config.ts) and listed in the registry.
export { STEP_ORDER, type StepName, type Steps } from '../transforms/registry.js';
export type { PruneStep } from '../transforms/prune/config.js';
export type { LowrankStep } from '../transforms/lowrank/config.js';
export type { DistillStep } from '../transforms/distill/config.js';
export type { LayerPrecision, QuantizeDtype, QuantizeStep } from '../transforms/quantize/config.js';

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
  /** Real folders (absolute) the source's external data may resolve into besides its own folder (`externalDataDirs`). */
  externalDataDirs?: string[];
  /** Output file name relative to the output directory, e.g. 'spam.onnx' / 'spam.q4.onnx' (always `/`-separated). */
  output: string;
  emit: 'always' | 'imported';
  /** pickVariant's order for this model per device tier (`pick`), entries normalized (q8 → int8, …). */
  pick?: Partial<Record<'webgpu-f16' | 'webgpu' | 'wasm', string[]>>;
  steps: Steps;
  calibration?: DataSpec;
  evaluate?: EvaluateSpec;
  device: Device;
  /** false: the output is not run in onnxruntime-web (`webCheck: false`); absent: it is, for browser targets. */
  webCheck?: false;
  budget?: Budget;
  /**
   * Where each key of this build came from, for error messages later. Keys are paths in this object
   * ('' = the model or variant entry, 'source', 'steps.quantize', 'steps.quantize.dtype', 'calibration.data', ...);
   * keys filled by defaults have no entry — use `positionOf` to fall back to the nearest written ancestor.
   */
  positions: Record<string, SourcePosition>;
}


export interface EvaluateSpec extends DataSpec {
  labels?: boolean;
  output?: string;
  labelKey: string;
  /** Timed runs per model (after 2 warm-up runs). */
  runs: number;
  /** intraOpNumThreads of the evaluation sessions (0: onnxruntime's default). */
  threads: number;
  /** Also time both models in onnxruntime-web (wasm). */
  web: boolean;
}
