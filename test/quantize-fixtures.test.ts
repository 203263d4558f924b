/**
 * The quantize step on the two real fixtures with their labels (test/fixtures/README.md):
 * spam-tinybert (1,000 held-out e-mails, fp32 accuracy 0.917) and fmnist-cnn (Fashion-MNIST t10k,
 * fp32 0.9039). Accuracy is measured on the full test sets; GPTQ is calibrated on samples it is not
 * evaluated on (spam: first 200 e-mails calibrate, 800 held out; Fashion-MNIST: first 1,000 images
 * calibrate, 9,000 held out). Every quantized model also passes the web compatibility check
 * (onnxruntime-web wasm vs onnxruntime-node) on a few samples.
 */
import { describe, expect, it } from 'vitest';
import { evaluateModels, type EvalReport } from '../src/eval/evaluate.js';
import { loadFashionMnist, loadSpamTestSet } from '../bench/lib/fixtures.js';
import type { Sample } from '../src/data/types.js';
import { readModel } from '../src/onnx/io.js';
import type { ModelProto } from '../src/onnx/types.js';
import type { QuantizeStep } from '../src/recipe/types.js';
import { quantizeDefaults } from '../src/recipe/load.js';
import { checkWebCompatibility, quantizeStep } from '../src/transforms/quantize/index.js';
import type { StepReport } from '../src/transforms/types.js';

const F = new URL('./fixtures/', import.meta.url).pathname;

const base: QuantizeStep = quantizeDefaults('int8');

interface Fixture {
  name: string;
  model: ModelProto;
  all: Sample[];
  calibration: Sample[];
  heldOut: Sample[];
}

const spamAll = loadSpamTestSet(`${F}spam-tinybert/test-split.json`);
const fmnistAll = loadFashionMnist(`${F}fmnist-cnn/t10k-images-idx3-ubyte.gz`, `${F}fmnist-cnn/t10k-labels-idx1-ubyte.gz`);
const fixtures: Fixture[] = [
  { name: 'spam-tinybert', model: readModel(`${F}spam-tinybert/model.onnx`), all: spamAll, calibration: spamAll.slice(0, 200), heldOut: spamAll.slice(200) },
  { name: 'fmnist-cnn', model: readModel(`${F}fmnist-cnn/model.onnx`), all: fmnistAll, calibration: fmnistAll.slice(0, 1000), heldOut: fmnistAll.slice(1000) },
];

async function quantize(fx: Fixture, params: Partial<QuantizeStep>): Promise<{ model: ModelProto; report: StepReport }> {
  return quantizeStep({ ...base, ...params }, { intraOpThreads: 2 })(fx.model, {
    file: `${F}${fx.name}/model.onnx`,
    original: fx.model,
    calibration: fx.calibration,
    device: 'cpu',
    seed: 0,
    log: () => {},
  });
}

function evaluate(fx: Fixture, model: ModelProto, samples: Sample[]): Promise<EvalReport> {
  return evaluateModels(fx.model, model, samples, { runs: 0, intraOpThreads: 2, batch: 500 });
}

function line(fx: Fixture, mode: string, ev: EvalReport, report?: StepReport): string {
  const before = report?.layers.reduce((s, l) => s + l.bytesBefore, 0) ?? 0;
  const after = report?.layers.reduce((s, l) => s + l.bytesAfter, 0) ?? 0;
  return (
    `${fx.name} ${mode}: accuracy ${ev.original.accuracy!.toFixed(4)} → ${ev.compressed.accuracy!.toFixed(4)}, ` +
    `agreement ${(100 * ev.metrics.agreement).toFixed(2)} %, output rel. RMS ${ev.metrics.relRms.toExponential(3)}` +
    (report ? `, weights ${before} → ${after} bytes` : '')
  );
}

describe.each(fixtures)('quantize $name', (fx) => {
  it('int8 per-channel: accuracy drop ≤ 0.3 points, top-1 agreement ≥ 99 %, web compatible', async () => {
    for (const params of [{ target: 'wasm' }, { target: 'node' }] as const) {
      const { model, report } = await quantize(fx, params);
      expect(report.layers.length).toBeGreaterThan(0);
      expect(report.layers.every((l) => l.dtypeAfter === 'int8' && l.bytesAfter < l.bytesBefore / 3.5)).toBe(true);
      const ev = await evaluate(fx, model, fx.all);
      console.log(line(fx, `int8 per-channel (${params.target})`, ev, report));
      expect(ev.original.accuracy! - ev.compressed.accuracy!).toBeLessThanOrEqual(0.003 + 1e-9);
      expect(ev.metrics.agreement).toBeGreaterThanOrEqual(0.99);
      await checkWebCompatibility(model, fx.all.slice(0, 8));
    }
  });

  it('float16: agreement ≥ 99.9 %, no NaN/Inf on the whole test set, web compatible', async () => {
    const { model, report } = await quantize(fx, { dtype: 'float16', float16: true });
    expect(report.layers.every((l) => l.dtypeAfter === 'float16' && l.error! < 1e-3)).toBe(true);
    // Graph inputs and outputs stay float32 (keepIoTypes).
    expect(model.graph!.input.every((v) => v.type?.tensorType?.elemType !== 10)).toBe(true);
    expect(model.graph!.output.every((v) => v.type?.tensorType?.elemType === 1)).toBe(true);
    const ev = await evaluate(fx, model, fx.all);
    console.log(line(fx, 'float16', ev, report));
    expect(ev.nonFinite).toBe(0);
    expect(ev.metrics.agreement).toBeGreaterThanOrEqual(0.999);
    await checkWebCompatibility(model, fx.all.slice(0, 8));
  });

  it('int4 block 32: RTN drop ≤ 2 points; GPTQ drop ≤ 1 point and lower output error than RTN on held-out samples', async () => {
    const rtn = await quantize(fx, { dtype: 'int4', granularity: 32 });
    const evRtnAll = await evaluate(fx, rtn.model, fx.all);
    console.log(line(fx, 'int4 b32 RTN (full test set)', evRtnAll, rtn.report));
    expect(evRtnAll.original.accuracy! - evRtnAll.compressed.accuracy!).toBeLessThanOrEqual(0.02);
    await checkWebCompatibility(rtn.model, fx.all.slice(0, 8));

    const gptq = await quantize(fx, { dtype: 'int4', granularity: 32, method: 'gptq' });
    expect(gptq.report.layers.some((l) => (l as { method?: string }).method === 'gptq')).toBe(true);
    const evRtn = await evaluate(fx, rtn.model, fx.heldOut);
    const evGptq = await evaluate(fx, gptq.model, fx.heldOut);
    console.log(line(fx, 'int4 b32 RTN (held-out)', evRtn));
    console.log(line(fx, 'int4 b32 GPTQ (held-out)', evGptq, gptq.report));
    expect(evGptq.original.accuracy! - evGptq.compressed.accuracy!).toBeLessThanOrEqual(0.01);
    expect(evGptq.metrics.relRms).toBeLessThan(evRtn.metrics.relRms);
    await checkWebCompatibility(gptq.model, fx.all.slice(0, 8));
  });
});
