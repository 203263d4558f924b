/**
 * Web compatibility check: the compressed model must load and run in onnxruntime-web's wasm backend
 * (what a browser without WebGPU runs) and agree with onnxruntime-node on real samples.
 *
 * onnxruntime-web runs in Node as is: its package's `node` export condition loads dist/ort.node.min.mjs,
 * which finds ort-wasm-simd-threaded.{mjs,wasm} next to itself in node_modules/onnxruntime-web/dist (no
 * `wasmPaths` needed). numThreads = 1 keeps it from starting worker threads. The module is imported on
 * first use only.
 *
 * The onnxruntime-node reference computes quantized matmuls with float activations, as the wasm
 * kernels do: ORT fuses DequantizeLinear → MatMul into MatMulNBits with accuracy_level 4 (int8
 * activations) by default (`session.qdq_matmulnbits_accuracy_level` = 1 turns that off), and MatMulNBits
 * nodes written with accuracy_level 4 (target: node) are compared as if written without it: the level is
 * a speed hint for native CPUs (wasm ignores it), not part of what the model computes.
 *
 * Agreement, per output and sample: max |web − node| ≤ rel · max|node| + abs (default rel 1e-3, abs
 * 1e-4); NaN must be NaN on both sides. Different SIMD kernels (wasm SIMD128 vs AVX2/AVX-512) sum in
 * different orders, so bit equality is not expected.
 */
import type * as ortNode from 'onnxruntime-node';
import { CompressError } from '../../errors.js';
import type { Sample } from '../../data/types.js';
import { decodeModel, encodeModelToBytes } from '../../onnx/codec.js';
import { float16ToFloat32Array } from '../../onnx/float16.js';
import { attribute } from '../../onnx/graph.js';
import type { ModelProto } from '../../onnx/types.js';
import { allGraphs } from '../../onnx/walk.js';

export interface WebCheckOptions {
  /** Relative tolerance, times max|node output| (default 1e-3). */
  rel?: number;
  /** Absolute tolerance (default 1e-4). */
  abs?: number;
  /** Check at most this many samples (default: all given). */
  maxSamples?: number;
  /** intraOpNumThreads of the onnxruntime-node session (default 1). */
  intraOpThreads?: number;
}

export interface WebCheckOutput {
  name: string;
  /** Largest |web − node| over the checked samples, and the largest allowed. */
  maxAbsDiff: number;
  allowed: number;
}

export interface WebCheckReport {
  samples: number;
  outputs: WebCheckOutput[];
  ms: number;
}

type OrtWeb = typeof import('onnxruntime-web');
let ortWebModule: Promise<OrtWeb> | undefined;

async function loadOrtWeb(): Promise<OrtWeb> {
  ortWebModule ??= import('onnxruntime-web').then((m) => {
    const web = ((m as unknown as { default?: OrtWeb }).default ?? m) as OrtWeb;
    web.env.wasm.numThreads = 1;
    web.env.logLevel = 'error';
    return web;
  });
  return ortWebModule;
}

/** The model for the native reference: MatMulNBits without accuracy_level 4 (see the file comment). */
function referenceBytes(model: ModelProto | Uint8Array, bytes: Uint8Array): Uint8Array {
  const m = model instanceof Uint8Array ? decodeModel(model) : model;
  const nodes = allGraphs(m).flatMap((g) => g.node.filter((n) => n.opType === 'MatMulNBits' && n.domain === 'com.microsoft' && Number(attribute(n, 'accuracy_level')?.i ?? 0) > 1));
  if (!nodes.length) return bytes;
  const saved = nodes.map((n) => n.attribute);
  try {
    for (const n of nodes) n.attribute = n.attribute.filter((a) => a.name !== 'accuracy_level');
    return encodeModelToBytes(m);
  } finally {
    nodes.forEach((n, i) => (n.attribute = saved[i]));
  }
}

/** The op ORT's loader complained about, when the message names one. */
export function unsupportedOpOf(message: string): string | undefined {
  const patterns = [
    /Could not find an implementation for (\S+?)\(\d+\) node/,
    /No op registered for (\S+) with domain_version/,
    /Unrecognized (?:operator|op)[: ]+['"]?([\w.]+)/i,
    /(\w+) is not a registered function\/op/,
    /Op type not registered '([\w.]+)'/,
  ];
  for (const p of patterns) {
    const m = p.exec(message);
    if (m) return m[1];
  }
  return undefined;
}

function asNumbers(t: { type: string; data: unknown }): Float64Array | undefined {
  const d = t.data;
  if (t.type === 'float16') return Float64Array.from(float16ToFloat32Array(d as Uint16Array));
  if (t.type === 'string' || Array.isArray(d)) return undefined;
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) return Float64Array.from(d, Number);
  return Float64Array.from(d as ArrayLike<number>);
}

