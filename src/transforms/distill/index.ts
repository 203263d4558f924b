/**
 * The `distill` step: make the compressed student behave like a teacher again.
 *
 * - `layerwise`: closed-form refit of every compressed layer against the teacher's activations
 *   (layerwise.ts) — seconds, no training loop, needs the teacher to share value names (teacher: original).
 * - `logits`: knowledge distillation on the output logits with Adam, gradients from reverse-mode
 *   autodiff of the ONNX graph run by onnxruntime (logits.ts); any teacher with the same inputs and
 *   output meaning.
 * - `both`: layerwise, then logits from the refit weights.
 *
 * Training data: `distill.data` (a data file, or `random`), or the calibration samples; tests and
 * programs can pass samples directly. The teacher's logits are computed once per sample (teacher.ts).
 */
import { availableParallelism } from 'node:os';
import { CompressError } from '../../errors.js';
import { loadSamples } from '../../data/load.js';
import type { Sample } from '../../data/types.js';
import { readModel } from '../../onnx/io.js';
import type { ModelProto } from '../../onnx/types.js';
import type { DistillStep } from './config.js';
import { inputSpecs, outputSpecs } from '../../runtime/session.js';
import type { LayerReport, Step, StepContext, StepReport } from '../types.js';
import { refitLayers } from './layerwise.js';
import { distillLogits, type LogitsOptions } from './logits.js';
import { TeacherLogits } from './teacher.js';
import { splitValidation, validationLoss } from './validation.js';

export { refitLayers, layerErrors, findUnits, type LayerRefit, type LayerwiseResult } from './layerwise.js';
export { distillLogits, seededRandom, type LogitsResult } from './logits.js';
export { TeacherLogits } from './teacher.js';
export { splitValidation, validationLoss, kdEvaluator, MIN_SPLIT_SAMPLES, type KdEvaluator } from './validation.js';
export { compareGradients, relativeL2, guardDevice, GRADIENT_TOLERANCE, type GradientComparison, type DeviceGradientCheck, type GradientRunner, type OpenRunner } from './gradcheck.js';
export { selectTrainable, type Trainable } from './trainable.js';

export interface DistillOptions {
  /** Training samples; default: loaded from `data` (or the calibration samples when `data` is empty). */
  samples?: Sample[];
  /** intraOpNumThreads of the sessions the step opens (default min(4, cores)). */
  threads?: number;
  /** At most this many samples feed the layer-wise statistics (default 512). */
  layerwiseSamples?: number;
  /** Early stopping of the logits loop (see LogitsOptions). */
  plateau?: number;
  plateauSteps?: number;
  checkpoint?: LogitsOptions['checkpoint'];
}

/** Random samples for `data: random` (teacher-only distillation on noise inputs). */
const RANDOM_SAMPLES = 256;

async function trainingSamples(params: DistillStep, model: ModelProto, ctx: StepContext, opts: DistillOptions): Promise<Sample[]> {
  if (opts.samples) return opts.samples;
  if (!params.data && ctx.calibration?.length) return ctx.calibration;
  if (!params.data) throw new Error('distill: no training data (distill/config.ts defaults it to calibration.data)');
  const spec = params.data === 'random' ? { data: 'random', samples: RANDOM_SAMPLES, ...(params.shapes && { shapes: params.shapes }) } : { data: params.data };
  return loadSamples(spec, inputSpecs(model), { seed: params.seed });
}

function sameOutput(student: ModelProto, teacher: ModelProto): void {
  const [s] = outputSpecs(student);
  const [t] = outputSpecs(teacher);
  const known = (d: (number | string)[]) => d.filter((x): x is number => typeof x === 'number');
  if (!s || !t || known(s.dims).at(-1) !== known(t.dims).at(-1)) {
    throw new CompressError('compress', `distill: the teacher's output ${t?.name} [${t?.dims.join(', ')}] does not match the student's ${s?.name} [${s?.dims.join(', ')}]`);
  }
}

