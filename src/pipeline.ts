/**
 * The compression pipeline: one build (a model or a variant of it) → compressed bytes + manifest, cached
 * by content. Shared by the CLI (src/cli/build.ts) and the bundler plugin.
 *
 *   key   = sha256(tool version, source bytes, external data / data files / teacher bytes,
 *                  normalized step config with every path replaced by its file's hash, evaluate spec, output name)
 *   hit   → read <cache>/<key>.onnx + <key>.json; no decode, no onnxruntime (the stat cache avoids re-hashing)
 *   miss  → decode, run steps (prune → lowrank → distill → quantize), encode, verify in onnxruntime,
 *           evaluate if asked, measure sizes, store (model then manifest, each by atomic rename)
 *   then  → budget check (each call: budgets are not part of the key), manifest paths filled for this build
 *
 * Concurrent calls with the same key share one promise. Nothing is written outside the cache except by
 * writeResult.
 */
import { mkdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Tensor } from 'onnxruntime-node';
import { CompressError } from './errors.js';
import type { EvalReport } from './eval/evaluate.js';
import type { InputSpec, Sample } from './eval/types.js';
import { decodeModel, encodeModel, joinChunks, MAX_MESSAGE_BYTES } from './onnx/codec.js';
import { DataLocation, checkLocation, externalRef, loadExternalData } from './onnx/external.js';
import { readFileBytes, writeChunksAtomic } from './onnx/io.js';
import type { ModelProto } from './onnx/types.js';
import { forEachTensor } from './onnx/walk.js';
import { ModelCache } from './pipeline/cache.js';
import { hashFile, hashPath, readWithStat, sha256, StatCache } from './pipeline/hash.js';
import { BROTLI_QUALITY, GZIP_LEVEL, sizeStats, type Manifest, type SizeStats } from './pipeline/manifest.js';
import { formatBytes, formatMs } from './pipeline/progress.js';
import { loadStep } from './pipeline/steps.js';
import { loadRecipe, normalizedStepConfig, positionOf } from './recipe/index.js';
import { STEP_ORDER, type Build, type Recipe } from './recipe/types.js';
import type { StepContext, StepReport } from './transforms/types.js';
import { TOOL_NAME, toolVersion } from './version.js';
import { seededRandom } from './random.js';

export type { Manifest, SizeStats } from './pipeline/manifest.js';

export interface PipelineOptions {
  /** Default <cwd>/node_modules/.cache/onnx-compress; false = no cache. */
  cacheDir?: string | false;
  /** Overrides the recipe's device. */
  device?: 'cpu' | 'gpu' | 'auto';
  /** Overrides budget.onFail. */
  budget?: 'error' | 'warn';
  /** Builds compressed at once by compressRecipe; default min(builds, max(1, cores / 2)). */
  concurrency?: number;
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
  onProgress?: (e: { id: string; step: string; fraction: number; elapsedMs: number }) => void;
  /**
   * The recipe file the build comes from (compressRecipe sets it): manifest paths are relative to its
   * folder, data modules resolve from it, and budget errors point into it. Default: paths relative to cwd.
   */
  recipeFile?: string;
}

export interface CompressResult {
  build: Build;
  /** The compressed .onnx. */
  bytes: Uint8Array;
  manifest: Manifest;
  cached: boolean;
  /** Cache key (hex). */
  key: string;
}

interface Produced {
  bytes: Uint8Array;
  /** As stored in the cache: identity and paths are filled per build by `present`. */
  manifest: Manifest;
  cached: boolean;
}

const inFlight = new Map<string, Promise<Produced>>();
const statCaches = new Map<string, StatCache>();
const memoryStats = new StatCache();
let compressions = 0;

/** How many builds this process actually compressed (cache misses); tests use it to prove a hit did no work. */
export function compressionCount(): number {
  return compressions;
}

export function defaultCacheDir(cwd = process.cwd()): string {
  return path.join(cwd, 'node_modules', '.cache', 'onnx-compress');
}

function statsFor(cacheDir: string | undefined): StatCache {
  if (!cacheDir) return memoryStats;
  let s = statCaches.get(cacheDir);
  if (!s) statCaches.set(cacheDir, (s = new StatCache(cacheDir)));
  return s;
}

