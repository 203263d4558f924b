/**
 * The activation guard of static quantization: before anything is written, the planned 8-bit
 * activations are tried on the calibration samples, and those that cost the output most are kept float
 * until the output's cosine with float32 is at least `activationCosine`.
 *
 * Why: one scale per tensor cannot serve channels whose ranges differ by 50× or more, and networks
 * built from depthwise-separable blocks have such tensors (PP-OCRv4's detector: the first blocks'
 * channels span 0.8 to 40; all activations 8-bit, its probability map fell to cosine 0.86 against
 * float32 while weight-only int8 keeps 0.997). Other tensors lose their small values where a
 * logarithm follows (openWakeWord's mel spectrogram: its power spectrum in 8 bits, cosine 0.94). No
 * statistic of the tensor alone says which ones matter (how much error the layers after it amplify or
 * average out decides), so the guard measures.
 *
 * How, cheaply: ONE onnxruntime session of the float model in which every planned activation x is
 * replaced by x + m·(DQ(Q(x)) − x) with its own scalar input m (0: float, 1: 8-bit with its calibrated
 * scale and zero point: exactly what QuantizeLinear → DequantizeLinear, hence the fused integer kernels,
 * compute). Weights stay float32: the guard measures what activations cost, weight rounding is the
 * same as weight-only int8. A try is then a run over the samples with other masks:
 *
 * 1. all masks 1: at or above the floor, the plan stands (one run over the samples);
 * 2. otherwise each activation alone (masks 0 but its own): the output's cosine ranks them;
 * 3. a bisection over "the k worst kept float" finds the fewest that meet the floor;
 * 4. keepFloat (static.ts) then gives every layer reading or writing one of them float activations,
 *    which turns more activations float; the plan that is left is measured again (errors do not
 *    always add up), and while it misses the floor the next worst is kept float too.
 */
import * as ort from 'onnxruntime-node';
import type { Sample } from '../../data/types.js';
import { cloneModel } from '../../onnx/edit.js';
import { DataType } from '../../onnx/dtypes.js';
import { makeNode, makeValueInfo, NameScope } from '../../onnx/graph.js';
import { makeTensor } from '../../onnx/tensor.js';
import type { ModelProto, NodeProto } from '../../onnx/types.js';
import { openSession, runSession } from '../../runtime/session.js';
import { keepFloat, type QuantizedValue, type StaticPlan } from './static.js';

/** Samples the guard runs (the first of the calibration samples). */
export const GUARD_SAMPLES = 32;
/** Samples each activation is ranked on. */
export const RANK_SAMPLES = 4;

export interface GuardReport {
  floor: number;
  samples: number;
  /** Output cosine with float32, every planned activation 8-bit (weights float32). */
  cosine: number;
  /** The same for the plan after the guard (= cosine when nothing was kept float). */
  cosineAfter: number;
  /** Activations kept float, most damaging first, with the output cosine each gives alone. */
  kept: { name: string; cosine: number }[];
  /** Layers that keep float activations because of them. */
  layers: number;
  /** Runs over the samples (one per try). */
  runs: number;
  ms: number;
}

interface Probe {
  session: ort.InferenceSession;
  masks: Map<string, string>;
  outputs: string[];
}

/** The float model with a mask input per measured value (see the file comment). */
function probeModel(model: ModelProto, measured: QuantizedValue[], codeType: number): { model: ModelProto; masks: Map<string, string> } {
  const m = cloneModel(model);
  return { model: m, masks: addActivationProbes(m, measured, codeType) };
}

/**
 * Rewrites `m` in place so that every measured value x reads x + mask·(DQ(Q(x)) − x), with its calibrated
 * scale and zero point and one scalar float input per value (0: float, 1: 8-bit). Returns value → mask
 * input. The budget search (src/pipeline/search/) adds the same probes to its fake-quant session.
 */
