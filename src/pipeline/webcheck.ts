/**
 * The web check of a build, and the web latency of `evaluate: { web: true }`.
 *
 * Every build whose target is the browser (quantize.target wasm, the default, or webgpu, whose fallback
 * is wasm) runs its output in onnxruntime-web's wasm backend (src/runtime/web.ts, in a child process) on
 * verification's input, while verification runs it in onnxruntime-node; the outputs are compared with
 * verification's (no second native run). A model that does not load or run there fails the build
 * (exit 1) naming the op and its nodes; outputs that differ beyond the tolerance are a warning and a
 * manifest entry (static int8 builds: beyond the tolerance, or the model's own 8-bit error when the
 * float32 source is run on the same input, compareWebOutputs). target node, or no onnxruntime-web to be found: not checked, and the manifest says why
 * (a missing onnxruntime-web is also a warning).
 */
import path from 'node:path';
import type { Tensor } from 'onnxruntime-node';
import { CompressError } from '../errors.js';
import type { Sample } from '../data/types.js';
import type { Build } from '../recipe/types.js';
import { latencyStats } from '../eval/metrics.js';
import { float16ToFloat32Array } from '../onnx/float16.js';
import { prewarmWeb, resolveOrtWeb, runWeb, webLatency, WEB_THREADS, type OrtWebInfo, type WireFeeds, type WireTensor } from '../runtime/web.js';
import { compareWebOutputs, describeWebFailure, nativeReference } from '../runtime/web-compat.js';
import type { WebCheckEntry, WebLatencyEntry } from './manifest.js';
import { displayPath } from './present.js';

/**
 * Tolerance of the web check: max |web − node| ≤ rel · max|node| + ABS, per output. rel is 1e-3, and
 * 2e-3 for outputs that compute in float16 (dtype float16, q4f16): the two runtimes' float16 kernels round
 * partial sums differently, a few float16 steps (2^-11 relative) apart.
 */
export const WEB_REL = 1e-3;
export const WEB_REL_FLOAT16 = 2e-3;
export const WEB_ABS = 1e-4;

const runtimeName = (ort: OrtWebInfo) => `onnxruntime-web ${ort.version} (wasm, ${WEB_THREADS} thread${WEB_THREADS === 1 ? '' : 's'})`;

const toWire = (feeds: Record<string, Tensor>): WireFeeds => Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, { type: t.type, dims: [...t.dims], data: t.data }]));

export interface WebCheck {
  /** Starts running `file` in onnxruntime-web on `input` (verification's input, named `inputName`). */
  start(file: string, input: Sample, inputName: string): WebCheckRun;
  /** Starts onnxruntime-web's child ahead of `start`, if none is waiting (the pipeline calls it once the build's data are loaded). */
  prewarm(): void;
}

export interface WebCheckRun {
  /**
   * Compares with verification's outputs (`reference`; a native reference is run here when there are
   * none, or when they came from a GPU). Throws when the model does not load or run in onnxruntime-web.
   */
  finish(reference: { outputs: Record<string, Tensor>; device: string } | undefined, warn: (m: string) => void): Promise<WebCheckEntry>;
}

/**
 * The web check of `build`, begun (its child and wasm runtime warm up while the steps run), or the
 * manifest entry that says why there is none. A build that reads calibration or evaluation data warms
 * the child only once they are loaded (`prewarm`): data that fail to load end the build first, and a
 * child started for nothing would compete with that failure for the CPU (the corpus's infinite data
 * module took 2.6–3.4 s of wall time without the two child processes, 3.0–5.2 s with them, load 2–3).
 */
export function planWebCheck(build: Build, recipeFile: string | undefined, warn: (m: string) => void, sourceBytes = 0): WebCheck | WebCheckEntry {
  const target = build.steps.quantize?.target ?? 'wasm';
  if (target === 'node') return { checked: false, reason: 'quantize.target is node: the model is not built for the browser' };
  if (build.webCheck === false) return { checked: false, reason: 'webCheck: false in the recipe' };
  const ort = resolveOrtWeb(recipeFile ? path.dirname(recipeFile) : process.cwd());
  if (!ort) {
    const reason = 'onnxruntime-web is not installed: the output was not run in the browser runtime (npm install onnxruntime-web in the app to check it)';
    warn(`web check: ${reason}`);
    return { checked: false, reason };
  }
  const bytes = Math.round(sourceBytes * outputShare(build));
  if (!readsData(build)) prewarmWeb(ort, bytes);
  return { start: (file, input, inputName) => startRun(build, ort, file, input, inputName), prewarm: () => prewarmWeb(ort, bytes) };
}

/** Whether the build loads calibration or evaluation data, which can fail (see planWebCheck). */
export const readsData = (build: Build): boolean => build.calibration !== undefined || build.evaluate !== undefined;

/** About what share of the source's bytes the output will have (what the web check's child prepares for). */
function outputShare(build: Build): number {
  const q = build.steps.quantize;
  if (!q) return 1;
  if (q.dtype === 'float16') return 0.5;
  if (q.dtype === 'int4' || q.dtype === 'uint4') return q.float16 ? 0.1 : 0.15;
  return 0.25; // 8-bit, or a search between 4- and 8-bit
}