const round = (ms: number) => Math.round(ms * 100) / 100;
/** A path for messages: relative to cwd when inside it. */
const display = (file: string) => {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
};
const toPosix = (p: string) => p.split(path.sep).join('/');

// ---------------------------------------------------------------------------------------------------------------
// Cache key

function stableStringify(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableStringify(x)}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** A deep copy of `v` with every absolute path replaced by `map(path)`. */
async function mapPaths(v: unknown, map: (p: string) => Promise<string> | string): Promise<unknown> {
  if (typeof v === 'string') return path.isAbsolute(v) ? map(v) : v;
  if (Array.isArray(v)) return Promise.all(v.map((x) => mapPaths(x, map)));
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = await mapPaths(x, map);
    return out;
  }
  return v;
}

/** External data files a model references (relative to its folder), from a decode of its bytes. */
function externalDeps(file: string): string[] {
  const model = decodeModel(readFileBytes(file), file);
  const deps = new Set<string>();
  forEachTensor(model, (t) => {
    if (t.dataLocation !== DataLocation.EXTERNAL) return;
    const { location } = externalRef(t, file);
    checkLocation(location, file);
    deps.add(toPosix(path.normalize(location)));
  });
  return [...deps].sort();
}

interface KeyInfo {
  key: string;
  source: { sha256: string; bytes: number };
  /** External data files of the source (relative to its folder). */
  deps: string[];
  /** Seed for every random choice of the steps: from the step config, so equal recipes give equal outputs. */
  seed: number;
}

export async function computeKey(build: Build, stats: StatCache): Promise<KeyInfo> {
  const src = await hashFile(build.source, stats, { scanExternal: true });
  let deps = src.entry?.deps;
  if (!deps) {
    deps = src.mayReferenceExternal ? externalDeps(build.source) : [];
    stats.setDeps(build.source, deps);
  }
  const dir = path.dirname(build.source);
  const external = await Promise.all(deps.map(async (d) => [d, (await hashFile(path.join(dir, d), stats)).sha256]));
  const byHash = (p: string) => hashPath(p, stats).then((h) => `sha256:${h}`);
  const config = stableStringify(await mapPaths(normalizedStepConfig(build), byHash));
  const evaluate = build.evaluate ? stableStringify(await mapPaths(build.evaluate, byHash)) : null;
  const payload = stableStringify({
    format: 1,
    tool: toolVersion(),
    source: src.sha256,
    external,
    config,
    evaluate,
    output: build.output,
  });
  const configHash = sha256(config);
  return {
    key: sha256(payload),
    source: { sha256: src.sha256, bytes: src.bytes },
    deps,
    seed: parseInt(configHash.slice(0, 8), 16) >>> 0,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Public API

/** One model/variant: cached by content, de-duplicated while in flight (same key → same promise). */
export async function compressBuild(build: Build, opts: PipelineOptions = {}): Promise<CompressResult> {
  const t0 = performance.now();
  const cacheDir = opts.cacheDir === false ? undefined : path.resolve(opts.cacheDir ?? defaultCacheDir());
  const stats = statsFor(cacheDir);
  const progress = (step: string, fraction: number) => opts.onProgress?.({ id: build.id, step, fraction, elapsedMs: round(performance.now() - t0) });
  progress('hash', 0);
  try {
    const k = await computeKey(build, stats);
    let shared = inFlight.get(k.key);
    if (!shared) {
      const cache = cacheDir ? new ModelCache(cacheDir, stats) : undefined;
      shared = produce(build, opts, k, cache, t0).finally(() => {
        inFlight.delete(k.key);
        stats.flush();
      });
      inFlight.set(k.key, shared);
    } else opts.log?.('info', `${build.id}: same content as a build in progress, sharing its result`);
    const produced = await shared;
    const manifest = present(produced.manifest, build, opts);
    await applyBudget(build, manifest, opts);
    const ms = performance.now() - t0;
    const sizes = `${formatBytes(manifest.sizes.before.bytes)} → ${formatBytes(manifest.output.bytes)}`;
    opts.log?.('info', produced.cached ? `${build.id}: cached (${sizes}) in ${formatMs(ms)}` : `${build.id}: done in ${formatMs(ms)}, ${sizes}`);
    return { build, bytes: produced.bytes, manifest, cached: produced.cached, key: k.key };
  } finally {
    progress('done', 1); // errors are the caller's to report
  }
}

/** All builds of a recipe, concurrently; writes nothing outside the cache. Fails after all builds settle, with the first error. */
export async function compressRecipe(recipe: Recipe, opts: PipelineOptions = {}): Promise<CompressResult[]> {
  const o = { ...opts, recipeFile: opts.recipeFile ?? recipe.file };
  const settled = await mapConcurrent(recipe.builds, defaultConcurrency(recipe.builds.length, opts.concurrency), (b) => compressBuild(b, o));
  const failed = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed.length) {
    for (const f of failed.slice(1)) opts.log?.('error', (f.reason as Error)?.message ?? String(f.reason));
    throw failed[0].reason;
  }
  return settled.map((s) => (s as PromiseFulfilledResult<CompressResult>).value);
}

/**
 * Writes <outDir>/<build.output> and <outDir>/<name>[.<variant>].manifest.json atomically. A file that
 * already holds exactly these bytes is left alone (its mtime too, so watchers see no change).
 */
export function writeResult(result: CompressResult, outDir: string): { file: string; manifestFile: string } {
  const file = path.resolve(outDir, result.build.output);
  const manifestFile = path.resolve(outDir, `${result.build.id}.manifest.json`);
  mkdirSync(path.dirname(file), { recursive: true });
  mkdirSync(path.dirname(manifestFile), { recursive: true });
  writeIfChanged(file, result.bytes);
  writeIfChanged(manifestFile, Buffer.from(JSON.stringify(result.manifest, null, 2) + '\n'));
  return { file, manifestFile };
}

function writeIfChanged(file: string, bytes: Uint8Array): void {
  const st = statSync(file, { throwIfNoEntry: false });
  if (st?.isFile() && st.size === bytes.byteLength) {
    const old = readWithStat(file);
    if (old && Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).equals(old.bytes)) return;
  }
  writeChunksAtomic(file, { chunks: [bytes], byteLength: bytes.byteLength });
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
  const results = await compressRecipe(recipe, opts);
  const outDir = path.resolve(opts.outDir ?? 'dist/onnx');
  return { recipe, results: results.map((r) => ({ ...r, ...writeResult(r, outDir) })) };
}

