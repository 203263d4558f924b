/**
 * Cheap model variants for the precision search: the weights of every searchable layer become graph
 * inputs of ONE onnxruntime session, and an assignment (layer → precision) is run by feeding each layer
 * its weights quantized and dequantized back to float32 ("fake quantization") with the same kernels,
 * plans and block sizes the quantize step uses. Trying a layer at another precision is then one run
 * over the search samples, with no graph rewrite, no encode and no session creation.
 *
 * Weights in subgraphs (If/Loop bodies, as Silero VAD's per-sample-rate branches hold them) and in
 * Constant nodes are lifted: a copy of the model reads them from new main-graph inputs (a subgraph sees
 * its enclosing graph's values), so every layer the quantize step selects is searchable.
 *
 * Stateful models (`carry`: output → input, src/runtime/carry.ts): every run goes through the samples in
 * order, one at a time, and feeds each run's carried outputs into the next sample, so each assignment is
 * measured with the state its own model carries, as an app runs it and as the evaluation measures it. The
 * samples' own state values (those the source model carried, for calibration) only start the sequence:
 * measured with them instead, a run would see the float32 state at every step and miss the drift that
 * builds up over frames.
 *
 * The numbers are those of DequantizeLinear → op in float32, which is what ORT computes for the
 * weight-only forms (wasm/webgpu targets: MatMulNBits with float activations); the dynamic int8 form and
 * accuracy_level 4 also round activations, so the chosen assignment is always verified by a full build
 * and evaluation.
 */
import type * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-node';
import { stackSamples } from '../../data/batch.js';
import type { InputSpec, Sample } from '../../data/types.js';
import { encodeModelToBytes } from '../../onnx/codec.js';
import { cloneModel } from '../../onnx/edit.js';
import { float16ToFloat32Array } from '../../onnx/float16.js';
import { DataType } from '../../onnx/dtypes.js';
import { makeValueInfo, NameScope } from '../../onnx/graph.js';
import { tensorFloat32 } from '../../onnx/tensor.js';
import type { GraphProto, ModelProto, NodeProto } from '../../onnx/types.js';
import type { QuantizeStep } from '../../recipe/types.js';
import { carriedFeeds, nextState, type Carry } from '../../runtime/carry.js';
import { openSession, runSession, sessionInputSpecs, type DeviceRequest } from '../../runtime/session.js';
import { toFloat16Clamped } from '../../transforms/quantize/float16.js';
import { planTarget, STATIC_KINDS, type FormEnv, type Plan } from '../../transforms/quantize/forms.js';
import { splitAt } from '../../transforms/quantize/layout.js';
import { predictedEnv } from '../../transforms/quantize/delivery.js';
import { deliveredPrecision, paramsFor, type LayerPrecision } from '../../transforms/quantize/precision.js';
import { selectWeights, type Target } from '../../transforms/quantize/select.js';
import { quantizeWeight, type WeightQuant } from '../../transforms/quantize/weights.js';

/**
 * What the search sets per layer: a weight precision, or for static quantization (`activations`)
 * `int8+a8`: int8 weights AND 8-bit activations (the layer fused into a QLinear kernel), where plain
 * `int8` then means int8 weights with float activations (activations.ts).
 */
export type SearchChoice = LayerPrecision | 'int8+a8';
export const A8 = 'int8+a8' as const;

/** One layer the search can set: its weight, fp32 bytes, and per precision the stored bytes and what is delivered. */
export interface SearchLayer {
  target: Target;
  name: string;
  /** The session input that feeds this layer's weights. */
  feed: string;
  elements: number;
  /** Stored bytes per precision (estimate: codes, scales, zero points; no graph overhead). */
  bytes: Partial<Record<SearchChoice, number>>;
  /** The precision actually delivered when this one is asked (a plan may fall back, e.g. Conv int4 → int8). */
  delivered: Partial<Record<SearchChoice, string>>;
}

export type Assignment = Map<string, SearchChoice>;

