/**
 * Measurements of a compressed build: sizes (raw, gzip, brotli) of source and output, and accuracy on the
 * evaluate data when the recipe asks. Sizes start early (gzip/brotli run in libuv's pool) so they overlap
 * verification and evaluation.
 */
import type { EvalReport } from '../eval/evaluate.js';
import type { Sample } from '../data/types.js';
import type { ModelProto } from '../onnx/types.js';
import type { Build, EvaluateSpec } from '../recipe/types.js';
import type { ModelCache } from './cache.js';
import type { KeyInfo } from './key.js';
import { fileSizeStats, sizeStats, type Manifest, type SizeStats, type WebLatencyEntry } from './manifest.js';
import type { Device } from '../device.js';

/** Source sizes by source hash: variants of one model share them. */
const beforeSizes = new Map<string, Promise<SizeStats>>();

/**
 * The source's sizes: from this process, else the cache, else measured now (and stored). `sourceParts`:
 * the files' bytes in memory, or undefined for a source read lazily (sampled from its file). Sampling
 * copies its windows at once: the figures do not keep the source's buffers alive.
 */
export function sourceSizes(k: KeyInfo, file: string, sourceParts: Uint8Array[] | undefined, original: ModelProto, cache: ModelCache | undefined): Promise<SizeStats> {
  let before = beforeSizes.get(k.source.sha256);
  if (!before) {
    const stored = cache?.getSizes(k.source.sha256);
    before = stored ? Promise.resolve(stored) : sourceParts ? sizeStats(sourceParts.map((p) => [p]), original) : fileSizeStats([file], original);
    if (!stored && cache) before.then((s) => cache.putSizes(k.source.sha256, s)).catch(() => {});
    before.catch(() => beforeSizes.delete(k.source.sha256));
    beforeSizes.set(k.source.sha256, before);
  }
  return before;
}

/**
 * The output's sizes, over the encoding's chunks (never joined); a plain copy that re-encodes to the
 * source's exact bytes (`sameAsSource`) reuses the source's.
 */
export function outputSizes(k: KeyInfo, chunks: readonly Uint8Array[], sameAsSource: boolean, model: ModelProto, before: Promise<SizeStats>): Promise<SizeStats> {
  const after = sameAsSource && k.deps.length === 0 ? before : sizeStats([chunks], model);
  after.catch(() => {}); // awaited later; an early failure must not be unhandled
  return after;
}

/** Accuracy of the output against the source on the evaluate data. */
export async function measureAccuracy(
  build: Build & { evaluate: NonNullable<Build['evaluate']> },
  source: ModelProto | Uint8Array | string,
  output: Uint8Array | string,
  samples: Sample[],
  device: Device,
): Promise<EvalReport> {
  const ev = build.evaluate;
  const { evaluateModels } = await import('../eval/evaluate.js');
  return evaluateModels(source, output, samples, {
    ...(ev.output !== undefined && { output: ev.output }),
    ...(ev.labels !== undefined && { labels: ev.labels }),
    runs: ev.runs,
    intraOpThreads: ev.threads,
    ...(ev.carry && { carry: ev.carry }),
    device,
  });
}

/** The manifest's latency: both models in onnxruntime-node (from the evaluation), and in onnxruntime-web when measured. */
export function latencyEntry(accuracy: EvalReport, ev: EvaluateSpec, nodeVersion: string, web: WebLatencyEntry | undefined): NonNullable<Manifest['latency']> {
  const threads = ev.threads === 0 ? "onnxruntime's default intra-op threads (one per physical core)" : `${ev.threads} intra-op thread${ev.threads === 1 ? '' : 's'}`;
  return {
    device: accuracy.device,
    runtime: `onnxruntime-node ${nodeVersion}`,
    session: `graph optimization all, weight pre-packing on, ${threads}, batch of 1 (the first evaluation sample)`,
    threads: ev.threads,
    runs: ev.runs,
    warmup: 2,
    original: accuracy.original.latencyMs,
    compressed: accuracy.compressed.latencyMs,
    ...(web && { web }),
  };
}
