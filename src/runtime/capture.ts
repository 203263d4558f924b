/**
 * Activation capture: the values flowing through a model on real samples, for calibration, GPTQ,
 * activation-aware pruning / SVD and layer-wise distillation.
 *
 * The requested values become extra graph outputs of a copy of the model (the caller's model is not
 * changed). Samples run in batches when they can be stacked along a symbolic batch axis; each value is
 * then split back into per-sample tensors, exactly as a run of that sample alone would give them. The
 * first sample always runs alone, and its value shapes tell, for each value, along which axis the batch
 * was stacked (axis 0 for [batch, …]; axis 1 for a [seq, batch, d] value of a batch_first=False
 * attention; a flattened [batch·seq, d] splits into contiguous chunks). When a value's batched shape
 * cannot be explained that way, the remaining samples run one by one.
 *
 * Values are streamed: `onValue(name, tensor, sampleIndex)` per sample and value (sample order, then
 * name order), so callers accumulate (e.g. XᵀX) without holding everything. Split tensors along axis 0
 * are views into the batch output: copy them to keep them past the callback.
 */
import type * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-node';
import { CompressError } from '../errors.js';
import { extendGraph } from '../onnx/edit.js';
import { float16ToFloat32Array } from '../onnx/float16.js';
import type { ModelProto, ValueInfoProto } from '../onnx/types.js';
import { allGraphs } from '../onnx/walk.js';
import { suggest } from '../suggest.js';
import { stackSamples } from '../data/batch.js';
import type { Sample } from '../data/types.js';
import { inputSpecs, openSession, runSession, type DeviceRequest } from './session.js';

export interface CaptureOptions {
  device?: DeviceRequest;
  /** Samples per run when they can be stacked (default 32; 1 = one run per sample). */
  batch?: number;
  /** intraOpNumThreads for the capture session (default 1). */
  intraOpThreads?: number;
  /** Called for every sample and captured value. May return a promise (awaited before the next call). */
  onValue?: (name: string, value: ort.Tensor, sampleIndex: number) => void | Promise<void>;
}

type AnyArray = { length: number; subarray?: (a: number, b: number) => AnyArray; slice: (a: number, b: number) => AnyArray } & ArrayLike<unknown>;

function product(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Checks the names and returns the model with the extra outputs, plus which names are plain graph inputs. */
function captureModel(model: ModelProto, names: string[]): { model: ModelProto; fromInputs: Set<string> } {
  const g = model.graph;
  if (!g) throw new CompressError('model', 'the model has no graph');
  const produced = new Set<string>();
  for (const n of g.node) for (const o of n.output) if (o) produced.add(o);
  const inputs = new Set(g.input.map((v) => v.name ?? ''));
  const inits = new Set(g.initializer.map((t) => t.name ?? ''));
  const outputs = new Set(g.output.map((v) => v.name ?? ''));
  const inSubgraph = new Map<string, string>();
  for (const sub of allGraphs(model)) {
    if (sub === g) continue;
    for (const n of sub.node) for (const o of n.output) if (o && !inSubgraph.has(o)) inSubgraph.set(o, sub.name ?? '');
  }
  const fromInputs = new Set<string>();
  const extra: ValueInfoProto[] = [];
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) continue;
    seen.add(name);
    if (inputs.has(name) && !inits.has(name)) {
      fromInputs.add(name);
      continue;
    }
    if (inits.has(name)) throw new CompressError('compress', `cannot capture "${name}": it is a weight (initializer), not an activation`);
    if (!produced.has(name)) {
      const sub = inSubgraph.get(name);
      if (sub !== undefined) {
        throw new CompressError(
          'compress',
          `cannot capture "${name}": it is computed inside a subgraph${sub ? ` ("${sub}")` : ''} of an If/Loop/Scan node, and only values of the main graph can be model outputs`,
        );
      }
      const s = suggest(name, [...produced]);
      throw new CompressError('compress', `cannot capture "${name}": no node of the main graph produces it${s ? ` (did you mean "${s}"?)` : ''}`);
    }
    if (outputs.has(name)) continue;
    const info = g.valueInfo.find((v) => v.name === name);
    extra.push(info ? { ...info } : { name, metadataProps: [] });
  }
  const copy = extendGraph(model, { outputs: extra });
  return { model: copy, fromInputs };
}

/** The axis along which `n` samples were stacked, from a value's shape for one sample and for n. */
function batchAxis(one: readonly number[], many: readonly number[], n: number): number | undefined {
  if (one.length !== many.length) return undefined;
  let axis: number | undefined;
  for (let i = 0; i < one.length; i++) {
    if (one[i] === many[i]) continue;
    if (axis !== undefined || many[i] !== one[i] * n) return undefined;
    axis = i;
  }
  return axis;
}

