/**
 * The distill step on the two real fixtures, with real labels, evaluated on held-out samples the
 * distillation never saw:
 * - logits (KD): the spam transformer after 50 % FFN channel pruning + low-rank (ratio 0.5), and the
 *   Fashion-MNIST CNN after 50 % channel pruning, recover at least half of the accuracy compression
 *   lost (and move back toward the original's predictions);
 * - layerwise: each compressed layer's output error on held-out activations falls;
 * - a teacher that is a separate model file: a student whose classifier layers were re-initialized
 *   at random moves toward it (agreement rises along the way).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stackSamples } from '../src/data/batch.js';
import { loadFashionMnist, loadSpamTestSet } from '../bench/lib/fixtures.js';
import type { Sample } from '../src/data/types.js';
import { encodeModelToBytes } from '../src/onnx/codec.js';
import { DataType } from '../src/onnx/dtypes.js';
import { readModel } from '../src/onnx/io.js';
import { dimsOf, makeTensor, tensorFloat32 } from '../src/onnx/tensor.js';
import type { ModelProto } from '../src/onnx/types.js';
import type { DistillStep } from '../src/recipe/types.js';
import { distillStep, layerErrors, refitLayers, seededRandom } from '../src/transforms/distill/index.js';
import { lowrankStep } from '../src/transforms/lowrank/index.js';
import { pruneStep } from '../src/transforms/prune/index.js';
import type { StepContext } from '../src/transforms/types.js';
import { CompressError } from '../src/errors.js';
import { inputSpecs, openSession, outputNames } from '../src/runtime/session.js';

const SPAM = 'test/fixtures/spam-tinybert/';
const FMNIST = 'test/fixtures/fmnist-cnn/';
const threads = 2;
const lines: string[] = [];

function ctxFor(file: string, original: ModelProto): StepContext {
  return { file, original, device: 'cpu', seed: 0, log: () => {} };
}

/** Top-1 predictions of a model on samples (batches of 100). */
async function predict(model: ModelProto, samples: Sample[]): Promise<Int32Array> {
  const { session } = await openSession(model, { intraOpThreads: threads });
  const specs = inputSpecs(model);
  const out = new Int32Array(samples.length);
  try {
    for (let i = 0; i < samples.length; i += 100) {
      const chunk = samples.slice(i, i + 100);
      const y = (await session.run(stackSamples(chunk, specs)!.feeds))[outputNames(model)[0]];
      const classes = y.dims[1];
      const data = y.data as Float32Array;
      chunk.forEach((_, j) => {
        let best = 0;
        for (let c = 1; c < classes; c++) if (data[j * classes + c] > data[j * classes + best]) best = c;
        out[i + j] = best;
      });
    }
  } finally {
    await session.release();
  }
  return out;
}

/** Accuracy of `model` and of the original (predictions cached per sample set), and their agreement. */
const originalPredictions = new Map<Sample[], Promise<Int32Array>>();
async function accuracy(original: ModelProto, model: ModelProto, samples: Sample[]): Promise<{ original: number; model: number; agreement: number }> {
  if (!originalPredictions.has(samples)) originalPredictions.set(samples, predict(original, samples));
  const ref = await originalPredictions.get(samples)!;
  const got = await predict(model, samples);
  let a = 0, b = 0, agree = 0;
  samples.forEach((s, i) => {
    a += ref[i] === s.label ? 1 : 0;
    b += got[i] === s.label ? 1 : 0;
    agree += ref[i] === got[i] ? 1 : 0;
  });
  return { original: a / samples.length, model: b / samples.length, agreement: agree / samples.length };
}

const params = (p: Partial<DistillStep>): DistillStep => ({
  teacher: 'original', data: '', temperature: 2, learningRate: 1e-3, batchSize: 32, method: 'logits', labels: true, seed: 0, ...p,
});

const pct = (x: number) => `${(100 * x).toFixed(2)} %`;

afterAll(() => console.log(lines.join('\n')));

