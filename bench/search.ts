/**
 * The precision search (src/pipeline/search/): what sensitivity + search cost, and whether the cheap
 * sensitivity estimate ranks layers as real per-layer builds do.
 *
 * 1. Synthetic: a 17-layer transformer stack (hidden 64, ff 256, seq 16) = 102 quantizable MatMuls, 64
 *    random samples, `dtype: auto` with minCosine 0.9999 (strict enough that plain int4 misses and a mix
 *    is searched). Target: sensitivity + search ≤ 60 s on a 2-core machine.
 * 2. Fixtures (spam-tinybert, fmnist-cnn): a full pipeline build with `dtype: auto` and a budget,
 *    search data (calibration) apart from the evaluation data, against one plain build + evaluation
 *    (dtype int8, no budget) of the same model and data. Target: the search ≤ 3× the plain build.
 * 3. Ranking: on the spam fixture, each layer's int4 sensitivity from the fake-quantized runs (64
 *    samples) against the same layer really built alone at int4 and evaluated on all 400 search samples;
 *    Spearman rank correlation of the two.
 *
 * 4. Stateful: Silero VAD v5, `dtype: int8` with minCosine 0.99999 on the speech probability, searched
 *    on test/fixtures/audio/vad-speech-noise-16k.wav with the state carried, checked on
 *    vad-heldout-16k.wav (other voices and noise), each model carrying its own state. The same search fed
 *    the float32 model's states (pre-carried samples, each frame measured alone) for comparison.
 *
 *   npx tsx bench/search.ts
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tensor } from 'onnxruntime-node';
import { encodeModelToBytes, decodeModel } from '../src/onnx/codec.js';
import { readFileBytes } from '../src/onnx/io.js';
import { compressRecipe } from '../src/pipeline.js';
import { FakeQuantModel, type SearchChoice } from '../src/pipeline/search/fake.js';
import { figuresOf } from '../src/pipeline/search/figures.js';
import { searchPrecision } from '../src/pipeline/search/search.js';
import { loadRecipe } from '../src/recipe/index.js';
import { quantizeDefaults } from '../src/recipe/load.js';
import { quantizeStep } from '../src/transforms/quantize/index.js';
import type { LayerPrecision } from '../src/recipe/types.js';
import type { Sample } from '../src/data/types.js';
import { carryStates } from '../src/runtime/carry.js';
import { simplifyStep } from '../src/transforms/simplify/index.js';
import { loadFashionMnist, loadSpamTestSet } from './lib/fixtures.js';
import { agreementWithin, readWav, VAD_CARRY, vadFile, vadFrames, vadProbabilities } from './lib/vad.js';
import { loadAverage } from './lib/machine.js';
import { fmtMs, mark, markdownTable } from './lib/stats.js';
import { prng, transformerStack } from './lib/synthetic.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FIX = path.join(ROOT, 'test', 'fixtures');
const OUT = path.join(ROOT, 'bench', 'out');

const rows: (string | number)[][] = [];
const json: Record<string, unknown> = { loadBefore: loadAverage() };

// ---------------------------------------------------------------------------------------- 1. synthetic
{
  const model = transformerStack({ layers: 17, hidden: 64, ff: 256, seq: 16, seed: 3 });
  const next = prng(11);
  const samples: Sample[] = Array.from({ length: 64 }, () => ({
    feeds: { input: new Tensor('float32', Float32Array.from({ length: 16 * 64 }, () => (next() / 2 ** 32) * 2 - 1), [1, 16, 64]) },
  }));
  const bytes = encodeModelToBytes(model);
  const t0 = performance.now();
  const r = await searchPrecision(model, {
    params: quantizeDefaults('auto'),
    budget: { minCosine: 0.9999, onFail: 'error' },
    samples,
    modelBytes: bytes.byteLength,
    build: async (p) => encodeModelToBytes((await quantizeStep(p)(model, { file: 'synthetic.onnx', original: model, device: 'cpu', seed: 0, log: () => {} })).model),
  });
  const ms = performance.now() - t0;
  const layers = r.layers.length;
  const chosen = r.points[r.chosen];
  const counts = new Map<string, number>();
  for (const p of Object.values(r.assignment)) counts.set(p, (counts.get(p) ?? 0) + 1);
  json.synthetic = { layers, samples: 64, ms, sensitivityMs: r.ms.sensitivity, searchMs: r.ms.search, runs: r.runs, met: r.met, points: r.points.length, chosen, assignment: Object.fromEntries(counts) };
  rows.push([`synthetic ${layers} layers, 64 samples: sensitivity + search`, '≤ 60 s', `${fmtMs(ms)} (sensitivity ${fmtMs(r.ms.sensitivity)}, ${r.runs} runs, ${r.points.length} assignments measured; chose ${[...counts].map(([p, n]) => `${p} ×${n}`).join(', ')}, cosine ${chosen.cosine.toFixed(5)})`, mark(ms <= 60_000)]);
}

// ----------------------------------------------------------------------------------------- 2. fixtures
const tmp = mkdtempSync(path.join(tmpdir(), 'bench-search-'));
function jsonl(samples: Sample[], input: string): string {
  const line = (s: Sample) => {
    const t = s.feeds[input];
    return JSON.stringify({ inputs: { [input]: reshape(Array.from(t.data as ArrayLike<number | bigint>, Number), t.dims as number[]) }, label: s.label });
  };
  return samples.map(line).join('\n') + '\n';
}
/** Nested arrays in the tensor's dims, as the JSONL reader wants them. */
function reshape(flat: number[], dims: number[]): unknown {
  if (dims.length <= 1) return flat;
  const per = flat.length / dims[0];
  return Array.from({ length: dims[0] }, (_, i) => reshape(flat.slice(i * per, (i + 1) * per), dims.slice(1)));
}

