/**
 * What the web check compares and names: outputs of onnxruntime-web (wasm) against onnxruntime-node, the
 * op and nodes a failure is about, and the native reference. `checkWebCompatibility` runs both runtimes
 * in this process, for tests and benches that hold a model in memory; builds run onnxruntime-web in a
 * child (src/runtime/web.ts).
 *
 * Agreement, per output: max |web − node| ≤ rel · max|node| + abs (default rel 1e-3, abs 1e-4); NaN must
 * be NaN on both sides. Different SIMD kernels (wasm SIMD128 vs AVX2/AVX-512) sum in different orders, so
 * bit equality is not expected. The native reference computes quantized matmuls with float activations,
 * as the wasm kernels do: ORT fuses DequantizeLinear → MatMul into MatMulNBits with accuracy_level 4 (int8
 * activations) by default, which moves an int8 model's outputs by up to ~1e-3 of their range
 * (`session.qdq_matmulnbits_accuracy_level` = 1 turns that off), and MatMulNBits nodes written with
 * accuracy_level 4 are compared as if written without it: the level is a speed hint for native CPUs
 * (wasm ignores it), not part of what the model computes.
 */
import { readFileSync } from 'node:fs';
import { CompressError } from '../errors.js';
import { attribute } from '../onnx/graph.js';
import type { ModelProto } from '../onnx/types.js';
import { allGraphs } from '../onnx/walk.js';
import { WEB_THREADS, type WireFeeds, type WireTensor } from './web.js';

// ---------------------------------------------------------------------------------------------------------------
// What a failure names

/** The op (and its domain, when the message gives one) that onnxruntime's loader says it has no kernel for. */
export function unsupportedOpOf(message: string): string | undefined {
  return unsupportedOp(message)?.op;
}