export function defaultConcurrency(builds: number, requested?: number): number {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const n = requested ?? Math.min(builds, Math.max(1, Math.floor(cores / 2)));
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

// ---------------------------------------------------------------------------------------------------------------
// Hit or miss

async function produce(build: Build, opts: PipelineOptions, k: KeyInfo, cache: ModelCache | undefined, t0: number): Promise<Produced> {
  if (cache) {
    const hit = cache.get(k.key);
    if (typeof hit === 'object') return { ...hit, cached: true };
    if (hit === 'corrupt') opts.log?.('warn', `${build.id}: cache entry ${k.key.slice(0, 12)} is incomplete or corrupt; rebuilding it`);
  }
  compressions++;
  const { bytes, encoded, manifest } = await compress(build, opts, k, t0, cache);
  if (cache) {
    try {
      cache.put(k.key, encoded, manifest);
    } catch (e) {
      opts.log?.('warn', `${build.id}: could not store the result in the cache: ${(e as Error).message}`);
    }
  }
  return { bytes, manifest, cached: false };
}

/** Source sizes by source hash: variants of one model share them. */
const beforeSizes = new Map<string, Promise<SizeStats>>();

type Runtime = typeof import('./runtime/session.js');

async function compress(build: Build, opts: PipelineOptions, k: KeyInfo, t0: number, cache: ModelCache | undefined) {
  const timings: Record<string, number> = {};
  const warnings: string[] = [];
  const elapsed = () => round(performance.now() - t0);
  const progress = (step: string, fraction: number) => opts.onProgress?.({ id: build.id, step, fraction, elapsedMs: elapsed() });
  const info = (m: string) => opts.log?.('info', `${build.id}: ${m}`);
  const warn = (m: string) => {
    warnings.push(m);
    opts.log?.('warn', `${build.id}: ${m}`);
  };
  const phase = async <T>(name: string, fn: () => Promise<T> | T): Promise<T> => {
    progress(name, 0);
    const t = performance.now();
    const r = await fn();
    timings[name] = round(performance.now() - t);
    progress(name, 1);
    info(`${name} done in ${formatMs(timings[name])}`);
    return r;
  };
  timings.hash = elapsed();
  const device = opts.device ?? build.device;
  const stepNames = STEP_ORDER.filter((s) => build.steps[s] !== undefined);
  const factories = await Promise.all(stepNames.map((name) => loadStep(name))); // fail before any work
  const recipeFile = opts.recipeFile ?? path.join(process.cwd(), 'compress.yaml');

  // Read: two decodes of one buffer (tensor bytes are shared views): steps get their own graph objects.
  const { sourceParts, original, working } = await phase('read', () => {
    const bytes = readFileBytes(build.source);
    const dir = path.dirname(build.source);
    const deps = new Map(k.deps.map((d) => [path.join(dir, d), readFileBytes(path.join(dir, d))] as const));
    const parts: Uint8Array[] = [bytes, ...deps.values()];
    const a = decodeModel(bytes, build.source);
    const b = decodeModel(bytes, build.source);
    if (deps.size) {
      // External tensors of both copies are views into the data files read once above.
      loadExternalData(a, dir, build.source, deps);
      loadExternalData(b, dir, build.source, deps);
    }
    return { sourceParts: parts, original: a, working: b };
  });
  let before = beforeSizes.get(k.source.sha256);
  if (!before) {
    const stored = cache?.getSizes(k.source.sha256);
    before = stored ? Promise.resolve(stored) : sizeStats(sourceParts, original);
    if (!stored && cache) before.then((s) => cache.putSizes(k.source.sha256, s)).catch(() => {});
    before.catch(() => beforeSizes.delete(k.source.sha256));
    beforeSizes.set(k.source.sha256, before);
  }

  const rt: Runtime = await import('./runtime/session.js');
  const specs = rt.inputSpecs(original);
  const loadData = async (spec: NonNullable<Build['calibration']>, labelKey?: string) => {
    const { loadSamples } = await import('./eval/data.js');
    return loadSamples(spec, specs, { recipeFile, ...(labelKey !== undefined && { labelKey }) });
  };
  const calibration = stepNames.length && build.calibration ? await phase('calibration', () => loadData(build.calibration!)) : undefined;

  // Steps, in order.
  let model: ModelProto = working;
  const reports: StepReport[] = [];
  for (const [i, name] of stepNames.entries()) {
    const step = factories[i](build.steps[name] as never);
    const ctx: StepContext = {
      file: build.source,
      original,
      ...(calibration && { calibration }),
      device,
      seed: k.seed,
      log: (m) => info(`${name}: ${m}`),
      progress: (f) => progress(name, f),
    };
    const r = await phase(name, () => step(model, ctx));
    model = r.model;
    reports.push(r.report);
    for (const w of r.report.warnings) warn(`${name}: ${w}`);
  }

  const { encoded, bytes } = await phase('encode', () => {
    const e = encodeModel(model);
    if (e.byteLength > MAX_MESSAGE_BYTES) {
      throw new CompressError('compress', `${build.id}: the compressed model is ${e.byteLength} bytes, over protobuf's 2 GiB limit`, { file: display(build.source) });
    }
    return { encoded: e, bytes: joinChunks(e) };
  });
  const outputSha = sha256(bytes);
  // Start the output's sizes now (gzip/brotli run in libuv's pool) so they overlap verification and
  // evaluation; a plain copy that re-encodes to the source's exact bytes reuses the source's.
  const after = outputSha === k.source.sha256 && k.deps.length === 0 ? before : sizeStats([bytes], model);
  after.catch(() => {});

  const evalSamples = build.evaluate ? await phase('data', () => loadData(build.evaluate!, build.evaluate!.labelKey)) : undefined;
  const usedDevice = await phase('verify', () =>
    verify(rt, build, original, bytes, calibration?.[0] ?? evalSamples?.[0], specs, device, k.seed, warn),
  );

  let accuracy: EvalReport | undefined;
  if (build.evaluate && evalSamples) {
    const ev = build.evaluate;
    const { evaluateModels } = await import('./eval/evaluate.js');
    accuracy = await phase('evaluate', () =>
      evaluateModels(k.deps.length ? original : sourceParts[0], bytes, evalSamples, {
        ...(ev.output !== undefined && { output: ev.output }),
        ...(ev.labels !== undefined && { labels: ev.labels }),
        runs: ev.runs,
        device,
      }),
    );
    // Session warnings (a GPU fallback) were already given by verify.
    for (const w of accuracy.warnings ?? []) if (!warnings.includes(w)) warn(`evaluate: ${w}`);
  }

  const [beforeStats, afterStats] = await phase('sizes', () => Promise.all([before!, after]));
  timings.total = elapsed();

  const manifest: Manifest = {
    tool: { name: TOOL_NAME, version: toolVersion() },
    id: build.id,
    name: build.name,
    ...(build.variant !== undefined && { variant: build.variant }),
    source: { file: '', sha256: k.source.sha256, bytes: k.source.bytes },
    output: { file: build.output, sha256: outputSha, bytes: bytes.byteLength },
    recipe: {},
    steps: reports,
    sizes: { before: beforeStats, after: afterStats, compression: { gzipLevel: GZIP_LEVEL, brotliQuality: BROTLI_QUALITY } },
    ...(accuracy && {
      accuracy,
      latency: { device: accuracy.device, original: accuracy.original.latencyMs, compressed: accuracy.compressed.latencyMs },
    }),
    device: usedDevice,
    warnings,
    timings: timings as Manifest['timings'],
    cache: { key: k.key },
  };
  return { bytes, encoded, manifest };
}

// ---------------------------------------------------------------------------------------------------------------
// Verification: the output must load and run in onnxruntime.

/** A deterministic input from the model's input specs: symbolic dims = 1, floats in [0, 1), integers 0. */
export async function syntheticSample(specs: InputSpec[], seed: number): Promise<Sample> {
  const ort = await import('onnxruntime-node');
  const rand = seededRandom(seed >>> 0 || 1);
  const feeds: Record<string, Tensor> = {};
  for (const spec of specs) {
    const dims = spec.dims.map((d) => (typeof d === 'number' && d >= 0 ? d : 1));
    const n = dims.reduce((a, b) => a * b, 1);
    let data: Tensor['data'];
    switch (spec.type) {
      case 'float32':
        data = Float32Array.from({ length: n }, rand);
        break;
      case 'float64':
        data = Float64Array.from({ length: n }, rand);
        break;
      case 'float16':
        data = new Uint16Array(n).fill(0x3800); // 0.5
        break;
      case 'int64':
        data = new BigInt64Array(n);
        break;
      case 'uint64':
        data = new BigUint64Array(n);
        break;
      case 'int32':
        data = new Int32Array(n);
        break;
      case 'uint32':
        data = new Uint32Array(n);
        break;
      case 'int16':
        data = new Int16Array(n);
        break;
      case 'uint16':
        data = new Uint16Array(n);
        break;
      case 'int8':
        data = new Int8Array(n);
        break;
      case 'uint8':
        data = new Uint8Array(n);
        break;
      case 'bool':
        data = new Uint8Array(n);
        break;
      case 'string':
        data = Array.from({ length: n }, () => '');
        break;
      default:
        throw new CompressError('compress', `cannot make a verification input for "${spec.name}" of type ${spec.type}`);
    }
    feeds[spec.name] = new ort.Tensor(spec.type as 'float32', data as Float32Array, dims);
  }
  return { feeds };
}

async function verify(
  rt: Runtime,
  build: Build,
  original: ModelProto,
  bytes: Uint8Array,
  sample: Sample | undefined,
  specs: InputSpec[],
  device: 'cpu' | 'gpu' | 'auto',
  seed: number,
  warn: (m: string) => void,
): Promise<string> {
  const input = sample ?? (await syntheticSample(specs, seed));
  const fail = (what: string, e: unknown) => {
    const reason = ((e as Error).message ?? String(e)).replace(/^onnxruntime (cannot load the model|failed to run the model[^:]*): /, '');
    return new CompressError('compress', `${build.id}: the compressed model ${what} in onnxruntime: ${reason}`, { file: display(build.source) }, { cause: e });
  };
  let opened: Awaited<ReturnType<Runtime['openSession']>>;
  try {
    opened = await rt.openSession(bytes, { device });
  } catch (e) {
    // A device problem is not the compression's fault: report it as what it is.
    if (e instanceof CompressError && e.kind === 'runtime' && /GPU|execution provider/i.test(e.message)) throw e;
    throw fail('does not load', e);
  }
  for (const w of opened.warnings) warn(w);
  try {
    await rt.runSession(opened.session, input.feeds);
    return opened.device;
  } catch (e) {
    // Does the source model run on this input? If not, the input is the problem, not the compression.
    let sourceRuns = false;
    try {
      const o = await rt.openSession(original, { device: opened.device === 'cpu' ? 'cpu' : device });
      try {
        await rt.runSession(o.session, input.feeds);
        sourceRuns = true;
      } finally {
        await o.session.release();
      }
    } catch {
      // the source fails too
    }
    if (sourceRuns) throw fail('fails to run', e);
    warn(`could not verify the output: the source model fails on the ${sample ? 'first data sample' : 'synthetic verification input'} too (${(e as Error).message})`);
    return opened.device;
  } finally {
    await opened.session.release();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Per-build presentation and budgets

/** The manifest for this build: identity and paths from the build (the cached entry is shared by content). */
function present(stored: Manifest, build: Build, opts: PipelineOptions): Manifest {
  const root = opts.recipeFile ? path.dirname(path.resolve(opts.recipeFile)) : process.cwd();
  const rel = (p: string) => toPosix(path.relative(root, p)) || '.';
  const relPaths = (v: unknown): unknown => {
    if (typeof v === 'string') return path.isAbsolute(v) ? rel(v) : v;
    if (Array.isArray(v)) return v.map(relPaths);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, relPaths(x)]));
    return v;
  };
  return {
    tool: stored.tool,
    id: build.id,
    name: build.name,
    ...(build.variant !== undefined && { variant: build.variant }),
    source: { ...stored.source, file: rel(build.source) },
    output: { ...stored.output, file: build.output },
    recipe: relPaths({
      steps: build.steps,
      ...(build.calibration && { calibration: build.calibration }),
      ...(build.evaluate && { evaluate: build.evaluate }),
      ...(build.budget && { budget: build.budget }),
      device: build.device,
      emit: build.emit,
    }) as Record<string, unknown>,
    steps: stored.steps,
    sizes: stored.sizes,
    ...(stored.accuracy && { accuracy: stored.accuracy }),
    ...(stored.latency && { latency: stored.latency }),
    device: stored.device,
    warnings: [...stored.warnings],
    timings: stored.timings,
    cache: stored.cache,
  };
}