describe('spam transformer: 50 % FFN channels pruned + low-rank 0.5', () => {
  let original: ModelProto;
  let compressed: ModelProto;
  let train: Sample[];
  let heldOut: Sample[];
  const file = SPAM + 'model.onnx';

  beforeAll(async () => {
    original = readModel(file);
    const all = loadSpamTestSet(SPAM + 'test-split.json');
    train = all.slice(0, 600);
    heldOut = all.slice(600);
    const ctx = { ...ctxFor(file, original), calibration: train.slice(0, 64) };
    const pruned = await pruneStep({ rate: 0.5, method: 'magnitude', structure: 'channels', scope: 'layer', include: ['*linear1*'], exclude: [] }, { threads })(original, ctx);
    compressed = (await lowrankStep({ ratio: 0.5, method: 'svd', include: [], exclude: [] }, { threads })(pruned.model, ctx)).model;
  }, 60_000);

  it('logits: KD recovers at least half of the lost accuracy', async () => {
    const before = await accuracy(original, compressed, heldOut);
    const step = distillStep(params({ steps: 60, learningRate: 1e-4, batchSize: 32 }), { samples: train, threads, plateauSteps: 0 });
    const { model, report } = await step(compressed, ctxFor(file, original));
    const after = await accuracy(original, model, heldOut);
    const totals = report.totals!.logits as { steps: number; lossFirst: number; lossLast: number; ms: number };
    lines.push(
      `spam  logits  original ${pct(before.original)}  compressed ${pct(before.model)} (agreement ${pct(before.agreement)})  ` +
        `distilled ${pct(after.model)} (agreement ${pct(after.agreement)})  ${totals.steps} steps ${(totals.ms / 1000).toFixed(1)} s  loss ${totals.lossFirst.toFixed(3)} → ${totals.lossLast.toFixed(3)}`,
    );
    const lost = before.original - before.model;
    expect(after.model).toBeGreaterThanOrEqual(before.model + lost / 2);
    expect(after.agreement).toBeGreaterThan(before.agreement);
  }, 180_000);

  it('layerwise: every compressed layer gets closer to the teacher on held-out e-mails', async () => {
    const fit = await refitLayers(compressed, original, train.slice(0, 128), { intraOpThreads: threads });
    expect(fit.layers.map((l) => l.kind)).toContain('factorized');
    const errBefore = await layerErrors(compressed, original, fit.layers, heldOut.slice(0, 200), { intraOpThreads: threads });
    const errAfter = await layerErrors(fit.model, original, fit.layers, heldOut.slice(0, 200), { intraOpThreads: threads });
    fit.layers.forEach((l, i) => {
      lines.push(`spam  layerwise  ${l.name.padEnd(42)} ${l.kind.padEnd(10)} held-out output error ${errBefore[i].toFixed(4)} → ${errAfter[i].toFixed(4)}`);
      expect(errAfter[i]).toBeLessThan(errBefore[i]);
    });
    const before = await accuracy(original, compressed, heldOut);
    const after = await accuracy(original, fit.model, heldOut);
    lines.push(`spam  layerwise  accuracy ${pct(before.model)} → ${pct(after.model)}, agreement ${pct(before.agreement)} → ${pct(after.agreement)} (${(fit.ms / 1000).toFixed(1)} s)`);
    expect(after.agreement).toBeGreaterThan(before.agreement);
  }, 120_000);
});