export function unsupportedOp(message: string): { op: string; domain?: string } | undefined {
  const patterns: RegExp[] = [
    // "Fatal error: com.microsoft.nchwc:ReorderInput(-1) is not a registered function/op"
    /(?:([\w.]+):)?(\w+)\(-?\d+\) is not a registered function\/op/,
    /Could not find an implementation for (\w+)\(\d+\) node/,
    /Failed to find kernel for (?:([\w.]+)\.)?(\w+)\(\d+\)/,
    /No op registered for (\w+) with domain_version/,
    /Op type not registered '([\w.]+)'/,
    /Unrecognized (?:operator|op)[: ]+['"]?([\w.]+)/i,
    /(\w+) is not a registered function\/op/,
  ];
  for (const p of patterns) {
    const m = p.exec(message);
    if (!m) continue;
    return m.length > 2 ? { op: m[2], ...(m[1] && { domain: m[1] }) } : { op: m[1] };
  }
  return undefined;
}

/** Names of the nodes (in every graph) of op `op` (in `domain`, when given); unnamed ones as "#<index>". */
export function nodesWithOp(model: ModelProto, op: string, domain?: string): string[] {
  const out: string[] = [];
  for (const g of allGraphs(model)) {
    g.node.forEach((n, i) => {
      if (n.opType !== op) return;
      if (domain !== undefined && (n.domain ?? '') !== domain && !(domain === 'ai.onnx' && !n.domain)) return;
      out.push(n.name || `#${i}`);
    });
  }
  return out;
}

/** com.microsoft MatMulNBits nodes written with accuracy_level > 1 (int8 activations on native CPUs; wasm ignores it). */
export function accuracyLevelNodes(model: ModelProto): number {
  let n = 0;
  for (const g of allGraphs(model)) for (const node of g.node) if (node.opType === 'MatMulNBits' && node.domain === 'com.microsoft' && Number(attribute(node, 'accuracy_level')?.i ?? 0) > 1) n++;
  return n;
}

/** One sentence for a model onnxruntime-web (wasm) cannot load or run; names the op and its nodes when known. */
export function describeWebFailure(f: { stage: 'load' | 'run'; message: string; op?: string; domain?: string; nodes?: string[] }): string {
  if (f.op) {
    const q = f.domain && f.domain !== 'ai.onnx' ? `${f.domain}:${f.op}` : f.op;
    const nodes = f.nodes?.length ? ` (node${f.nodes.length === 1 ? '' : 's'} ${f.nodes.slice(0, 5).map((n) => `"${n}"`).join(', ')}${f.nodes.length > 5 ? `, … ${f.nodes.length - 5} more` : ''})` : '';
    // onnxruntime's optimizer writes these at level `all` on x86 CPUs (optimizedModelFilePath), for that CPU alone.
    const hint = f.domain === 'com.microsoft.nchwc' ? '; NCHWc ops are written by onnxruntime when it saves a model optimized at level all on an x86 CPU: export the model again, or save it at level extended' : '';
    return `onnxruntime-web (wasm) has no kernel for op ${q}${nodes}: ${f.message}${hint}`;
  }
  return f.stage === 'load' ? `onnxruntime-web (wasm) cannot load the model: ${f.message}` : `onnxruntime-web (wasm) fails to run the model: ${f.message}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Comparing outputs

export interface WebCheckOutput {
  name: string;
  /** Largest |web − node| over the checked samples, and the largest allowed. */
  maxAbsDiff: number;
  allowed: number;
  /**
   * When the element-wise tolerance was missed but the float32 model's output was given: the RMS of
   * web − node and of node − float32 (the output agrees when the first is at most the second; see
   * compareWebOutputs).
   */
  rms?: { web: number; quantization: number };
}

function asNumbers(t: WireTensor, toFloat32: (u: Uint16Array) => Float32Array): Float64Array | undefined {
  const d = t.data;
  if (t.type === 'float16') return Float64Array.from(toFloat32(d as Uint16Array));
  if (t.type === 'string' || Array.isArray(d)) return undefined;
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) return Float64Array.from(d, Number);
  return Float64Array.from(d as ArrayLike<number>);
}

/**
 * Compares every numeric output of `ref` (onnxruntime-node) with `got` (onnxruntime-web): max |web − node|
 * against rel · max|node| + abs; NaN must be NaN on both sides. `problem` describes the first output that
 * is missing, has another size, a NaN on one side only, or differs beyond the tolerance.
 *
 * Static int8 models (8-bit activations) can differ by more: the two runtimes' integer kernels round
 * their requantization differently, so an activation can land one 8-bit step apart, and the layers after
 * it carry that step to the output (PP-OCRv4's detector: one pixel of its probability map 0.025 to 0.8
 * apart while the map's RMS difference is 0.0002). With `floats`, the float32 model's outputs on the same
 * input, an output beyond the element-wise tolerance still agrees when RMS(web − node) ≤ RMS(node −
 * float32): the two runtimes then differ by less than the 8-bit rounding the model has anyway — a
 * tolerance set by the model's own quantization step, not a looser constant.
 */
export function compareWebOutputs(
  ref: Record<string, WireTensor>,
  got: Record<string, WireTensor>,
  rel: number,
  abs: number,
  toFloat32: (u: Uint16Array) => Float32Array,
  floats?: Record<string, WireTensor>,
): { outputs: WebCheckOutput[]; problem?: string } {
  const outputs: WebCheckOutput[] = [];
  let problem: string | undefined;
  for (const [name, r] of Object.entries(ref)) {
    const w = got[name];
    if (!w) {
      problem ??= `onnxruntime-web (wasm) gave no output "${name}"`;
      continue;
    }
    const a = asNumbers(r, toFloat32);
    const b = asNumbers(w, toFloat32);
    if (!a || !b) continue;
    if (a.length !== b.length) {
      problem ??= `output "${name}" has ${b.length} values in onnxruntime-web (wasm), ${a.length} in onnxruntime-node`;
      continue;
    }
    let maxRef = 0;
    let maxDiff = 0;
    let sqWeb = 0;
    for (let j = 0; j < a.length; j++) {
      const x = a[j];
      const y = b[j];
      if (Number.isNaN(x) !== Number.isNaN(y)) {
        problem ??= `output "${name}" is NaN in ${Number.isNaN(x) ? 'onnxruntime-node' : 'onnxruntime-web (wasm)'} only (index ${j})`;
        maxDiff = Infinity;
        continue;
      }
      if (Number.isNaN(x)) continue;
      if (Math.abs(x) > maxRef) maxRef = Math.abs(x);
      const d = x === y ? 0 : Math.abs(x - y);
      if (d > maxDiff) maxDiff = d;
      sqWeb += d * d;
    }
    const allowed = rel * maxRef + abs;
    const out: WebCheckOutput = { name, maxAbsDiff: maxDiff, allowed };
    outputs.push(out);
    const f = floats?.[name] ? asNumbers(floats[name], toFloat32) : undefined;
    if (!(maxDiff <= allowed) && Number.isFinite(maxDiff) && f && f.length === a.length) {
      let sqQ = 0;
      for (let j = 0; j < a.length; j++) if (!Number.isNaN(a[j])) sqQ += (a[j] - f[j]) ** 2;
      out.rms = { web: Math.sqrt(sqWeb / a.length), quantization: Math.sqrt(sqQ / a.length) };
      if (out.rms.web <= out.rms.quantization) continue;
      problem ??= `output "${name}" differs between onnxruntime-web (wasm) and onnxruntime-node: max |Δ| = ${maxDiff.toPrecision(3)}, allowed ${allowed.toPrecision(3)}, and its RMS ${out.rms.web.toPrecision(3)} exceeds ${out.rms.quantization.toPrecision(3)}, the RMS of the model's own 8-bit error against float32`;
      continue;
    }
    if (!(maxDiff <= allowed)) {
      problem ??= `output "${name}" differs between onnxruntime-web (wasm) and onnxruntime-node: max |Δ| = ${maxDiff.toPrecision(3)}, allowed ${allowed.toPrecision(3)} (${rel}·max|x| + ${abs})`;
    }
  }
  return { outputs, ...(problem && { problem }) };
}

