/**
 * The compression pipeline's entry points: one build (a model or a variant of it) → compressed bytes +
 * manifest, cached by content. Shared by the CLI (src/cli/build.ts) and the bundler plugin.
 *
 *   key   = computeKey (key.ts)
 *   hit   → read <cache>/<key>.onnx + <key>.json; no decode, no onnxruntime (the stat cache avoids re-hashing)
 *   miss  → runBuild (run.ts: steps, write the output to the cache entry's model file or a temp file,
 *           verify.ts from that file, measure.ts), then the manifest (model then manifest, atomic renames)
 *   then  → present (the manifest's paths for this build) and applyBudget (each call: budgets are not part of the key)
 *
 * Concurrent calls with the same key share one promise. Nothing is written outside the cache except by
 * writeResult. Progress and warnings reach the caller as events (events.ts).
 */
import path from 'node:path';
import { loadRecipe } from '../recipe/index.js';
import { checkOutputTargets } from '../recipe/outputs.js';
import { sweepOnce } from './temps.js';
import type { Build, Recipe } from '../recipe/types.js';
import { applyBudget } from './budget.js';
import { defaultCacheDir, ModelCache } from './cache.js';
export { defaultCacheDir } from './cache.js';
import { emitterFor, type EventBody, type EventListener } from './events.js';
import { statCacheFor } from './hash.js';
import { computeKey, type KeyInfo } from './key.js';
import type { Manifest } from './manifest.js';
import { present, writeResult } from './present.js';
import type { CompressResult } from './result.js';
import { OutputFile } from './output.js';
import { preloadBuild, runBuild } from './run.js';
import { readsData } from './webcheck.js';
import { coreCount } from '../transforms/threads.js';
import type { Device } from '../device.js';

export interface PipelineOptions {
  /** Default <cwd>/node_modules/.cache/onnx-compress; false = no cache. */
  cacheDir?: string | false;
  /** Overrides the recipe's device. */
  device?: Device;
  /** Overrides budget.onFail. */
  budget?: 'error' | 'warn';
  /** Builds compressed at once by compressRecipe; default min(builds, max(1, cores / 2)). */
  concurrency?: number;
  /** Progress, warnings and outcomes of each build, as typed events (see PipelineEvent). */
  onEvent?: EventListener;
  /**
   * The recipe file the build comes from (compressRecipe sets it): manifest paths are relative to its
   * folder, data modules resolve from it, and budget errors point into it. Default: paths relative to cwd.
   */
  recipeFile?: string;
}

export interface CompressRecipeOptions extends PipelineOptions {
  /**
   * Called with each build's result as it finishes, before the others settle (the CLI writes files here, so
   * a later failure keeps the finished ones). A throw fails that build.
   */
  onResult?: (result: CompressResult) => void | Promise<void>;
}

export type { CompressResult } from './result.js';

interface Produced {
  output: OutputFile;
  /** As stored in the cache: identity and paths are filled per build by `present`. */
  manifest: Manifest;
  cached: boolean;
}

const inFlight = new Map<string, Promise<Produced>>();
let compressions = 0;

/** How many builds this process actually compressed (cache misses); tests use it to prove a hit did no work. */
export function compressionCount(): number {
  return compressions;
}

const statsFor = statCacheFor;

/** One model/variant: cached by content, de-duplicated while in flight (same key → same promise). */
export async function compressBuild(build: Build, opts: PipelineOptions = {}): Promise<CompressResult> {
  const t0 = performance.now();
  const emit = emitterFor(build.id, t0, opts.onEvent);
  const cacheDir = opts.cacheDir === false ? undefined : path.resolve(opts.cacheDir ?? defaultCacheDir());
  if (cacheDir) sweepOnce(cacheDir); // temp files of killed builds (once per folder per process)
  const stats = statsFor(cacheDir);
  emit({ kind: 'model-start' });
  try {
    emit({ kind: 'step-start', step: 'hash' });
    const tHash = performance.now();
    // A cache miss loads the build's modules next: while a large source is hashed, they load already.
    // Without a cache nothing waits for a large source's hash (computeKey's deferSource).
    const k = await computeKey(build, stats, () => preloadBuild(build), { deferSource: !cacheDir });
    emit({ kind: 'step-done', step: 'hash', ms: Math.round((performance.now() - tHash) * 100) / 100 });
    let shared = inFlight.get(k.key);
    if (!shared) {
      const cache = cacheDir ? new ModelCache(cacheDir, stats) : undefined;
      shared = produce(build, opts, k, cache, emit, t0).finally(() => {
        inFlight.delete(k.key);
        stats.flush();
      });
      inFlight.set(k.key, shared);
    } else emit({ kind: 'shared', key: k.key });
    const produced = await shared;
    const manifest = present(produced.manifest, build, opts.recipeFile);
    await applyBudget(build, manifest, opts, emit);
    const key = produced.manifest.cache.key; // the content key, also where the source's hash was deferred
    emit({ kind: 'model-done', cached: produced.cached, bytesBefore: manifest.sizes.before.bytes, bytesAfter: manifest.output.bytes, key });
    return resultOf(build, produced.output, manifest, produced.cached, key);
  } catch (error) {
    emit({ kind: 'error', error });
    throw error;
  }
}

