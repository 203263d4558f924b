/**
 * Verification: the compressed model must load and run in onnxruntime, on the first calibration or
 * evaluation sample, else on a synthetic input built from the model's input specs.
 */
import type { Tensor } from 'onnxruntime-node';
import { CompressError } from '../errors.js';
import { DataType } from '../onnx/dtypes.js';
import type { InputSpec, Sample } from '../data/types.js';
import type { ModelProto } from '../onnx/types.js';
import { forEachTensor } from '../onnx/walk.js';
import { checkInputBudget } from '../limits.js';
import { isolationEnabled, plainTensor, probeIsolated } from '../runtime/isolate.js';
import { trimOrtMessage } from '../runtime/ort-message.js';
import { probeGpu } from '../runtime/gpu.js';
import { seededRandom } from '../random.js';
import type { Build } from '../recipe/types.js';
import { displayPath } from './present.js';
import { blameNativeFailure } from './crash.js';
import type { Device } from '../device.js';

export type Runtime = typeof import('../runtime/session.js');

/** A deterministic input from the model's input specs: symbolic dims = 1, floats in [0, 1), integers 0. */
export async function syntheticSample(specs: InputSpec[], seed: number, file?: string): Promise<Sample> {
  // Declared shapes come from the file: check them against the memory budget before allocating anything.
  const shapes = specs.map((s) => ({ name: s.name, type: s.type, dims: s.dims.map((d) => (typeof d === 'number' && d >= 0 ? d : 1)) }));
  checkInputBudget(shapes, 'the verification input (give calibration or evaluate data to verify with real samples)', { file });
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
        throw new CompressError('model', `cannot make a verification input for "${spec.name}" of type ${spec.type}`, { file });
    }
    feeds[spec.name] = plainTensor(spec.type, data as Tensor['data'], dims);
  }
  return { feeds };
}

/**
 * Whether verification should let onnxruntime pre-pack weights: only when most weight bytes are 8- or
 * 4-bit integers. Pre-packing then replaces what it packs and leaves less in memory (28 MB of int8:
 * 165 MB with, 190 MB without). For float32 weights it makes a second full copy (a 378 MB model: 657 MB
 * peak with, 461 MB without); for float16 ones it packs the float32 weights the CPU provider casts them
 * to at load (a 56 MB float16 model: session created in 787 ms with, 272 ms without, and 19 MB more
 * resident). Verification runs once, so it pre-packs only where that saves memory.
 */
export function prepackingPays(model: ModelProto): boolean {
  let integer = 0;
  let all = 0;
  forEachTensor(model, (t) => {
    const n = t.rawData?.byteLength ?? 0;
    all += n;
    if (INTEGER_WEIGHTS.has(t.dataType ?? 0)) integer += n;
  });
  return integer * 2 > all;
}

/** The quantized weights' types. */
const INTEGER_WEIGHTS = new Set<number>([DataType.INT8, DataType.UINT8, DataType.INT4, DataType.UINT4]);

/**
 * Loads and runs the source (from its file, external data beside it) once on `sample` in the isolated
 * child before the pipeline runs it in-process (simplify's check, carry, capture, evaluation): a source
 * that aborts onnxruntime fails its build instead of the process. A plain load or run failure is left to
 * the in-process code, which reports it in context.
 */
export async function probeSource(source: string, sample: Sample, phase: string): Promise<void> {
  if (isolationEnabled()) await probeIsolated(source, sample.feeds, { file: displayPath(source), phase: `${phase}, on the source model` });
}

/** The source model does not load in onnxruntime: bad input, CompressError('model'). */
function sourceError(build: Build, e: unknown): CompressError {
  const reason = ((e as Error)?.message ?? String(e)).replace(/^onnxruntime cannot load the model: /, '');
  return new CompressError('model', `${build.id}: the source model does not load in onnxruntime: ${reason}`, { file: displayPath(build.source) }, { cause: e });
}

/**
 * The source model loads but fails to run on the input the compressed model was verified with, while
 * the compressed model does not even load: the source fails the same check on the same input, so it is
 * bad input (exit 2), not a failed compression. (A malformed source can load because onnxruntime checks
 * shapes leniently where dims are symbolic or unknown, and fail only when run; simplify's folds make
 * those shapes concrete, and the same fault then shows at load, e.g. a Scan body without outputs or a
 * Mul of incompatible dims.)
 */
function sourceRunError(build: Build, input: string, source: unknown, output: unknown): CompressError {
  const why = (e: unknown) => ((e as Error)?.message ?? String(e)).replace(/^onnxruntime failed to run the model[^:]*: /, '');
  return new CompressError(
    'model',
    `${build.id}: the source model fails to run in onnxruntime on the ${input}: ${why(source)} (and the compressed model does not load: ${why(output)})`,
    { file: displayPath(build.source) },
    { cause: source },
  );
}

/** Why the source model does not load or run on `input` in onnxruntime (CPU); undefined when it does both. */
async function sourceFailure(rt: Runtime, build: Build, input: Sample, inputName: string, outputError: unknown): Promise<CompressError | undefined> {
  let o: Awaited<ReturnType<Runtime['openSession']>>;
  try {
    o = await rt.openSession(build.source, { device: 'cpu', prepacking: false });
  } catch (e) {
    return sourceError(build, e);
  }
  try {
    await rt.runSession(o.session, input.feeds);
    return undefined;
  } catch (e) {
    return sourceRunError(build, inputName, e, outputError);
  } finally {
    await o.session.release();
  }
}