/** Outputs of one run over all samples: per output, the values of every batch concatenated, and per-batch dims. */
export interface RunOutputs {
  values: Map<string, Float32Array[]>;
  dims: Map<string, number[][]>;
}

/**
 * Bytes a plan stores for a weight of `n` elements: codes, fp32 scales, zero points when not the default.
 * MatMulNBits / GatherBlockQuantized pad every row to whole blocks of opBlock (a block of 128 on K = 64
 * stores 128 codes per row, so it is larger than blocks of 32 there).
 */
function planBytes(t: Target, plan: Plan, n: number): number {
  const K = t.shape[t.reduceAxis];
  const R = n / K;
  let codes = (n * plan.bits) / 8;
  let groups: number;
  if (plan.granularity === 'per-tensor') groups = 1;
  else if (typeof plan.granularity === 'number') groups = R * Math.ceil(K / plan.granularity);
  else groups = t.shape[t.channelAxis];
  if (plan.form === 'matmulnbits' || plan.form === 'gatherblock') {
    const block = plan.opBlock ?? K;
    const blocks = Math.ceil(K / block);
    codes = (R * blocks * block * plan.bits) / 8;
    groups = Math.max(groups, R * blocks);
  }
  const zeros = plan.symmetric && plan.signed ? 0 : (groups * plan.bits) / 8;
  return Math.ceil(codes + groups * 4 + zeros);
}

/** Dequantized weights in the weight's own layout. */
export function dequantize(q: WeightQuant): Float32Array {
  const n = q.codes.length;
  const out = new Float32Array(n);
  if (q.layout === 'axis') {
    if (q.axis === -1) {
      const s = q.scales[0];
      const z = q.zeros[0];
      for (let i = 0; i < n; i++) out[i] = (q.codes[i] - z) * s;
      return out;
    }
    const [, C, inner] = splitAt(q.dims, q.axis);
    for (let i = 0; i < n; i++) {
      const c = Math.floor(i / inner) % C;
      out[i] = (q.codes[i] - q.zeros[c]) * q.scales[c];
    }
    return out;
  }
  // Rows layout [R, K] (R = outer·inner, row o·inner + i), groups of q.group along K.
  const [outer, K, inner] = splitAt(q.dims, q.axis);
  const nb = Math.ceil(K / q.group);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const r = o * inner + i;
      for (let k = 0; k < K; k++) {
        const g = r * nb + Math.floor(k / q.group);
        out[(o * K + k) * inner + i] = (q.codes[r * K + k] - q.zeros[g]) * q.scales[g];
      }
    }
  }
  return out;
}

/** Samples stacked into batches of at most `size` where they can be (else one by one); in order, one by one, with carry. */
function batchesOf(samples: Sample[], specs: InputSpec[], size: number, carry?: Carry): Sample[] {
  if (carry) return samples.map((s) => ({ feeds: s.feeds }));
  const batches: Sample[] = [];
  size = Math.max(1, size);
  for (let i = 0; i < samples.length; i += size) {
    const chunk = samples.slice(i, i + size);
    const stacked = chunk.length > 1 ? stackSamples(chunk, specs) : undefined;
    if (stacked) batches.push(stacked);
    else batches.push(...chunk.map((s) => ({ feeds: s.feeds })));
  }
  return batches;
}

/**
 * The search's view of a model: the searchable layers (every weight of the quantize step's selection)
 * and a session that takes their weights as inputs.
 */
export class FakeQuantModel {
  private cache = new Map<string, Tensor>();
  private batches: Sample[];
  private specs: InputSpec[] = [];
  private carry: Carry | undefined;
  runs = 0;

  private constructor(
    readonly layers: SearchLayer[],
    /** Layers the step quantizes that the search cannot set: none since every weight is lifted (kept for the report's shape). */
    readonly fixed: string[],
    private readonly session: ort.InferenceSession,
    readonly outputs: string[],
    private readonly weights: Map<string, Float32Array>,
    batches: Sample[],
  ) {
    this.batches = batches;
  }