function resultOf(build: Build, output: OutputFile, manifest: Manifest, cached: boolean, key: string): CompressResult {
  const r = { build, file: output.file, manifest, cached, key } as CompressResult;
  // A getter, so nothing holds the bytes unless the caller does; `output` stays referenced by the
  // result (its temp file lives as long as a result needs it).
  Object.defineProperty(r, 'bytes', { get: () => output.read(), enumerable: true });
  return r;
}

/**
 * All builds of a recipe, concurrently; writes nothing outside the cache (unless `onResult` does). Fails
 * after all builds settle, with the first error; every failed build has had its `error` event.
 */
export async function compressRecipe(recipe: Recipe, opts: CompressRecipeOptions = {}): Promise<CompressResult[]> {
  const { onResult, ...rest } = opts;
  const o: PipelineOptions = { ...rest, recipeFile: opts.recipeFile ?? recipe.file };
  const settled = await mapConcurrent(recipe.builds, defaultConcurrency(recipe.builds.length, opts.concurrency), async (b) => {
    const result = await compressBuild(b, o);
    if (onResult) {
      try {
        await onResult(result);
      } catch (error) {
        emitterFor(b.id, performance.now(), opts.onEvent)({ kind: 'error', error });
        throw error;
      }
    }
    return result;
  });
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<CompressResult>).value);
}

export interface RunRecipeOptions extends PipelineOptions {
  /** Where outputs and manifests go (default ./dist/onnx). */
  outDir?: string;
}

/** loadRecipe + compressRecipe + writeResult for every build. */
export async function runRecipe(
  recipeFile: string,
  opts: RunRecipeOptions = {},
): Promise<{ recipe: Recipe; results: (CompressResult & { file: string; manifestFile: string })[] }> {
  const recipe = await loadRecipe(recipeFile);
  const outDir = path.resolve(opts.outDir ?? 'dist/onnx');
  checkOutputTargets(recipe, outDir, outDir, 'outDir');
  const results = await compressRecipe(recipe, opts);
  const tmpDir = path.join(opts.cacheDir || defaultCacheDir(), 'tmp');
  // Object.assign, not a spread: a spread would read every output's bytes through the getter.
  return { recipe, results: results.map((r) => Object.assign(r, writeResult(r, outDir, outDir, tmpDir))) };
}

export function defaultConcurrency(builds: number, requested?: number): number {
  const n = requested ?? Math.min(builds, Math.max(1, Math.floor(coreCount() / 2)));
  return Math.max(1, Math.floor(n));
}

/** Runs `fn` over `items` with at most `limit` at once; results in input order. */
export async function mapConcurrent<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<PromiseSettledResult<R>[]> {
  const out: PromiseSettledResult<R>[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        out[i] = { status: 'fulfilled', value: await fn(items[i], i) };
      } catch (reason) {
        out[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** A hit, or a miss compressed and stored. */
async function produce(build: Build, opts: PipelineOptions, k: KeyInfo, cache: ModelCache | undefined, emit: (e: EventBody) => void, t0: number): Promise<Produced> {
  if (cache) {
    const hit = cache.get(k.key);
    if (typeof hit === 'object') {
      emit({ kind: 'cache-hit', key: k.key });
      return { output: new OutputFile(cache.modelFile(k.key), hit.manifest.output.bytes), manifest: hit.manifest, cached: true };
    }
    if (hit === 'corrupt') emit({ kind: 'warning', step: 'cache', message: `cache entry ${k.key.slice(0, 12)} is incomplete or corrupt; rebuilding it` });
  }
  compressions++;
  // Verification runs in the isolated child: start one now, while this process reads the source —
  // unless the build reads data, which can fail first (runBuild starts it once they are loaded; see planWebCheck).
  if (!readsData(build)) (await import('../runtime/isolate.js')).warmIsolatedPool(k.source.bytes);
  const { output, manifest, inCache } = await runBuild(build, opts, k, cache, emit, t0);
  if (cache && inCache) {
    try {
      cache.putManifest(k.key, manifest);
    } catch (e) {
      emit({ kind: 'warning', step: 'cache', message: `could not store the result in the cache: ${(e as Error).message}` });
    }
  }
  return { output, manifest, cached: false };
}
