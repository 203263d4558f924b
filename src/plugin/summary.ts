/**
 * What `?compress&meta` and `virtual:onnx-compress` put in the client bundle: a few hundred bytes per
 * model — enough to show a size and a fidelity figure and to pick a variant for the device — instead of
 * the whole manifest (per-layer tables run to tens of kB; `&manifest` still imports it whole).
 */
import type { Manifest } from '../pipeline/manifest.js';

/** Weight precision of a build, in the names apps and transformers.js use for model files. */
export type Precision = 'float32' | 'float16' | 'int8' | 'uint8' | 'int4' | 'uint4' | 'q4f16' | 'mixed';

export interface ModelSummary {
  /** Build id: `<model>` or `<model>.<variant>`. */
  id: string;
  name: string;
  variant?: string;
  /** Bytes of the compressed model, and of its source. */
  bytes: number;
  sourceBytes: number;
  brotli: number;
  precision: Precision;
  /** The runtime the op forms were chosen for ('wasm', 'webgpu', 'node'). */
  target: string;
  /** Headline fidelity, 4 significant digits: label accuracy when evaluated with labels; agreement and cosine vs the original. */
  fidelity?: { accuracy?: number; accuracyBefore?: number; agreement?: number; cosine?: number; samples: number };
  /** Whether the recipe's budget was met ('missed' only when its `onFail` is 'warn'; otherwise the build failed). */
  budget: 'met' | 'missed' | 'none';
}

const round = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? undefined : Number(x.toPrecision(4)));

export function precisionOf(manifest: Manifest): Precision {
  const q = (manifest.recipe as { steps?: { quantize?: { dtype?: string; float16?: boolean } } }).steps?.quantize;
  if (!q?.dtype) return 'float32';
  // The budget chose per-layer precisions: one name when every layer got the same, else 'mixed'.
  const search = manifest.steps.find((s) => s.step === 'quantize')?.totals?.search as { assignment?: Record<string, string> } | undefined;
  const picked = new Set(Object.values(search?.assignment ?? {}).map((p) => p.replace(/:.*/, '')));
  if (picked.size > 1) return 'mixed';
  if (picked.size === 1) {
    const [p] = picked;
    return (p === 'int4' && q.float16 ? 'q4f16' : p) as Precision;
  }
  if (q.dtype === 'auto') return 'mixed';
  if ((q.dtype === 'int4' || q.dtype === 'uint4') && q.float16) return 'q4f16';
  return q.dtype as Precision;
}

export function summarize(manifest: Manifest): ModelSummary {
  const q = (manifest.recipe as { steps?: { quantize?: { target?: string } } }).steps?.quantize;
  const a = manifest.accuracy;
  const budgeted = (manifest.recipe as { budget?: unknown }).budget !== undefined;
  const summary: ModelSummary = {
    id: manifest.id,
    name: manifest.name,
    ...(manifest.variant !== undefined && { variant: manifest.variant }),
    bytes: manifest.sizes.after.bytes,
    sourceBytes: manifest.sizes.before.bytes,
    brotli: manifest.sizes.after.brotli,
    precision: precisionOf(manifest),
    target: q?.target ?? 'wasm',
    budget: !budgeted ? 'none' : manifest.warnings.some((w) => w.startsWith('budget:')) ? 'missed' : 'met',
  };
  if (a) {
    const fidelity = {
      accuracy: round(a.compressed.accuracy),
      accuracyBefore: round(a.original.accuracy),
      agreement: round(a.metrics.agreement),
      cosine: round(a.metrics.cosine),
      samples: a.samples,
    };
    summary.fidelity = JSON.parse(JSON.stringify(fidelity)); // drops the undefined figures
  }
  return summary;
}
