/**
 * Evaluation of a compressed model against its original: output agreement, cosine, errors and KL per
 * output, accuracy against labels, latency, and budget checks.
 *
 * Both models run with the same session options, those a user's app would use: graph optimization `all`,
 * weight pre-packing on, the CPU memory arena on, `intraOpThreads` threads (default 1; 0 = onnxruntime's
 * default, one per physical core, with its spinning thread pool). Samples are run in batches stacked
 * along a symbolic batch axis (default 256) — samples that cannot be stacked run one by one. Latency is
 * measured on single samples (the first sample, batch of 1): 2 warm-up runs each (not counted), then
 * `runs` runs each, interleaved original/compressed so that machine noise hits both alike.
 *
 * When the compressed model's inputs have another float type than the samples (fp16 I/O), feeds are
 * converted; outputs are compared as float32.
 */
import type * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-node';
import { CompressError } from '../errors.js';
import { float16ToFloat32Array, float32ArrayToFloat16 } from '../onnx/float16.js';
import { encodeModelToBytes } from '../onnx/codec.js';
import type { ModelProto } from '../onnx/types.js';
import { suggest } from '../suggest.js';
import { carriedFeeds, nextState, type Carry } from '../runtime/carry.js';
import { openSession, runSession, sessionInputSpecs, type DeviceRequest } from '../runtime/session.js';
import { stackSamples } from '../data/batch.js';
import type { InputSpec, Sample } from '../data/types.js';
import { latencyStats, lastAxis, MetricAccumulator, top1Correct, type OutputMetrics } from './metrics.js';
import type { EvalReport } from './types.js';

export type { EvalReport, OutputMetrics };

export interface EvaluateOptions {
  /** Output for the headline metrics and accuracy (default: the first output). */
  output?: string;
  /** Compute accuracy against the samples' labels (default: when any sample has a label). */
  labels?: boolean;
  /** Latency runs per model (default 20; 0 skips latency). */
  runs?: number;
  device?: DeviceRequest;
  /** Samples per batch when they can be stacked (default 256). */
  batch?: number;
  /** intraOpNumThreads of both sessions (default 1; 0 = onnxruntime's default). */
  intraOpThreads?: number;
  /**
   * Streaming / stateful models: output → input fed into the next sample (src/runtime/carry.ts). Samples
   * then run one by one, in order, and each model carries its own state, so the metrics measure the drift
   * an app sees.
   */
  carry?: Carry;
}

/** A model for openSession: a path or bytes as they are, a decoded model encoded. */
function toBytes(m: ModelProto | Uint8Array | string): Uint8Array | string {
  return m instanceof Uint8Array || typeof m === 'string' ? m : encodeModelToBytes(m);
}

/** A tensor's values as float32 (a view when already float32). */
function asFloat32(t: ort.Tensor): Float32Array | undefined {
  const d = t.data as unknown;
  if (d instanceof Float32Array) return d;
  if (t.type === 'float16') return float16ToFloat32Array(d as Uint16Array);
  if (Array.isArray(d)) return undefined;
  return Float32Array.from(d as ArrayLike<number | bigint>, Number);
}

/** Feeds converted to the types a model's inputs want (float32 ↔ float16 ↔ float64, int64 ↔ int32). */
function adaptFeeds(feeds: Record<string, ort.Tensor>, specs: Map<string, InputSpec>): Record<string, ort.Tensor> {
  let out: Record<string, ort.Tensor> | undefined;
  for (const [name, t] of Object.entries(feeds)) {
    const want = specs.get(name)?.type;
    if (!want || want === t.type || want === 'unknown') continue;
    let data: unknown;
    const src = t.data as unknown;
    const floats = (): Float32Array => (t.type === 'float16' ? float16ToFloat32Array(src as Uint16Array) : Float32Array.from(src as ArrayLike<number>));
    if (want === 'float16' && (t.type === 'float32' || t.type === 'float64')) data = float32ArrayToFloat16(floats());
    else if (want === 'float32' && (t.type === 'float16' || t.type === 'float64')) data = floats();
    else if (want === 'float64' && (t.type === 'float16' || t.type === 'float32')) data = Float64Array.from(floats());
    else if (want === 'int32' && t.type === 'int64') data = Int32Array.from(src as BigInt64Array, Number);
    else if (want === 'int64' && t.type === 'int32') data = BigInt64Array.from(src as Int32Array, BigInt);
    else continue; // ORT will say what is wrong
    out ??= { ...feeds };
    out[name] = new Tensor(want as 'float32', data as Float32Array, t.dims);
  }
  return out ?? feeds;
}