  /**
   * `probe`: changes the lifted model before its session opens (the activation probes of a static
   * search) and returns the inputs it added, which every run feeds through `run`'s `extra`.
   */
  static async open(model: ModelProto, params: QuantizeStep, options: readonly LayerPrecision[], samples: Sample[], opts: { device?: DeviceRequest; minElements?: number; batch?: number; carry?: Carry; probe?: (lifted: ModelProto) => string[] } = {}): Promise<FakeQuantModel> {
    const env = predictedEnv(model);
    const lifted = liftWeights(model, params, opts.minElements);
    const layers: SearchLayer[] = [];
    const weights = new Map<string, Float32Array>();
    for (const { target: t, feed } of lifted.layers) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      const layer: SearchLayer = { target: t, name: t.name, feed, elements: n, bytes: {}, delivered: {} };
      for (const p of options) {
        if (p === 'float32' || p === 'float16') {
          layer.bytes[p] = n * (p === 'float32' ? 4 : 2);
          layer.delivered[p] = p;
          continue;
        }
        const plan = planTarget(t, paramsFor(params, p), env);
        layer.bytes[p] = planBytes(t, plan, n);
        layer.delivered[p] = deliveredPrecision(plan.bits, plan.granularity);
      }
      layers.push(layer);
      weights.set(feed, Float32Array.from(tensorFloat32(t.site.tensor)));
    }
    const added = opts.probe?.(lifted.model) ?? [];
    const { session } = await openSession(encodeModelToBytes(lifted.model), { device: opts.device ?? 'cpu', intraOpThreads: 1 });
    const feeds = new Set([...layers.map((l) => l.feed), ...added]);
    const specs = sessionInputSpecs(session).filter((s) => !feeds.has(s.name));
    const carry = opts.carry && Object.keys(opts.carry).length ? opts.carry : undefined;
    const batches = batchesOf(samples, specs, opts.batch ?? 256, carry);
    const fq = new FakeQuantModel(layers, [], session, [...session.outputNames], weights, batches);
    fq.specs = specs;
    fq.carry = carry;
    return fq;
  }

  /** The same session and weight cache over other samples (close only the original). */
  withSamples(samples: Sample[], batch = 256): FakeQuantModel {
    const fq = new FakeQuantModel(this.layers, this.fixed, this.session, this.outputs, this.weights, batchesOf(samples, this.specs, batch, this.carry));
    fq.cache = this.cache;
    fq.specs = this.specs;
    fq.carry = this.carry;
    return fq;
  }

  /** A layer's weights at a precision, as a feed (computed once per layer and precision). */
  weightFeed(layer: SearchLayer, p: LayerPrecision, params: QuantizeStep, env: FormEnv): Tensor {
    const key = `${layer.name}\u0000${p}`;
    let t = this.cache.get(key);
    if (t) return t;
    const w = this.weights.get(layer.feed)!;
    let data: Float32Array;
    if (p === 'float32') data = w;
    else if (p === 'float16') data = float16ToFloat32Array(toFloat16Clamped(w));
    else data = dequantize(quantizeWeight(layer.target, planTarget(layer.target, paramsFor(params, p), env), w));
    t = new Tensor('float32', data, layer.target.shape);
    this.cache.set(key, t);
    return t;
  }

  /** Runs every sample batch with the layers' weights as `assignment` says (unlisted: float32), and `extra` feeds. */
  async run(assignment: Assignment, feedOf: (layer: SearchLayer, p: SearchChoice) => Tensor, extra: Record<string, Tensor> = {}): Promise<RunOutputs> {
    const weightFeeds: Record<string, Tensor> = { ...extra };
    for (const l of this.layers) weightFeeds[l.feed] = feedOf(l, assignment.get(l.name) ?? 'float32');
    const out = await this.runAll((feeds) => runSession(this.session, { ...feeds, ...weightFeeds }));
    this.runs++;
    return out;
  }

  /** Every batch through `run`, in order; with carry, each sample gets the state the previous run carried. */
  private async runAll(run: (feeds: Record<string, Tensor>) => Promise<Record<string, Tensor>>): Promise<RunOutputs> {
    const values = new Map<string, Float32Array[]>(this.outputs.map((o) => [o, []]));
    const dims = new Map<string, number[][]>(this.outputs.map((o) => [o, []]));
    let state: Record<string, Tensor> | undefined;
    for (const b of this.batches) {
      const r = await run(carriedFeeds(b.feeds, state));
      if (this.carry) state = nextState(r, this.carry);
      for (const o of this.outputs) {
        const t = r[o];
        const d = t.data as unknown;
        values.get(o)!.push(d instanceof Float32Array ? d : t.type === 'float16' ? float16ToFloat32Array(d as Uint16Array) : Float32Array.from(d as ArrayLike<number>, Number));
        dims.get(o)!.push([...t.dims]);
      }
    }
    return { values, dims };
  }

  /** Runs every sample batch through another model (a real build of an assignment), same outputs. */
  async runModel(bytes: Uint8Array, device: DeviceRequest = 'cpu'): Promise<RunOutputs> {
    const { session } = await openSession(bytes, { device, intraOpThreads: 1 });
    try {
      const out = await this.runAll((feeds) => runSession(session, feeds, this.outputs));
      this.runs++;
      return out;
    } finally {
      await session.release();
    }
  }

  /** Bytes of the searchable layers' weights under an assignment (unlisted: float32). */
  bytesOf(assignment: Assignment): number {
    let s = 0;
    for (const l of this.layers) s += l.bytes[assignment.get(l.name) ?? 'float32'] ?? l.elements * 4;
    return s;
  }

  async close(): Promise<void> {
    this.cache.clear();
    await this.session.release();
  }
}

