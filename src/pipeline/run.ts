/**
 * A cache miss: read the source (lazily for a quantize-only build), load calibration data, run the steps
 * in order (prune → lowrank → distill → quantize), encode, write the output (cache entry or temp file),
 * drop every buffer, verify in onnxruntime from the file, evaluate if asked, while sizes are measured in
 * zlib's threads. Returns the output and its
 * manifest as stored in the cache (identity and paths are filled per build by `present`).
 */
import path from 'node:path';
import { CompressError, locate } from '../errors.js';
import type { EvalReport } from '../eval/evaluate.js';
import { decodeModel, decodeModelFile, encodeModel, MAX_MESSAGE_BYTES, type Encoded } from '../onnx/codec.js';
import { loadExternalData } from '../onnx/external.js';
import { requireGraph } from '../onnx/sanity.js';
import { readFileBytes } from '../onnx/io.js';
import type { ModelProto } from '../onnx/types.js';
import type { InputSpec } from '../data/types.js';
import { forEachTensor } from '../onnx/walk.js';
import { STEP_ORDER, type Build, type DataSpec } from '../recipe/types.js';
import type { StepContext, StepReport } from '../transforms/types.js';
import type { Sample } from '../data/types.js';
import { TOOL_NAME, toolVersion } from '../version.js';
import type { ModelCache } from './cache.js';
import type { EventBody } from './events.js';
import type { KeyInfo } from './key.js';
import { checkCarry, locatedData, type DataSection } from './data.js';
import { SIZE_SETTINGS, type Manifest } from './manifest.js';
import { collectGarbage } from './memory.js';
import { hashChunks, OutputFile } from './output.js';
import { hashFile, statCacheFor, WORKER_HASH_FROM } from './hash.js';
import { latencyEntry, measureAccuracy, outputSizes, sourceSizes } from './measure.js';
import { displayPath } from './present.js';
import { prepackingPays, probeSource, syntheticSample, verify, type Runtime } from './verify.js';
import { measureWebLatency, planWebCheck, type WebCheckRun } from './webcheck.js';
import type { Device } from '../device.js';
import { withSessionGate } from '../runtime/gate.js';
import { isolationEnabled, warmIsolatedPool } from '../runtime/isolate.js';
import { EMULATED_NOTICE, integerKernelsSaturate, quantizesActivations } from '../runtime/integer-kernels.js';
import { PREFAULT_MAX_BYTES } from '../runtime/child.js';
import { inputSpecs, outputNames } from '../runtime/specs.js';
import { probeGpu } from '../runtime/gpu.js';
import { isBuiltIn, loadStep } from '../transforms/registry.js';
import { cloneModel } from '../onnx/edit.js';
import { searchApplies } from './search/applies.js';

export interface RunOptions {
  device?: Device;
  recipeFile?: string;
}

export interface RunOutput {
  /** The written output (cache entry or temp file). */
  output: OutputFile;
  manifest: Manifest;
  /** Whether `output` is the cache entry's model file (its manifest is still to be written). */
  inCache: boolean;
}

const round = (ms: number) => Math.round(ms * 100) / 100;