// ---------------------------------------------------------------------------------------------------------------
// Both runtimes in this process

export interface WebCheckOptions {
  /** Relative tolerance, times max|node output| (default 1e-3). */
  rel?: number;
  /** Absolute tolerance (default 1e-4). */
  abs?: number;
  /** Check at most this many samples (default: all given). */
  maxSamples?: number;
  /** intraOpNumThreads of the onnxruntime-node session (default 1). */
  intraOpThreads?: number;
  /** Per sample, the float32 model's outputs by name, for static int8 models (compareWebOutputs). */
  floatOutputs?: Record<string, WireTensor | ArrayLike<number>>[];
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
    web.env.wasm.numThreads = WEB_THREADS;
    web.env.logLevel = 'error';
    return web;
  });
  return ortWebModule;
}

/** The model for the native reference: MatMulNBits without accuracy_level > 1 (a speed hint for native CPUs that wasm ignores). */
function referenceModel(m: ModelProto, encode: (m: ModelProto) => Uint8Array): Uint8Array | undefined {
  const nodes = allGraphs(m).flatMap((g) => g.node.filter((n) => n.opType === 'MatMulNBits' && n.domain === 'com.microsoft' && Number(attribute(n, 'accuracy_level')?.i ?? 0) > 1));
  if (!nodes.length) return undefined;
  const saved = nodes.map((n) => n.attribute);
  try {
    for (const n of nodes) n.attribute = n.attribute.filter((a) => a.name !== 'accuracy_level');
    return encode(m);
  } finally {
    nodes.forEach((n, i) => (n.attribute = saved[i]));
  }
}

/**
 * Loads `model` in onnxruntime-web (wasm) and onnxruntime-node in this process, runs `samples` through
 * both and compares every output. Throws CompressError('compress') naming the op the web runtime lacks,
 * or the output that disagrees. The native reference computes with float activations, as wasm does
 * (`session.qdq_matmulnbits_accuracy_level` = 1: ORT otherwise fuses DequantizeLinear → MatMul into
 * MatMulNBits with int8 activations).
 */