/** What the web check needs from verification (src/pipeline/webcheck.ts): the same input, and the outputs as a reference. */
export interface VerifyHooks {
  /** The input to run when `sample` is undefined (the caller made the synthetic input already). */
  synthetic?: Sample;
  /** Quantized matmuls with float activations, as onnxruntime-web computes them. */
  floatActivations?: boolean;
  /** Whether the output quantizes activations (SessionOptions.quantizedActivations): the sessions need not look. */
  quantizedActivations?: boolean;
  /** Receives the outputs of the run (the CPU run's, when there are a CPU and a GPU run). */
  onOutputs?: (outputs: Record<string, Tensor>, device: string) => void;
}

/**
 * Loads the written output (`file`) in onnxruntime and runs it once; returns the device it ran on.
 * Warnings (a GPU fallback, an unverifiable input) go to `warn`. A failed run is checked against the
 * source (from its file) to tell a bad input from a bad output.
 *
 * With isolation on (the default), the run on the CPU happens in the pooled child, and that run is the
 * verification: the output is not loaded a second time in this process unless a GPU provider is to be
 * verified as well.
 */
export async function verify(
  loadRuntime: () => Promise<Runtime>,
  build: Build,
  file: string,
  sample: Sample | undefined,
  specs: InputSpec[],
  device: Device,
  seed: number,
  warn: (m: string) => void,
  prepacking: boolean,
  hooks: VerifyHooks = {},
): Promise<string> {
  const input = sample ?? hooks.synthetic ?? (await syntheticSample(specs, seed, displayPath(build.source)));
  const inputName = sample ? 'first data sample' : 'synthetic verification input';
  const unverified = (e: unknown) =>
    warn(`could not verify the output: the source model fails on the ${inputName} too (${(e as Error)?.message ?? String(e)})`);
  const reasonOf = (what: string, e: unknown) => {
    // A load failure names the temp / cache file ORT read: the user's file is the source; say ORT's reason.
    const loadError = what === 'does not load' && e instanceof CompressError && e.cause !== undefined;
    const message = loadError ? trimOrtMessage(e.cause) : ((e as Error).message ?? String(e));
    return message.replace(/^onnxruntime (cannot load the model|failed to run the model[^:]*): /, '').replace(/^Load model from .* failed:\s*/, '');
  };
  const fail = (what: string, e: unknown) =>
    new CompressError('compress', `${build.id}: the compressed model ${what} in onnxruntime: ${reasonOf(what, e)}`, { file: displayPath(build.source) }, { cause: e });
  let cpuOutputs = false;
  if (isolationEnabled()) {
    // In a child process: a model that aborts or hangs onnxruntime fails this build, not the process.
    const where = displayPath(build.source);
    const r = await probeIsolated(file, input.feeds, { file: where, phase: 'verify', prepacking, ...(hooks.floatActivations && { floatActivations: true }), quantizedActivations: hooks.quantizedActivations, outputs: hooks.onOutputs !== undefined }).catch(
      (e) => blameNativeFailure(e, build, input.feeds), // a crash or hang: the source's fault or the compression's
    );
    if (!r.ok) {
      const s = await probeIsolated(build.source, input.feeds, { file: where, phase: 'verify, on the source model', prepacking: false });
      if (r.stage === 'load') {
        // A source that onnxruntime refuses is bad input (exit 2), named as such.
        if (!s.ok && s.stage === 'load') throw sourceError(build, new Error(s.message));
        // One that loads but fails to run on this input fails the same check too: also bad input.
        if (!s.ok) throw sourceRunError(build, inputName, new Error(s.message), new Error(r.message));
        throw fail('does not load', new Error(r.message));
      }
      // Does the source model run on this input? If not, the input is the problem, not the compression.
      if (s.ok) throw fail('fails to run', new Error(r.message));
      unverified(new Error(r.message));
      return 'cpu';
    }
    if (r.outputs) {
      hooks.onOutputs?.(r.outputs as unknown as Record<string, Tensor>, 'cpu');
      cpuOutputs = true;
    }
    if (device === 'cpu' || (device === 'auto' && !(await probeGpu()).provider)) return 'cpu';
  }
  const rt = await loadRuntime();
  let opened: Awaited<ReturnType<Runtime['openSession']>>;
  try {
    opened = await rt.openSession(file, { device, prepacking, ...(hooks.floatActivations && { floatActivations: true }), quantizedActivations: hooks.quantizedActivations });
  } catch (e) {
    // A device problem is not the compression's fault: report it as what it is.
    if (e instanceof CompressError && e.kind === 'runtime' && /GPU|execution provider/i.test(e.message)) throw e;
    // Nor is a source that onnxruntime refuses, or cannot run on this input: bad input (exit 2), named as such.
    const bad = await sourceFailure(rt, build, input, inputName, new Error(reasonOf('does not load', e)));
    if (bad) throw bad;
    throw fail('does not load', e);
  }
  for (const w of opened.warnings) warn(w);
  try {
    const outputs = await rt.runSession(opened.session, input.feeds);
    if (!cpuOutputs) hooks.onOutputs?.(outputs, opened.device);
    return opened.device;
  } catch (e) {
    // Does the source model run on this input? If not, the input is the problem, not the compression.
    let sourceRuns = false;
    try {
      const o = await rt.openSession(build.source, { device: opened.device === 'cpu' ? 'cpu' : device, prepacking: false });
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
    unverified(e);
    return opened.device;
  } finally {
    await opened.session.release();
  }
}