/**
 * A copy of the model whose searchable weights are main-graph inputs: main-graph initializers keep their
 * name; weights in subgraphs or Constant nodes get a new unique name, their readers read it, and their
 * initializer or Constant node is dropped. Tensor bytes are shared with `model`, which is not changed.
 */
function liftWeights(model: ModelProto, params: QuantizeStep, minElements?: number): { model: ModelProto; layers: { target: Target; feed: string }[] } {
  const copy = cloneModel(model);
  const main = copy.graph!;
  const names = new NameScope(copy);
  // Static quantization fuses small Convs too, so the step selects them whatever their size: so does the search.
  const selection = selectWeights(copy, { include: params.include, exclude: params.exclude, minElements, ...(params.activations && { anySize: STATIC_KINDS }) });
  const dropInits = new Map<GraphProto, Set<string>>();
  const dropNodes = new Set<NodeProto>();
  const layers: { target: Target; feed: string }[] = [];
  for (const t of selection.targets) {
    const site = t.site;
    let feed = t.weight;
    if (site.kind !== 'initializer' || site.graph !== main) {
      feed = names.unique(`${t.weight}_search`);
      for (const u of t.uses) u.node.input[u.input] = feed;
    }
    if (site.kind === 'initializer') {
      const set = dropInits.get(site.graph) ?? new Set<string>();
      set.add(t.weight);
      dropInits.set(site.graph, set);
    } else dropNodes.add(site.node);
    layers.push({ target: t, feed });
  }
  const graphs = new Set<GraphProto>([...dropInits.keys(), ...[...selection.targets].filter((t) => t.site.kind === 'constant').map((t) => t.site.graph)]);
  for (const g of graphs) {
    const drop = dropInits.get(g);
    if (drop) g.initializer = g.initializer.filter((x) => !drop.has(x.name ?? ''));
    g.node = g.node.filter((n) => !dropNodes.has(n));
  }
  const lifted = new Set(layers.map((l) => l.feed));
  main.input = [...main.input.filter((v) => !lifted.has(v.name ?? '')), ...layers.map((l) => makeValueInfo(l.feed, DataType.FLOAT, l.target.shape))];
  return { model: copy, layers };
}