export async function evaluateModels(
  original: ModelProto | Uint8Array | string,
  compressed: ModelProto | Uint8Array | string,
  samples: Sample[],
  opts: EvaluateOptions = {},
): Promise<EvalReport> {
  const t0 = performance.now();
  if (samples.length === 0) throw new CompressError('data', 'no samples to evaluate on');
  const threads = opts.intraOpThreads ?? 1;
  const sessionOpts = { device: opts.device ?? 'cpu', intraOpThreads: threads, spinning: threads !== 1 } as const;
  const a = await openSession(toBytes(original), sessionOpts);
  let b: Awaited<ReturnType<typeof openSession>>;
  try {
    b = await openSession(toBytes(compressed), sessionOpts);
  } catch (e) {
    await a.session.release();
    throw e;
  }
  const warnings = [...new Set([...a.warnings, ...b.warnings])];
  try {
    const orig = a.session;
    const comp = b.session;
    const output = opts.output ?? orig.outputNames[0];
    for (const [s, which] of [[orig, 'original'], [comp, 'compressed']] as const) {
      if (!s.outputNames.includes(output)) {
        const hint = suggest(output, s.outputNames);
        throw new CompressError(
          'recipe',
          `evaluate.output "${output}" is not an output of the ${which} model${hint ? ` (did you mean "${hint}"?)` : ''}; its outputs are ${s.outputNames.map((n) => `"${n}"`).join(', ')}`,
        );
      }
    }
    const carry = opts.carry && Object.keys(opts.carry).length ? opts.carry : undefined;
    if (carry) checkCarry(carry, orig, comp);
    const common = orig.outputNames.filter((n) => comp.outputNames.includes(n));
    for (const n of orig.outputNames) if (!common.includes(n)) warnings.push(`output "${n}" of the original model is missing from the compressed model`);
    const origSpecs = sessionInputSpecs(orig);
    const compSpecs = new Map(sessionInputSpecs(comp).map((s) => [s.name, s]));

    const hasLabels = samples.some((s) => s.label !== undefined);
    const useLabels = opts.labels ?? hasLabels;
    if (opts.labels && !hasLabels) warnings.push('labels were requested but no sample has a label: accuracy is not computed');
    const labelWarnings = new Set<string>();

    const acc = new Map(common.map((n) => [n, new MetricAccumulator()]));
    const skipped = new Set<string>();
    let labeled = 0;
    let origCorrect = 0;
    let compCorrect = 0;
    let counted = 0;

    const evalRun = async (feeds: Record<string, ort.Tensor>, group: Sample[], compFeeds = adaptFeeds(feeds, compSpecs)) => {
      const ro = await runSession(orig, feeds, common);
      const rc = await runSession(comp, compFeeds, common);
      for (const name of common) {
        if (skipped.has(name)) continue;
        const x = asFloat32(ro[name]);
        const y = asFloat32(rc[name]);
        if (!x || !y) {
          skipped.add(name);
          warnings.push(`output "${name}" (${ro[name].type}) is not numeric: not compared`);
          continue;
        }
        const dx = ro[name].dims;
        const dy = rc[name].dims;
        if (dx.length !== dy.length || dx.some((d, i) => d !== dy[i])) {
          const msg = `output "${name}" has shape [${dy.join(', ')}] in the compressed model but [${dx.join(', ')}] in the original`;
          if (name === output) throw new CompressError('compress', msg);
          skipped.add(name);
          warnings.push(`${msg}: not compared`);
          continue;
        }
        acc.get(name)!.add(x, y, dx);
        if (name === output && useLabels && hasLabels) {
          const c = lastAxis(dx);
          const rows = c === 0 ? 0 : x.length / c;
          const per = rows / group.length;
          const labels = new Float64Array(rows).fill(-1);
          group.forEach((s, k) => {
            const l = s.label;
            let ok = false;
            if (typeof l === 'number' && per === 1) {
              labels[k] = l;
              ok = true;
            } else if (Array.isArray(l) && l.length === per) {
              labels.set(l, k * per);
              ok = true;
            } else if (l !== undefined) {
              labelWarnings.add(
                typeof l === 'string'
                  ? `string labels cannot be compared with class indices: those samples are not counted`
                  : `a label does not fit output "${name}" ([${dx.join(', ')}] for ${group.length} sample(s)): a class index per sample, or one per row of the last axis`,
              );
            }
            if (ok) labeled++;
          });
          const o = top1Correct(x, dx, labels);
          const p = top1Correct(y, dx, labels);
          origCorrect += o.correct;
          compCorrect += p.correct;
          counted += o.counted;
        }
      }
      return { ro, rc };
    };

    const batch = Math.max(1, Math.floor(opts.batch ?? 256));
    if (carry) {
      // One sequence: each model gets back its own outputs as the next sample's carried inputs.
      let so: Record<string, ort.Tensor> | undefined;
      let sc: Record<string, ort.Tensor> | undefined;
      for (const s of samples) {
        const { ro, rc } = await evalRun(carriedFeeds(s.feeds, so), [s], adaptFeeds(carriedFeeds(s.feeds, sc), compSpecs));
        so = nextState(ro, carry);
        sc = nextState(rc, carry);
      }
    } else for (let i = 0; i < samples.length; i += batch) {
      const chunk = samples.slice(i, i + batch);
      const stacked = chunk.length > 1 ? stackSamples(chunk, origSpecs) : undefined;
      if (stacked) await evalRun(stacked.feeds, chunk);
      else for (const s of chunk) await evalRun(s.feeds, [s]);
    }
    warnings.push(...labelWarnings);

    // Latency: single sample, 2 warm-ups each, then interleaved runs.
    const runs = Math.max(0, Math.floor(opts.runs ?? 20));
    const one = samples[0].feeds;
    const oneComp = adaptFeeds(one, compSpecs);
    const lo: number[] = [];
    const lc: number[] = [];
    if (runs > 0) {
      for (let w = 0; w < 2; w++) {
        await runSession(orig, one);
        await runSession(comp, oneComp);
      }
      for (let r = 0; r < runs; r++) {
        let t = performance.now();
        await runSession(orig, one);
        lo.push(performance.now() - t);
        t = performance.now();
        await runSession(comp, oneComp);
        lc.push(performance.now() - t);
      }
    }
    const lat = (v: number[]) => (v.length ? latencyStats(v) : { median: NaN, p90: NaN });

    const perOutput: Record<string, OutputMetrics> = {};
    let nonFinite = 0;
    for (const [name, m] of acc) {
      if (skipped.has(name)) continue;
      perOutput[name] = m.result();
      nonFinite += m.nonFinite;
    }
    if (nonFinite > 0) warnings.push(`the compressed model produced ${nonFinite} NaN/Inf value(s)`);
    const withAccuracy = useLabels && counted > 0;
    return {
      samples: samples.length,
      output,
      device: a.device === b.device ? a.device : `${a.device}/${b.device}`,
      labeled,
      original: { ...(withAccuracy ? { accuracy: origCorrect / counted } : {}), latencyMs: lat(lo) },
      compressed: { ...(withAccuracy ? { accuracy: compCorrect / counted } : {}), latencyMs: lat(lc) },
      metrics: perOutput[output],
      perOutput,
      nonFinite,
      warnings,
      ms: performance.now() - t0,
    };
  } finally {
    await a.session.release();
    await b.session.release();
  }
}

/** Every carried output must be an output of both models, and every carried input an input of both. */
function checkCarry(carry: Carry, orig: ort.InferenceSession, comp: ort.InferenceSession): void {
  for (const [output, input] of Object.entries(carry)) {
    for (const [s, which] of [[orig, 'original'], [comp, 'compressed']] as const) {
      if (!s.outputNames.includes(output)) {
        const hint = suggest(output, s.outputNames);
        throw new CompressError('recipe', `carry: "${output}" is not an output of the ${which} model${hint ? ` (did you mean "${hint}"?)` : ''}; its outputs are ${s.outputNames.map((n) => `"${n}"`).join(', ')}`);
      }
      if (!s.inputNames.includes(input)) {
        const hint = suggest(input, s.inputNames);
        throw new CompressError('recipe', `carry: "${input}" is not an input of the ${which} model${hint ? ` (did you mean "${hint}"?)` : ''}; its inputs are ${s.inputNames.map((n) => `"${n}"`).join(', ')}`);
      }
    }
  }
}
