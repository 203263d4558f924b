/**
 * The budget picks the precision (src/pipeline/search/, src/transforms/quantize/precision.ts):
 * per-layer precision in the quantize step, `dtype: auto` on the spam fixture with the accuracy drop
 * measured on held-out e-mails the search never saw, a model where plain int4 breaks a budget rescued
 * by mixed precision, and the recipe errors.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSpamTestSet } from '../bench/lib/fixtures.js';
import { CompressError } from '../src/errors.js';
import { DataType } from '../src/onnx/dtypes.js';
import { decodeModel, encodeModelToBytes } from '../src/onnx/codec.js';
import { makeGraph, makeModel, makeNode, makeValueInfo } from '../src/onnx/graph.js';
import { makeTensor } from '../src/onnx/tensor.js';
import type { ModelProto } from '../src/onnx/types.js';
import { compressRecipe } from '../src/pipeline.js';
import { reportHtml } from '../src/pipeline/report.js';
import { loadRecipe } from '../src/recipe/index.js';
import { quantizeDefaults } from '../src/recipe/load.js';
import { quantizeStep } from '../src/transforms/quantize/index.js';

const SPAM = resolve('test/fixtures/spam-tinybert/');

let tmp: string;
let n = 0;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'search-test-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function folder(files: Record<string, string | Uint8Array>): string {
  const dir = join(tmp, `p${n++}`);
  mkdirSync(dir);
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
  return dir;
}

/** A seeded normal generator (Box–Muller over mulberry32). */
function normals(seed: number): () => number {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
}

/**
 * x [batch, 64] → 6 × (MatMul 64×64 → Tanh) → MatMul 64×4 → y. Layer `l3` has outlier weights (20× the
 * others) on input rows 0 and 32, which read features `l2` always makes 0: they never change the output,
 * but they set every 4-bit block's scale (blocks of 32 along K), so 4 bits round the weights that matter
 * to zero; 8 bits per channel keep them. The other layers quantize to 4 bits with little error.
 */
function outlierMlp(): ModelProto {
  const rnd = normals(7);
  const D = 64;
  const nodes = [];
  const inits = [];
  let x = 'x';
  for (let l = 0; l < 7; l++) {
    const N = l === 6 ? 4 : D;
    const w = new Float32Array(D * N);
    for (let i = 0; i < w.length; i++) w[i] = (rnd() * 0.8) / Math.sqrt(D);
    if (l === 2) for (let k = 0; k < D; k++) w[k * N] = w[k * N + 32] = 0;
    if (l === 3) for (let j = 0; j < N; j++) w[j] = w[32 * N + j] = (j % 2 ? 3 : -3);
    inits.push(makeTensor(`w${l}`, DataType.FLOAT, [D, N], w));
    const mm = `l${l}`;
    nodes.push(makeNode('MatMul', [x, `w${l}`], [`${mm}_out`], { name: mm }));
    x = `${mm}_out`;
    if (l < 6) {
      nodes.push(makeNode('Tanh', [x], [`t${l}`], { name: `tanh${l}` }));
      x = `t${l}`;
    }
  }
  nodes.push(makeNode('Identity', [x], ['y'], { name: 'out' }));
  return makeModel(makeGraph('outlier_mlp', nodes, [makeValueInfo('x', DataType.FLOAT, ['batch', D])], [makeValueInfo('y', DataType.FLOAT, ['batch', 4])], inits), 17);
}

function randomJsonl(rows: number, seed: number): string {
  const rnd = normals(seed);
  return Array.from({ length: rows }, () => JSON.stringify({ inputs: { x: [Array.from({ length: 64 }, () => Math.round(rnd() * 1000) / 1000)] } })).join('\n') + '\n';
}

