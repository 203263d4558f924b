/**
 * float32 → float16 conversion of a whole model: every float weight (initializers and Constant nodes,
 * subgraphs included) and every float value between ops becomes float16, except
 * - the graph's own inputs and outputs when `keepIoTypes` (a Cast after each input, before each output),
 * - "kept" ops that run in float32 with Casts around them: the block list (`keepFloat32Ops` plus the
 *   defaults below), ops whose schema has no float16 (Range, Resize's scales, NonMaxSuppression,
 *   DynamicQuantizeLinear, DequantizeLinear/QuantizeLinear before opset 19), ops of other domains
 *   (ai.onnx.ml …), and overflow-prone chains: a square (Pow(x, 2), x·x; it overflows float16 beyond
 *   |x| = 256) or a scaling by a large constant, up to the √ / 1/x / log that brings the range back
 *   (hand-written LayerNorm, STFT magnitudes, log-mel features).
 * A Constant or Cast read only by kept ops stays float32 (no float16 round trip for e.g. Range bounds).
 *
 * Values are rounded to nearest even and clamped to ±65504: a weight beyond float16's range (or an
 * infinity used as a mask value) becomes ±65504, never Inf, so no Inf/NaN is introduced by conversion.
 * ONNX Runtime's CPU provider computes float16 ops that lack float16 kernels in float32 (it inserts the
 * Casts itself), so accuracy only suffers from float16 storage between ops.
 */
