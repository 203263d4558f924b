/**
 * A cache miss: read the source, load calibration data, run the steps in order (prune → lowrank → distill →
 * quantize), encode, verify in onnxruntime, evaluate if asked, measure sizes. Returns the output and its
 * manifest as stored in the cache (identity and paths are filled per build by `present`).
 */
import path from 'node:path';
import { CompressError } from '../errors.js';
import type { EvalReport } from '../eval/evaluate.js';
import { decodeModel, decodeModelFile, encodeModel, joinChunks, MAX_MESSAGE_BYTES, type Encoded } from '../onnx/codec.js';
import { loadExternalData } from '../onnx/external.js';
import { readFileBytes } from '../onnx/io.js';
import type { ModelProto } from '../onnx/types.js';
import { STEP_ORDER, type Build, type DataSpec } from '../recipe/types.js';
import type { StepContext, StepReport } from '../transforms/types.js';
import { TOOL_NAME, toolVersion } from '../version.js';
import type { ModelCache } from './cache.js';
import type { EventBody } from './events.js';
import { sha256 } from './hash.js';
import type { KeyInfo } from './key.js';
import { checkCarry, locatedData, type DataSection } from './data.js';
import { BROTLI_QUALITY, GZIP_LEVEL, type Manifest } from './manifest.js';
import { measureAccuracy, outputSizes, sourceSizes } from './measure.js';
import { displayPath } from './present.js';
import { verify, type Runtime } from './verify.js';
import type { Device } from '../device.js';
import { loadStep } from '../transforms/registry.js';

export interface RunOptions {
  device?: Device;
  recipeFile?: string;
}

export interface RunOutput {
  bytes: Uint8Array;
  encoded: Encoded;
  manifest: Manifest;
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
    const r = await fn();
    timings[step] = round(performance.now() - t);
    emit({ kind: 'step-done', step, ms: timings[step] });
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
    const a = decodeModelFile(bytes, build.source);
    const b = decodeModel(bytes, build.source);
    if (deps.size) {
      // External tensors of both copies are views into the data files read once above.
      loadExternalData(a, dir, build.source, deps);
      loadExternalData(b, dir, build.source, deps);
    }
    return { sourceParts: parts, original: a, working: b };
  });
  const before = sourceSizes(k, sourceParts, original, cache);

  const rt: Runtime = await import('../runtime/session.js');
  const specs = rt.inputSpecs(original);
  checkCarry(build, specs, rt.outputNames(original), opts.recipeFile);
  const loadRaw = async (section: DataSection, spec: DataSpec, labelKey?: string) => {
    const { loadSamples } = await import('../data/load.js');
    return locatedData(build, section, spec, opts.recipeFile, () => loadSamples(spec, specs, { recipeFile, ...(labelKey !== undefined && { labelKey }) }));
  };
  /** Samples as steps and the precision search see them: with `carry`, each holds the state the source model carries into it. */
  const loadData = async (spec: DataSpec, labelKey?: string) => {
    const samples = await loadRaw(spec === build.calibration ? 'calibration' : 'evaluate', spec, labelKey);
    if (!spec.carry || !Object.keys(spec.carry).length) return samples;
    const { carryStates } = await import('../runtime/carry.js');
    return carryStates(k.deps.length ? original : sourceParts[0], samples, spec.carry, { device });
  };
  const distill = build.steps.distill;
  // Random training data is made inside the step: a missing size in shapes is found here, with its line:col.
  if (distill?.data === 'random') await loadRaw('distill', { data: 'random', samples: 1, ...(distill.shapes && { shapes: distill.shapes }) });
  const calibration = stepNames.length && build.calibration ? await phase('calibration', () => loadData(build.calibration!)) : undefined;

  // Steps, in order.
  let model: ModelProto = working;
  const reports: StepReport[] = [];
  for (const [i, name] of stepNames.entries()) {
    let params: unknown = build.steps[name];
    // The budget picks the precision (search/): the step then runs with a per-layer assignment.
    let searched: import('./search/index.js').SearchResult | undefined;
    const search = name === 'quantize' ? await import('./search/index.js') : undefined;
    if (search?.searchApplies(build)) {
      searched = await phase('search', () =>
        search.searchForBuild(build, model, { loadData, device, ...(calibration && { calibration }), warn: (m) => warn(`search: ${m}`, 'search'), log: (message) => emit({ kind: 'step-log', step: 'search', message }) }),
      );
      params = searched.params;
    }
    const step = factories[i](params as never);
    const ctx: StepContext = {
      file: build.source,
      original,
      ...(calibration && { calibration }),
      device,
      seed: k.seed,
      log: (message) => emit({ kind: 'step-log', step: name, message }),
      progress: (fraction) => emit({ kind: 'step-progress', step: name, fraction }),
    };
    const r = await phase(name, () => step(model, ctx));
    model = r.model;
    if (searched && search) search.recordSearch(r.report, searched);
    reports.push(r.report);
    for (const w of r.report.warnings) warn(`${name}: ${w}`, name);
  }

  const { encoded, bytes } = await phase('encode', () => {
    const e = encodeModel(model);
    if (e.byteLength > MAX_MESSAGE_BYTES) {
      throw new CompressError('compress', `${build.id}: the compressed model is ${e.byteLength} bytes, over protobuf's 2 GiB limit`, { file: displayPath(build.source) });
    }
    return { encoded: e, bytes: joinChunks(e) };
  });
  const outputSha = sha256(bytes);
  const after = outputSizes(k, bytes, outputSha, model, before);

  const evalSamples = build.evaluate ? await phase('data', () => loadRaw('evaluate', build.evaluate!, build.evaluate!.labelKey)) : undefined;
  const usedDevice = await phase('verify', () =>
    verify(rt, build, original, bytes, calibration?.[0] ?? evalSamples?.[0], specs, device, k.seed, (m) => warn(m, 'verify')),
  );
  emit({ kind: 'verify', device: usedDevice });

  let accuracy: EvalReport | undefined;
  if (build.evaluate && evalSamples) {
    const b = build as Build & { evaluate: NonNullable<Build['evaluate']> };
    accuracy = await phase('evaluate', () => measureAccuracy(b, k.deps.length ? original : sourceParts[0], bytes, evalSamples, device));
    // Session warnings (a GPU fallback) were already given by verify.
    for (const w of accuracy.warnings ?? []) if (!warnings.includes(w)) warn(`evaluate: ${w}`, 'evaluate');
  }

  const [beforeStats, afterStats] = await phase('sizes', () => Promise.all([before, after]));
  emit({ kind: 'measure', before: beforeStats, after: afterStats, ...(accuracy && { accuracy }) });
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
