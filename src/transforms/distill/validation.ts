/**
 * Held-out validation of the distill step: a few of the training samples are set aside (never trained
 * on) and the student's KD loss on them decides which weights the step returns — the best seen, and
 * never worse than the student it was given (a tiny transfer set is easy to overfit).
 *
 * Metric: T² · mean KL(softmax(teacher/T) ‖ softmax(student/T)) at the step's temperature (the `kd`
 * term of loss.ts, without the hard-label term), forward only, on an onnxruntime inference session,
 * with the teacher's logits from a TeacherLogits cache of the validation samples.
 */
import type * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-node';
import { stackSamples } from '../../data/batch.js';
import type { Sample } from '../../data/types.js';
import { extendGraph, floatValue } from '../../onnx/edit.js';
import { tensorFloat32 } from '../../onnx/tensor.js';
import type { ModelProto } from '../../onnx/types.js';
import { inputSpecs, openSession, outputNames, runSession, type DeviceRequest } from '../../runtime/session.js';
import { appendKdLoss } from './loss.js';
import type { TeacherLogits } from './teacher.js';
import { seededRandom } from '../../random.js';

export { seededRandom };

/** Fewer samples than this: no validation split (all samples train). */
export const MIN_SPLIT_SAMPLES = 20;

/**
 * Deterministic split: with ≥ 20 samples, max(8, ⌈10 %⌉) samples (a seeded choice) are held out for
 * validation; both parts keep the samples' original order.
 */
export function splitValidation<T>(samples: T[], seed: number): { train: T[]; validation: T[] } {
  if (samples.length < MIN_SPLIT_SAMPLES) return { train: samples, validation: [] };
  const n = Math.max(8, Math.ceil(samples.length / 10));
  const random = seededRandom((seed ^ 0x5eed1e55) >>> 0);
  const order = Array.from({ length: samples.length }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const held = new Set(order.slice(0, n));
  return { train: samples.filter((_, i) => !held.has(i)), validation: samples.filter((_, i) => held.has(i)) };
}

export interface KdEvaluator {
  /** Mean KD loss on the validation samples; `values` override the parameters named in `params`. */
  loss(values?: Map<string, Float32Array>): Promise<number>;
  release(): Promise<void>;
}

export interface EvaluatorOptions {
  temperature: number;
  /** Initializers fed as inputs (so one session evaluates any values of them). */
  params?: { name: string; dims: number[] }[];
  device?: DeviceRequest;
  intraOpThreads?: number;
  /** Samples per run (default 64). */
  batch?: number;
}

export async function kdEvaluator(model: ModelProto, samples: Sample[], teacher: TeacherLogits, opts: EvaluatorOptions): Promise<KdEvaluator> {
  const kd = appendKdLoss(model, { logits: outputNames(model)[0], temperature: opts.temperature, labels: false });
  const params = opts.params ?? [];
  const names = new Set(params.map((p) => p.name));
  const g = kd.model.graph!;
  const defaults = new Map<string, Float32Array>();
  const evalModel = extendGraph(kd.model, { dropInitializers: names, inputs: params.map((p) => floatValue(p.name)), outputs: [kd.kd], replaceOutputs: true });
  for (const t of g.initializer) if (names.has(t.name ?? '')) defaults.set(t.name!, tensorFloat32(t));
  const specs = inputSpecs(model);
  const { session } = await openSession(evalModel, { device: opts.device, intraOpThreads: opts.intraOpThreads });
  const batch = opts.batch ?? 64;
  return {
    async loss(values) {
      let sum = 0;
      for (let i = 0; i < samples.length; i += batch) {
        const indices = Array.from({ length: Math.min(batch, samples.length - i) }, (_, j) => i + j);
        const chunk = indices.map((j) => samples[j]);
        const stacked = chunk.length > 1 ? stackSamples(chunk, specs) : undefined;
        const runs = stacked ? [{ feeds: stacked.feeds, idx: indices }] : indices.map((j) => ({ feeds: samples[j].feeds, idx: [j] }));
        for (const { feeds: base, idx } of runs) {
          const feeds: Record<string, ort.Tensor> = { ...base };
          feeds[kd.teacherInput] = new Tensor('float32', teacher.batch(idx), [idx.length, ...teacher.dims]);
          for (const p of params) feeds[p.name] = new Tensor('float32', values?.get(p.name) ?? defaults.get(p.name)!, p.dims);
          const out = await runSession(session, feeds, [kd.kd]);
          sum += Number(out[kd.kd].data[0]) * idx.length;
        }
      }
      return sum / samples.length;
    },
    release: () => session.release(),
  };
}

/** The KD loss of a model (its own initializers) on validation samples. */
export async function validationLoss(model: ModelProto, samples: Sample[], teacher: TeacherLogits, opts: Omit<EvaluatorOptions, 'params'>): Promise<number> {
  const e = await kdEvaluator(model, samples, teacher, opts);
  try {
    return await e.loss();
  } finally {
    await e.release();
  }
}
