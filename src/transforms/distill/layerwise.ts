/**
 * Layer-wise (feature) distillation: refit each compressed layer of the student in closed form so
 * that, on the student's own inputs, it reproduces the teacher's output of that layer.
 *
 * Compressed layers are MatMul / Gemm / Conv layers whose output value also exists in the teacher
 * (same name: the teacher is the original, or a model the student was made from) and whose weight
 * differs from the teacher's:
 * - pruned (≥ 1 % exact zeros): least squares with the mask fixed — per output column, on the
 *   inputs that column keeps (ridge-damped normal equations);
 * - factorized into X·U·V: alternating least squares (V with U fixed, then U with V fixed);
 * - anything else (e.g. a layer whose input channels were removed by channel pruning): plain least squares.
 * A bias (Gemm C, Conv B, or the constant operand of an Add after a MatMul) is solved jointly.
 * A layer whose output channels were removed is matched to the teacher's channels by the cosine of
 * their activations (the kept channels are the teacher's, so the match is exact in practice).
 *
 * Everything is solved from sufficient statistics accumulated by onnxruntime on batches: the Gram
 * matrix XᵀX of the layer's inputs (im2col patches for a Conv, made by a Conv with a one-hot kernel),
 * XᵀY with the teacher's outputs Y, column sums and ‖Y‖². Inputs X come from the student as it is
 * being refit (layers go in graph order), so each refit also corrects the drift of the layers before it.
 */
import type * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-node';
import { CompressError } from '../../errors.js';
import { stackSamples } from '../../data/batch.js';
import type { Sample } from '../../data/types.js';
import { matmulSmall } from '../../linalg/dense.js';
import { DataType } from '../../onnx/dtypes.js';
import { extendGraph, floatValue, mapInitializers, withOutputs } from '../../onnx/edit.js';
import { makeAttribute, makeNode, NameScope, opsetVersion } from '../../onnx/graph.js';
import { dimsOf, makeInt64Tensor, makeTensor, tensorFloat32 } from '../../onnx/tensor.js';
import type { ModelProto, NodeProto, TensorProto } from '../../onnx/types.js';
import { inputSpecs, openSession, runSession, type DeviceRequest } from '../../runtime/session.js';
import { matchChannels, objective, solveUnit, type Solution, type Stats } from './solve.js';
import { findUnits, readMatrix, writeMatrix, type Kind, type Unit } from './units.js';

export { findUnits, type Unit } from './units.js';

export interface LayerwiseOptions {
  device?: DeviceRequest;
  intraOpThreads?: number;
  /** Ridge damping relative to the mean diagonal of the Gram matrix (default 1e-4). */
  ridge?: number;
  /** Alternating least squares rounds for factorized layers (default 4). */
  alsRounds?: number;
  /** Samples per run (default 32). */
  batch?: number;
  log?: (message: string) => void;
  progress?: (fraction: number) => void;
}

export interface LayerRefit {
  name: string;
  op: string;
  kind: Kind;
  weight: string;
  output: string;
  /** Relative RMS error of the layer output against the teacher's, on the fit data, before and after. */
  errorBefore: number;
  errorAfter: number;
  rows: number;
  /** Student output channel i ↔ teacher channel channels[i], when the student has fewer outputs. */
  channels?: number[];
}

export interface LayerwiseResult {
  model: ModelProto;
  layers: LayerRefit[];
  skipped: { name: string; reason: string }[];
  ms: number;
}

// ------------------------------------------------------------------------ statistics by onnxruntime