export async function runBuild(
  build: Build,
  opts: RunOptions,
  k: KeyInfo,
  cache: ModelCache | undefined,
  emit: (e: EventBody) => void,
  t0: number,
): Promise<RunOutput> {
  const timings: Record<string, number> = {};
  const warnings: string[] = [];
  const elapsed = () => round(performance.now() - t0);
  const warn = (message: string, step?: string) => {
    warnings.push(message);
    emit({ kind: 'warning', ...(step && { step }), message });
  };
  const phase = async <T>(step: string, fn: () => Promise<T> | T): Promise<T> => {
    emit({ kind: 'step-start', step });
    const t = performance.now();
    let r: T;
    try {
      r = await fn();
    } catch (e) {
      throw locate(e, displayPath(build.source)); // an error that names no file is about the source model
    }
    timings[step] = round(performance.now() - t);
    emit({ kind: 'step-done', step, ms: timings[step] });
    return r;
  };
  timings.hash = elapsed();
  const device = opts.device ?? build.device;
  const stepNames = STEP_ORDER.filter((s) => build.steps[s] !== undefined);
  const factories = await Promise.all(stepNames.map((name) => loadStep(name))); // fail before any work
  const recipeFile = opts.recipeFile ?? path.join(process.cwd(), 'compress.yaml');
  // Builds for the browser are run in onnxruntime-web too: its process starts now, while the steps run
  // (once the data are loaded, for a build that reads data: `warm`).
  const web = planWebCheck(build, recipeFile, (m) => warn(m, 'web'), k.source.bytes);
  const warm = () => {
    warmIsolatedPool(k.source.bytes);
    if ('start' in web) web.prewarm();
  };

  let probed: Promise<void> | undefined;
  let sourceSpecs: InputSpec[] = []; // set by the read phase, before anything can await the probe
  const sourceProbed = (): Promise<void> =>
    (probed ??= (async () => {
      const { loadSamples } = await import('../data/load.js');
      const specs = sourceSpecs;
      const cal = build.calibration && !build.calibration.carry ? build.calibration : undefined;
      const first = cal ? (await locatedData(build, 'calibration', { ...cal, samples: 1 }, opts.recipeFile, () => loadSamples({ ...cal, samples: 1 }, specs, { recipeFile })))[0] : undefined;
      await probeSource(build.source, first ?? (await syntheticSample(specs, k.seed, displayPath(build.source))), 'before the steps');
    })());
  const startProbe = () => void sourceProbed().catch(() => {}); // its error reaches whoever awaits it

  // Read, steps, encode, write: in a function of its own, so that once it returns nothing refers to the
  // source's or the output's buffers (not even a dead register of this frame) and one collection frees
  // them before onnxruntime loads the output: the process never holds source, output and ORT's copy at once.
  const gated = <T>(fn: () => Promise<T>) => withSessionGate(sourceProbed, fn);
  const made = await gated(async () => {
    // A build that only simplifies and quantizes by rounding reads the source lazily: tensor payloads stay
    // on disk, simplify reads the few it rewrites, and quantize reads each weight when it converts it
    // (into one reused buffer), so memory holds the output, not the input too — and the input's pages are
    // never faulted in, which on a virtual machine was most of the read's time (0.4 s for 113 MB).
    // (Not with calibration data, GPTQ or a precision search: those run or measure the model in memory.)
    // The search's modules (50 of them, onnxruntime's among them) load only for a build that searches.
    const search = stepNames.includes('quantize') && searchApplies(build) ? await import('./search/index.js') : undefined;
    const lazy =
      stepNames.includes('quantize') &&
      stepNames.every((s) => (s === 'quantize' || s === 'simplify') && isBuiltIn(s)) &&
      build.steps.quantize?.method !== 'gptq' &&
      !build.calibration &&
      k.deps.length === 0 &&
      !search;
    const lazyRead = lazy ? await import('../onnx/lazy.js') : undefined;
    const readLazy = lazyRead?.readModelLazy;
    // Two decodes (tensor bytes are shared views): steps get their own graph objects.
    let source: { parts?: Uint8Array[]; original: ModelProto; working: ModelProto } | undefined = await phase('read', () => {
      if (readLazy) {
        // One skim of the file (a read per field run: ~15 ms for the 113 MB stack here), then a copy of the graph.
        const original = readLazy(build.source);
        return { original, working: cloneModel(original) };
      }
      const bytes = readFileBytes(build.source);
      const dir = path.dirname(build.source);
      const deps = new Map(k.deps.map((d) => [path.join(dir, d), readFileBytes(path.join(dir, d))] as const));
      const parts: Uint8Array[] = [bytes, ...deps.values()];
      const a = decodeModelFile(bytes, build.source);
      const b = decodeModel(bytes, build.source);
      if (deps.size) {
        // External tensors of both copies are views into the data files read once above.
        loadExternalData(a, dir, build.source, deps, build.externalDataDirs);
        loadExternalData(b, dir, build.source, deps, build.externalDataDirs);
      }
      return { parts, original: a, working: b };
    });
    requireGraph(source.original, displayPath(build.source)); // no graph or no outputs: bad input (exit 2), not a failed check later
    const before = sourceSizes(k, build.source, source.parts, source.original, cache);

    // onnxruntime's native library loads only where something runs in this process (~60 ms): a build
    // whose runs all happen in the isolated child never loads it.
    const runtime = (): Promise<Runtime> => import('../runtime/session.js');
    // Which GPU provider works is probed once per process; start it while the steps run.
    if (device !== 'cpu') probeGpu().catch(() => {});
    const specs = inputSpecs(source.original);
    sourceSpecs = specs;
    checkCarry(build, specs, outputNames(source.original), opts.recipeFile);
    const loadRaw = async (section: DataSection, spec: DataSpec, labelKey?: string) => {
      const { loadSamples } = await import('../data/load.js');
      return locatedData(build, section, spec, opts.recipeFile, () => loadSamples(spec, specs, { recipeFile, ...(labelKey !== undefined && { labelKey }) }));
    };
    /** Samples as steps and the precision search see them: with `carry`, each holds the state the source model carries into it. */
    const loadData = async (spec: DataSpec, labelKey?: string) => {
      const samples = await loadRaw(spec === build.calibration ? 'calibration' : 'evaluate', spec, labelKey);
      if (!spec.carry || !Object.keys(spec.carry).length) return samples;
      const { carryStates } = await import('../runtime/carry.js');
      // From the source's file (and its external data beside it): this closure outlives the buffers.
      return carryStates(build.source, samples, spec.carry, { device });
    };
    // Whatever runs the source in this process (simplify's output check and folds, capture, GPTQ, carry,
    // evaluation) waits for one run of it in the isolated child first, on the first calibration sample
    // or a synthetic input (whose size is checked before allocating it): see withSessionGate. A build that
    // only rounds weights never needs that run; one with calibration data surely does, so it starts now,
    // in the child, while this process reads and converts.
    if (build.calibration || build.evaluate?.carry) startProbe();
    const distill = build.steps.distill;
    // Random training data is made inside the step: a missing size in shapes is found here, with its line:col.
    if (distill?.data === 'random') await loadRaw('distill', { data: 'random', samples: 1, ...(distill.shapes && { shapes: distill.shapes }) });
    const calibration = stepNames.length && build.calibration ? await phase('calibration', () => loadData(build.calibration!)) : undefined;
    // The isolation child (verification's) starts here in every build; onnxruntime-web's, the costlier
    // start (~0.8 s of CPU), waits for the evaluation data of a build that has some (their check is
    // awaited after evaluation, which its start then overlaps).
    if (build.evaluate) warmIsolatedPool(k.source.bytes);
    else warm();

    // Steps, in order.
    let model: ModelProto | undefined = source.working;
    const reports: StepReport[] = [];
    for (const [i, name] of stepNames.entries()) {
      let params: unknown = build.steps[name];
      // The budget picks the precision (search/): the step then runs with a per-layer assignment.
      let searched: import('./search/index.js').SearchResult | undefined;
      if (name === 'quantize' && search) {
        const current = model!;
        searched = await phase('search', () =>
          search.searchForBuild(build, current, { loadData, device, ...(calibration && { calibration }), warn: (m) => warn(`search: ${m}`, 'search'), log: (message) => emit({ kind: 'step-log', step: 'search', message }) }),
        );
        params = searched.params;
      }
      const step = factories[i](params as never);
      const ctx: StepContext = {
        file: build.source,
        original: source.original,
        ...(calibration && { calibration }),
        device,
        seed: k.seed,
        log: (message) => emit({ kind: 'step-log', step: name, message }),
        progress: (fraction) => emit({ kind: 'step-progress', step: name, fraction }),
        // The bytes read are the pipeline's own: the source's size figures were sampled and the source
        // is reloaded from its file by verification and evaluation. Only a later distill reads `original`.
        inPlace: !stepNames.slice(i + 1).includes('distill'),
      };
      const r: Awaited<ReturnType<typeof step>> = await phase(name, () => step(model!, ctx));
      model = r.model;
      if (searched && search) search.recordSearch(r.report, searched);
      reports.push(r.report);
      for (const w of r.report.warnings) warn(`${name}: ${w}`, name);
    }

    // Where onnxruntime's 8-bit kernels saturate, a model with quantized activations is measured unfused (runtime/integer-kernels.ts).
    const quantizedActivations = quantizesActivations(model!);
    if (quantizedActivations && integerKernelsSaturate()) warn(EMULATED_NOTICE, 'verify');

    // Payloads a lazy read left on disk that no step converted go into the output, which stands alone.
    if (lazyRead) forEachTensor(model, (t) => void (lazyRead.isLazy(t, build.source) && lazyRead.loadLazy(t, build.source)));

    // Encode (chunks are views into the tensors, never joined), hash, start the sizes, write.
    let encoded: Encoded | undefined = await phase('encode', () => {
      const e = encodeModel(model!);
      if (e.byteLength > MAX_MESSAGE_BYTES) {
        throw new CompressError('compress', `${build.id}: the compressed model is ${e.byteLength} bytes, over protobuf's 2 GiB limit`, { file: displayPath(build.source) });
      }
      return e;
    });
    // A large output is hashed from its file on a worker thread while verification runs (378 MB: ~0.25 s
    // of this thread's time before); a smaller one here, from its chunks. An output that is a byte-for-byte
    // copy of the source has the source's size.
    const outputBytes = encoded.byteLength;
    const hashLater = outputBytes >= WORKER_HASH_FROM && outputBytes !== k.source.bytes;
    const sha = hashLater ? undefined : hashChunks(encoded.chunks);
    const after = outputSizes(k, encoded.chunks, sha === k.source.sha256, model, before);
    const prepacking = prepackingPays(model);
    const { output, inCache } = await phase('write', () => writeOutput(encoded!, sha, k, cache, (m) => warn(m, 'cache')));
    const outputSha = sha !== undefined ? Promise.resolve(sha) : hashFile(output.file, cache?.stats ?? statCacheFor(undefined)).then((h) => h.sha256);
    outputSha.catch(() => {}); // awaited for the manifest; a failure then fails the build
    // Closures made here (loadRaw, promise callbacks) keep this scope alive: clear what pins buffers.
    source = model = encoded = undefined;
    return { runtime, specs, loadRaw, calibration, reports, output, inCache, outputSha, outputBytes, prepacking, quantizedActivations, before, after };
  });
  const { runtime, specs, loadRaw, calibration, reports, output, inCache, outputSha, outputBytes, prepacking, quantizedActivations, before, after } = made;
  // The source's and output's buffers freed before onnxruntime loads the output: in this process, or in
  // the children (verification, web check), which then reuse memory just freed instead of faulting in
  // fresh pages (see memory.ts). A small model's children have faulted in what they need while the steps
  // ran (up to 128 MiB): there the collection would only cost ~20–35 ms; its buffers go with the next
  // collection V8 makes anyway.
  const runsHere = build.evaluate !== undefined || !isolationEnabled() || (device !== 'cpu' && (await probeGpu()).provider !== undefined);
  if (runsHere || Math.max(outputBytes, k.source.bytes) >= PREFAULT_MAX_BYTES) collectGarbage();

  try {
    const evalSamples = build.evaluate ? await phase('data', () => loadRaw('evaluate', build.evaluate!, build.evaluate!.labelKey)) : undefined;
    warm();
    const sample = calibration?.[0] ?? evalSamples?.[0];
    // The web check runs the same input in onnxruntime-web while verification runs it in onnxruntime-node.
    let webRun: WebCheckRun | undefined;
    let synthetic: Sample | undefined;
    let reference: Parameters<WebCheckRun['finish']>[0];
    if ('start' in web) {
      synthetic = sample ? undefined : await syntheticSample(specs, k.seed, displayPath(build.source));
      webRun = web.start(output.file, sample ?? synthetic!, calibration?.[0] ? 'first calibration sample' : sample ? 'first evaluation sample' : 'synthetic input');
    }
    const usedDevice = await phase('verify', () =>
      gated(() =>
        verify(runtime, build, output.file, sample, specs, device, k.seed, (m) => warn(m, 'verify'), prepacking, {
          quantizedActivations,
          ...(synthetic && { synthetic }),
          ...(webRun && { floatActivations: true, onOutputs: (outputs, device) => (reference = { outputs, device }) }),
        }),
      ),
    );
    emit({ kind: 'verify', device: usedDevice });

    let accuracy: EvalReport | undefined;
    let webLatency: Awaited<ReturnType<typeof measureWebLatency>>;
    if (build.evaluate && evalSamples) {
      const b = build as Build & { evaluate: NonNullable<Build['evaluate']> };
      // Both from their files: onnxruntime reads each once (and a source's external data beside it).
      if (evalSamples[0]) {
        const p = probeSource(build.source, evalSamples[0], 'evaluate');
        probed ??= p; // it is the gate's run of the source too
        await p;
      }
      accuracy = await phase('evaluate', () => gated(() => measureAccuracy(b, build.source, output.file, evalSamples, device)));
      // Session warnings (a GPU fallback) were already given by verify.
      for (const w of accuracy.warnings ?? []) if (!warnings.includes(w)) warn(`evaluate: ${w}`, 'evaluate');
      if (b.evaluate.web && b.evaluate.runs > 0 && evalSamples[0]) {
        webLatency = await phase('web-latency', () => measureWebLatency(b, recipeFile, output.file, evalSamples[0], (m) => warn(m, 'evaluate')));
      }
    }

    // After evaluation: the web check's child, started with the evaluation data, ran beside it.
    const webCheck = webRun ? await phase('web', () => webRun.finish(reference, (m) => warn(m, 'web'))) : 'start' in web ? undefined : web;
    const [beforeStats, afterStats] = await phase('sizes', () => Promise.all([before, after]));
    emit({ kind: 'measure', before: beforeStats, after: afterStats, ...(accuracy && { accuracy }) });
    // The source's content hash, where the key was made without waiting for it (taken meanwhile).
    const fk = k.final ? await k.final : k;
    timings.total = elapsed();

    const manifest: Manifest = {
      tool: { name: TOOL_NAME, version: toolVersion() },
      id: build.id,
      name: build.name,
      ...(build.variant !== undefined && { variant: build.variant }),
      source: { file: '', sha256: fk.source.sha256, bytes: fk.source.bytes },
      output: { file: build.output, sha256: await outputSha, bytes: outputBytes },
      recipe: {},
      steps: reports,
      sizes: { before: beforeStats, after: afterStats, compression: SIZE_SETTINGS },
      ...(accuracy && build.evaluate && { accuracy, latency: latencyEntry(accuracy, build.evaluate, (await runtime()).runtimeVersion(), webLatency) }),
      ...(webCheck && { webCheck }),
      device: usedDevice,
      warnings,
      timings: timings as Manifest['timings'],
      cache: { key: fk.key },
    };
    return { output, manifest, inCache };
  } catch (e) {
    // A failed build leaves no model file without its manifest in the cache.
    if (inCache) cache?.remove(k.key);
    throw e;
  }
}

