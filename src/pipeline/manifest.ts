/**
 * The manifest: one JSON per emitted model, saying what was done to it and what it cost
 * (schemas/manifest.schema.json). Also the size statistics (raw, gzip, brotli, parameters, bytes by dtype).
 *
 * Compressed sizes come from sizes.ts (exact up to a size, sampled estimates above it, in libuv's
 * thread pool): gzip at its default level 6 and brotli at quality 5 — quality 11 (the default) takes
 * minutes on a 100 MB model; on weights, quality 5 comes within ~1% of it.
 */
import type { EvalReport } from '../eval/evaluate.js';
import { byteLength, dataTypeName } from '../onnx/dtypes.js';
import { dimsOf, elementCount } from '../onnx/tensor.js';
import type { ModelProto, TensorProto } from '../onnx/types.js';
import { forEachTensor } from '../onnx/walk.js';
import type { StepReport } from '../transforms/types.js';
import { statSync } from 'node:fs';
import { compressedFileSizes, compressedSizes, type FileChunks, type SizeEstimate, type SizeSettings } from './sizes.js';

export { BROTLI_QUALITY, GZIP_LEVEL, SIZE_SETTINGS, type SizeEstimate, type SizeSettings } from './sizes.js';

export interface SizeStats {
  /** Bytes of the .onnx file (plus its external data files, if any). */
  bytes: number;
  gzip: number;
  brotli: number;
  /** Elements stored in all weight tensors (initializers, Constant values, sparse parts). */
  parameters: number;
  /** Tensor data bytes by ONNX Runtime type name ('float32', 'int8', 'uint4', …). */
  bytesByDtype: Record<string, number>;
  /** Present when gzip / brotli are estimated from a sample (large files), not measured whole. */
  estimate?: SizeEstimate;
}

export interface FileInfo {
  /** Source: relative to the recipe folder; output: relative to the output folder (the build's `output`). */
  file: string;
  sha256: string;
  bytes: number;
}

export interface Manifest {
  tool: { name: string; version: string };
  id: string;
  name: string;
  variant?: string;
  source: FileInfo;
  output: FileInfo;
  /** The normalized build config: steps, calibration, evaluate, budget, device (paths relative to the recipe folder). */
  recipe: Record<string, unknown>;
  steps: StepReport[];
  sizes: {
    before: SizeStats;
    after: SizeStats;
    /** The zlib settings of gzip / brotli, and above which size they are sampled estimates. */
    compression: SizeSettings;
  };
  accuracy?: EvalReport;
  /** Milliseconds per run of one sample (evaluate), original and compressed, median and p90. */
  latency?: {
    device: string;
    /** e.g. "onnxruntime-node 1.30.0". */
    runtime?: string;
    /** The session options both models were timed with. */
    session?: string;
    /** intraOpNumThreads (0: onnxruntime's default), timed runs and warm-up runs per model. */
    threads?: number;
    runs?: number;
    warmup?: number;
    original: { median: number; p90: number };
    compressed: { median: number; p90: number };
    /** The same in onnxruntime-web's wasm backend (evaluate.web). */
    web?: WebLatencyEntry;
  };
  /** The output run in onnxruntime-web's wasm backend (builds for the browser). */
  webCheck?: WebCheckEntry;
  /** The device the output was verified (and evaluated) on: 'cpu', 'cuda', 'webgpu'. */
  device: string;
  warnings: string[];
  /** Milliseconds by phase ('read', each step, 'encode', 'verify', 'evaluate', 'sizes'), and 'total'. */
  timings: Record<string, number> & { total: number };
  cache: { key: string };
}

/** The manifest's `webCheck` (src/pipeline/webcheck.ts). */
export interface WebCheckEntry {
  /** Whether the output was run in onnxruntime-web. */
  checked: boolean;
  /** Why it was not (checked: false). */
  reason?: string;
  /** e.g. "onnxruntime-web 1.30.0 (wasm, 1 thread)". */
  runtime?: string;
  /** The input both runtimes ran: "first calibration sample", "first evaluation sample" or "synthetic input". */
  input?: string;
  loads?: boolean;
  /** Per output: max |web − node| and the allowed difference; ok = within it. */
  outputs?: { name: string; maxAbsDiff: number; allowed: number; ok: boolean; rms?: { web: number; quantization: number } }[];
  /** Milliseconds onnxruntime-web took to load the model and to run it once. */
  loadMs?: number;
  runMs?: number;
}

/** The manifest's `latency.web` (src/pipeline/webcheck.ts). */
export interface WebLatencyEntry {
  runtime: string;
  threads: number;
  /** Warm-up runs per model before the timed ones (≥ 10 and 2 s of them, then until they stop getting faster: V8 optimizes wasm as it runs). */
  warmup: number;
  original?: { median: number; p90: number };
  /** Why the original has no web latency (it does not load or run in onnxruntime-web). */
  originalError?: string;
  compressed: { median: number; p90: number };
}

function tensorDataBytes(t: TensorProto): number {
  const dt = t.dataType ?? 0;
  if (t.rawData) return t.rawData.byteLength;
  if (dt === 8) return t.stringData.reduce((n, s) => n + s.byteLength, 0); // STRING
  try {
    return byteLength(dt, elementCount(dimsOf(t)));
  } catch {
    return 0;
  }
}

/** Parameters and bytes by dtype of a decoded model (external data loaded). */
export function weightStats(model: ModelProto): Pick<SizeStats, 'parameters' | 'bytesByDtype'> {
  let parameters = 0;
  const bytesByDtype: Record<string, number> = {};
  forEachTensor(model, (t) => {
    let name: string;
    try {
      name = dataTypeName(t.dataType ?? 0);
    } catch {
      name = `type${t.dataType ?? 0}`;
    }
    parameters += elementCount(dimsOf(t));
    bytesByDtype[name] = (bytesByDtype[name] ?? 0) + tensorDataBytes(t);
  });
  return { parameters, bytesByDtype: Object.fromEntries(Object.entries(bytesByDtype).sort(([a], [b]) => a.localeCompare(b))) };
}

/**
 * Size statistics of a model stored as `files` (each as its chunks: the .onnx, then external data files).
 * Everything that reads `files` or `model` happens before this returns; the promise holds neither.
 */
export function sizeStats(files: readonly FileChunks[], model: ModelProto): Promise<SizeStats> {
  const weights = weightStats(model);
  let bytes = 0;
  for (const f of files) for (const c of f) bytes += c.length;
  return compressedSizes(files).then((z) => ({ bytes, gzip: z.gzip, brotli: z.brotli, ...weights, ...(z.estimate && { estimate: z.estimate }) }));
}

/** sizeStats of a model still on disk (read lazily): its files are sampled with positional reads. */
export function fileSizeStats(files: readonly string[], model: ModelProto): Promise<SizeStats> {
  const weights = weightStats(model);
  const bytes = files.reduce((n, f) => n + statSync(f).size, 0);
  return compressedFileSizes(files).then((z) => ({ bytes, gzip: z.gzip, brotli: z.brotli, ...weights, ...(z.estimate && { estimate: z.estimate }) }));
}
