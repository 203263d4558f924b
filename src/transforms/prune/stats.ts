/**
 * Statistics of layer inputs over calibration samples, streamed from captureActivations:
 * per-feature sums of squares (Wanda scores, channel importance), and optionally the Gram matrix XᵀX
 * (activation-aware low-rank, output errors), accumulated in float64 from float32 chunks that ORT
 * multiplies.
 *
 * Feature layouts of a captured value:
 * - `last`: features on the last axis, every other axis is a row (MatMul / Gemm inputs).
 * - `channel`: features on axis 1, rows = batch × spatial positions (Conv inputs, NCHW).
 * - `patches`: 2-D convolution patches (im2col): features C·kh·kw in (c, i, j) order — the order of a
 *   flattened Conv filter — one row per output position.
 */
import type * as ort from 'onnxruntime-node';
import type { tensorToFloat32 } from '../../runtime/capture.js';
import type { Sample } from '../../data/types.js';
import { attrInt, attrInts } from '../../onnx/graph.js';
import type { Layer } from './select.js';
import type { ModelProto, NodeProto } from '../../onnx/types.js';
import type { MatrixEngine } from '../../linalg/engine.js';
import type { Device } from '../../device.js';

export type FeatureLayout =
  | { kind: 'last' }
  | { kind: 'channel' }
  | { kind: 'patches'; kernel: [number, number]; strides: [number, number]; pads: [number, number, number, number]; dilations: [number, number] };

export interface StatsRequest {
  value: string;
  layout: FeatureLayout;
  gram: boolean;
}

export interface FeatureStats {
  features: number;
  rows: number;
  /** Σ x² per feature. */
  sumsq: Float64Array;
  /** Σ x per feature. */
  sum: Float64Array;
  /** XᵀX, features×features, when asked for. */
  gram?: Float64Array;
  /** Shape of the value for the first sample. */
  shape: number[];
}

/** The im2col layout of a 2-D Conv's input (explicit pads or auto_pad VALID), or undefined. */
export function convPatches(node: NodeProto, wDims: readonly number[]): FeatureLayout | undefined {
  if (wDims.length !== 4) return undefined;
  const autoPad = node.attribute.find((a) => a.name === 'auto_pad')?.s;
  const pad = autoPad ? Buffer.from(autoPad).toString() : 'NOTSET';
  if (pad !== 'NOTSET' && pad !== 'VALID') return undefined;
  const ints = (name: string, fallback: number[]) => attrInts(node, name) ?? fallback;
  const pads = pad === 'VALID' ? [0, 0, 0, 0] : ints('pads', [0, 0, 0, 0]);
  return {
    kind: 'patches',
    kernel: [wDims[2], wDims[3]],
    strides: ints('strides', [1, 1]) as [number, number],
    pads: [pads[0], pads[1], pads[2], pads[3]],
    dilations: ints('dilations', [1, 1]) as [number, number],
  };
}

export function statsKey(r: Omit<StatsRequest, 'gram'>): string {
  return `${r.value}|${JSON.stringify(r.layout)}`;
}

/** Rows of X (row-major rows×features) from one captured value. */
function asRows(x: Float32Array, dims: readonly number[], layout: FeatureLayout): { rows: Float32Array; count: number; features: number } {
  if (layout.kind === 'last') {
    const f = dims[dims.length - 1] ?? 1;
    return { rows: x, count: f === 0 ? 0 : x.length / f, features: f };
  }
  const n = dims[0];
  const c = dims[1];
  const spatial = dims.slice(2).reduce((a, b) => a * b, 1);
  if (layout.kind === 'channel') {
    const out = new Float32Array(x.length);
    for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) for (let s = 0; s < spatial; s++) out[(b * spatial + s) * c + ch] = x[(b * c + ch) * spatial + s];
    return { rows: out, count: n * spatial, features: c };
  }
  return im2col(x, dims, layout);
}

