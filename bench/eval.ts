/**
 * Evaluation speed: evaluateModels on the 10,000 Fashion-MNIST test images (original + "compressed",
 * here the same model re-encoded by the codec), median of N runs, against the floor: plain ORT
 * inference of the 10,000 images once, batch 256, one session (what a single model pass costs).
 * evaluateModels runs two models over the data plus 2 × (2 warm-up + 20) single-sample latency runs.
 *
 * Target: ≤ 15 s per evaluation on a 2-core machine.
 *
 *   npx tsx bench/eval.ts [--runs 3] [--threads 1] [--batch 256] [--device cpu|gpu|auto]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { encodeModelToBytes } from '../src/onnx/codec.js';
import { readModel } from '../src/onnx/io.js';
import { evaluateModels, type EvalReport } from '../src/eval/evaluate.js';
import { loadFashionMnist } from './lib/fixtures.js';
import { stackSamples } from '../src/data/batch.js';
import { inputSpecs, openSession } from '../src/runtime/session.js';
import type { Device } from '../src/device.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FIX = path.join(ROOT, 'test', 'fixtures', 'fmnist-cnn');
const TARGET_MS = 15_000;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const RUNS = Math.max(3, Number(arg('runs', '3')));
const THREADS = Number(arg('threads', '1'));
const BATCH = Number(arg('batch', '256'));
const DEVICE = arg('device', 'cpu') as Device;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

let t = performance.now();
const samples = loadFashionMnist(path.join(FIX, 't10k-images-idx3-ubyte.gz'), path.join(FIX, 't10k-labels-idx1-ubyte.gz'));
const loadMs = performance.now() - t;
const model = readModel(path.join(FIX, 'model.onnx'));
const original = encodeModelToBytes(model);
const compressed = encodeModelToBytes(readModel(path.join(FIX, 'model.onnx')));

// Floor: one session, the 10,000 images once in batches of 256 (batches stacked beforehand).
const specs = inputSpecs(model);
const batches: Record<string, ort.Tensor>[] = [];
for (let i = 0; i < samples.length; i += BATCH) batches.push(stackSamples(samples.slice(i, i + BATCH), specs)!.feeds);
const floors: number[] = [];
for (let r = 0; r < RUNS; r++) {
  const { session } = await openSession(original, { device: DEVICE, intraOpThreads: THREADS });
  t = performance.now();
  for (const feeds of batches) await session.run(feeds);
  floors.push(performance.now() - t);
  await session.release();
}

const times: number[] = [];
let last: EvalReport | undefined;
for (let r = 0; r < RUNS; r++) {
  t = performance.now();
  last = await evaluateModels(original, compressed, samples, { device: DEVICE, intraOpThreads: THREADS, batch: BATCH });
  times.push(performance.now() - t);
}
const r = last!;
const rows: [string, string][] = [
  ['samples', String(r.samples)],
  ['device / intra-op threads / batch', `${r.device} / ${THREADS} / ${BATCH}`],
  ['load 10,000 images (IDX gz → Samples)', fmt(loadMs)],
  [`floor: plain ORT, 10,000 images once, batch ${BATCH} (median of ${RUNS})`, fmt(median(floors))],
  [`evaluateModels, original + compressed (median of ${RUNS})`, fmt(median(times))],
  ['  all runs', times.map(fmt).join(', ')],
  ['  ratio to floor', `${(median(times) / median(floors)).toFixed(2)}× (two models: ≥ 2× by construction)`],
  ['accuracy original / compressed', `${r.original.accuracy} / ${r.compressed.accuracy}`],
  ['agreement / cosine', `${r.metrics.agreement} / ${r.metrics.cosine}`],
  ['latency median / p90 (ms), original', `${r.original.latencyMs.median.toFixed(3)} / ${r.original.latencyMs.p90.toFixed(3)}`],
  ['latency median / p90 (ms), compressed', `${r.compressed.latencyMs.median.toFixed(3)} / ${r.compressed.latencyMs.p90.toFixed(3)}`],
  ['target', `≤ ${fmt(TARGET_MS)}: ${median(times) <= TARGET_MS ? 'met' : 'MISSED'}`],
];
const w = Math.max(...rows.map(([k]) => k.length));
console.log(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n'));
const out = path.join(ROOT, 'bench', 'out');
mkdirSync(out, { recursive: true });
writeFileSync(
  path.join(out, 'eval.json'),
  JSON.stringify({ runs: RUNS, threads: THREADS, batch: BATCH, device: r.device, loadMs, floorMs: floors, evalMs: times, report: r }, null, 2) + '\n',
);
