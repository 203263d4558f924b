/**
 * Static int8 (`activations: uint8 | int8`) on the real fixtures, against onnxruntime and the labels:
 * the Fashion-MNIST CNN (calibrated on the first 1,000 t10k images, evaluated on the other 9,000) and
 * the spam transformer (calibrated on the first 200 e-mails, evaluated on the other 800). onnxruntime
 * must really fuse the groups: its optimized graph (SessionOptions.optimizedModelFilePath) is read back
 * and checked for QLinearConv / QGemm / MatMulIntegerToFloat and for no float Conv / Gemm left. The
 * calibration statistics are checked on their own against exact answers.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import { optimizedOps } from './ort-graph.js';
import { writeNpy } from '../bench/lib/npy.js';
import { cli } from './cli-run.js';
import { loadFashionMnist, loadSpamTestSet } from '../bench/lib/fixtures.js';
import type { Sample } from '../src/data/types.js';
import { evaluateModels, type EvalReport } from '../src/eval/evaluate.js';
import { readModel } from '../src/onnx/io.js';
import type { ModelProto } from '../src/onnx/types.js';
import { quantizeDefaults } from '../src/recipe/load.js';
import type { QuantizeStep } from '../src/recipe/types.js';
import { calibratedRange, entropyThreshold, HISTOGRAM_BINS, percentileThreshold, ValueStats, activationParams } from '../src/transforms/quantize/calibrate.js';
import { checkWebCompatibility, quantizeStep } from '../src/transforms/quantize/index.js';
import type { StepReport } from '../src/transforms/types.js';

const F = new URL('./fixtures/', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'static-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const fmnistModel = readModel(`${F}fmnist-cnn/model.onnx`);
const fmnist = loadFashionMnist(`${F}fmnist-cnn/t10k-images-idx3-ubyte.gz`, `${F}fmnist-cnn/t10k-labels-idx1-ubyte.gz`);
const fmnistCalibration = fmnist.slice(0, 1000);
const fmnistHeldOut = fmnist.slice(1000);

async function quantize(model: ModelProto, file: string, calibration: Sample[], params: Partial<QuantizeStep>): Promise<{ model: ModelProto; report: StepReport }> {
  return quantizeStep({ ...quantizeDefaults('int8'), ...params }, { intraOpThreads: 2 })(model, { file, original: model, calibration, device: 'cpu', seed: 0, log: () => {} });
}

function evaluate(original: ModelProto, model: ModelProto, samples: Sample[]): Promise<EvalReport> {
  return evaluateModels(original, model, samples, { runs: 0, intraOpThreads: 2, batch: 500 });
}

const summary = (name: string, ev: EvalReport) =>
  `${name}: accuracy ${ev.original.accuracy!.toFixed(4)} → ${ev.compressed.accuracy!.toFixed(4)}, agreement ${(100 * ev.metrics.agreement).toFixed(2)} %, cosine ${ev.metrics.cosine.toFixed(5)}`;

describe('static int8: Fashion-MNIST CNN', () => {
  for (const activations of ['uint8', 'int8'] as const) {
    it(`${activations} activations (minmax): ≤ 0.5 point drop on 9,000 held-out images, every Conv and Gemm fused, same outputs in onnxruntime-web`, async () => {
      const { model, report } = await quantize(fmnistModel, `${F}fmnist-cnn/model.onnx`, fmnistCalibration, { activations, calibrate: 'minmax' });
      const ev = await evaluate(fmnistModel, model, fmnistHeldOut);
      console.log(summary(`fmnist static ${activations}`, ev));
      expect(ev.original.accuracy! - ev.compressed.accuracy!).toBeLessThanOrEqual(0.005);
      expect(ev.metrics.agreement).toBeGreaterThanOrEqual(0.99);

      // What onnxruntime runs: both convs as QLinearConv, both Gemms as QGemm, no float Conv/Gemm left,
      // the pools on 8-bit values.
      const ops = await optimizedOps(model, join(tmp, `fmnist-${activations}.optimized.onnx`));
      console.log(`fmnist static ${activations} optimized:`, JSON.stringify(ops));
      expect(ops.QLinearConv).toBe(2);
      expect(ops.QGemm).toBe(2);
      for (const float of ['Conv', 'FusedConv', 'Gemm', 'FusedGemm', 'MatMul', 'DequantizeLinear']) expect(ops[float] ?? 0, float).toBe(0);

      // The per-layer table says what every layer got.
      expect(report.layers.map((l) => [l.name, l.dtypeAfter, (l as { activations?: string }).activations, (l as { calibrate?: string }).calibrate])).toEqual([
        ['/0/Conv', 'int8', activations, 'minmax'],
        ['/4/Conv', 'int8', activations, 'minmax'],
        ['/9/Gemm', 'int8', activations, 'minmax'],
        ['/12/Gemm', 'int8', activations, 'minmax'],
      ]);
      const totals = report.totals!.static as { foldedRelu: number; layers: number; samples: number };
      expect(totals).toMatchObject({ layers: 4, foldedRelu: 3, samples: 1000 });
      expect(report.warnings).toEqual([]);

      // Integer kernels: onnxruntime-web (wasm) computes the same logits.
      const web = await checkWebCompatibility(model, fmnistHeldOut.slice(0, 32));
      expect(web.outputs[0].maxAbsDiff).toBeLessThanOrEqual(web.outputs[0].allowed);
    });
  }

  it('percentile and entropy calibration clip the ranges minmax keeps whole, and stay within 1 point', async () => {
    const ranges: Record<string, number[]> = {};
    for (const calibrate of ['minmax', 'percentile', 'entropy'] as const) {
      // The guard off: this compares the ranges each method picks for every layer (entropy clips hardest,
      // and the guard would keep a layer float; test/static-zoo.test.ts covers the guard).
      const { model, report } = await quantize(fmnistModel, `${F}fmnist-cnn/model.onnx`, fmnistCalibration, { activations: 'uint8', calibrate, activationCosine: 0 });
      ranges[calibrate] = report.layers.map((l) => (l as unknown as { inputRange: [number, number] }).inputRange[1]);
      const ev = await evaluate(fmnistModel, model, fmnistHeldOut.slice(0, 3000));
      console.log(summary(`fmnist static uint8 ${calibrate} (3,000 held out)`, ev), 'input ranges', ranges[calibrate].map((r) => r.toFixed(3)).join(' '));
      expect(ev.original.accuracy! - ev.compressed.accuracy!).toBeLessThanOrEqual(0.01);
    }
    // The network input is pixel / 255: every method keeps it at 1 or just below; deeper activations
    // have long tails that percentile and entropy cut.
    for (const m of ['percentile', 'entropy']) {
      ranges[m].forEach((hi, i) => expect(hi, `${m} layer ${i}`).toBeLessThanOrEqual(ranges.minmax[i]));
      expect(ranges[m].slice(1).some((hi, i) => hi < 0.9 * ranges.minmax[i + 1]), m).toBe(true);
    }
  });

  it('per-tensor weights: one bias scale per layer, still fused', async () => {
    const { model } = await quantize(fmnistModel, `${F}fmnist-cnn/model.onnx`, fmnistCalibration, { activations: 'uint8', granularity: 'per-tensor' });
    const ops = await optimizedOps(model, join(tmp, 'fmnist-per-tensor.optimized.onnx'));
    expect([ops.QLinearConv, ops.QGemm]).toEqual([2, 2]);
    const ev = await evaluate(fmnistModel, model, fmnistHeldOut.slice(0, 2000));
    console.log(summary('fmnist static uint8 per-tensor weights (2,000 held out)', ev));
    expect(ev.original.accuracy! - ev.compressed.accuracy!).toBeLessThanOrEqual(0.01);
  });

  it('exclude keeps a layer float: onnxruntime then runs that Conv in float and the rest fused', async () => {
    const { model, report } = await quantize(fmnistModel, `${F}fmnist-cnn/model.onnx`, fmnistCalibration, { activations: 'uint8', exclude: ['/4/Conv'] });
    expect(report.layers.map((l) => l.name)).toEqual(['/0/Conv', '/9/Gemm', '/12/Gemm']);
    expect(report.skipped).toContainEqual(expect.objectContaining({ name: '/4/Conv' }));
    const ops = await optimizedOps(model, join(tmp, 'fmnist-exclude.optimized.onnx'));
    expect(ops.QLinearConv).toBe(1);
    expect(ops.QGemm).toBe(2);
    expect((ops.Conv ?? 0) + (ops.FusedConv ?? 0)).toBe(1);
    const ev = await evaluate(fmnistModel, model, fmnistHeldOut.slice(0, 2000));
    expect(ev.metrics.agreement).toBeGreaterThanOrEqual(0.99);
  });
});

describe('static int8 on the user\'s path', () => {
  it('onnx-compress build: calibration from a .npy folder, the manifest (valid) and the report state each layer\'s activations', async () => {
    const dir = join(tmp, 'cli');
    mkdirSync(join(dir, 'calib'), { recursive: true });
    copyFileSync(`${F}fmnist-cnn/model.onnx`, join(dir, 'fmnist.onnx'));
    const images = new Float32Array(200 * 784);
    fmnistCalibration.slice(0, 200).forEach((s, i) => images.set(s.feeds.image.data as Float32Array, i * 784));
    writeNpy(join(dir, 'calib', 'image.npy'), images, [200, 1, 28, 28]);
    writeFileSync(join(dir, 'compress.yaml'), 'defaults:\n  device: cpu\nmodels:\n  fmnist:\n    source: fmnist.onnx\n    calibration: { data: ./calib, samples: 200 }\n    quantize: { dtype: int8, activations: uint8, calibrate: percentile, percentile: 99.9 }\n');
    const r = await cli('build', join(dir, 'compress.yaml'), '--out', join(dir, 'out'), '--no-cache', '--quiet');
    expect(r.code, r.err).toBe(0);
    const manifest = JSON.parse(readFileSync(join(dir, 'out', 'fmnist.manifest.json'), 'utf8'));
    const validate = new Ajv({ allErrors: true, allowUnionTypes: true }).compile(JSON.parse(readFileSync('schemas/manifest.schema.json', 'utf8')));
    expect(validate(manifest), JSON.stringify(validate.errors)).toBe(true);
    const q = manifest.steps.find((s: { step: string }) => s.step === 'quantize');
    expect(q.params).toMatchObject({ activations: 'uint8', calibrate: 'percentile', percentile: 99.9 });
    expect(q.totals.static).toMatchObject({ activations: 'uint8', calibrate: 'percentile', samples: 200, layers: 4 });
    expect(q.layers.every((l: { activations: string; calibrate: string }) => l.activations === 'uint8' && l.calibrate === 'percentile')).toBe(true);
    const html = readFileSync(join(dir, 'out', 'onnx-compress-report.html'), 'utf8');
    expect(html.match(/activations uint8 \(percentile\)/g)?.length).toBe(4);
    const ops = await optimizedOps(readModel(join(dir, 'out', 'fmnist.onnx')), join(tmp, 'cli.optimized.onnx'));
    expect([ops.QLinearConv, ops.QGemm]).toEqual([2, 2]);
  });
});

describe('static int8: spam transformer', () => {
  it('MatMul layers run as MatMulIntegerToFloat / QGemm, agreement ≥ 99 % on 800 held-out e-mails', async () => {
    const model = readModel(`${F}spam-tinybert/model.onnx`);
    const all = loadSpamTestSet(`${F}spam-tinybert/test-split.json`);
    const { model: q, report } = await quantize(model, `${F}spam-tinybert/model.onnx`, all.slice(0, 200), { activations: 'uint8' });
    const ev = await evaluate(model, q, all.slice(200));
    console.log(summary('spam static uint8', ev));
    expect(ev.metrics.agreement).toBeGreaterThanOrEqual(0.99);
    expect(ev.original.accuracy! - ev.compressed.accuracy!).toBeLessThanOrEqual(0.005);
    const ops = await optimizedOps(q, join(tmp, 'spam.optimized.onnx'));
    console.log('spam static uint8 optimized:', JSON.stringify(ops));
    const staticLayers = (report.totals!.static as { layers: number }).layers;
    expect((ops.MatMulIntegerToFloat ?? 0) + (ops.QGemm ?? 0) + (ops.QLinearMatMul ?? 0)).toBe(staticLayers);
    // Embedding tables (Gather) keep weight-only int8: they have no activation input.
    expect(report.layers.filter((l) => (l as { activations?: string }).activations === undefined).every((l) => l.op === 'Gather')).toBe(true);
    // A float difference of one ulp before a QuantizeLinear can round to the next 8-bit step, so wasm
    // and native agree to a quantization step, not to float rounding: the check gets a step's room.
    const web = await checkWebCompatibility(q, all.slice(0, 16), { rel: 0.01 });
    console.log('spam static uint8 wasm vs node:', JSON.stringify(web.outputs));
  });
});

describe('calibration statistics', () => {
  it('merges histogram bins without losing a count, in bounded memory', () => {
    const s = new ValueStats(true);
    s.add(Float32Array.of(0, 0, 0));
    s.add(Float32Array.from({ length: 1000 }, (_, i) => i / 1000));
    const width = s.width;
    s.add(Float32Array.of(-37.5, 12));
    expect(s.hist!.length).toBe(HISTOGRAM_BINS);
    expect(s.width).toBeGreaterThanOrEqual(37.5 / HISTOGRAM_BINS);
    expect(Math.log2(s.width / width) % 1).toBe(0);
    expect(s.counts().reduce((a, b) => a + b, 0)).toBe(1005);
    expect([s.min, s.max, s.count]).toEqual([-37.5, 12, 1005]);
  });

  it('percentile, entropy and the 8-bit parameters', () => {
    const s = new ValueStats(true);
    // 100,000 values uniform on [0, 1) and 10 outliers at 5.
    s.add(Float32Array.from({ length: 100_000 }, (_, i) => i / 100_000));
    s.add(new Float32Array(10).fill(5));
    expect(percentileThreshold(s, 99)).toBeGreaterThan(0.98);
    expect(percentileThreshold(s, 99)).toBeLessThan(1);
    expect(calibratedRange(s, 'percentile', { percentile: 100 })).toEqual({ lo: 0, hi: 5 });
    expect(calibratedRange(s, 'minmax')).toEqual({ lo: 0, hi: 5 });
    expect(calibratedRange(s, 'percentile', { percentile: 99 })).toEqual({ lo: 0, hi: percentileThreshold(s, 99) });
    // A flat distribution loses no shape to rounding, so KL divergence sees nothing to gain by clipping;
    // on a long-tailed one (exponential, 200,000 values, max ≈ 16.7) the search cuts the sparse tail.
    let seed = 1;
    const uniform = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const e = new ValueStats(true);
    e.add(Float32Array.from({ length: 200_000 }, () => -Math.log(1 - uniform())));
    const t = entropyThreshold(e, 128);
    expect(t).toBeGreaterThan(percentileThreshold(e, 99.9));
    expect(t).toBeLessThan(0.8 * e.max);
    expect(calibratedRange(e, 'entropy', { levels: 128 })).toEqual({ lo: e.min, hi: t });

    expect(activationParams({ lo: -1, hi: 3 }, 'uint8')).toEqual({ scale: Math.fround(4 / 255), zero: 64, type: 'uint8', lo: -1, hi: 3 });
    expect(activationParams({ lo: -1, hi: 3 }, 'int8')).toEqual({ scale: Math.fround(3 / 127), zero: 0, type: 'int8', lo: -1, hi: 3 });
    expect(activationParams({ lo: 0, hi: 2.55 }, 'int8', false)).toMatchObject({ scale: Math.fround(2.55 / 255), zero: -128 });
    expect(activationParams({ lo: 0, hi: 0 }, 'uint8')).toMatchObject({ scale: 1, zero: 0 });
  });
});