/** 2-D im2col: one row per output position, features (c, ki, kj). */
export function im2col(x: Float32Array, dims: readonly number[], p: Extract<FeatureLayout, { kind: 'patches' }>): { rows: Float32Array; count: number; features: number } {
  const [n, c, h, w] = dims;
  const [kh, kw] = p.kernel;
  const [sh, sw] = p.strides;
  const [pt, pl, pb, pr] = p.pads;
  const [dh, dw] = p.dilations;
  const oh = Math.floor((h + pt + pb - dh * (kh - 1) - 1) / sh) + 1;
  const ow = Math.floor((w + pl + pr - dw * (kw - 1) - 1) / sw) + 1;
  const features = c * kh * kw;
  const count = n * oh * ow;
  const rows = new Float32Array(count * features);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        const r = ((b * oh + oy) * ow + ox) * features;
        for (let ch = 0; ch < c; ch++) {
          const base = (b * c + ch) * h * w;
          for (let i = 0; i < kh; i++) {
            const y = oy * sh - pt + i * dh;
            if (y < 0 || y >= h) continue;
            for (let j = 0; j < kw; j++) {
              const xx = ox * sw - pl + j * dw;
              if (xx < 0 || xx >= w) continue;
              rows[r + (ch * kh + i) * kw + j] = x[base + y * w + xx];
            }
          }
        }
      }
    }
  }
  return { rows, count, features };
}

class Accumulator {
  stats?: FeatureStats;
  private buffer?: Float32Array;
  private buffered = 0;
  constructor(
    readonly req: StatsRequest,
    private readonly engine: MatrixEngine,
  ) {}

  async add(t: ort.Tensor, toFloat32: typeof tensorToFloat32): Promise<void> {
    const dims = t.dims.map(Number);
    const { rows, count, features } = asRows(toFloat32(t), dims, this.req.layout);
    if (!this.stats) {
      this.stats = { features, rows: 0, sumsq: new Float64Array(features), sum: new Float64Array(features), shape: dims };
      if (this.req.gram) this.stats.gram = new Float64Array(features * features);
    }
    const s = this.stats;
    if (features !== s.features) return; // a sample with another feature count cannot be pooled
    s.rows += count;
    for (let r = 0; r < count; r++) {
      const o = r * features;
      for (let f = 0; f < features; f++) {
        const v = rows[o + f];
        s.sumsq[f] += v * v;
        s.sum[f] += v;
      }
    }
    if (!s.gram) return;
    // Gram chunks: up to ~4M floats (or 4096 rows) per ORT product.
    const cap = Math.max(1, Math.min(4096, Math.floor(4_194_304 / features)));
    this.buffer ??= new Float32Array(cap * features);
    for (let r = 0; r < count; ) {
      const take = Math.min(cap - this.buffered, count - r);
      this.buffer.set(rows.subarray(r * features, (r + take) * features), this.buffered * features);
      this.buffered += take;
      r += take;
      if (this.buffered === cap) await this.flush();
    }
  }

  async flush(): Promise<void> {
    const s = this.stats;
    if (!s?.gram || this.buffered === 0) return;
    const g = await this.engine.gram(this.buffer!.subarray(0, this.buffered * s.features), this.buffered, s.features);
    for (let i = 0; i < g.length; i++) s.gram[i] += g[i];
    this.buffered = 0;
  }
}

/**
 * Runs the samples once and returns statistics per request (keyed by statsKey). Requests for the same
 * value and layout are merged (gram if any asks for it).
 */
export async function collectStats(
  model: ModelProto,
  requests: StatsRequest[],
  samples: Sample[],
  engine: MatrixEngine,
  opts: { device?: Device; threads?: number } = {},
): Promise<Map<string, FeatureStats>> {
  const byKey = new Map<string, Accumulator>();
  for (const r of requests) {
    const key = statsKey(r);
    const a = byKey.get(key);
    if (a) byKey.set(key, new Accumulator({ ...r, gram: r.gram || a.req.gram }, engine));
    else byKey.set(key, new Accumulator(r, engine));
  }
  const byValue = new Map<string, Accumulator[]>();
  for (const a of byKey.values()) {
    const list = byValue.get(a.req.value) ?? [];
    list.push(a);
    byValue.set(a.req.value, list);
  }
  // Loaded here: onnxruntime's native library comes with it, and magnitude pruning never gets here.
  const { captureActivations, tensorToFloat32 } = await import('../../runtime/capture.js');
  await captureActivations(model, [...byValue.keys()], samples, {
    device: opts.device === 'gpu' ? 'auto' : opts.device,
    intraOpThreads: opts.threads ?? 1,
    onValue: async (name, value) => {
      for (const a of byValue.get(name) ?? []) await a.add(value, tensorToFloat32);
    },
  });
  const out = new Map<string, FeatureStats>();
  for (const [key, a] of byKey) {
    await a.flush();
    if (a.stats) out.set(key, a.stats);
  }
  return out;
}