/** The student plus nodes that turn the layer's input and the teacher's output (fed) into statistics. */
function statsModel(student: ModelProto, u: Unit, Nt: number): { model: ModelProto; outputs: string[] } {
  const g = student.graph!;
  const opset = opsetVersion(student, '') ?? 13;
  const scope = new NameScope(student);
  const name = (b: string) => scope.unique(`lw/${b}`);
  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  const op = (type: string, inputs: string[], attrs: ReturnType<typeof makeAttribute>[] = []) => {
    const out = name(type);
    nodes.push(makeNode(type, inputs, [out], { name: name(`${type}_node`), attributes: attrs }));
    return out;
  };
  const ints = (v: number[]) => {
    const n = name('c');
    inits.push(makeInt64Tensor(n, v));
    return n;
  };
  const sumRows = (x: string) =>
    opset >= 13 ? op('ReduceSum', [x, ints([0])], [makeAttribute('keepdims', 0, true)]) : op('ReduceSum', [x], [makeAttribute('axes', [0], true), makeAttribute('keepdims', 0, true)]);
  // Rows of a layer output: [..., N] → [−1, N]; a Conv output [n, N, h, w] → [n·h·w, N].
  const rowsOf = (y: string, n: number) => op('Reshape', [u.conv ? op('Transpose', [y], [makeAttribute('perm', [0, 2, 3, 1], true)]) : y, ints([-1, n])]);
  let x = u.input;
  if (u.conv) {
    // im2col: a Conv whose kernel copies input element (c, i, j) of each window to output channel (c·kh + i)·kw + j.
    const w = g.initializer.find((t) => t.name === u.weight)!;
    const [, c, ...kernel] = dimsOf(w);
    const k = kernel.reduce((a, b) => a * b, 1);
    const eye = new Float32Array(c * k * c * k);
    for (let i = 0; i < c * k; i++) eye[i * c * k + i] = 1;
    const kernelName = name('im2col');
    inits.push(makeTensor(kernelName, DataType.FLOAT, [c * k, c, ...kernel], eye));
    const attrs = u.node.attribute.filter((a) => ['strides', 'pads', 'dilations', 'auto_pad'].includes(a.name ?? ''));
    x = op('Conv', [x, kernelName], attrs);
  }
  const xr = rowsOf(x, u.K);
  const targetInput = name('target');
  const ytr = rowsOf(targetInput, Nt);
  const outputs = [
    op('Gemm', [xr, xr], [makeAttribute('transA', 1, true)]),
    op('Gemm', [xr, ytr], [makeAttribute('transA', 1, true)]),
    sumRows(xr),
    sumRows(ytr),
    sumRows(op('Mul', [ytr, ytr])),
  ];
  const ysr = rowsOf(u.output, u.N);
  outputs.push(op('Gemm', [ysr, ytr], [makeAttribute('transA', 1, true)]), sumRows(op('Mul', [ysr, ysr])));
  const model = extendGraph(student, { nodes, initializers: inits, inputs: [floatValue(targetInput)], outputs, replaceOutputs: true });
  return { model, outputs: [targetInput, ...outputs] };
}

/** Stacked feeds per batch of samples. */
function* feedBatches(samples: Sample[], student: ModelProto, batch: number): Generator<Record<string, ort.Tensor>> {
  const specs = inputSpecs(student);
  for (let i = 0; i < samples.length; i += batch) {
    const chunk = samples.slice(i, i + batch);
    const stacked = chunk.length > 1 ? stackSamples(chunk, specs) : { feeds: chunk[0].feeds };
    if (stacked) yield stacked.feeds;
    else for (const s of chunk) yield s.feeds;
  }
}