export function addActivationProbes(m: ModelProto, measured: QuantizedValue[], codeType: number): Map<string, string> {
  const g = m.graph!;
  const names = new NameScope(m);
  const producer = new Map<string, NodeProto>();
  for (const n of g.node) for (const o of n.output) if (o) producer.set(o, n);
  const after = new Map<NodeProto, NodeProto[]>();
  const atStart: NodeProto[] = [];
  const masks = new Map<string, string>();
  for (const v of measured) {
    const p = v.params!;
    const made = producer.get(v.name);
    let src = v.name;
    let out = v.name;
    if (made) {
      src = names.unique(`${v.name}_guard_float`);
      made.output[made.output.indexOf(v.name)] = src;
    } else {
      out = names.unique(`${v.name}_guard`);
      for (const n of g.node) n.input = n.input.map((i) => (i === v.name ? out : i));
    }
    const scale = names.unique(`${v.name}_guard_scale`);
    const zero = names.unique(`${v.name}_guard_zero_point`);
    g.initializer.push(makeTensor(scale, DataType.FLOAT, [], Float32Array.of(p.scale)));
    g.initializer.push(makeTensor(zero, codeType, [], codeType === DataType.UINT8 ? Uint8Array.of(p.zero) : Int8Array.of(p.zero)));
    const mask = names.unique(`${v.name}_guard_mask`);
    g.input.push(makeValueInfo(mask, DataType.FLOAT, []));
    masks.set(v.name, mask);
    const [q, d, e, me] = ['q', 'dq', 'err', 'masked'].map((s) => names.unique(`${v.name}_guard_${s}`));
    const nodes = [
      makeNode('QuantizeLinear', [src, scale, zero], [q]),
      makeNode('DequantizeLinear', [q, scale, zero], [d]),
      makeNode('Sub', [d, src], [e]),
      makeNode('Mul', [e, mask], [me]),
      makeNode('Add', [src, me], [out]),
    ];
    if (made) after.set(made, [...(after.get(made) ?? []), ...nodes]);
    else atStart.push(...nodes);
  }
  g.node = [...atStart, ...g.node.flatMap((n) => [n, ...(after.get(n) ?? [])])];
  return masks;
}

/** Cosine over all samples of each float output, the smallest. */
class Agreement {
  private dot: number[];
  private a: number[];
  private b: number[];
  constructor(n: number) {
    this.dot = new Array(n).fill(0);
    this.a = new Array(n).fill(0);
    this.b = new Array(n).fill(0);
  }
  add(k: number, x: Float32Array, y: Float32Array): void {
    let d = 0;
    let a = 0;
    let b = 0;
    for (let i = 0; i < x.length; i++) {
      d += x[i] * y[i];
      a += x[i] * x[i];
      b += y[i] * y[i];
    }
    this.dot[k] += d;
    this.a[k] += a;
    this.b[k] += b;
  }
  cosine(): number {
    let worst = 1;
    for (let k = 0; k < this.dot.length; k++) {
      const c = this.a[k] === 0 && this.b[k] === 0 ? 1 : this.a[k] === 0 || this.b[k] === 0 ? 0 : this.dot[k] / Math.sqrt(this.a[k] * this.b[k]);
      if (!(c >= worst)) worst = c; // NaN counts as worst
    }
    return worst;
  }
}

/**
 * Runs the guard on `model` (not yet rewritten) and `plan` (calibrated), keeping float the activations
 * it must (the plan is changed in place). `floor` ≤ 0 turns it off (undefined is returned).
 */
