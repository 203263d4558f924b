/**
 * unplugin-onnx-compress: the programmatic API. Bundler plugins live at the package's subpaths
 * (`unplugin-onnx-compress/vite`, `/rollup`, `/webpack`, `/esbuild`, `/rspack`).
 */
export { CompressError, type ErrorKind, type ErrorLocation } from './errors.js';
export { loadRecipe, parseRecipe, normalizedStepConfig, RecipeError, type LoadOptions, type RecipeIssue } from './recipe/index.js';
export type {
  Recipe,
  Build,
  Steps,
  StepName,
  PruneStep,
  LowrankStep,
  DistillStep,
  QuantizeStep,
  QuantizeDtype,
  DataSpec,
  EvaluateSpec,
  Budget,
  SourcePosition,
} from './recipe/types.js';
export {
  compressBuild,
  compressRecipe,
  writeResult,
  runRecipe,
  defaultCacheDir,
  type PipelineOptions,
  type CompressRecipeOptions,
  type PipelineEvent,
  type PipelineEventKind,
  type CompressResult,
  type RunRecipeOptions,
  type Manifest,
  type SizeStats,
} from './pipeline.js';
export type { FileInfo } from './pipeline/manifest.js';
export type { StepReport, LayerReport } from './transforms/types.js';
export type { Device } from './device.js';
export type { EvalReport } from './eval/evaluate.js';
export { version, TOOL_NAME } from './version.js';
export type { Options, LogLevel, FilterPattern } from './plugin/options.js';
export type { ModelSummary, Precision } from './plugin/summary.js';