async function fixture(name: string, model: string, input: string, all: Sample[], budget: string) {
  const dir = path.join(tmp, name);
  mkdirSync(dir);
  copyFileSync(model, path.join(dir, 'model.onnx'));
  writeFileSync(path.join(dir, 'eval.jsonl'), jsonl(all.slice(0, 600), input));
  writeFileSync(path.join(dir, 'search.jsonl'), jsonl(all.slice(600, 1000), input));
  const recipe = (q: string, extra = '') =>
    `defaults:\n  device: cpu\nmodels:\n  ${name}:\n    source: model.onnx\n    quantize: { dtype: ${q} }\n    calibration: { data: search.jsonl, samples: 400 }\n    evaluate: { data: eval.jsonl, samples: 600, runs: 1 }\n${extra}`;
  writeFileSync(path.join(dir, 'plain.yaml'), recipe('int8'));
  writeFileSync(path.join(dir, 'auto.yaml'), recipe('auto', `    budget: ${budget}\n`));
  const t0 = performance.now();
  const [plain] = await compressRecipe(await loadRecipe(path.join(dir, 'plain.yaml')), { cacheDir: false });
  const plainMs = performance.now() - t0;
  const t1 = performance.now();
  const [auto] = await compressRecipe(await loadRecipe(path.join(dir, 'auto.yaml')), { cacheDir: false });
  const autoMs = performance.now() - t1;
  const searchMs = auto.manifest.timings.search ?? NaN;
  const s = auto.manifest.steps.find((x) => x.step === 'quantize')!.totals!.search as { runs: number; points: unknown[]; ms: { sensitivity: number } };
  const acc = auto.manifest.accuracy!;
  const fp32 = readFileBytes(model).byteLength;
  json[name] = { plainMs, autoMs, searchMs, runs: s.runs, points: s.points.length, bytes: auto.bytes.byteLength, fp32, plainBytes: plain.bytes.byteLength, accuracy: [acc.original.accuracy, acc.compressed.accuracy] };
  rows.push([
    `${name}: search (dtype auto, ${budget}) vs one plain int8 build + evaluation`,
    '≤ 3×',
    `search ${fmtMs(searchMs)} (${s.runs} runs, sensitivity ${fmtMs(s.ms.sensitivity)}) vs plain ${fmtMs(plainMs)} = ${(searchMs / plainMs).toFixed(2)}×; whole auto build ${fmtMs(autoMs)}; ${auto.bytes.byteLength} bytes = ${(auto.bytes.byteLength / fp32).toFixed(3)}× fp32, held-out accuracy ${acc.original.accuracy!.toFixed(4)} → ${acc.compressed.accuracy!.toFixed(4)}`,
    mark(searchMs <= 3 * plainMs),
  ]);
}

