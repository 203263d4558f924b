/**
 * Training throughput of logit distillation on the spam transformer: samples/s of one training step
 * (the autodiff training graph: forward + backward, loss and every gradient out) at batch 32, against
 * the floor measured in the same run: plain ORT inference (forward only) of the same model at the same
 * batch. Also the full step as the distill loop runs it (batch feeds + graph + Adam in JS), and the
 * Fashion-MNIST CNN at batch 64 for a second shape of model. Median of ≥ 5 timed steps after warm-up.
 *
 *   npx tsx bench/distill.ts [--steps 7] [--threads 2] [--device cpu|gpu|auto] [--root <repo>]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { buildTrainingGraph } from '../src/autodiff/backward.js';
import { probeShapes } from '../src/autodiff/shapes.js';
import { stackSamples } from '../src/data/batch.js';
import { loadFashionMnist, loadSpamTestSet } from './lib/fixtures.js';
import type { Sample } from '../src/data/types.js';
import { readModel } from '../src/onnx/io.js';
import { tensorFloat32 } from '../src/onnx/tensor.js';
import type { ModelProto } from '../src/onnx/types.js';
import { inputSpecs, openSession, outputNames } from '../src/runtime/session.js';
import { appendKdLoss } from '../src/transforms/distill/loss.js';
import { distillLogits } from '../src/transforms/distill/logits.js';
import { TeacherLogits } from '../src/transforms/distill/teacher.js';
import { selectTrainable } from '../src/transforms/distill/trainable.js';
import { machineInfo } from './lib/machine.js';
import type { Device } from '../src/device.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
};
// --root: where test/fixtures are when this file runs bundled elsewhere (a device machine).
const ROOT = path.resolve(arg('root', path.join(path.dirname(fileURLToPath(import.meta.url)), '..')));
const STEPS = Math.max(5, Number(arg('steps', '7')));
const THREADS = Number(arg('threads', '2'));
const DEVICE = arg('device', 'cpu') as Device;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function timed(run: () => Promise<unknown>): Promise<number> {
  await run(); // warm-up (first run allocates and plans)
  await run();
  const ms: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    const t = performance.now();
    await run();
    ms.push(performance.now() - t);
  }
  return median(ms);
}

interface Row {
  model: string;
  batch: number;
  forwardMs: number;
  trainMs: number;
  stepMs: number;
  nodes: { forward: number; training: number };
  params: number;
  device: string;
  gradDiff?: number;
}

async function measure(name: string, model: ModelProto, samples: Sample[], batch: number): Promise<Row> {
  const opts = { device: DEVICE, intraOpThreads: THREADS };
  const specs = inputSpecs(model);
  const feeds = stackSamples(samples.slice(0, batch), specs)!.feeds;

  const oneHot = (list: typeof samples, classes: number) => {
    const out = new Float32Array(list.length * classes);
    list.forEach((s, i) => (out[i * classes + Number(s.label)] = 1));
    return out;
  };
  // Floor: inference, forward only.
  const inference = await openSession(model, opts);
  const forwardMs = await timed(() => inference.session.run(feeds));
  await inference.session.release();

  // The training graph, fed like the distill loop feeds it (teacher = the model itself, real labels:
  // without them the loss sits at its minimum and the gradients are rounding noise, useless for
  // comparing devices).
  const teacher = await TeacherLogits.compute(model, samples.slice(0, batch), opts);
  const trained = selectTrainable(model);
  const kd = appendKdLoss(model, { logits: outputNames(model)[0], temperature: 2, labels: true });
  const extra = (n: number): Record<string, ort.Tensor> => ({
    [kd.teacherInput]: new ort.Tensor('float32', teacher.batch(Array.from({ length: n }, (_, i) => i)), [n, ...teacher.dims]),
    [kd.labelInput!]: new ort.Tensor('float32', oneHot(samples.slice(0, n), teacher.classes), [n, ...teacher.dims]),
  });
  const one = stackSamples(samples.slice(0, 2), specs)!.feeds;
  const shapes = await probeShapes(kd.model, [{ ...samples[0].feeds, ...extra(1) }, { ...one, ...extra(2) }], opts);
  const graph = buildTrainingGraph(kd.model, { params: trained.map((p) => p.name), loss: kd.loss, shapes });
  const inits = new Map(model.graph!.initializer.map((t) => [t.name ?? '', t]));
  const paramFeeds = Object.fromEntries(trained.map((p) => [p.name, new ort.Tensor('float32', tensorFloat32(inits.get(p.name)!).slice(), p.dims)]));
  const training = await openSession(graph.model, opts);
  const fetches = [kd.loss, ...graph.gradients.values()];
  const trainFeeds = { ...feeds, ...extra(batch), ...paramFeeds };
  const trainMs = await timed(() => training.session.run(trainFeeds, fetches));
  // On a GPU: the same gradients as the CPU computes? (largest relative L2 difference over the tensors)
  let gradDiff: number | undefined;
  if (training.device !== 'cpu') {
    const gpu = await training.session.run(trainFeeds, fetches);
    const cpuSession = await openSession(graph.model, { device: 'cpu', intraOpThreads: THREADS });
    const cpu = await cpuSession.session.run(trainFeeds, fetches);
    await cpuSession.session.release();
    gradDiff = Math.max(
      ...fetches.map((f) => {
        const a = cpu[f].data as Float32Array;
        const b = gpu[f].data as Float32Array;
        let d = 0;
        let n = 0;
        for (let i = 0; i < a.length; i++) [d, n] = [d + (a[i] - b[i]) ** 2, n + a[i] ** 2];
        return Math.sqrt(d / (n || 1));
      }),
    );
  }
  await training.session.release();

  // The whole distill step: batch stacking, the graph, Adam — from the loop's own log of elapsed time.
  const stepSamples = samples.slice(0, batch * (STEPS + 2));
  const cache = await TeacherLogits.compute(model, stepSamples, opts);
  const stamps: number[] = [];
  await distillLogits(model, stepSamples, cache, {
    temperature: 2, learningRate: 1e-4, batchSize: batch, steps: STEPS + 2, labels: true, seed: 0, plateauSteps: 0, ...opts,
    progress: () => stamps.push(performance.now()),
  });
  const gaps = stamps.slice(2).map((t, i) => t - stamps[i + 1]);
  return {
    model: name, batch, forwardMs, trainMs, stepMs: median(gaps),
    nodes: { forward: model.graph!.node.length, training: graph.model.graph!.node.length },
    params: trained.reduce((a, p) => a + p.dims.reduce((x, y) => x * y, 1), 0),
    device: training.device,
    gradDiff,
  };
}

const spam = readModel(path.join(ROOT, 'test/fixtures/spam-tinybert/model.onnx'));
const spamSamples = loadSpamTestSet(path.join(ROOT, 'test/fixtures/spam-tinybert/test-split.json'), 32 * 9);
const cnn = readModel(path.join(ROOT, 'test/fixtures/fmnist-cnn/model.onnx'));
const F = path.join(ROOT, 'test/fixtures/fmnist-cnn');
const cnnSamples = loadFashionMnist(path.join(F, 't10k-images-idx3-ubyte.gz'), path.join(F, 't10k-labels-idx1-ubyte.gz'), 64 * 9);

const rows = [await measure('spam transformer', spam, spamSamples, 32), await measure('fmnist CNN', cnn, cnnSamples, 64)];
const machine = machineInfo();
console.log(`\n${machine.cpu}, ${machine.parallelism} cores, load ${machine.loadAverage.map((x) => x.toFixed(1)).join(' ')}; ORT ${machine.onnxruntimeNode}, ${THREADS} intra-op threads, device ${rows[0].device}; median of ${STEPS} runs after 2 warm-up\n`);
console.log('| model | batch | trained params | nodes fwd → train | forward (inference) | fwd+bwd (training graph) | full distill step | train / forward |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const sps = (ms: number) => `${ms.toFixed(1)} ms, ${((r.batch * 1000) / ms).toFixed(0)} samples/s`;
  console.log(`| ${r.model} | ${r.batch} | ${r.params} | ${r.nodes.forward} → ${r.nodes.training} | ${sps(r.forwardMs)} | ${sps(r.trainMs)} | ${sps(r.stepMs)} | ${(r.trainMs / r.forwardMs).toFixed(2)}× time (${(r.forwardMs / r.trainMs).toFixed(2)} of the throughput) |`);
}
for (const r of rows) if (r.gradDiff !== undefined) console.log(`${r.model}: gradients on ${r.device} vs CPU, largest relative L2 difference ${r.gradDiff.toExponential(2)}`);
const out = arg('out', path.join(ROOT, 'bench', 'out', 'distill.json'));
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify({ machine, threads: THREADS, steps: STEPS, device: DEVICE, rows }, null, 2));