async function accumulate(student: ModelProto, teacherSession: ort.InferenceSession, u: Unit, samples: Sample[], opts: LayerwiseOptions): Promise<Stats> {
  const K = u.K;
  let stats: Stats | undefined;
  let session: ort.InferenceSession | undefined;
  let outputs: string[] = [];
  try {
    for (const feeds of feedBatches(samples, student, opts.batch ?? 32)) {
      const y = (await runSession(teacherSession, feeds, [u.output]))[u.output];
      if (!session) {
        // The teacher's channel count (axis 1 of a conv output, else the last axis) fixes the stats graph.
        const built = statsModel(student, u, u.conv ? y.dims[1] : y.dims[y.dims.length - 1]);
        outputs = built.outputs;
        session = (await openSession(built.model, { device: opts.device, intraOpThreads: opts.intraOpThreads })).session;
      }
      const [targetInput, gOut, cOut, sOut, tOut, yyOut, crossOut, ssOut] = outputs;
      const out = await runSession(session, { ...feeds, [targetInput]: new Tensor('float32', y.data as Float32Array, y.dims) }, outputs.slice(1));
      const Nt = out[tOut].dims[0];
      if (!stats) {
        stats = { G: new Float64Array((K + 1) * (K + 1)), C: new Float64Array((K + 1) * Nt), yy: new Float64Array(Nt), rows: 0, Nt };
        if (Nt !== u.N) [stats.cross, stats.ss] = [new Float64Array(u.N * Nt), new Float64Array(u.N)];
      }
      const g = out[gOut].data as Float32Array;
      const c = out[cOut].data as Float32Array;
      const sx = out[sOut].data as Float32Array;
      const ty = out[tOut].data as Float32Array;
      const rows = (y.data as Float32Array).length / Nt;
      const A = K + 1;
      for (let i = 0; i < K; i++) {
        for (let j = 0; j < K; j++) stats.G[i * A + j] += g[i * K + j];
        stats.G[i * A + K] += sx[i];
        stats.G[K * A + i] += sx[i];
        for (let j = 0; j < Nt; j++) stats.C[i * Nt + j] += c[i * Nt + j];
      }
      stats.G[K * A + K] += rows;
      for (let j = 0; j < Nt; j++) {
        stats.C[K * Nt + j] += ty[j];
        stats.yy[j] += (out[yyOut].data as Float32Array)[j];
      }
      if (stats.cross) {
        const m = out[crossOut].data as Float32Array;
        for (let i = 0; i < m.length; i++) stats.cross[i] += m[i];
        const ss = out[ssOut].data as Float32Array;
        for (let i = 0; i < ss.length; i++) stats.ss![i] += ss[i];
      }
      stats.rows += rows;
    }
  } finally {
    await session?.release();
  }
  if (!stats) throw new CompressError('data', 'layerwise distillation: no samples');
  return stats;
}

// ----------------------------------------------------------------------------------- the pass

function replaceInitializer(model: ModelProto, t: TensorProto): ModelProto {
  return mapInitializers(model, (x) => (x.name === t.name ? t : x));
}

