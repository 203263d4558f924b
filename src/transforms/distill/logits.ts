/**
 * Logit distillation (classic KD): train the student's parameters (trainable.ts) to match the
 * teacher's softened outputs (loss.ts) with Adam, on onnxruntime.
 *
 * Each step runs one training graph (autodiff/backward.ts: forward + backward as standard ONNX ops,
 * parameters as graph inputs) on a batch, and gets the loss and every parameter's gradient back.
 * The Adam update runs in JS on Float32Arrays: the parameters have to be fed as inputs on the next
 * run anyway (onnxruntime-node keeps no state between runs), the update is a few ms for a million
 * parameters next to a forward + backward pass, and keeping it out of the graph keeps the graph
 * a pure function (the same graph serves gradient checks). Pruned weights stay zero: gradient and
 * update are multiplied by the mask.
 *
 * Deterministic given the seed: the batch order is a seeded shuffle per epoch, and onnxruntime's CPU
 * kernels are deterministic for a fixed thread count.
 *
 * On a non-CPU device the gradients of the first batch are checked against the CPU's first
 * (gradcheck.ts): a device that computes wrong gradients (WebGPU did, on an H100) is reported in a
 * warning and training runs on the CPU instead.
 */
import type * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-node';
import { CompressError } from '../../errors.js';
import { buildTrainingGraph } from '../../autodiff/backward.js';
import { probeShapes } from '../../autodiff/shapes.js';
import { stackSamples } from '../../data/batch.js';
import type { Sample } from '../../data/types.js';
import { DataType } from '../../onnx/dtypes.js';
import { mapInitializers } from '../../onnx/edit.js';
import { makeTensor, tensorFloat32 } from '../../onnx/tensor.js';
import type { ModelProto } from '../../onnx/types.js';
import { inputSpecs, outputNames, type DeviceRequest } from '../../runtime/session.js';
import { GRADIENT_TOLERANCE, guardDevice, openRunner, type DeviceGradientCheck, type GradientRunner, type OpenRunner } from './gradcheck.js';
import { appendKdLoss } from './loss.js';
import type { TeacherLogits } from './teacher.js';
import { selectTrainable, type Trainable } from './trainable.js';
import { kdEvaluator, seededRandom, type KdEvaluator } from './validation.js';

export interface LogitsOptions {
  temperature: number;
  learningRate: number;
  batchSize: number;
  /** Optimizer steps (an upper bound when the loss plateaus first). */
  steps: number;
  /** Add the hard-label cross-entropy (samples without a numeric label contribute none). */
  labels: boolean;
  seed: number;
  device?: DeviceRequest;
  intraOpThreads?: number;
  log?: (message: string) => void;
  progress?: (fraction: number) => void;
  /** Stop when the smoothed loss improves by less than this fraction over `plateauSteps` (default 0.01). */
  plateau?: number;
  /** Window of the plateau check (default max(10, steps / 10)); 0 disables early stopping. */
  plateauSteps?: number;
  /** Called after every `every` steps with the current student (for agreement curves in tests). */
  checkpoint?: { every: number; call: (model: ModelProto, step: number) => Promise<void> };
  /** Largest relative L2 difference of a gradient between a non-CPU device and the CPU before training moves to the CPU (default GRADIENT_TOLERANCE, 1e-3). */
  gradientTolerance?: number;
  /**
   * Held-out samples (never trained on) and the teacher's logits for them: the student's KD loss on
   * them (validation.ts) is evaluated at the start, every `validateEvery` steps and at the end, and the
   * parameters of the lowest one are returned — the input student itself when no step improved on it.
   */
  validation?: { samples: Sample[]; teacher: TeacherLogits };
  /** Steps between validations (default max(5, ⌈steps / 10⌉)). */
  validateEvery?: number;
  /** Opens the training graph's runner on a device (default: an onnxruntime session; tests inject a fake device). */
  openRunner?: OpenRunner;
}

export interface LogitsResult {
  model: ModelProto;
  /** Loss of every step. */
  curve: number[];
  steps: number;
  stoppedEarly: boolean;
  trained: Trainable[];
  /** The device training ran on (the CPU when the requested device failed the gradient check). */
  device: string;
  /** The first batch's gradients on a non-CPU device against the CPU's (absent when training was on the CPU from the start). */
  gradientCheck?: DeviceGradientCheck;
  /** The device check's fallback to the CPU, when it happened. */
  warnings: string[];
  /** Validation KD loss at the start and the best (and its step: 0 = the input student, returned unchanged). */
  validation?: ValidationSummary;
  ms: number;
}

export interface ValidationSummary {
  samples: number;
  start: number;
  best: number;
  bestStep: number;
  /** Lowest validation loss of any trained state (may be above `start`). */
  bestTrained: number;
  curve: { step: number; loss: number }[];
}

export { seededRandom };

