/**
 * The manifest: one JSON per emitted model, saying what was done to it and what it cost
 * (schemas/manifest.schema.json). Also the size statistics (raw, gzip, brotli, parameters, bytes by dtype).
 *
 * Compressed sizes use node:zlib's asynchronous API (libuv's thread pool, so they overlap other work):
 * gzip at its default level 6 and brotli at quality 5 — quality 11 (the default) takes minutes on a
 * 100 MB model; on weights, quality 5 comes within ~1% of it at ~40 MB/s.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { EvalReport } from '../eval/evaluate.js';
import { byteLength, dataTypeName } from '../onnx/dtypes.js';
import { dimsOf, elementCount } from '../onnx/tensor.js';
import type { ModelProto, TensorProto } from '../onnx/types.js';
import { forEachTensor } from '../onnx/walk.js';
import type { StepReport } from '../transforms/types.js';

export const GZIP_LEVEL = 6;
export const BROTLI_QUALITY = 5;

export interface SizeStats {
  /** Bytes of the .onnx file (plus its external data files, if any). */
  bytes: number;
  gzip: number;
  brotli: number;
  /** Elements stored in all weight tensors (initializers, Constant values, sparse parts). */
  parameters: number;
  /** Tensor data bytes by ONNX Runtime type name ('float32', 'int8', 'uint4', …). */
  bytesByDtype: Record<string, number>;
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
    compression: { gzipLevel: number; brotliQuality: number };
  };
  accuracy?: EvalReport;
  latency?: {
    device: string;
    original: { median: number; p90: number };
    compressed: { median: number; p90: number };
  };
  /** The device the output was verified (and evaluated) on: 'cpu', 'cuda', 'webgpu'. */
  device: string;
  warnings: string[];
  /** Milliseconds by phase ('read', each step, 'encode', 'verify', 'evaluate', 'sizes'), and 'total'. */
  timings: Record<string, number> & { total: number };
  cache: { key: string };
}

const gzip = promisify(zlib.gzip);
const brotli = promisify(zlib.brotliCompress);

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

/** Compressed sizes of a byte string (several buffers: an external-data model counts all its files). */
export async function compressedSizes(parts: Uint8Array[]): Promise<{ gzip: number; brotli: number }> {
  const sizes = await Promise.all(
    parts.map(async (p) => {
      const [g, b] = await Promise.all([
        gzip(p, { level: GZIP_LEVEL }),
        brotli(p, {
          params: {
            [zlib.constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
            [zlib.constants.BROTLI_PARAM_SIZE_HINT]: p.byteLength,
          },
        }),
      ]);
      return { gzip: g.byteLength, brotli: b.byteLength };
    }),
  );
  return { gzip: sizes.reduce((n, s) => n + s.gzip, 0), brotli: sizes.reduce((n, s) => n + s.brotli, 0) };
}

export async function sizeStats(parts: Uint8Array[], model: ModelProto): Promise<SizeStats> {
  const weights = weightStats(model); // synchronous: before the compressions start, they run in threads
  const z = await compressedSizes(parts);
  return { bytes: parts.reduce((n, p) => n + p.byteLength, 0), gzip: z.gzip, brotli: z.brotli, ...weights };
}