/**
 * Loads `model` in onnxruntime-web (wasm) and onnxruntime-node, runs `samples` through both and
 * compares every output. Throws CompressError('compress') naming the op the web runtime lacks, or the
 * output that disagrees.
 */
export async function checkWebCompatibility(model: ModelProto | Uint8Array, samples: Sample[], opts: WebCheckOptions = {}): Promise<WebCheckReport> {
  const t0 = performance.now();
  const rel = opts.rel ?? 1e-3;
  const abs = opts.abs ?? 1e-4;
  const bytes = model instanceof Uint8Array ? model : encodeModelToBytes(model);
  // Both runtimes are imported on first use, so importing this module costs nothing.
  const web = await loadOrtWeb();
  const ortNode = await import('onnxruntime-node');
  const { runSession, trimOrtMessage } = await import('../../runtime/session.js');
  let webSession: Awaited<ReturnType<OrtWeb['InferenceSession']['create']>>;
  try {
    webSession = await web.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  } catch (e) {
    const message = trimOrtMessage(e);
    const op = unsupportedOpOf(message);
    throw new CompressError('compress', op ? `onnxruntime-web (wasm) does not support op ${op}: ${message}` : `onnxruntime-web (wasm) cannot load the model: ${message}`, {}, { cause: e });
  }
  let nodeSession: ortNode.InferenceSession;
  try {
    nodeSession = await ortNode.InferenceSession.create(referenceBytes(model, bytes), {
      intraOpNumThreads: opts.intraOpThreads ?? 1,
      interOpNumThreads: 1,
      logSeverityLevel: 3,
      extra: { session: { qdq_matmulnbits_accuracy_level: '1', intra_op: { allow_spinning: '0' } } },
    });
  } catch (e) {
    await webSession.release();
    throw new CompressError('runtime', `onnxruntime-node cannot load the model: ${trimOrtMessage(e)}`, {}, { cause: e });
  }
  const count = Math.min(samples.length, opts.maxSamples ?? samples.length);
  const outputs = new Map<string, WebCheckOutput>();
  try {
    for (let i = 0; i < count; i++) {
      const feeds = samples[i].feeds;
      const ref = await runSession(nodeSession, feeds);
      const webFeeds: Record<string, InstanceType<OrtWeb['Tensor']>> = {};
      for (const [k, t] of Object.entries(feeds)) webFeeds[k] = new web.Tensor(t.type as 'float32', t.data as Float32Array, t.dims);
      let got: Record<string, { type: string; data: unknown; dims: readonly number[] }>;
      try {
        got = await webSession.run(webFeeds);
      } catch (e) {
        const message = trimOrtMessage(e);
        const op = unsupportedOpOf(message);
        throw new CompressError('compress', op ? `onnxruntime-web (wasm) cannot run op ${op} (sample ${i + 1}): ${message}` : `onnxruntime-web (wasm) failed on sample ${i + 1}: ${message}`, {}, { cause: e });
      }
      for (const [name, r] of Object.entries(ref) as [string, ortNode.Tensor][]) {
        const a = asNumbers(r);
        const w = got[name];
        if (!w) throw new CompressError('compress', `onnxruntime-web (wasm) gave no output "${name}"`);
        const b = asNumbers(w);
        if (!a || !b) continue;
        if (a.length !== b.length) throw new CompressError('compress', `output "${name}" has ${b.length} values in onnxruntime-web (wasm), ${a.length} in onnxruntime-node (sample ${i + 1})`);
        let maxRef = 0;
        let maxDiff = 0;
        for (let j = 0; j < a.length; j++) {
          const x = a[j];
          const y = b[j];
          if (Number.isNaN(x) !== Number.isNaN(y)) {
            throw new CompressError('compress', `output "${name}" is NaN in ${Number.isNaN(x) ? 'onnxruntime-node' : 'onnxruntime-web (wasm)'} only (sample ${i + 1}, index ${j})`);
          }
          if (Number.isNaN(x)) continue;
          if (Math.abs(x) > maxRef) maxRef = Math.abs(x);
          const d = x === y ? 0 : Math.abs(x - y);
          if (d > maxDiff) maxDiff = d;
        }
        const allowed = rel * maxRef + abs;
        const o = outputs.get(name) ?? { name, maxAbsDiff: 0, allowed: Infinity };
        o.maxAbsDiff = Math.max(o.maxAbsDiff, maxDiff);
        o.allowed = Math.min(o.allowed, allowed);
        outputs.set(name, o);
        if (!(maxDiff <= allowed)) {
          throw new CompressError(
            'compress',
            `output "${name}" differs between onnxruntime-web (wasm) and onnxruntime-node on sample ${i + 1}: max |Δ| = ${maxDiff.toPrecision(3)}, allowed ${allowed.toPrecision(3)} (${rel}·max|x| + ${abs})`,
          );
        }
      }
    }
  } finally {
    await nodeSession.release();
    await webSession.release();
  }
  return { samples: count, outputs: [...outputs.values()], ms: performance.now() - t0 };
}