const spamAll = loadSpamTestSet(path.join(FIX, 'spam-tinybert', 'test-split.json'));
await fixture('spam', path.join(FIX, 'spam-tinybert', 'model.onnx'), 'input_ids', spamAll, '{ maxAccuracyDrop: 0.005 }');
const fm = loadFashionMnist(path.join(FIX, 'fmnist-cnn', 't10k-images-idx3-ubyte.gz'), path.join(FIX, 'fmnist-cnn', 't10k-labels-idx1-ubyte.gz'), 1000);
await fixture('fmnist', path.join(FIX, 'fmnist-cnn', 'model.onnx'), 'image', fm, '{ maxAccuracyDrop: 0.005 }');
rmSync(tmp, { recursive: true, force: true });

// ------------------------------------------------------------------------------------------ 3. ranking
{
  const file = path.join(FIX, 'spam-tinybert', 'model.onnx');
  const model = decodeModel(readFileBytes(file), file);
  const search = spamAll.slice(600);
  const params = quantizeDefaults('int4');
  const fq = await FakeQuantModel.open(model, params, ['int4:32', 'float32'], search);
  const env = { opset: 17 };
  const feed = (l: (typeof fq.layers)[number], p: SearchChoice) => fq.weightFeed(l, p as LayerPrecision, params, env);
  const budget = { maxAccuracyDrop: 0.005, onFail: 'error' as const };
  const few = fq.withSamples(search.slice(0, 64));
  const refFew = await few.run(new Map(), feed);
  const ref = await fq.run(new Map(), feed);
  const cheap: number[] = [];
  const real: number[] = [];
  for (const l of fq.layers) {
    cheap.push(figuresOf(refFew, await few.run(new Map([[l.name, 'int4:32']]), feed), 'logits', search.slice(0, 64), budget).damage);
    const others = Object.fromEntries(fq.layers.filter((o) => o !== l).map((o) => [o.name, 'float32' as const]));
    const built = await quantizeStep({ ...params, layers: { ...others, [l.name]: 'int4:32' } })(model, { file, original: model, device: 'cpu', seed: 0, log: () => {} });
    real.push(figuresOf(ref, await fq.runModel(encodeModelToBytes(built.model)), 'logits', search, budget).damage);
  }
  await fq.close();
  const rank = (xs: number[]) => {
    const order = xs.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
    const r = new Array<number>(xs.length);
    order.forEach(([, i], k) => (r[i] = k));
    return r;
  };
  const ra = rank(cheap);
  const rb = rank(real);
  const n = ra.length;
  const d2 = ra.reduce((s, v, i) => s + (v - rb[i]) ** 2, 0);
  const rho = 1 - (6 * d2) / (n * (n * n - 1));
  const top = (r: number[]) => r.indexOf(n - 1);
  json.ranking = { layers: fq.layers.map((l) => l.name), cheap, real, spearman: rho };
  rows.push([
    `spam: int4 sensitivity ranking, fake-quantized on 64 samples vs real per-layer builds on 400`,
    'ranks the same',
    `Spearman ρ = ${rho.toFixed(3)} over ${n} layers; most sensitive: ${fq.layers[top(ra)].name} (cheap) / ${fq.layers[top(rb)].name} (real)`,
    mark(rho >= 0.9),
  ]);
}