/** Sample j's slice of a batched value stacked along `axis`, shaped like the one-sample value. */
function sliceSample(t: ort.Tensor, one: readonly number[], axis: number, j: number): ort.Tensor {
  const data = t.data as unknown as AnyArray;
  const inner = product(one.slice(axis + 1));
  const chunk = one[axis] * inner;
  const outer = product(t.dims.slice(0, axis));
  const stride = t.dims[axis] * inner;
  const take = (a: number, b: number) => (data.subarray ? data.subarray(a, b) : data.slice(a, b));
  if (outer === 1) return new Tensor(t.type as 'float32', take(j * chunk, (j + 1) * chunk) as unknown as Float32Array, [...one]);
  const Ctor = (data as object).constructor as new (n: number) => { set(a: AnyArray, at: number): void };
  const out = Array.isArray(data) ? new Array(outer * chunk) : new Ctor(outer * chunk);
  for (let o = 0; o < outer; o++) {
    const part = take(o * stride + j * chunk, o * stride + (j + 1) * chunk);
    if (Array.isArray(out)) for (let i = 0; i < chunk; i++) out[o * chunk + i] = part[i];
    else out.set(part, o * chunk);
  }
  return new Tensor(t.type as 'float32', out as unknown as Float32Array, [...one]);
}

function sameFeedDims(a: Sample, b: Sample): boolean {
  for (const [k, t] of Object.entries(a.feeds)) {
    const u = b.feeds[k];
    if (!u || u.dims.length !== t.dims.length || u.dims.some((d, i) => d !== t.dims[i])) return false;
  }
  return true;
}

/**
 * Runs `samples` through `model` and streams the values named in `names` (node outputs of the main
 * graph, or graph inputs) to `opts.onValue`, one call per sample and name.
 */
export async function captureActivations(model: ModelProto, names: string[], samples: Sample[], opts: CaptureOptions): Promise<void> {
  const { model: capture, fromInputs } = captureModel(model, names);
  const wanted = [...new Set(names)];
  const fetched = wanted.filter((n) => !fromInputs.has(n));
  const onValue = opts.onValue ?? (() => {});
  if (samples.length === 0 || wanted.length === 0) return;
  const { session } = await openSession(capture, { device: opts.device, intraOpThreads: opts.intraOpThreads });
  const specs = inputSpecs(model);
  const batch = Math.max(1, Math.floor(opts.batch ?? 32));
  try {
    const runOne = async (i: number) => {
      const out = fetched.length ? await runSession(session, samples[i].feeds, fetched) : {};
      for (const name of wanted) await onValue(name, fromInputs.has(name) ? samples[i].feeds[name] : out[name], i);
      return out;
    };
    const first = await runOne(0);
    const oneDims = new Map(fetched.map((n) => [n, first[n].dims]));
    let batched = batch > 1;
    let i = 1;
    while (i < samples.length) {
      const chunk = samples.slice(i, i + batch);
      const stacked = batched && chunk.length > 1 && chunk.every((s) => sameFeedDims(s, samples[0])) ? stackSamples(chunk, specs) : undefined;
      if (!stacked) {
        for (let j = 0; j < chunk.length; j++) await runOne(i + j);
        i += chunk.length;
        continue;
      }
      const out = fetched.length ? await runSession(session, stacked.feeds, fetched) : {};
      const axes = new Map<string, number>();
      for (const name of fetched) {
        const axis = batchAxis(oneDims.get(name)!, out[name].dims, chunk.length);
        if (axis === undefined) break;
        axes.set(name, axis);
      }
      if (axes.size !== fetched.length) {
        batched = false; // a value whose batch layout we cannot tell: one sample per run from here on
        continue;
      }
      for (let j = 0; j < chunk.length; j++) {
        for (const name of wanted) {
          const v = fromInputs.has(name) ? chunk[j].feeds[name] : sliceSample(out[name], oneDims.get(name)!, axes.get(name)!, j);
          await onValue(name, v, i + j);
        }
      }
      i += chunk.length;
    }
  } finally {
    await session.release();
  }
}

/** A tensor's values as float32 (a copy). */
export function tensorToFloat32(t: ort.Tensor): Float32Array {
  const d = t.data as unknown;
  if (t.type === 'float16') return float16ToFloat32Array(d as Uint16Array);
  if (d instanceof Float32Array) return d.slice();
  if (Array.isArray(d)) throw new CompressError('compress', `cannot read a ${t.type} tensor as numbers`);
  return Float32Array.from(d as ArrayLike<number | bigint>, Number);
}

/**
 * Convenience: every captured value as a float32 copy, per name, in sample order. Holds everything in
 * memory: prefer captureActivations with a streaming callback for large data.
 */
export async function collectActivations(
  model: ModelProto,
  names: string[],
  samples: Sample[],
  opts: Omit<CaptureOptions, 'onValue'> = {},
): Promise<Map<string, Float32Array[]>> {
  const out = new Map<string, Float32Array[]>(names.map((n) => [n, new Array<Float32Array>(samples.length)]));
  await captureActivations(model, names, samples, {
    ...opts,
    onValue: (name, value, i) => {
      out.get(name)![i] = tensorToFloat32(value);
    },
  });
  return out;
}