describe('per-layer precision in the quantize step', () => {
  it('writes each layer at its assigned precision: int4 blocks, int8, float16 (Cast), float32 (left alone)', async () => {
    const model = outlierMlp();
    const params = { ...quantizeDefaults('int4'), layers: { l0: 'int4:32', l1: 'int4:128', l2: 'int8', l3: 'float16', l4: 'float32' } as const };
    const { model: out, report } = await quantizeStep(params)(model, { file: 'mlp.onnx', original: model, device: 'cpu', seed: 1, log: () => {} });
    const by = new Map(report.layers.map((l) => [l.name, l as typeof l & { requested?: string; delivered?: string }]));
    expect(by.get('l0')).toMatchObject({ requested: 'int4:32', delivered: 'int4:32', dtypeAfter: 'int4' });
    expect(by.get('l1')).toMatchObject({ requested: 'int4:128', delivered: 'int4:128' });
    expect(by.get('l2')).toMatchObject({ requested: 'int8', delivered: 'int8', dtypeAfter: 'int8' });
    expect(by.get('l3')).toMatchObject({ requested: 'float16', delivered: 'float16', dtypeAfter: 'float16', bytesAfter: 64 * 64 * 2 });
    expect(by.has('l4')).toBe(false);
    expect(report.skipped).toContainEqual({ name: 'l4', reason: 'kept float32 by the precision assignment' });
    expect(by.get('l5')).toMatchObject({ requested: 'int4:32', delivered: 'int4:32' }); // unlisted: follows dtype
    expect(out.graph!.node.some((nd) => nd.opType === 'Cast' && nd.input[0].startsWith('w3'))).toBe(true);
    expect(out.graph!.initializer.find((t) => t.name === 'w4')?.dataType).toBe(DataType.FLOAT);
    // Runs in onnxruntime and stays close to the original.
    const x = new ort.Tensor('float32', Float32Array.from({ length: 64 }, (_, i) => Math.sin(i)), [1, 64]);
    const run = async (m: ModelProto) => {
      const s = await ort.InferenceSession.create(encodeModelToBytes(m), { intraOpNumThreads: 1 });
      const r = (await s.run({ x })).y.data as Float32Array;
      await s.release();
      return r;
    };
    const [a, b] = [await run(model), await run(out)];
    const dot = a.reduce((s, v, i) => s + v * b[i], 0) / Math.hypot(...a) / Math.hypot(...b);
    expect(dot).toBeGreaterThan(0.99);
  });

  it('refuses dtype auto without a search', async () => {
    const model = outlierMlp();
    const e = await quantizeStep(quantizeDefaults('auto'))(model, { file: 'mlp.onnx', original: model, device: 'cpu', seed: 1, log: () => {} }).catch((x) => x);
    expect(e).toBeInstanceOf(CompressError);
    expect(e.message).toMatch(/dtype auto is resolved by the budget search/);
  });
});

describe('recipes', () => {
  it('dtype auto without a budget is a recipe error at quantize.dtype', async () => {
    const dir = folder({ 'm.onnx': encodeModelToBytes(outlierMlp()), 'compress.yaml': 'models:\n  m:\n    source: m.onnx\n    quantize: { dtype: auto }\n' });
    const e = await loadRecipe(join(dir, 'compress.yaml')).catch((x) => x);
    expect(e).toBeInstanceOf(CompressError);
    expect(e.message).toMatch(/compress\.yaml:4:24: models\.m\.quantize\.dtype: dtype auto picks the smallest precision that meets the budget: add a budget/);
  });
});