/** ‖X·Δ‖² = tr(ΔᵀHΔ) for Δ K×N (row-major) and H = XᵀX. */
export async function quadraticError(engine: MatrixEngine, gram: Float64Array, delta: Float64Array, K: number, N: number): Promise<number> {
  const hd = await engine.matmul(gram, K, K, delta, N);
  let s = 0;
  for (let i = 0; i < hd.length; i++) s += hd[i] * delta[i];
  return Math.max(0, s);
}

/** ‖X·W + 1·bᵀ‖² from the statistics (W K×N row-major, b optional). */
export async function outputEnergy(engine: MatrixEngine, st: FeatureStats, w: Float64Array, K: number, N: number, bias?: Float32Array): Promise<number> {
  let e = await quadraticError(engine, st.gram!, w, K, N);
  if (bias) {
    // 2·sᵀWb + rows·‖b‖², s = column sums of X
    let cross = 0;
    for (let k = 0; k < K; k++) {
      const sk = st.sum[k];
      if (sk === 0) continue;
      let wb = 0;
      for (let n = 0; n < N; n++) wb += w[k * N + n] * bias[n];
      cross += sk * wb;
    }
    let bb = 0;
    for (let n = 0; n < N; n++) bb += bias[n] * bias[n];
    e += 2 * cross + st.rows * bb;
  }
  return Math.max(e, 0);
}

/** Largest feature count for which a Gram matrix is accumulated (4096² float64 = 128 MiB). */
export const MAX_GRAM_FEATURES = 4096;

/** What to capture for a layer's input: Wanda norms and, when `gram`, XᵀX for output errors / whitening. */
export function layerInputRequest(layer: Layer, gram: boolean): StatsRequest | undefined {
  const { node } = layer;
  if (layer.op === 'Gemm' && attrInt(node, 'transA', 0) !== 0) return undefined;
  if (layer.op === 'Conv') {
    const patches = convPatches(node, layer.dims);
    const features = patches ? layer.K * layer.group : layer.dims[1] * layer.group;
    return { value: node.input[0], layout: patches ?? { kind: 'channel' }, gram: gram && !!patches && features <= MAX_GRAM_FEATURES };
  }
  return { value: node.input[0], layout: { kind: 'last' }, gram: gram && layer.K <= MAX_GRAM_FEATURES };
}

/** ‖X_f‖ per weight input, as a table indexed by inputFeature(layer, k, n) (group·K entries). */
export function featureNorms(layer: Layer, req: StatsRequest, st: FeatureStats): Float64Array | undefined {
  const size = layer.group * layer.K;
  const out = new Float64Array(size);
  if (req.layout.kind === 'channel') {
    const perGroup = layer.K / layer.kernelSize;
    if (st.features !== perGroup * layer.group) return undefined;
    for (let i = 0; i < size; i++) {
      const g = Math.floor(i / layer.K);
      out[i] = Math.sqrt(st.sumsq[g * perGroup + Math.floor((i % layer.K) / layer.kernelSize)]);
    }
    return out;
  }
  if (st.features !== size) return undefined;
  for (let i = 0; i < size; i++) out[i] = Math.sqrt(st.sumsq[i]);
  return out;
}

/** The K×N matrix view of a stored weight in float64. */
export function matrix64(layer: Layer, stored: Float32Array): Float64Array {
  const { K, N, strideK, strideN } = layer;
  const out = new Float64Array(K * N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) out[k * N + n] = stored[k * strideK + n * strideN];
  return out;
}

/**
 * Relative RMS error of a layer's output on the calibration data when its weight goes from `before` to
 * `after` (both stored layout) and its bias from `bias` to `biasAfter`: ‖XΔW + 1Δbᵀ‖ / ‖XW + 1bᵀ‖,
 * from the Gram matrix, column sums and row count.
 */
export async function layerOutputError(
  engine: MatrixEngine,
  layer: Layer,
  st: FeatureStats,
  before: Float32Array,
  after: Float32Array,
  bias?: Float32Array,
  biasAfter?: Float32Array,
): Promise<number | undefined> {
  if (!st.gram || layer.group !== 1 || st.features !== layer.K) return undefined;
  const w = matrix64(layer, before);
  const d = matrix64(layer, after);
  for (let i = 0; i < d.length; i++) d[i] = w[i] - d[i];
  let db: Float32Array | undefined;
  if (bias && biasAfter) db = bias.map((b, n) => b - biasAfter[n]);
  const err = await outputEnergy(engine, st, d, layer.K, layer.N, db);
  const energy = await outputEnergy(engine, st, w, layer.K, layer.N, bias);
  return energy > 0 ? Math.sqrt(err / energy) : undefined;
}