/** Endless batches of sample indices: a fresh seeded shuffle every epoch. */
function* batches(count: number, size: number, random: () => number): Generator<number[]> {
  for (;;) {
    const order = Array.from({ length: count }, (_, i) => i);
    for (let i = count - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (let i = 0; i < count; i += size) yield order.slice(i, i + size);
  }
}

/** Adam (Kingma & Ba) on one parameter, masked. */
class AdamState {
  readonly m: Float32Array;
  readonly v: Float32Array;
  constructor(
    readonly value: Float32Array,
    readonly mask?: Uint8Array,
  ) {
    this.m = new Float32Array(value.length);
    this.v = new Float32Array(value.length);
  }

  step(grad: Float32Array, lr: number, t: number, beta1 = 0.9, beta2 = 0.999, eps = 1e-8): void {
    const { value, m, v, mask } = this;
    const c1 = 1 / (1 - beta1 ** t);
    const c2 = 1 / (1 - beta2 ** t);
    for (let i = 0; i < value.length; i++) {
      if (mask && mask[i] === 0) continue;
      const g = grad[i];
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      value[i] -= (lr * m[i] * c1) / (Math.sqrt(v[i] * c2) + eps);
    }
  }
}

function withParams(model: ModelProto, values: Map<string, Float32Array>): ModelProto {
  return mapInitializers(model, (t) => {
    const v = values.get(t.name ?? '');
    return v ? makeTensor(t.name!, DataType.FLOAT, t.dims.map(Number), v.slice()) : t;
  });
}

function oneHot(samples: Sample[], indices: number[], classes: number): Float32Array {
  const out = new Float32Array(indices.length * classes);
  indices.forEach((s, i) => {
    const label = samples[s].label;
    if (typeof label === 'number' && label >= 0 && label < classes) out[i * classes + label] = 1;
  });
  return out;
}

export async function distillLogits(student: ModelProto, samples: Sample[], teacher: TeacherLogits, opts: LogitsOptions): Promise<LogitsResult> {
  const start = performance.now();
  const log = opts.log ?? (() => {});
  const trained = selectTrainable(student);
  if (trained.length === 0) throw new CompressError('compress', 'distill: the student has no trainable float32 weights (MatMul/Gemm/Conv/LayerNorm/BatchNorm)');
  const logits = outputNames(student)[0];
  const labels = opts.labels && samples.some((s) => typeof s.label === 'number');
  const kd = appendKdLoss(student, { logits, temperature: opts.temperature, labels });
  const specs = inputSpecs(student);
  const classes = teacher.classes;

  const feedsFor = (indices: number[], params?: Map<string, AdamState>): Record<string, ort.Tensor> => {
    const chosen = indices.map((i) => samples[i]);
    const stacked = chosen.length === 1 ? { feeds: chosen[0].feeds } : stackSamples(chosen, specs);
    if (!stacked) throw new CompressError('data', 'distill: the training samples cannot be stacked into batches (the model needs a symbolic batch axis and samples of equal shape)');
    const feeds: Record<string, ort.Tensor> = { ...stacked.feeds };
    feeds[kd.teacherInput] = new Tensor('float32', teacher.batch(indices), [indices.length, ...teacher.dims]);
    if (kd.labelInput) feeds[kd.labelInput] = new Tensor('float32', oneHot(samples, indices, classes), [indices.length, ...teacher.dims]);
    if (params) for (const p of trained) feeds[p.name] = new Tensor('float32', params.get(p.name)!.value, p.dims);
    return feeds;
  };

  const shapes = await probeShapes(kd.model, [feedsFor([0]), feedsFor([0, Math.min(1, samples.length - 1)])], { device: opts.device, intraOpThreads: opts.intraOpThreads });
  const graph = buildTrainingGraph(kd.model, { params: trained.map((p) => p.name), loss: kd.loss, shapes });
  const open: OpenRunner = opts.openRunner ?? ((model, device) => openRunner(model, { device, intraOpThreads: opts.intraOpThreads }));
  const opened = await open(graph.model, opts.device ?? 'cpu');
  const warnings: string[] = [];
  const inits = new Map(student.graph!.initializer.map((t) => [t.name ?? '', t]));
  const state = new Map(trained.map((p) => [p.name, new AdamState(tensorFloat32(inits.get(p.name)!).slice(), p.mask)]));
  const fetches = [kd.loss, ...trained.map((p) => graph.gradients.get(p.name)!)];

  const window = opts.plateauSteps ?? Math.max(10, Math.round(opts.steps / 10));
  const plateau = opts.plateau ?? 0.01;
  const random = seededRandom(opts.seed);
  const order = batches(samples.length, Math.min(opts.batchSize, samples.length), random);
  const first = order.next().value as number[];

  // A non-CPU device must compute the CPU's gradients on the first batch, else training moves to the CPU.
  let session: GradientRunner = opened;
  let gradientCheck: DeviceGradientCheck | undefined;
  try {
    const gradients = new Map(trained.map((p) => [p.name, graph.gradients.get(p.name)!]));
    const guard = await guardDevice(opened, () => open(graph.model, 'cpu'), feedsFor(first, state), gradients, opts.gradientTolerance ?? GRADIENT_TOLERANCE);
    session = guard.runner;
    gradientCheck = guard.check;
    if (guard.warning) {
      warnings.push(guard.warning);
      log(guard.warning);
    } else if (guard.check) {
      log(`distill: gradients on ${guard.check.device} match the CPU's (worst relative L2 difference ${guard.check.worst?.difference.toExponential(2)} for "${guard.check.worst?.param}", tolerance ${guard.check.tolerance})`);
    }
  } catch (e) {
    await opened.release();
    throw e;
  }
  const device = session.device;
  const count = trained.reduce((a, p) => a + p.dims.reduce((x, y) => x * y, 1), 0);
  log(`distill: training ${trained.length} tensors (${count} parameters, ${trained.filter((p) => p.mask).length} masked) on ${samples.length} samples, ${graph.differentiated} nodes differentiated, device ${device}`);
  const curve: number[] = [];
  let smoothed = NaN;
  let lastCheck = NaN;
  let stoppedEarly = false;
  const logEvery = Math.max(1, Math.round(opts.steps / 20));
  let evaluator: KdEvaluator | undefined;
  let summary: ValidationSummary | undefined;
  let bestValues: Map<string, Float32Array> | undefined;
  const validateEvery = opts.validateEvery ?? Math.max(5, Math.ceil(opts.steps / 10));
  const validate = async (step: number) => {
    if (!evaluator || !summary) return;
    if (summary.curve.at(-1)?.step === step) return;
    const values = new Map([...state].map(([k, s]) => [k, s.value]));
    const loss = await evaluator.loss(values);
    summary.curve.push({ step, loss });
    if (step > 0) summary.bestTrained = Math.min(summary.bestTrained, loss);
    if (loss < summary.best) {
      summary.best = loss;
      summary.bestStep = step;
      bestValues = new Map([...values].map(([k, v]) => [k, v.slice()]));
    }
    log(`distill: step ${step} validation KD loss ${loss.toFixed(4)} (best ${summary.best.toFixed(4)} at step ${summary.bestStep})`);
  };
  try {
    if (opts.validation && opts.validation.samples.length > 0) {
      evaluator = await kdEvaluator(student, opts.validation.samples, opts.validation.teacher, {
        temperature: opts.temperature,
        params: trained,
        device: device === 'cpu' ? 'cpu' : opts.device,
        intraOpThreads: opts.intraOpThreads,
      });
      const start = await evaluator.loss();
      summary = { samples: opts.validation.samples.length, start, best: start, bestStep: 0, bestTrained: Infinity, curve: [{ step: 0, loss: start }] };
    }
    for (let step = 1; step <= opts.steps; step++) {
      const indices = step === 1 ? first : (order.next().value as number[]);
      const out = await session.run(feedsFor(indices, state), fetches);
      const loss = Number(out[kd.loss].data[0]);
      if (!Number.isFinite(loss)) throw new CompressError('compress', `distill: the loss became ${loss} at step ${step} (lower distill.learningRate)`);
      curve.push(loss);
      for (const p of trained) state.get(p.name)!.step(out[graph.gradients.get(p.name)!].data as Float32Array, opts.learningRate, step);
      smoothed = Number.isNaN(smoothed) ? loss : 0.9 * smoothed + 0.1 * loss;
      opts.progress?.(step / opts.steps);
      if (step % logEvery === 0 || step === opts.steps) {
        log(`distill: step ${step}/${opts.steps} loss ${loss.toFixed(4)} (smoothed ${smoothed.toFixed(4)}) ${((performance.now() - start) / 1000).toFixed(1)} s`);
      }
      if (opts.checkpoint && step % opts.checkpoint.every === 0) {
        await opts.checkpoint.call(withParams(student, new Map([...state].map(([k, s]) => [k, s.value]))), step);
      }
      if (step % validateEvery === 0) await validate(step);
      if (window > 0 && step % window === 0) {
        if (step >= 2 * window && smoothed > (1 - plateau) * lastCheck) {
          log(`distill: loss plateaued at step ${step} (smoothed ${smoothed.toFixed(4)}, ${window} steps ago ${lastCheck.toFixed(4)})`);
          stoppedEarly = true;
          break;
        }
        lastCheck = smoothed;
      }
    }
    await validate(curve.length);
  } finally {
    await session.release();
    await evaluator?.release();
  }
  let model: ModelProto;
  if (!summary) model = withParams(student, new Map([...state].map(([k, s]) => [k, s.value])));
  else if (summary.bestStep === 0) model = student;
  else {
    model = withParams(student, bestValues!);
    if (summary.bestStep !== curve.length) log(`distill: restored the parameters of step ${summary.bestStep} (validation KD loss ${summary.best.toFixed(4)})`);
  }
  return { model, curve, steps: curve.length, stoppedEarly, trained, device, gradientCheck, warnings, validation: summary, ms: performance.now() - start };
}