describe('the budget picks the precision', () => {
  it('rescues a model plain int4 breaks: the outlier layer is kept wider, the rest stays 4-bit', async () => {
    const dir = folder({
      'm.onnx': encodeModelToBytes(outlierMlp()),
      'calib.jsonl': randomJsonl(96, 1),
      'eval.jsonl': randomJsonl(128, 2),
      'compress.yaml':
        'defaults:\n  device: cpu\nmodels:\n  m:\n    source: m.onnx\n    quantize: { dtype: int4 }\n' +
        '    calibration: { data: calib.jsonl }\n    evaluate: { data: eval.jsonl, runs: 1 }\n    budget: { minCosine: 0.98 }\n',
    });
    const recipe = await loadRecipe(join(dir, 'compress.yaml'));
    const [r] = await compressRecipe(recipe, { cacheDir: join(dir, 'cache') });
    const q = r.manifest.steps.find((s) => s.step === 'quantize')!;
    const search = q.totals!.search as { met: boolean; points: { label: string; bytes: number; cosine: number; meets: boolean }[]; chosen: number; assignment: Record<string, string>; layers: { name: string; damage: Record<string, number> }[] };
    expect(search.met).toBe(true);
    // Plain int4 (the requested assignment) misses the budget; the chosen one meets it, on the held-out data too.
    expect(search.points[0].label).toBe('int4:32 (requested)');
    expect(search.points[0].cosine).toBeLessThan(0.9);
    expect(r.manifest.accuracy!.metrics.cosine).toBeGreaterThanOrEqual(0.98);
    // The outlier layer is the most sensitive at 4 bits, and it is the one kept wider.
    const worst = search.layers.reduce((a, b) => (b.damage['int4:32'] > a.damage['int4:32'] ? b : a));
    expect(worst.name).toBe('l3');
    expect(search.assignment.l3).not.toBe('int4:32');
    expect(Object.values(search.assignment).filter((p) => p === 'int4:32').length).toBeGreaterThanOrEqual(5);
    // Smaller than plain int8, which would also have kept the outlier layer.
    const m = outlierMlp();
    const int8 = await quantizeStep(quantizeDefaults('int8'))(m, { file: 'm.onnx', original: m, device: 'cpu', seed: 1, log: () => {} });
    expect(r.bytes.byteLength).toBeLessThan(encodeModelToBytes(int8.model).byteLength);
    const layers = new Map(q.layers.map((l) => [l.name, l as typeof l & { requested?: string; delivered?: string; sensitivity?: Record<string, number> }]));
    expect(layers.get('l3')!.requested).toBe(search.assignment.l3);
    expect(layers.get('l0')!.sensitivity!['int4:32']).toBeGreaterThan(0);
    // The report draws the trade-off: one point per measured assignment, the chosen one marked, the budget line.
    const html = reportHtml([{ result: r, fileName: 'm.onnx' }]);
    expect(html).toContain('<svg');
    expect(html.match(/class="pt( chosen)?( meets)?"/g)!.length).toBe(search.points.length);
    expect(html).toContain('class="pt chosen meets"');
    expect(html).toContain('minCosine 0.98');
    // The budget is part of the key: a laxer budget is another build, the same budget a hit.
    const [again] = await compressRecipe(recipe, { cacheDir: join(dir, 'cache') });
    expect(again.cached).toBe(true);
    writeFileSync(join(dir, 'compress.yaml'), readFileSync(join(dir, 'compress.yaml'), 'utf8').replace('0.98', '0.5'));
    const [lax] = await compressRecipe(await loadRecipe(join(dir, 'compress.yaml')), { cacheDir: join(dir, 'cache') });
    expect(lax.cached).toBe(false);
    expect(lax.bytes.byteLength).toBeLessThan(r.bytes.byteLength);
  });

  it('maxBytes alone: the most accurate assignment under the byte limit', async () => {
    const dir = folder({
      'm.onnx': encodeModelToBytes(outlierMlp()),
      'calib.jsonl': randomJsonl(64, 4),
      'compress.yaml': 'defaults:\n  device: cpu\nmodels:\n  m:\n    source: m.onnx\n    quantize: { dtype: auto }\n    calibration: { data: calib.jsonl }\n    budget: { maxBytes: 21000 }\n',
    });
    const [r] = await compressRecipe(await loadRecipe(join(dir, 'compress.yaml')), { cacheDir: false });
    expect(r.bytes.byteLength).toBeLessThanOrEqual(21000);
    const search = r.manifest.steps.find((s) => s.step === 'quantize')!.totals!.search as { met: boolean; chosen: number; points: { bytes: number; damage: number; label: string }[]; assignment: Record<string, string> };
    expect(search.met).toBe(true);
    // The byte room goes to the outlier layer first; the chosen point is the built one, at its real size.
    expect(search.assignment.l3).not.toMatch(/^int4/);
    const chosen = search.points[search.chosen];
    expect(chosen.label).toMatch(/\(built\)$/);
    expect(chosen.bytes).toBe(r.bytes.byteLength);
    for (const p of search.points) if (p.bytes <= 21000 && p.label.endsWith('(built)')) expect(p.damage).toBeGreaterThanOrEqual(chosen.damage);
  });

  it('fails (exit 1) naming the best assignment when none meets the budget', async () => {
    const dir = folder({
      'm.onnx': encodeModelToBytes(outlierMlp()),
      'eval.jsonl': randomJsonl(64, 3),
      'compress.yaml': 'defaults:\n  device: cpu\nmodels:\n  m:\n    source: m.onnx\n    quantize: { dtype: int4 }\n    evaluate: { data: eval.jsonl, runs: 1 }\n    budget: { minCosine: 0.999, maxBytes: 2000 }\n',
    });
    const e = await compressRecipe(await loadRecipe(join(dir, 'compress.yaml')), { cacheDir: false }).catch((x) => x);
    expect(e).toBeInstanceOf(CompressError);
    expect(e.kind).toBe('budget');
    expect(e.exitCode).toBe(1);
    expect(e.message).toMatch(/compress\.yaml:\d+:\d+: m: over budget: size \d+ > maxBytes 2000/);
    expect(e.message).toMatch(/no precision assignment the search measured \(\d+\) meets the budget on its 64 search samples; best: (int4:32|int8|float16) ×\d.*\(mixed, step \d+\/\d+\), about \d+ bytes, cosine 0\.\d+/);
  });

  it('spam, int4 with minCosine 0.9999: plain int4 misses, a mix with the sensitive layers at int8 meets it on held-out e-mails', async () => {
    const all = loadSpamTestSet(join(SPAM, 'test-split.json'));
    const jsonl = (xs: typeof all) => xs.map((s) => JSON.stringify({ inputs: { input_ids: [Array.from(s.feeds.input_ids.data as BigInt64Array, Number)] }, label: s.label })).join('\n') + '\n';
    const dir = folder({
      'eval.jsonl': jsonl(all.slice(0, 400)),
      'search.jsonl': jsonl(all.slice(800)),
      'compress.yaml':
        'defaults:\n  device: cpu\nmodels:\n  spam:\n    source: model.onnx\n    quantize: { dtype: int4 }\n' +
        '    calibration: { data: search.jsonl, samples: 200 }\n    evaluate: { data: eval.jsonl, samples: 400, runs: 1 }\n    budget: { minCosine: 0.9999 }\n',
    });
    copyFileSync(join(SPAM, 'model.onnx'), join(dir, 'model.onnx'));
    const [r] = await compressRecipe(await loadRecipe(join(dir, 'compress.yaml')), { cacheDir: false });
    const search = r.manifest.steps.find((s) => s.step === 'quantize')!.totals!.search as { met: boolean; points: { label: string; cosine: number }[]; assignment: Record<string, string> };
    expect(search.points[0]).toMatchObject({ label: 'int4:32 (requested)' });
    expect(search.points[0].cosine).toBeLessThan(0.9999);
    expect(search.met).toBe(true);
    expect(r.manifest.accuracy!.metrics.cosine).toBeGreaterThanOrEqual(0.9999);
    const wider = Object.entries(search.assignment).filter(([, p]) => p !== 'int4:32').map(([n]) => n);
    expect(wider).toContain('/tok/Gather');
    expect(wider.length).toBeLessThanOrEqual(5);
    const model = decodeModel(readFileSync(join(SPAM, 'model.onnx')), 'model.onnx');
    const int8 = await quantizeStep(quantizeDefaults('int8'))(model, { file: join(SPAM, 'model.onnx'), original: model, device: 'cpu', seed: 1, log: () => {} });
    expect(r.bytes.byteLength).toBeLessThan(encodeModelToBytes(int8.model).byteLength);
  });

  it('spam, dtype auto, maxAccuracyDrop 0.005: ≤ 0.25× the fp32 bytes, the drop measured on held-out e-mails the search never saw', async () => {
    // E-mails 1–600 of the held-out split are the evaluation data; 601–1000 the search's (calibration) data.
    const all = loadSpamTestSet(join(SPAM, 'test-split.json'));
    const jsonl = (xs: typeof all) => xs.map((s) => JSON.stringify({ inputs: { input_ids: [Array.from(s.feeds.input_ids.data as BigInt64Array, Number)] }, label: s.label })).join('\n') + '\n';
    const dir = folder({
      'eval.jsonl': jsonl(all.slice(0, 600)),
      'search.jsonl': jsonl(all.slice(600)),
      'compress.yaml':
        'defaults:\n  device: cpu\nmodels:\n  spam:\n    source: model.onnx\n    quantize: { dtype: auto }\n' +
        '    calibration: { data: search.jsonl, samples: 400 }\n    evaluate: { data: eval.jsonl, samples: 600, runs: 1 }\n    budget: { maxAccuracyDrop: 0.005 }\n',
    });
    copyFileSync(join(SPAM, 'model.onnx'), join(dir, 'model.onnx'));
    const [r] = await compressRecipe(await loadRecipe(join(dir, 'compress.yaml')), { cacheDir: false });
    const fp32 = statSync(join(SPAM, 'model.onnx')).size;
    expect(r.bytes.byteLength).toBeLessThanOrEqual(0.25 * fp32);
    const acc = r.manifest.accuracy!;
    expect(acc.samples).toBe(600);
    expect(acc.labeled).toBe(600);
    expect(acc.original.accuracy! - acc.compressed.accuracy!).toBeLessThanOrEqual(0.005);
    const search = r.manifest.steps.find((s) => s.step === 'quantize')!.totals!.search as { met: boolean; samples: number; points: unknown[] };
    expect(search).toMatchObject({ met: true, samples: 400 });
    expect(r.manifest.warnings.filter((w) => w.includes('search'))).toEqual([]);
    console.log(`spam auto: ${r.bytes.byteLength} bytes = ${(r.bytes.byteLength / fp32).toFixed(3)}× fp32; held-out accuracy ${acc.original.accuracy} → ${acc.compressed.accuracy}; ${search.points.length} assignments measured; search ${r.manifest.timings.search} ms`);
  });
});