export function distillStep(params: DistillStep, opts: DistillOptions = {}): Step {
  return async (model: ModelProto, ctx: StepContext) => {
    const start = performance.now();
    const report: StepReport = { step: 'distill', params: { ...params }, layers: [], skipped: [], warnings: [], ms: 0 };
    const threads = opts.threads ?? Math.min(4, availableParallelism());
    const common = { device: ctx.device, intraOpThreads: threads };
    const teacher = params.teacher === 'original' ? ctx.original : readModel(params.teacher);
    sameOutput(model, teacher);
    const all = await trainingSamples(params, model, ctx, opts);
    if (all.length === 0) throw new CompressError('data', 'distill: no training samples', { file: ctx.file });
    // Held-out validation (validation.ts): never trained on; decides which weights are returned.
    const { train: samples, validation } = splitValidation(all, params.seed);
    const totals: Record<string, unknown> = { samples: samples.length };
    const valTeacher = validation.length ? await TeacherLogits.compute(teacher, validation, common) : undefined;
    const valLoss = (m: ModelProto) => validationLoss(m, validation, valTeacher!, { temperature: params.temperature, ...common });
    const val = valTeacher
      ? { samples: validation.length, lossStart: await valLoss(model), lossBest: NaN, bestStep: 0, bestAt: 'input' as 'input' | 'layerwise' | 'logits', bestTrained: Infinity }
      : undefined;
    if (val) val.lossBest = val.lossStart;
    let student = model;
    const layerwise = params.method === 'layerwise' || params.method === 'both';
    const logits = params.method === 'logits' || params.method === 'both';
    const share = layerwise && logits ? 0.3 : 1;

    if (layerwise) {
      const fit = samples.slice(0, opts.layerwiseSamples ?? 512);
      const result = await refitLayers(student, teacher, fit, { ...common, log: ctx.log, progress: (f) => ctx.progress?.(f * share) });
      let kept = true;
      if (val && result.layers.length > 0) {
        const after = await valLoss(result.model);
        val.bestTrained = Math.min(val.bestTrained, after);
        kept = after < val.lossBest;
        totals.layerwiseValidation = { before: val.lossBest, after, kept };
        if (kept) Object.assign(val, { lossBest: after, bestAt: 'layerwise' });
        else report.warnings.push(`distill: the layer-wise refit made the validation KD loss on ${val.samples} held-out samples worse (${val.lossBest.toPrecision(4)} → ${after.toPrecision(4)}); kept the weights from before the refit`);
      }
      if (kept) student = result.model;
      report.skipped.push(...result.skipped);
      if (result.layers.length === 0) report.warnings.push('layerwise: no compressed layer shares its output name with the teacher; nothing was refit');
      const inits = new Map(student.graph!.initializer.map((t) => [t.name ?? '', t]));
      for (const l of kept ? result.layers : []) {
        const t = inits.get(l.weight);
        const shape = t ? t.dims.map(Number) : [];
        const bytes = shape.reduce((a, b) => a * b, 1) * 4;
        const layer: LayerReport = { name: l.name, op: l.op, weight: l.weight, shape, dtypeBefore: 'float32', dtypeAfter: 'float32', bytesBefore: bytes, bytesAfter: bytes, error: l.errorAfter, errorKind: 'output' };
        report.layers.push(layer);
      }
      totals.layerwise = result.layers.map((l) => ({ name: l.name, kind: l.kind, errorBefore: l.errorBefore, errorAfter: l.errorAfter, rows: l.rows }));
      totals.layerwiseMs = Math.round(result.ms);
    }

    if (logits) {
      const cache = await TeacherLogits.compute(teacher, samples, common);
      const before = student;
      const labeled = samples.some((s) => typeof s.label === 'number');
      if (params.labels && !labeled) report.warnings.push('distill.labels is set but the training samples have no numeric labels; trained on the teacher alone');
      const steps = params.steps ?? Math.max(1, Math.ceil(((params.epochs ?? 1) * samples.length) / params.batchSize));
      const result = await distillLogits(student, samples, cache, {
        temperature: params.temperature,
        learningRate: params.learningRate,
        batchSize: params.batchSize,
        steps,
        labels: params.labels && labeled,
        seed: params.seed,
        ...common,
        log: ctx.log,
        progress: (f) => ctx.progress?.(1 - share + f * share),
        plateau: opts.plateau,
        plateauSteps: opts.plateauSteps,
        checkpoint: opts.checkpoint,
        validation: valTeacher ? { samples: validation, teacher: valTeacher } : undefined,
      });
      student = result.model;
      if (val && result.validation) {
        val.bestTrained = Math.min(val.bestTrained, result.validation.bestTrained);
        if (result.model !== before) Object.assign(val, { lossBest: result.validation.best, bestStep: result.validation.bestStep, bestAt: 'logits' });
        totals.logitsValidation = result.validation.curve;
      }
      report.warnings.push(...result.warnings);
      const every = Math.max(1, Math.ceil(result.curve.length / 100));
      totals.logits = {
        steps: result.steps,
        plannedSteps: steps,
        stoppedEarly: result.stoppedEarly,
        lossFirst: result.curve[0],
        lossLast: result.curve.at(-1),
        curve: result.curve.filter((_, i) => i % every === 0),
        trainedTensors: result.trained.length,
        trainedParams: result.trained.reduce((a, p) => a + p.dims.reduce((x, y) => x * y, 1), 0),
        device: result.device,
        ...(result.gradientCheck ? { gradientCheck: result.gradientCheck } : {}),
        ms: Math.round(result.ms),
      };
    }
    if (val) {
      totals.validation = val;
      if (student === model) {
        report.warnings.push(
          `distill: no improvement on ${val.samples} held-out samples (validation KD loss ${val.lossStart.toPrecision(4)} → best ${Number.isFinite(val.bestTrained) ? val.bestTrained.toPrecision(4) : 'n/a'}); kept the compressed weights`,
        );
      }
    } else totals.validation = { samples: 0 };
    report.totals = totals;
    report.ms = performance.now() - start;
    return { model: student, report };
  };
}