import { DataType } from '../../onnx/dtypes.js';
import { float16ToFloat32Array, float32ArrayToFloat16 } from '../../onnx/float16.js';
import { toFloat16ClampedSums } from '../../onnx/float16-simd.js';
import { attribute, indexModel, makeAttribute, makeNode, opsetVersion, type GraphIndex, type NameScope } from '../../onnx/graph.js';
import { dimsOf, makeTensor, tensorFloat32 } from '../../onnx/tensor.js';
import type { GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from '../../onnx/types.js';
import { subgraphsOf } from '../../onnx/walk.js';
import { inferTypes, type TypeScope } from './infer.js';

/**
 * Ops kept in float32 by default: overflow-prone, precision-sensitive, or without float16 in their schema.
 * BatchNormalization: an unfolded one (PP-OCRv4's detector head, after a ConvTranspose) normalizes by
 * sqrt(var + ε) with small variances; in float16 the detector's probability map fell to cosine 0.836
 * against float32 (1.0000 with BatchNormalization kept float32).
 */
export const DEFAULT_KEEP_FLOAT32_OPS = [
  'Resize', 'Upsample', 'Range', 'TopK', 'CumSum', 'NonMaxSuppression', 'RoiAlign', 'BatchNormalization',
  'RandomNormal', 'RandomNormalLike', 'RandomUniform', 'RandomUniformLike', 'Multinomial', 'Bernoulli',
  'EyeLike', 'DynamicQuantizeLinear', 'ReduceSumSquare', 'ReduceL2', 'ReduceLogSumExp', 'STFT', 'DFT', 'MelWeightMatrix',
];

const FLOAT = DataType.FLOAT;
const FLOAT16 = DataType.FLOAT16;

export interface Float16Options {
  keepIoTypes: boolean;
  /** Op types (default domain) to keep in float32, in addition to DEFAULT_KEEP_FLOAT32_OPS. */
  keepFloat32Ops: readonly string[];
  /** Converted weights with at least this many elements are listed in `weights` (default 1024). */
  minElements?: number;
  /** Reads a float32 tensor's values (default tensorFloat32; lazy.ts weightFloats for data on disk). */
  read?: (t: TensorProto) => Float32Array;
}

export interface ConvertedWeight {
  name: string;
  /** The op that reads it (first reader). */
  op: string;
  shape: number[];
  bytesBefore: number;
  bytesAfter: number;
  /** Relative RMS error of the float16 values. */
  error: number;
}

export interface Float16Result {
  /** Float weights converted: count and bytes before/after. */
  tensors: number;
  bytesBefore: number;
  bytesAfter: number;
  /** Nodes kept in float32, by op type. */
  kept: Record<string, number>;
  casts: number;
  weights: ConvertedWeight[];
  warnings: string[];
}

/** Ops whose inputs may be any type: they never need a Cast in front. */
const TYPE_AGNOSTIC_INPUT = new Set(['Cast', 'Shape', 'Size']);

/** float32 → float16 bits, clamped to ±65504 (infinities included), written into `dst` (default: a new array). */
export function toFloat16Clamped(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  const out = float32ArrayToFloat16(src, dst, 'clamp');
  for (let i = 0; i < src.length; i++) {
    const h = out[i];
    if ((h & 0x7fff) === 0x7c00) out[i] = h === 0x7c00 ? 0x7bff : 0xfbff;
  }
  return out;
}

const CHUNK = 16384;
const backChunk = new Float32Array(CHUNK);

/**
 * toFloat16Clamped and the relative RMS error of the conversion, in one pass over `src`: on WebAssembly
 * SIMD where it runs (onnx/float16-simd.ts, the same bits); else here, a chunk at a time converted,
 * read back and compared while it is in cache (no weight-sized scratch buffer).
 */
export function toFloat16Measured(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): { values: Uint16Array; error: number } {
  const sums = toFloat16ClampedSums(src, dst);
  if (sums) return { values: dst, error: relativeError(sums.err, sums.ref) };
  let e = 0;
  let r = 0;
  for (let start = 0; start < src.length; start += CHUNK) {
    const end = Math.min(src.length, start + CHUNK);
    const back = float16ToFloat32Array(toFloat16Clamped(src.subarray(start, end), dst.subarray(start, end)), backChunk);
    for (let i = 0, j = start; j < end; i++, j++) {
      const x = src[j];
      const d = x - back[i];
      e += d * d;
      r += x * x;
    }
  }
  return { values: dst, error: relativeError(e, r) };
}

/** √(Σ(x − back)² / Σx²); 0 for an all-zero tensor or one whose error is not finite (NaN, Inf). */
function relativeError(e: number, r: number): number {
  return r > 0 && Number.isFinite(e) ? Math.sqrt(e / r) : 0;
}

/** Converts a float32 tensor in place; returns sizes and the relative RMS error of the conversion. */
function convertTensor(t: TensorProto, read: (t: TensorProto) => Float32Array = tensorFloat32): { before: number; after: number; error: number } {
  const v = read(t);
  const { values: h, error } = toFloat16Measured(v);
  const converted = makeTensor(t.name ?? '', FLOAT16, dimsOf(t), h);
  t.dataType = FLOAT16;
  t.rawData = converted.rawData;
  t.floatData = undefined;
  t.dataLocation = undefined;
  t.externalData = [];
  return { before: v.length * 4, after: h.length * 2, error };
}

function isKeptByRule(node: NodeProto, keep: Set<string>, opset: number): boolean {
  const domain = node.domain ?? '';
  const op = node.opType ?? '';
  if (domain !== '' && domain !== 'ai.onnx' && domain !== 'com.microsoft') return true;
  if (domain === 'com.microsoft') return op === 'DynamicQuantizeMatMul' || op === 'MatMulIntegerToFloat' || keep.has(`com.microsoft.${op}`);
  if (keep.has(op)) return true;
  if ((op === 'DequantizeLinear' || op === 'QuantizeLinear') && opset < 19) return true;
  return false;
}

/** Ops a large value passes through unchanged in range (roughly), and ops that bring it back. */
const CHAIN_PASS = new Set(['Add', 'Sub', 'Mul', 'Div', 'ReduceMean', 'ReduceSum', 'Abs', 'Neg', 'Max', 'Min', 'Clip']);
const CHAIN_RESTORE = new Set(['Sqrt', 'Reciprocal', 'Log']);

/** Keeps `start` in float32, and its single-consumer chain when that chain ends in a range-restoring op. */
function keepChain(start: NodeProto, idx: GraphIndex, kept: Set<NodeProto>): void {
  kept.add(start);
  const chain: NodeProto[] = [];
  let cur = start;
  for (let step = 0; step < 8; step++) {
    const next = idx.consumersOf(cur.output[0]);
    if (next.length !== 1 || (next[0].domain ?? '') !== '' || idx.isGraphOutput(cur.output[0])) return;
    cur = next[0];
    chain.push(cur);
    if (CHAIN_RESTORE.has(cur.opType ?? '')) {
      for (const n of chain) kept.add(n);
      return;
    }
    if (!CHAIN_PASS.has(cur.opType ?? '')) return;
  }
}

/** Mul by a constant of magnitude ≥ 1024, or Div by one of magnitude ≤ 1/1024. */
function isLargeScale(n: NodeProto, idx: GraphIndex): boolean {
  if (n.opType !== 'Mul' && n.opType !== 'Div') return false;
  for (const [k, name] of n.input.entries()) {
    const w = idx.weight(name);
    if (!w || w.tensor.dataType !== FLOAT || w.tensor.dims.reduce<number>((a, d) => a * Number(d), 1) > 16) continue;
    let v: Float32Array;
    try {
      v = tensorFloat32(w.tensor);
    } catch {
      continue;
    }
    if (n.opType === 'Mul' && v.some((x) => Math.abs(x) >= 1024)) return true;
    if (n.opType === 'Div' && k === 1 && v.some((x) => x !== 0 && Math.abs(x) <= 1 / 1024)) return true;
  }
  return false;
}

/** Converts `model` in place. */
export function convertToFloat16(model: ModelProto, opts: Float16Options, names: NameScope): Float16Result {
  const result: Float16Result = { tensors: 0, bytesBefore: 0, bytesAfter: 0, kept: {}, casts: 0, weights: [], warnings: [] };
  const minElements = opts.minElements ?? 1024;
  const record = (t: TensorProto, r: { before: number; after: number; error: number }, op: string) => {
    result.tensors++;
    result.bytesBefore += r.before;
    result.bytesAfter += r.after;
    if (r.before / 4 >= minElements) result.weights.push({ name: t.name ?? '', op, shape: dimsOf(t), bytesBefore: r.before, bytesAfter: r.after, error: r.error });
  };
  if (!model.graph) return result;
  const opset = opsetVersion(model, '') ?? 1;
  const keepOps = new Set([...DEFAULT_KEEP_FLOAT32_OPS, ...opts.keepFloat32Ops]);
  const types = inferTypes(model);
  const indexes = indexModel(model);

  // ---- which nodes stay float32
  const kept = new Set<NodeProto>();
  for (const [g, idx] of indexes) {
    for (const n of g.node) {
      if (isKeptByRule(n, keepOps, opset)) kept.add(n);
      // Overflow-prone chains: a square (Pow(x, ≥2), x·x) or a scaling by a large constant (|c| ≥ 1024)
      // stays float32 with what follows it up to an op that brings the range back (√, 1/x, log):
      // hand-written LayerNorm (x² → mean → + ε → √), STFT magnitudes (re² + im² → √), log-mel
      // features (· 2²⁰ + 1 → log).
      if ((n.domain ?? '') === '' && (isSquare(n, idx) || isLargeScale(n, idx))) keepChain(n, idx, kept);
    }
  }
  // Constants / Casts read only by kept nodes stay float32 too (to a fixpoint: chains of them).
  for (let changed = true; changed; ) {
    changed = false;
    for (const [g, idx] of indexes) {
      for (const n of g.node) {
        if (kept.has(n) || (n.domain ?? '') !== '' || !['Constant', 'Cast', 'ConstantOfShape', 'Identity'].includes(n.opType ?? '')) continue;
        const readers = n.output.flatMap((o) => idx.consumersOf(o));
        if (readers.length && readers.every((r) => kept.has(r)) && !n.output.some((o) => idx.isGraphOutput(o))) {
          kept.add(n);
          changed = true;
        }
      }
      void g;
    }
  }
  for (const n of kept) result.kept[n.opType ?? ''] = (result.kept[n.opType ?? ''] ?? 0) + 1;

  // ---- final element type of every float value, per graph
  const finalTypes = new Map<GraphProto, Map<string, number>>();
  const finalOf = (g: GraphProto, name: string): number | undefined => {
    for (let idx: GraphIndex | undefined = indexes.get(g); idx; idx = idx.outer) {
      const t = finalTypes.get(idx.graph)?.get(name);
      if (t !== undefined) return t;
      if (idx.producer.has(name) || idx.initializers.has(name) || idx.graphInputs.has(name)) return undefined;
    }
    return undefined;
  };
  const isFloat = (scope: TypeScope, name: string) => scope.get(name) === FLOAT;
  for (const [g, idx] of indexes) {
    const scope = types.get(g)!;
    const m = new Map<string, number>();
    finalTypes.set(g, m);
    const isMain = g === model.graph;
    for (const v of g.input) {
      if (v.name && isFloat(scope, v.name)) m.set(v.name, isMain && opts.keepIoTypes ? FLOAT : FLOAT16);
    }
    for (const t of g.initializer) {
      if (!t.name || t.dataType !== FLOAT || idx.graphInputs.has(t.name)) continue;
      const readers = idx.consumersOf(t.name);
      const onlyKept = readers.length > 0 && readers.every((r) => kept.has(r)) && !idx.isGraphOutput(t.name);
      m.set(t.name, onlyKept ? FLOAT : FLOAT16);
    }
    for (const n of g.node) {
      for (const o of n.output) if (o && isFloat(scope, o)) m.set(o, kept.has(n) ? FLOAT : FLOAT16);
    }
  }

  // ---- convert weights and float-typed attributes of converted nodes
  for (const [g, idx] of indexes) {
    const m = finalTypes.get(g)!;
    for (const t of g.initializer) {
      if (t.name && t.dataType === FLOAT && m.get(t.name) === FLOAT16) record(t, convertTensor(t, opts.read), idx.consumersOf(t.name)[0]?.opType ?? '');
    }
    for (const n of g.node) {
      if (kept.has(n) || ((n.domain ?? '') !== '' && n.domain !== 'ai.onnx')) continue;
      if (n.opType === 'Constant') {
        const a = attribute(n, 'value');
        if (a?.t && a.t.dataType === FLOAT) {
          if (!a.t.name) a.t.name = n.output[0];
          record(a.t, convertTensor(a.t, opts.read), idx.consumersOf(n.output[0])[0]?.opType ?? 'Constant');
        } else {
          const vf = attribute(n, 'value_float') ?? attribute(n, 'value_floats');
          if (vf) {
            const values = vf.name === 'value_float' ? Float32Array.of(vf.f ?? 0) : Float32Array.from(vf.floats);
            const dims = vf.name === 'value_float' ? [] : [values.length];
            n.attribute = n.attribute.filter((x) => x !== vf);
            n.attribute.push(makeAttribute('value', makeTensor(n.output[0], FLOAT16, dims, toFloat16Clamped(values))));
          }
        }
      } else if (n.opType === 'ConstantOfShape') {
        const a = attribute(n, 'value');
        if (!a?.t) {
          // Default value is float32 0.
          n.attribute.push(makeAttribute('value', makeTensor('value', FLOAT16, [1], new Uint16Array(1))));
        } else if (a.t.dataType === FLOAT) convertTensor(a.t, opts.read);
      } else if (n.opType === 'Cast') {
        const to = attribute(n, 'to');
        if (to && Number(to.i) === FLOAT) to.i = FLOAT16;
      }
    }
  }

  // ---- Casts where a value's type and its reader's type differ
  const rename = new Map<GraphProto, Map<string, string>>();
  for (const [g, idx] of indexes) {
    const isMain = g === model.graph;
    const m = finalTypes.get(g)!;
    // Outputs whose type must differ from their producer's: the producer writes a new name and a Cast
    // writes the output's name.
    const tail: NodeProto[] = [];
    for (const o of g.output) {
      const name = o.name ?? '';
      const have = finalOf(g, name);
      if (have === undefined) continue;
      const want = isMain && opts.keepIoTypes ? FLOAT : FLOAT16;
      if (have === want) continue;
      const renamed = names.unique(`${name}_${have === FLOAT16 ? 'fp16' : 'fp32'}`);
      const producer = idx.producer.get(name);
      if (producer) {
        producer.output = producer.output.map((x) => (x === name ? renamed : x));
      } else {
        const init = idx.initializers.get(name);
        if (init) init.name = renamed;
        else continue; // a graph input passed through: nothing to rename (its type is already right for main)
      }
      let r = rename.get(g);
      if (!r) rename.set(g, (r = new Map()));
      r.set(name, renamed);
      m.delete(name);
      m.set(renamed, have);
      m.set(name, want);
      tail.push(makeNode('Cast', [renamed], [name], { name: names.unique(`${name}_Cast`), attributes: [makeAttribute('to', want, true)] }));
      result.casts++;
    }
    // Readers of a renamed value read the new name (in this graph and its subgraphs).
    const r = rename.get(g);
    if (r) renameReads(g, r);

    const castCache = new Map<string, string>();
    const out: NodeProto[] = [];
    const castTo = (name: string, want: number, before: NodeProto[]) => {
      const key = `${name}\0${want}`;
      let c = castCache.get(key);
      if (!c) {
        c = names.unique(`${name}_${want === FLOAT16 ? 'fp16' : 'fp32'}`);
        castCache.set(key, c);
        before.push(makeNode('Cast', [name], [c], { name: names.unique(`${c}_Cast`), attributes: [makeAttribute('to', want, true)] }));
        result.casts++;
      }
      return c;
    };
    for (const n of g.node) {
      const before: NodeProto[] = [];
      if (!TYPE_AGNOSTIC_INPUT.has(n.opType ?? '') || (n.domain ?? '') !== '') {
        const want = kept.has(n) ? FLOAT : FLOAT16;
        n.input = n.input.map((name) => {
          if (!name) return name;
          const have = finalOf(g, name);
          return have === undefined || have === want ? name : castTo(name, want, before);
        });
      }
      out.push(...before, n);
    }
    out.push(...tail);
    g.node = out;
    // Casts needed inside subgraphs for values they read from outside are added when the subgraph's
    // own nodes are visited (finalOf looks through outer scopes).
  }

  // ---- declared types follow
  for (const [g] of indexes) {
    const isMain = g === model.graph;
    const m = finalTypes.get(g)!;
    const fix = (v: ValueInfoProto, forced?: number) => {
      const tt = v.type?.tensorType;
      if (!tt || tt.elemType !== FLOAT || !v.name) return;
      const t = forced ?? m.get(v.name) ?? finalOf(g, v.name);
      if (t !== undefined) tt.elemType = t;
    };
    for (const v of g.input) fix(v, isMain && opts.keepIoTypes ? FLOAT : FLOAT16);
    for (const v of g.output) fix(v, isMain && opts.keepIoTypes ? FLOAT : FLOAT16);
    for (const v of g.valueInfo) fix(v);
  }
  if (g0SparseCount(model)) result.warnings.push('sparse initializers are left in float32');
  return result;
}

function isSquare(n: NodeProto, idx: GraphIndex): boolean {
  if ((n.domain ?? '') !== '') return false;
  if (n.opType === 'Mul') return n.input[0] === n.input[1];
  if (n.opType !== 'Pow') return false;
  const e = idx.weight(n.input[1]);
  if (!e) return false;
  try {
    const v = tensorFloat32(e.tensor);
    return v.length === 1 && v[0] >= 2;
  } catch {
    return false;
  }
}

function renameReads(g: GraphProto, r: Map<string, string>): void {
  for (const n of g.node) {
    n.input = n.input.map((i) => r.get(i) ?? i);
    for (const sub of subgraphsOf(n)) {
      const own = new Set<string>([...sub.input.map((v) => v.name ?? ''), ...sub.initializer.map((t) => t.name ?? ''), ...sub.node.flatMap((x) => x.output)]);
      const inner = new Map([...r].filter(([k]) => !own.has(k)));
      if (inner.size) renameReads(sub, inner);
    }
  }
}

function g0SparseCount(model: ModelProto): number {
  let n = 0;
  const visit = (g: GraphProto) => {
    n += g.sparseInitializer.length;
    for (const node of g.node) for (const sub of subgraphsOf(node)) visit(sub);
  };
  if (model.graph) visit(model.graph);
  return n;
}