describe('budgets on single-value outputs', () => {
  it('minAgreement is refused on a one-value-per-row output; maxRelRms / maxAbsError / output apply', async () => {
    const { checkBudget } = await import('../src/eval/budget.js');
    const { compareOutputs } = await import('../src/eval/metrics.js');
    const prob = compareOutputs(Float32Array.of(0.9, 0.1, 0.8), Float32Array.of(0.88, 0.12, 0.5), [3, 1]);
    const logits = compareOutputs(Float32Array.of(1, 2, 3, 4), Float32Array.of(1, 2, 3, 4), [2, 2]);
    expect(prob.rowSize).toBe(1);
    const report = { samples: 3, output: 'logits', device: 'cpu', labeled: 0, original: { latencyMs: { median: 1, p90: 1 } }, compressed: { latencyMs: { median: 1, p90: 1 } }, metrics: logits, perOutput: { logits, prob }, nonFinite: 0, warnings: [], ms: 1 };
    expect(checkBudget(report, { minAgreement: 0.9, onFail: 'error' }, 1).ok).toBe(true);
    const v = checkBudget(report, { output: 'prob', minAgreement: 0.9, maxRelRms: 0.1, maxAbsError: 0.05, onFail: 'error' }, 1).violations;
    expect(v[0]).toBe('minAgreement does not apply to output "prob": it has one value per row (use minCosine, maxRelRms or maxAbsError)');
    expect(v[1]).toMatch(/^relative RMS error of output "prob" 0\.2\d* > maxRelRms 0\.1$/);
    expect(v[2]).toMatch(/^max abs error of output "prob" 0\.3\d* > maxAbsError 0\.05$/);
    expect(checkBudget(report, { output: 'state', minCosine: 0.9, onFail: 'error' }, 1).violations[0]).toMatch(/budget\.output "state" was not compared \(outputs compared: "logits", "prob"\)/);
  });
});

describe('plugin summary', () => {
  it('names a searched build by its layers: one precision, or mixed', async () => {
    const { precisionOf } = await import('../src/plugin/summary.js');
    const manifest = (assignment: Record<string, string>, dtype = 'auto') =>
      ({ recipe: { steps: { quantize: { dtype } } }, steps: [{ step: 'quantize', totals: { search: { assignment } } }] }) as never;
    expect(precisionOf(manifest({ a: 'int4:128', b: 'int4:32' }))).toBe('int4');
    expect(precisionOf(manifest({ a: 'int4:32', b: 'int8' }))).toBe('mixed');
    expect(precisionOf(manifest({}, 'int8'))).toBe('int8');
  });
});