/**
 * Loads, without running anything, the modules runBuild imports for `build`: its steps', the precision
 * search's, the lazy reader's and onnxruntime's (~0.2 s for simplify + quantize). The pipeline calls it
 * while a worker thread hashes a large source, which would otherwise leave this thread idle. A module
 * that fails to load fails later, where runBuild imports it.
 */
export function preloadBuild(build: Build): void {
  const ignore = () => {};
  const steps = STEP_ORDER.filter((s) => build.steps[s] !== undefined);
  for (const name of steps) loadStep(name).catch(ignore);
  if (steps.includes('quantize') && searchApplies(build)) import('./search/index.js').catch(ignore);
  import('../onnx/lazy.js').catch(ignore);
  // onnxruntime's native library only for a build that will run something in this process (evaluation
  // or calibration data, runs not isolated in a child); a GPU probe loads it where a GPU may be there.
  if (build.evaluate || build.calibration || !isolationEnabled()) import('../runtime/session.js').catch(ignore);
}

/**
 * Writes the encoded output where verification will load it from: the cache entry's model file (its
 * manifest follows once the build succeeds), else a temp file. A cache that cannot be written costs a
 * warning, not the build.
 */
function writeOutput(encoded: Encoded, sha: string | undefined, k: KeyInfo, cache: ModelCache | undefined, warn: (m: string) => void): { output: OutputFile; inCache: boolean } {
  if (cache) {
    try {
      cache.putModel(k.key, encoded, sha);
      return { output: new OutputFile(cache.modelFile(k.key), encoded.byteLength), inCache: true };
    } catch (e) {
      warn(`could not store the result in the cache: ${(e as Error).message}`);
    }
  }
  return { output: OutputFile.temp(k.key.slice(0, 16), encoded), inCache: false };
}