describe('Fashion-MNIST CNN: 50 % channel pruning', () => {
  let original: ModelProto;
  let compressed: ModelProto;
  let train: Sample[];
  let heldOut: Sample[];
  const file = FMNIST + 'model.onnx';

  beforeAll(async () => {
    original = readModel(file);
    const all = loadFashionMnist(FMNIST + 't10k-images-idx3-ubyte.gz', FMNIST + 't10k-labels-idx1-ubyte.gz');
    train = all.slice(0, 5000);
    heldOut = all.slice(5000);
    const ctx = ctxFor(file, original);
    compressed = (await pruneStep({ rate: 0.5, method: 'magnitude', structure: 'channels', scope: 'layer', include: [], exclude: [] }, { threads })(original, ctx)).model;
  }, 60_000);

  it('logits: KD recovers at least half of the lost accuracy', async () => {
    const before = await accuracy(original, compressed, heldOut);
    const step = distillStep(params({ steps: 120, batchSize: 64 }), { samples: train, threads, plateauSteps: 0 });
    const { model, report } = await step(compressed, ctxFor(file, original));
    const after = await accuracy(original, model, heldOut);
    const totals = report.totals!.logits as { steps: number; lossFirst: number; lossLast: number; ms: number };
    lines.push(
      `fmnist logits  original ${pct(before.original)}  compressed ${pct(before.model)} (agreement ${pct(before.agreement)})  ` +
        `distilled ${pct(after.model)} (agreement ${pct(after.agreement)})  ${totals.steps} steps ${(totals.ms / 1000).toFixed(1)} s  loss ${totals.lossFirst.toFixed(3)} → ${totals.lossLast.toFixed(3)}`,
    );
    expect(before.original - before.model).toBeGreaterThan(0.05); // compression did cost accuracy
    expect(after.model).toBeGreaterThanOrEqual(before.model + (before.original - before.model) / 2);
  }, 120_000);

  it('layerwise: every compressed layer gets closer to the teacher on held-out images', async () => {
    const fit = await refitLayers(compressed, original, train.slice(0, 2000), { intraOpThreads: threads });
    const errBefore = await layerErrors(compressed, original, fit.layers, heldOut.slice(0, 1000), { intraOpThreads: threads });
    const errAfter = await layerErrors(fit.model, original, fit.layers, heldOut.slice(0, 1000), { intraOpThreads: threads });
    fit.layers.forEach((l, i) => {
      lines.push(`fmnist layerwise ${l.name.padEnd(10)} ${l.kind.padEnd(6)} held-out output error ${errBefore[i].toFixed(4)} → ${errAfter[i].toFixed(4)}`);
      // /0/Conv reads the unchanged image with its kept filters intact: nothing to improve there.
      if (errBefore[i] > 1e-3) expect(errAfter[i]).toBeLessThan(errBefore[i]);
      else expect(errAfter[i]).toBeLessThan(1e-3);
    });
    expect(fit.layers.length).toBe(4);
    const before = await accuracy(original, compressed, heldOut);
    const after = await accuracy(original, fit.model, heldOut);
    lines.push(`fmnist layerwise accuracy ${pct(before.model)} → ${pct(after.model)} (${(fit.ms / 1000).toFixed(1)} s)`);
    expect(after.model).toBeGreaterThan(before.model);
  }, 120_000);

  it('layerwise keeps an unstructured pruning mask', async () => {
    const ctx = ctxFor(file, original);
    const sparse = (await pruneStep({ rate: 0.5, method: 'magnitude', structure: 'unstructured', scope: 'layer', include: ['/12/Gemm'], exclude: [] }, { threads })(original, ctx)).model;
    const fit = await refitLayers(sparse, original, train.slice(0, 1000), { intraOpThreads: threads });
    expect(fit.layers.map((l) => [l.name, l.kind])).toEqual([['/12/Gemm', 'pruned']]);
    const w = (m: ModelProto) => tensorFloat32(m.graph!.initializer.find((t) => t.name === '12.weight')!);
    const zerosBefore = w(sparse).reduce((a, x) => a + (x === 0 ? 1 : 0), 0);
    const after = w(fit.model);
    w(sparse).forEach((x, i) => x === 0 && expect(after[i]).toBe(0));
    expect(after.reduce((a, x) => a + (x === 0 ? 1 : 0), 0)).toBe(zerosBefore);
    const [e0] = await layerErrors(sparse, original, fit.layers, heldOut.slice(0, 1000), { intraOpThreads: threads });
    const [e1] = await layerErrors(fit.model, original, fit.layers, heldOut.slice(0, 1000), { intraOpThreads: threads });
    lines.push(`fmnist layerwise /12/Gemm 50 % unstructured: held-out output error ${e0.toFixed(4)} → ${e1.toFixed(4)}`);
    expect(e1).toBeLessThan(e0);
  }, 60_000);

  it('a different teacher (a model file): a re-initialized student moves toward it', async () => {
    // Student: the pruned CNN with both Gemm layers re-initialized at random (seeded, He-uniform).
    const random = seededRandom(7);
    const reinit = (m: ModelProto): ModelProto => {
      const g = m.graph!;
      const initializer = g.initializer.map((t) => {
        if (!['9.weight', '12.weight', '9.bias', '12.bias'].includes(t.name ?? '')) return t;
        const dims = dimsOf(t);
        const fanIn = dims.length === 2 ? dims[1] : 1;
        const bound = dims.length === 2 ? Math.sqrt(6 / fanIn) : 0;
        return makeTensor(t.name!, DataType.FLOAT, dims, Float32Array.from({ length: tensorFloat32(t).length }, () => (random() * 2 - 1) * bound));
      });
      return { ...m, graph: { ...g, initializer } };
    };
    const student = reinit(compressed);
    const dir = mkdtempSync(join(tmpdir(), 'distill-teacher-'));
    try {
      const teacherFile = join(dir, 'teacher.onnx');
      writeFileSync(teacherFile, encodeModelToBytes(original));
      const probe = heldOut.slice(0, 1000); // one array: its original predictions are cached
      const curve: number[] = [(await accuracy(original, student, probe)).agreement];
      const step = distillStep(params({ teacher: teacherFile, steps: 150, batchSize: 64, labels: false }), {
        samples: train,
        threads,
        plateauSteps: 0,
        checkpoint: { every: 50, call: async (m) => void curve.push((await accuracy(original, m, probe)).agreement) },
      });
      const { model } = await step(student, ctxFor(file, compressed));
      const final = await accuracy(original, model, heldOut);
      lines.push(`fmnist other teacher (file), re-initialized Gemms: agreement every 50 steps ${curve.map(pct).join(' → ')}; held-out accuracy ${pct(final.model)}`);
      expect(curve[0]).toBeLessThan(0.3);
      for (let i = 1; i < curve.length; i++) expect(curve[i]).toBeGreaterThan(curve[0]);
      expect(curve.at(-1)!).toBeGreaterThan(0.75);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('is deterministic for a seed, stops early on a plateau, and reports the loss curve', async () => {
    const run = (seed: number, steps: number, plateauSteps?: number) =>
      distillStep(params({ steps, batchSize: 32, seed }), { samples: train.slice(0, 512), threads, plateauSteps })(compressed, ctxFor(file, original));
    const a = await run(3, 8, 0);
    const b = await run(3, 8, 0);
    const bytes = (m: ModelProto) => Buffer.from(encodeModelToBytes(m));
    expect(bytes(a.model).equals(bytes(b.model))).toBe(true);
    const c = await run(4, 8, 0);
    expect(bytes(a.model).equals(bytes(c.model))).toBe(false);
    const long = await run(0, 5000, 10);
    const logits = long.report.totals!.logits as { steps: number; stoppedEarly: boolean; curve: number[] };
    expect(logits.stoppedEarly).toBe(true);
    expect(logits.steps).toBeLessThan(5000);
    expect(logits.curve.length).toBeGreaterThan(0);
  }, 120_000);

  it('method both: layerwise then logits, through the step', async () => {
    const { model, report } = await distillStep(params({ method: 'both', steps: 40, batchSize: 64 }), { samples: train.slice(0, 2000), threads, plateauSteps: 0 })(compressed, ctxFor(file, original));
    expect((report.totals!.layerwise as unknown[]).length).toBe(4);
    expect(report.layers.length).toBe(4);
    const after = await accuracy(original, model, heldOut);
    lines.push(`fmnist both (layerwise + 40 KD steps on 2,000 images): accuracy ${pct(after.model)}`);
    expect(after.model).toBeGreaterThan(0.85);
  }, 120_000);

  it('refuses a teacher whose output does not match', async () => {
    const spam = readModel(SPAM + 'model.onnx');
    const step = distillStep(params({ steps: 1 }), { samples: train.slice(0, 4), threads });
    await expect(step(compressed, ctxFor(file, spam))).rejects.toThrow(CompressError);
    await expect(step(compressed, ctxFor(file, spam))).rejects.toThrow(/does not match/);
  });
});