async function applyBudget(build: Build, manifest: Manifest, opts: PipelineOptions): Promise<void> {
  const budget = build.budget;
  if (!budget) return;
  let violations: string[] = [];
  const bytes = manifest.output.bytes;
  const accuracyLimits = (['maxAccuracyDrop', 'minAgreement', 'minCosine'] as const).filter((k) => budget[k] !== undefined);
  if (accuracyLimits.length && !manifest.accuracy) {
    const m = `budget ${accuracyLimits.join(', ')} not checked: the build has no evaluate data`;
    manifest.warnings.push(m);
    opts.log?.('warn', `${build.id}: ${m}`);
  }
  if (manifest.accuracy && accuracyLimits.length) {
    // Loaded only here: evaluate.ts pulls in onnxruntime, which a plain cache hit never loads.
    const { checkBudget } = await import('./eval/budget.js');
    violations = checkBudget(manifest.accuracy, budget, bytes).violations;
  } else if (budget.maxBytes !== undefined && bytes > budget.maxBytes) {
    violations.push(`size ${bytes} > maxBytes ${budget.maxBytes}`);
  }
  if (!violations.length) return;
  const mode = opts.budget ?? budget.onFail;
  const where = budgetLocation(build, opts);
  if (mode === 'warn') {
    for (const v of violations) {
      manifest.warnings.push(`budget: ${v}`);
      opts.log?.('warn', `${build.id}: budget: ${v}`);
    }
    return;
  }
  throw new CompressError('budget', `${build.id}: over budget: ${violations.join('; ')}`, where);
}

function budgetLocation(build: Build, opts: PipelineOptions): { file?: string; line?: number; column?: number } {
  if (!opts.recipeFile) return {};
  try {
    const p = positionOf(build, 'budget');
    return { file: display(opts.recipeFile), line: p.line, column: p.column };
  } catch {
    return { file: display(opts.recipeFile) };
  }
}