export async function checkWebCompatibility(model: ModelProto | Uint8Array, samples: { feeds: Record<string, WireTensor> }[], opts: WebCheckOptions = {}): Promise<WebCheckReport> {
  const t0 = performance.now();
  const rel = opts.rel ?? 1e-3;
  const abs = opts.abs ?? 1e-4;
  const { decodeModel, encodeModelToBytes } = await import('../onnx/codec.js');
  const { float16ToFloat32Array } = await import('../onnx/float16.js');
  const decoded = model instanceof Uint8Array ? decodeModel(model) : model;
  const bytes = model instanceof Uint8Array ? model : encodeModelToBytes(model);
  const web = await loadOrtWeb();
  const { openSession, runSession, trimOrtMessage } = await import('./session.js');
  const ortNode = await import('onnxruntime-node');
  const fail = (stage: 'load' | 'run', e: unknown, sample?: number) => {
    const message = trimOrtMessage(e);
    const op = unsupportedOp(message);
    const text = describeWebFailure({ stage, message, ...op, ...(op && { nodes: nodesWithOp(decoded, op.op, op.domain) }) });
    return new CompressError('compress', sample === undefined ? text : `${text} (sample ${sample})`, {}, { cause: e });
  };
  let webSession: Awaited<ReturnType<OrtWeb['InferenceSession']['create']>>;
  try {
    webSession = await web.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  } catch (e) {
    throw fail('load', e);
  }
  let node: Awaited<ReturnType<typeof openSession>>;
  try {
    node = await openSession(referenceModel(decoded, encodeModelToBytes) ?? bytes, { intraOpThreads: opts.intraOpThreads ?? 1, floatActivations: true });
  } catch (e) {
    await webSession.release();
    throw e;
  }
  const count = Math.min(samples.length, opts.maxSamples ?? samples.length);
  const worst = new Map<string, WebCheckOutput>();
  try {
    for (let i = 0; i < count; i++) {
      const feeds = samples[i].feeds;
      const nodeFeeds = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, t instanceof ortNode.Tensor ? t : new ortNode.Tensor(t.type as 'float32', t.data as Float32Array, t.dims)]));
      const ref = await runSession(node.session, nodeFeeds);
      const webFeeds = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new web.Tensor(t.type as 'float32', t.data as Float32Array, t.dims)]));
      let got: Record<string, WireTensor>;
      try {
        got = (await webSession.run(webFeeds)) as unknown as Record<string, WireTensor>;
      } catch (e) {
        throw fail('run', e, i + 1);
      }
      const floats = opts.floatOutputs?.[i] && Object.fromEntries(Object.entries(opts.floatOutputs[i]).map(([k, v]) => [k, 'data' in v ? (v as WireTensor) : { type: 'float32', dims: [(v as ArrayLike<number>).length], data: v }]));
      const c = compareWebOutputs(ref as unknown as Record<string, WireTensor>, got, rel, abs, float16ToFloat32Array, floats);
      for (const o of c.outputs) {
        const w = worst.get(o.name) ?? { name: o.name, maxAbsDiff: 0, allowed: Infinity };
        w.maxAbsDiff = Math.max(w.maxAbsDiff, o.maxAbsDiff);
        w.allowed = Math.min(w.allowed, o.allowed);
        if (o.rms) w.rms = { web: Math.max(w.rms?.web ?? 0, o.rms.web), quantization: Math.min(w.rms?.quantization ?? Infinity, o.rms.quantization) };
        worst.set(o.name, w);
      }
      if (c.problem) throw new CompressError('compress', `${c.problem} (sample ${i + 1})`);
    }
  } finally {
    await node.session.release();
    await webSession.release();
  }
  return { samples: count, outputs: [...worst.values()], ms: performance.now() - t0 };
}

/**
 * onnxruntime-node's outputs for `file` on `feeds`, on the CPU with float activations and MatMulNBits
 * without accuracy_level > 1: the reference the web check compares with when verification's outputs are
 * not one (verified on a GPU, or a model written with accuracy_level 4).
 */
export async function nativeReference(file: string, feeds: WireFeeds): Promise<Record<string, WireTensor>> {
  const { decodeModel, encodeModelToBytes } = await import('../onnx/codec.js');
  const { openSession, runSession } = await import('./session.js');
  const ortNode = await import('onnxruntime-node');
  const bytes = readFileSync(file);
  const model = referenceModel(decodeModel(bytes, file), encodeModelToBytes) ?? bytes;
  const { session } = await openSession(model, { device: 'cpu', floatActivations: true, prepacking: false });
  try {
    const nodeFeeds = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new ortNode.Tensor(t.type as 'float32', t.data as Float32Array, t.dims)]));
    return (await runSession(session, nodeFeeds)) as unknown as Record<string, WireTensor>;
  } finally {
    await session.release();
  }
}