export async function refitLayers(student: ModelProto, teacher: ModelProto, samples: Sample[], opts: LayerwiseOptions = {}): Promise<LayerwiseResult> {
  const start = performance.now();
  const log = opts.log ?? (() => {});
  const { units, skipped } = findUnits(student, teacher);
  const layers: LayerRefit[] = [];
  if (units.length === 0) return { model: student, layers, skipped, ms: performance.now() - start };
  const targets = units.map((u) => u.output);
  const teacherCapture = withOutputs(teacher, targets);
  const { session: teacherSession } = await openSession(teacherCapture, { device: opts.device, intraOpThreads: opts.intraOpThreads });
  let model = student;
  try {
    for (const [i, u] of units.entries()) {
      const st = await accumulate(model, teacherSession, u, samples, opts);
      const cols = matchChannels(st, u.N);
      const inits = new Map(model.graph!.initializer.map((t) => [t.name ?? '', t]));
      const w = inits.get(u.weight)!;
      const current: Solution = { W: new Float64Array((u.K + 1) * u.N) };
      let mask: Uint8Array | undefined;
      if (u.kind === 'factorized') {
        current.U = readMatrix(w, u.layout);
        current.V = readMatrix(inits.get(u.second!)!, u.secondLayout!);
        current.W.set(matmulSmall(current.U, u.K, current.U.length / u.K, current.V, u.N));
      } else {
        const m = readMatrix(w, u.layout);
        current.W.set(m);
        if (u.kind === 'pruned') mask = Uint8Array.from(m, (x) => (x === 0 ? 0 : 1));
      }
      if (u.bias) current.W.set(tensorFloat32(inits.get(u.bias)!), u.K * u.N);
      const total = cols.reduce((a, c) => a + st.yy[c], 0) || 1;
      const before = objective(st, current.W, u.N, cols);
      const next = await solveUnit(u, st, current, cols, mask, opts);
      const after = objective(st, next.W, u.N, cols);
      const report: LayerRefit = {
        name: u.name, op: u.op, kind: u.kind, weight: u.weight, output: u.output, rows: st.rows,
        errorBefore: Math.sqrt(Math.max(0, before) / total),
        errorAfter: Math.sqrt(Math.max(0, Math.min(after, before)) / total),
        ...(u.N !== st.Nt ? { channels: cols } : {}),
      };
      if (after < before) {
        if (u.kind === 'factorized') {
          model = replaceInitializer(model, writeMatrix(w, next.U!, u.layout));
          model = replaceInitializer(model, writeMatrix(inits.get(u.second!)!, next.V!, u.secondLayout!));
        } else model = replaceInitializer(model, writeMatrix(w, next.W.subarray(0, u.K * u.N), u.layout));
        if (u.bias) {
          const b = inits.get(u.bias)!;
          model = replaceInitializer(model, makeTensor(b.name!, DataType.FLOAT, dimsOf(b), Float32Array.from(next.W.subarray(u.K * u.N))));
        }
      }
      layers.push(report);
      log(`distill layerwise: ${u.name} (${u.kind} ${u.op}, ${u.K}×${u.N}) output error ${report.errorBefore.toFixed(4)} → ${report.errorAfter.toFixed(4)} on ${st.rows} rows`);
      opts.progress?.((i + 1) / units.length);
    }
  } finally {
    await teacherSession.release();
  }
  return { model, layers, skipped, ms: performance.now() - start };
}

/**
 * Relative RMS error of each layer's output against the teacher's value of the same name, on
 * `samples` (held-out data for tests): student channel i compared with teacher channel channels[i].
 */
export async function layerErrors(
  student: ModelProto,
  teacher: ModelProto,
  layers: { output: string; op: string; channels?: number[] }[],
  samples: Sample[],
  opts: LayerwiseOptions = {},
): Promise<number[]> {
  const names = layers.map((l) => l.output);
  const onlyOutputs = (m: ModelProto): ModelProto => extendGraph(m, { outputs: names, replaceOutputs: true });
  const s = (await openSession(onlyOutputs(student), { device: opts.device, intraOpThreads: opts.intraOpThreads })).session;
  const t = (await openSession(onlyOutputs(teacher), { device: opts.device, intraOpThreads: opts.intraOpThreads })).session;
  const err = new Float64Array(layers.length);
  const norm = new Float64Array(layers.length);
  try {
    for (const feeds of feedBatches(samples, student, opts.batch ?? 32)) {
      const ys = await runSession(s, feeds, names);
      const yt = await runSession(t, feeds, names);
      layers.forEach((l, i) => {
        const a = ys[l.output];
        const b = yt[l.output];
        const da = a.data as Float32Array;
        const db = b.data as Float32Array;
        // Channels: axis 1 of a Conv output, else the last axis.
        const axis = l.op === 'Conv' ? 1 : a.dims.length - 1;
        const inner = a.dims.slice(axis + 1).reduce((x, y) => x * y, 1);
        const na = a.dims[axis];
        const nb = b.dims[axis];
        const outer = da.length / (na * inner);
        for (let o = 0; o < outer; o++)
          for (let c = 0; c < na; c++) {
            const tc = l.channels ? l.channels[c] : c;
            for (let k = 0; k < inner; k++) {
              const x = da[(o * na + c) * inner + k];
              const y = db[(o * nb + tc) * inner + k];
              err[i] += (x - y) ** 2;
              norm[i] += y * y;
            }
          }
      });
    }
  } finally {
    await s.release();
    await t.release();
  }
  return layers.map((_, i) => Math.sqrt(err[i] / (norm[i] || 1)));
}
