/**
 * Held-out validation of the distill step (validation.ts): a seeded split of the training samples,
 * the KD loss on the held-out part decides which weights come back, and a run that cannot help
 * returns the input student unchanged, with a warning.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { loadFashionMnist } from '../bench/lib/fixtures.js';
import type { Sample } from '../src/data/types.js';
import { encodeModelToBytes } from '../src/onnx/codec.js';
import { readModel } from '../src/onnx/io.js';
import type { ModelProto } from '../src/onnx/types.js';
import type { DistillStep } from '../src/recipe/types.js';
import { distillStep, splitValidation, TeacherLogits, validationLoss } from '../src/transforms/distill/index.js';
import { pruneStep } from '../src/transforms/prune/index.js';
import type { StepContext } from '../src/transforms/types.js';

const FMNIST = 'test/fixtures/fmnist-cnn/';
const file = FMNIST + 'model.onnx';
const threads = 2;
const ctxFor = (original: ModelProto): StepContext => ({ file, original, device: 'cpu', seed: 0, log: () => {} });
const params = (p: Partial<DistillStep>): DistillStep => ({
  teacher: 'original', data: '', temperature: 2, learningRate: 1e-3, batchSize: 32, method: 'logits', labels: true, seed: 0, ...p,
});
const bytes = (m: ModelProto) => Buffer.from(encodeModelToBytes(m));
interface Val { samples: number; lossStart: number; lossBest: number; bestStep: number; bestAt: string }

describe('distill: held-out validation', () => {
  let original: ModelProto;
  let compressed: ModelProto;
  let train: Sample[];

  beforeAll(async () => {
    original = readModel(file);
    train = loadFashionMnist(FMNIST + 't10k-images-idx3-ubyte.gz', FMNIST + 't10k-labels-idx1-ubyte.gz').slice(0, 200);
    compressed = (await pruneStep({ rate: 0.5, method: 'magnitude', structure: 'channels', scope: 'layer', include: [], exclude: [] }, { threads })(original, ctxFor(original))).model;
  }, 60_000);

  it('splits deterministically: max(8, 10 %) held out from 20 samples on, disjoint', () => {
    const ids = (n: number) => Array.from({ length: n }, (_, i) => i);
    expect(splitValidation(ids(19), 0).validation).toEqual([]);
    expect(splitValidation(ids(20), 0).validation.length).toBe(8);
    expect(splitValidation(ids(128), 0).validation.length).toBe(13);
    const a = splitValidation(ids(200), 3);
    expect(a.validation.length).toBe(20);
    expect(splitValidation(ids(200), 3)).toEqual(a);
    expect(splitValidation(ids(200), 4).validation).not.toEqual(a.validation);
    expect([...a.train, ...a.validation].sort((x, y) => x - y)).toEqual(ids(200));
  });

  it('a student identical to the teacher comes back unchanged, with a warning', async () => {
    const { model, report } = await distillStep(params({ steps: 20, learningRate: 1e-2 }), { samples: train, threads, plateauSteps: 0 })(original, ctxFor(original));
    expect(bytes(model).equals(bytes(original))).toBe(true);
    const val = report.totals!.validation as Val;
    expect(val.samples).toBe(20);
    expect(val.bestAt).toBe('input');
    expect(val.lossBest).toBeLessThanOrEqual(val.lossStart);
    expect(report.warnings.some((w) => /^distill: no improvement on 20 held-out samples \(validation KD loss .* → best .*\); kept the compressed weights$/.test(w))).toBe(true);
  }, 60_000);

  it('a learning rate that wrecks training never returns a student worse on the held-out samples', async () => {
    const { model, report } = await distillStep(params({ steps: 30, learningRate: 0.2 }), { samples: train, threads, plateauSteps: 0 })(compressed, ctxFor(original));
    const val = report.totals!.validation as Val;
    const curve = report.totals!.logitsValidation as { step: number; loss: number }[];
    expect(curve[0]).toEqual({ step: 0, loss: val.lossStart });
    expect(curve.at(-1)!.loss).toBeGreaterThan(val.lossStart); // training did make it worse
    const { validation } = splitValidation(train, 0);
    const cache = await TeacherLogits.compute(original, validation, { intraOpThreads: threads });
    const loss = await validationLoss(model, validation, cache, { temperature: 2, intraOpThreads: threads });
    expect(loss).toBeLessThanOrEqual(val.lossStart + 1e-6);
    expect(loss).toBeCloseTo(val.lossBest, 5);
    if (val.bestAt === 'input') {
      expect(bytes(model).equals(bytes(compressed))).toBe(true);
      expect(report.warnings.some((w) => w.startsWith('distill: no improvement on 20 held-out samples'))).toBe(true);
    }
  }, 60_000);

  it('layerwise: a refit that does not help on held-out samples is dropped', async () => {
    // The teacher itself as the student: no compressed layer, nothing refit, the input comes back.
    const { model, report } = await distillStep(params({ method: 'layerwise' }), { samples: train, threads })(original, ctxFor(original));
    expect(model).toBe(original);
    expect(report.warnings.some((w) => w.startsWith('distill: no improvement on 20 held-out samples'))).toBe(true);
  }, 60_000);
});