// ------------------------------------------------------------------------------------ 4. stateful (VAD)
{
  const file = vadFile('v5');
  const source = decodeModel(readFileBytes(file), file);
  const model = (await simplifyStep()(source, { file, original: source, device: 'cpu', seed: 0, log: () => {} })).model;
  const carry = VAD_CARRY.v5;
  const tune = await carryStates(file, vadFrames('v5', readWav(path.join(FIX, 'audio', 'vad-speech-noise-16k.wav'))), carry);
  const held = vadFrames('v5', readWav(path.join(FIX, 'audio', 'vad-heldout-16k.wav')));
  const params = quantizeDefaults('int8');
  const budget = { minCosine: 0.99999, output: 'output', onFail: 'error' as const };
  const build = async (p: typeof params) => encodeModelToBytes((await quantizeStep(p)(model, { file, original: model, device: 'cpu', seed: 0, log: () => {} })).model);
  const fp32 = readFileBytes(file).byteLength;
  const ref = await vadProbabilities(source, 'v5', held);
  const heldOut = async (bytes: Uint8Array) => {
    const got = await vadProbabilities(bytes, 'v5', held);
    let dot = 0;
    let na = 0;
    let nb = 0;
    ref.forEach((a, i) => ((dot += a * got[i]), (na += a * a), (nb += got[i] * got[i])));
    return { cosine: dot / Math.sqrt(na * nb), ...agreementWithin(ref, got) };
  };
  const int8 = await build(params);
  const int8Held = await heldOut(int8);
  const result: Record<string, unknown> = { fp32, int8: { bytes: int8.byteLength, heldOut: int8Held } };
  for (const own of [true, false]) {
    const t0 = performance.now();
    const r = await searchPrecision(model, { params, budget, output: 'output', samples: tune, modelBytes: encodeModelToBytes(model).byteLength, build, ...(own && { carry }) });
    const ms = performance.now() - t0;
    const bytes = await build(r.params);
    const h = await heldOut(bytes);
    const wider = Object.entries(r.assignment).filter(([, p]) => p !== 'int8');
    result[own ? 'ownState' : 'preCarried'] = { ms, runs: r.runs, int8OnSearchClip: r.points[0].cosine, wider, bytes: bytes.byteLength, heldOut: h };
    rows.push([
      own
        ? 'Silero VAD v5, int8 + minCosine 0.99999, searched with the state carried (each model its own): held-out cosine and frames within 0.05'
        : 'the same search fed the float32 states (pre-carried samples): what it would ship',
      own ? 'budget met held out; ≥ 99 % within 0.05; < fp32 bytes' : '(comparison)',
      `int8 measured on the search clip: cosine ${r.points[0].cosine.toFixed(7)}; chose ${wider.length ? wider.map(([n, p]) => `${n.replace(/^If_0_then_branch__Inline_0__/, '16k:')} ${p}`).join(', ') : 'plain int8'}; ` +
        `${bytes.byteLength} B = ${(bytes.byteLength / fp32).toFixed(3)}× fp32, ${(bytes.byteLength / int8.byteLength).toFixed(3)}× int8; held out (602 frames): cosine ${h.cosine.toFixed(7)}, ${(100 * h.within).toFixed(1)} % within 0.05, max |Δp| ${h.maxAbs.toFixed(4)}; search ${fmtMs(ms)} (${r.runs} runs)`,
      own ? mark(h.cosine >= 0.99999 && h.within >= 0.99 && bytes.byteLength < fp32) : `(budget ${h.cosine >= 0.99999 ? 'met' : 'missed'} held out)`,
    ]);
  }
  json.sileroV5 = result;
}

json.loadAfter = loadAverage();
json.targets = rows.map((r) => ({ what: String(r[0]), target: String(r[1]), value: String(r[2]), met: r[3] === 'met' }));
const table = markdownTable(['what', 'target', 'measured', ''], rows);
const note = `Load average before/after: ${JSON.stringify(json.loadBefore)} / ${JSON.stringify(json.loadAfter)} (other processes share the machine: timings are upper bounds).`;
console.log(table + '\n\n' + note);
mkdirSync(OUT, { recursive: true });
writeFileSync(path.join(OUT, 'search.json'), JSON.stringify({ ...json, markdown: table + '\n\n' + note }, null, 2));