export async function guardStatic(
  model: ModelProto,
  plan: StaticPlan,
  samples: Sample[],
  floor: number,
  opts: { intraOpThreads?: number; log?: (m: string) => void } = {},
): Promise<GuardReport | undefined> {
  const measured = [...plan.values.values()].filter((v) => v.source !== 'move' && v.params);
  if (floor <= 0 || !measured.length || !samples.length) return undefined;
  const t0 = performance.now();
  const codeType = plan.activations === 'uint8' ? DataType.UINT8 : DataType.INT8;
  const built = probeModel(model, measured, codeType);
  // Level all: the probe's Q → DQ pairs feed Sub / Add, which onnxruntime fuses into nothing integer, and
  // its float Convs get the fast layouts (the same masks gave the same cosines as level basic to 1e-5 on
  // PP-OCRv4 det and cls, in 60 % of the time).
  const { session } = await openSession(built.model, { intraOpThreads: opts.intraOpThreads, optimization: 'all' });
  const floatOutputs = model.graph!.output.filter((o) => (o.type?.tensorType?.elemType ?? DataType.FLOAT) === DataType.FLOAT).map((o) => o.name!);
  const probe: Probe = { session, masks: built.masks, outputs: floatOutputs };
  const use = samples.slice(0, GUARD_SAMPLES);
  let runs = 0;
  try {
    const zero = new ort.Tensor('float32', Float32Array.of(0), []);
    const one = new ort.Tensor('float32', Float32Array.of(1), []);
    const run = async (s: Sample, on: (name: string) => boolean) => {
      const feeds: Record<string, ort.Tensor> = { ...s.feeds };
      for (const [name, mask] of probe.masks) feeds[mask] = on(name) ? one : zero;
      const out = await runSession(probe.session, feeds, probe.outputs);
      return probe.outputs.map((o) => out[o].data as Float32Array);
    };
    const reference: Float32Array[][] = [];
    for (const s of use) reference.push((await run(s, () => false)).map((x) => x.slice()));
    const tryMasks = async (on: (name: string) => boolean, n = use.length): Promise<number> => {
      runs++;
      const agr = new Agreement(probe.outputs.length);
      for (let i = 0; i < n; i++) (await run(use[i], on)).forEach((y, k) => agr.add(k, reference[i][k], y));
      return agr.cosine();
    };
    const all = await tryMasks(() => true);
    if (all >= floor) return { floor, samples: use.length, cosine: all, cosineAfter: all, kept: [], layers: 0, runs, ms: performance.now() - t0 };
    opts.log?.(`static guard: all activations 8-bit give cosine ${all.toFixed(5)} < ${floor} on ${use.length} calibration samples; ranking ${measured.length} activations`);
    const rankN = Math.min(RANK_SAMPLES, use.length);
    const alone: { name: string; cosine: number }[] = [];
    for (const v of measured) alone.push({ name: v.name, cosine: await tryMasks((n) => n === v.name, rankN) });
    alone.sort((a, b) => a.cosine - b.cosine);
    // Fewest of the worst kept float that meet the floor: k = 0 fails, k = all (every activation float) is float32.
    let lo = 0;
    let hi = alone.length;
    while (hi - lo > 1) {
      const k = (lo + hi) >> 1;
      const kept = new Set(alone.slice(0, k).map((a) => a.name));
      if ((await tryMasks((n) => !kept.has(n))) >= floor) hi = k;
      else lo = k;
    }
    // Keeping those float also turns off the layers that read or write them, and with them more
    // activations; errors do not always add up, so the plan left is measured, and if it misses the
    // floor the next worst is kept float too.
    const reason = `kept float by the activation guard: 8-bit activations here cost the output most (activationCosine ${floor} on the calibration samples)`;
    let k = hi;
    let layers = 0;
    let after: number;
    for (;;) {
      layers += keepFloat(model, plan, new Set(alone.slice(0, k).map((a) => a.name)), reason).length;
      const left = new Set([...plan.values.values()].filter((v) => v.source !== 'move').map((v) => v.name));
      after = await tryMasks((n) => left.has(n));
      if (after >= floor || k >= alone.length) break;
      k++;
    }
    return { floor, samples: use.length, cosine: all, cosineAfter: after, kept: alone.slice(0, k), layers, runs, ms: performance.now() - t0 };
  } finally {
    await session.release();
  }
}
