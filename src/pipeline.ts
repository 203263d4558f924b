/**
 * The compression pipeline's public entry. The phases live in src/pipeline/: key.ts (cache key),
 * run.ts (steps), verify.ts, measure.ts (sizes, accuracy), budget.ts, present.ts (manifest, files),
 * compress.ts (hit or miss, concurrency), events.ts (what callers are told).
 */
export {
  compressBuild,
  compressRecipe,
  runRecipe,
  compressionCount,
  defaultCacheDir,
  defaultConcurrency,
  mapConcurrent,
  type PipelineOptions,
  type CompressRecipeOptions,
  type CompressResult,
  type RunRecipeOptions,
} from './pipeline/compress.js';
export { writeResult } from './pipeline/present.js';
export { computeKey, type KeyInfo } from './pipeline/key.js';
export { syntheticSample } from './pipeline/verify.js';
export type { PipelineEvent, PipelineEventKind, EventListener } from './pipeline/events.js';
export type { Manifest, SizeStats } from './pipeline/manifest.js';