function startRun(build: Build, ort: OrtWebInfo, file: string, input: Sample, inputName: string): WebCheckRun {
  const feeds = toWire(input.feeds);
  // Never rejects: a failed build must not leave an unhandled rejection behind.
  const pending = runWeb(ort, file, feeds).catch((e: unknown) => ({ error: e instanceof CompressError ? e : new CompressError('runtime', String(e)) }));
  return {
    async finish(reference, warn) {
      const r = await pending;
      const base = { checked: true, runtime: runtimeName(ort), input: inputName };
      if ('error' in r) {
        // Nothing says the model is at fault (a hang or memory past the limits): said, not failed.
        warn(`web check: not completed: ${r.error.message}`);
        return { ...base, checked: false, reason: r.error.message };
      }
      if (!r.ok) {
        // Verification gave no outputs: when onnxruntime-node fails on this input too (a synthetic input
        // that the model cannot take, e.g. openWakeWord's melspectrogram), the input is at fault, not the
        // model: said, as verification says it, not a failed build.
        if (r.stage === 'run' && !reference && !(await nativeReference(file, feeds).then(() => true, () => false))) {
          const reason = `the model loads in onnxruntime-web but was not run: onnxruntime-node fails on the ${inputName} too (${describeWebFailure(r)})`;
          warn(`web check: ${reason}`);
          return { ...base, checked: false, loads: true, reason };
        }
        // The source itself failing in onnxruntime-web on the same input (a malformed model that
        // onnxruntime-node's lenient shape checks let through) is bad input (exit 2), not the compression,
        // whether it fails to load or, where the output does not load, to run.
        // An op onnxruntime-web has no kernel for keeps its own message and advice (exit 1).
        const source = r.op ? undefined : await runWeb(ort, build.source, feeds).catch(() => undefined);
        if (source && !source.ok) {
          throw new CompressError(
            'model',
            `${build.id}: the source model does not ${source.stage} in the browser either: ${describeWebFailure(source)}`,
            { file: displayPath(build.source) },
          );
        }
        throw new CompressError(
          'compress',
          `${build.id}: the compressed model does not ${r.stage} in the browser: ${describeWebFailure(r)} (quantize.target: node builds a model that is not meant for the browser)`,
          { file: displayPath(build.source) },
        );
      }
      const timing = { loadMs: round(r.loadMs), runMs: round(r.runMs) };
      // Verification's outputs are the reference when it ran on the CPU, with float activations as wasm.
      let ref: Record<string, WireTensor>;
      try {
        ref = reference && reference.device === 'cpu' && r.accuracyLevelNodes === 0 ? (reference.outputs as unknown as Record<string, WireTensor>) : await nativeReference(file, feeds);
      } catch (e) {
        warn(`web check: the model loads and runs in onnxruntime-web, but onnxruntime-node gave no outputs to compare with (${(e as Error).message})`);
        return { ...base, loads: true, ...timing };
      }
      const rel = build.steps.quantize?.float16 ? WEB_REL_FLOAT16 : WEB_REL;
      let c = compareWebOutputs(ref, r.outputs, rel, WEB_ABS, float16ToFloat32Array);
      // Static int8: the runtimes' integer kernels may round an activation one 8-bit step apart; measured
      // against the source's float32 outputs, such a difference is within the model's own rounding.
      if (c.problem && build.steps.quantize?.activations) {
        try {
          c = compareWebOutputs(ref, r.outputs, rel, WEB_ABS, float16ToFloat32Array, await nativeReference(build.source, feeds));
        } catch {
          // The source did not run here (external data, …): the element-wise comparison stands.
        }
      }
      if (c.problem) warn(`web check: ${c.problem}`);
      return { ...base, loads: true, outputs: c.outputs.map((o) => ({ ...o, ok: o.maxAbsDiff <= o.allowed || (o.rms !== undefined && o.rms.web <= o.rms.quantization) })), ...timing };
    },
  };
}

const round = (ms: number) => Math.round(ms * 100) / 100;

/**
 * Latency in onnxruntime-web (wasm) of the source and the output on the first evaluation sample, as
 * onnxruntime-node's is measured (`evaluate.runs` runs each, interleaved), after warm-up runs until they
 * stop getting faster (src/runtime/web.ts): V8 optimizes hot wasm functions only after they ran a while.
 */
export async function measureWebLatency(build: Build & { evaluate: NonNullable<Build['evaluate']> }, recipeFile: string | undefined, output: string, sample: Sample, warn: (m: string) => void): Promise<WebLatencyEntry | undefined> {
  const ort = resolveOrtWeb(recipeFile ? path.dirname(recipeFile) : process.cwd());
  if (!ort) {
    warn('evaluate.web: onnxruntime-web is not installed: no web latency (npm install onnxruntime-web in the app to measure it)');
    return undefined;
  }
  const feeds = toWire(sample.feeds);
  const r = await runLatency(ort, build, output, feeds);
  if ('error' in r) {
    warn(`evaluate.web: no web latency: ${r.error}`);
    return undefined;
  }
  if (r.originalError) warn(`evaluate.web: the original model ${r.originalError.slice(0, 300)}: no web latency for it`);
  return {
    runtime: runtimeName(ort),
    threads: WEB_THREADS,
    warmup: r.warmup,
    ...(r.original && { original: latencyStats(r.original) }),
    ...(r.originalError && { originalError: r.originalError }),
    compressed: latencyStats(r.compressed),
  };
}

async function runLatency(ort: OrtWebInfo, build: Build & { evaluate: NonNullable<Build['evaluate']> }, output: string, feeds: WireFeeds): Promise<{ error: string } | { warmup: number; original?: number[]; originalError?: string; compressed: number[] }> {
  try {
    const r = await webLatency(ort, build.source, output, { original: feeds, compressed: feeds }, { runs: build.evaluate.runs, ...(build.externalDataDirs && { allowedDirs: build.externalDataDirs }) });
    return r.ok ? r : { error: describeWebFailure(r) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}
